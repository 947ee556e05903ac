import json
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.configs import trainer_args
from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli import main
from speechrnn.corpora.delayed import DelayedDataModule
from speechrnn.errors import SpeechRNNError
from tones import ToneDataModule

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
WINDOW_S = 0.3  # tones last 0.1-0.6 s: some are cut, most are padded with a lead-in


@pytest.fixture
def delayed(make_data):
    """``delayed(**kwargs)``: a prepared delayed task around the tone corpus in tmp_path."""

    def make(**kwargs):
        inner = make_data(ToneDataModule)
        dm = DelayedDataModule(inner, window_s=WINDOW_S, **{"delays_s": [0.0, 0.2, 0.5], **kwargs})
        dm.prepare_data()
        dm.setup("fit")
        return dm

    return make


def test_every_example_is_the_window_plus_its_delay_and_buckets_separate_delays(delayed):
    dm = delayed()
    hop_s = dm.features.hop_ms / 1000
    expected = [round((WINDOW_S + d) / hop_s) for d in (0.0, 0.2, 0.5)]
    lengths = dm.splits["train"].lengths
    assert sorted(lengths.unique().tolist()) == expected
    assert dm.length_buckets == expected
    assert torch.equal(dm.splits["train"].speech_lengths, lengths)  # accuracy is keyed by total length
    counts = torch.bucketize(lengths, torch.tensor(dm.length_buckets), right=True).bincount()
    assert counts[0] == 0 and (counts[1:] > 0).all()  # one bucket per delay, none shared


def test_utterance_ends_exactly_the_delay_before_the_readout(delayed):
    dm = delayed()
    source, split = dm.inner.splits["train"], dm.splits["train"]
    for i in range(len(split)):
        kept = min(int(source.lengths[i]), dm.window_frames)
        utterance = source.feats[source.offsets[i] : source.offsets[i] + kept]
        example = split.feats[split.offsets[i] : split.offsets[i + 1]]
        delay_frames = len(example) - dm.window_frames
        torch.testing.assert_close(example[dm.window_frames - kept : dm.window_frames], utterance)
        assert delay_frames in {dm.frames(d) for d in dm.delays_s}
    assert torch.equal(split.targets, source.targets)


def test_same_seed_gives_the_same_examples_and_another_seed_others(delayed):
    first, again, other = (delayed(seed=s).splits["train"] for s in (0, 0, 1))
    assert torch.equal(first.feats, again.feats) and torch.equal(first.offsets, again.offsets)
    assert not torch.equal(first.lengths, other.lengths)


def test_utterance_distractors_are_frames_of_the_same_split(delayed):
    dm = delayed(distractor="utterances", delays_s=[0.5])
    corpus = {tuple(frame.tolist()) for frame in dm.inner.splits["train"].feats}
    assert all(tuple(frame.tolist()) in corpus for frame in dm.splits["train"].feats)


def test_noise_level_sets_the_distractor_energy(delayed):
    loud, quiet = (delayed(noise_dbfs=level, delays_s=[0.5]) for level in (-20.0, -70.0))
    # c0 of an MFCC follows the log energy; the last frame of every example is distractor
    last = lambda dm: dm.splits["train"].feats[dm.splits["train"].offsets[1:] - 1, 0]
    assert last(loud).mean() > last(quiet).mean() + 20


def test_negative_delay_is_refused(delayed):
    with pytest.raises(SpeechRNNError, match="delays_s"):
        delayed(delays_s=[-1.0])


@pytest.fixture(scope="module")
def delayed_run(tmp_path_factory):
    """A delayed-task run through `speechrnn fit`, with non-default features, as the sweep trains one."""
    root = tmp_path_factory.mktemp("delayed-run")
    inner = {"class_path": "tones.ToneDataModule",
             "init_args": {"data_root": str(root / "data"), "cache_dir": str(root / "cache"),
                           "n_mfcc": 13, "n_mels": 23, "hop_ms": 20.0}}
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {"class_path": "speechrnn.corpora.delayed.DelayedDataModule", "init_args": {
        "inner": inner, "delays_s": [0.0, 0.4], "window_s": WINDOW_S, "batch_size": 8}}}))
    main(["fit", *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          "--config", str(data), "--run_dir", str(root / "run"), "--trainer.max_epochs", "3",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--model.hidden_size", "16",
          "--model.num_layers", "1", "--model.pooling", "last"])
    return root / "run"


def test_a_delayed_checkpoint_rebuilds_its_pipeline_and_evaluate_reproduces_its_test(delayed_run, tmp_path):
    ckpt = load_checkpoint(delayed_run / "checkpoints/best.ckpt")
    assert ckpt.features.hop_ms == 20.0 and ckpt.features.n_mfcc == 13  # not the 10 ms / 40 defaults
    assert ckpt.pipeline.data["init_args"]["inner"]["class_path"] == "tones.ToneDataModule"
    results = json.loads((delayed_run / "results.json").read_text())
    assert results["dataset"] == "tones-delayed"
    main(["evaluate", str(delayed_run / "checkpoints/best.ckpt"), "--json", str(tmp_path / "eval.json")])
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["dataset"] == "tones-delayed"
    assert report["test"]["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert [row[:2] for row in report["test"]["buckets"]] == [row[:2] for row in results["test"]["buckets"]]


def test_predict_and_gradients_run_on_a_delayed_checkpoint(delayed_run, tmp_path, capsys):
    checkpoint = str(delayed_run / "checkpoints/best.ckpt")
    wav = next((delayed_run.parent / "data/tones").glob("1_10.wav"))
    main(["predict", checkpoint, str(wav), "--json", str(tmp_path / "p.json")])
    top = json.loads((tmp_path / "p.json").read_text())[0]["top"]
    assert sum(p for _, p in top) <= 1.0 + 1e-6 and {label for label, _ in top} <= {"0", "1", "2"}
    main(["gradients", checkpoint, "--frames", "30", "--batch-size", "4", "--out", str(tmp_path / "g.png")])
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert "gru run trained: decay per step" in capsys.readouterr().out
