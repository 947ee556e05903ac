import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.configs import trainer_args
from speechrnn.cli import main
from tones import ToneDataModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small GRU fitted on the tone corpus until it tells the tones apart, then tested: its run."""
    root = tmp_path_factory.mktemp("evaluate")
    main(["fit", *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          "--data", "tones.ToneDataModule", "--data.data_root", str(root / "data"),
          "--data.cache_dir", str(root / "cache"), "--data.batch_size", "8", "--run_dir", str(root / "run"),
          "--trainer.max_epochs", "15", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--model.hidden_size", "32", "--model.num_layers", "1", "--model.pooling", "mean", "--model.lr", "0.01",
          "--data.length_buckets", "[30, 45]"])
    return root / "run"


def labelled_folder(run: Path, pattern: str, folder: Path) -> Path:
    """``folder/<label>/<file>.wav`` from the run's tone files matching ``pattern``."""
    for wav in (run.parent / "data/tones").glob(pattern):
        label = wav.stem.split("_")[0]
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, folder / label / wav.name)
    return folder


def evaluate(*args) -> None:
    main(["evaluate", *map(str, args)])


def fails(capsys, *args) -> str:
    """The one-line error of ``speechrnn evaluate args``, which must exit with status 2."""
    with pytest.raises(SystemExit) as exit_:
        evaluate(*args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("speechrnn: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_lightning_checkpoints_load_with_weights_only_and_carry_the_data_modules_description(run):
    raw = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    assert raw["hyper_parameters"]["labels"] == ["0", "1", "2"]
    # Lightning saves the data module's state_dict under its class name: the description lives there
    pipeline = raw["ToneDataModule"]["speechrnn_pipeline"]
    assert pipeline["data"]["class_path"] == "tones.ToneDataModule"
    rebuilt = ToneDataModule(**pipeline["data"]["init_args"])  # the description rebuilds the module
    assert asdict(rebuilt.features) == pipeline["features"] and rebuilt.length_buckets == [30, 45]
    assert {"normaliser.mean", "normaliser.std"} <= raw["state_dict"].keys()


def test_evaluate_on_the_test_split_matches_the_training_runs_test(run, tmp_path, capsys):
    trained = json.loads((run / "results.json").read_text())["test"]
    evaluate(run / "checkpoints/best.ckpt", "--json", tmp_path / "eval.json", "--plot", tmp_path / "eval.png",
             "--confusion", tmp_path / "confusion.png", "--device", "cpu")
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "eval.json").read_text())
    scores = report["test"]
    assert report["split"] == "test" and report["dataset"] == "tones"
    assert scores["accuracy"] == pytest.approx(trained["accuracy"])
    assert scores["macro_accuracy"] == pytest.approx(trained["macro_accuracy"])
    assert scores["edges"] == [30, 45] and scores["edges_s"] == [0.3, 0.45]
    assert [row[:2] for row in scores["buckets"]] == [row[:2] for row in trained["buckets"]]
    assert sum(count for _, count, _ in scores["buckets"]) == scores["utterances"] == 6
    assert f"accuracy: {100 * trained['accuracy']:.2f}%" in out and "0.30-0.45" in out
    for png in ("eval.png", "confusion.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_on_a_labelled_folder_of_the_test_files_gives_the_same_accuracy(run, tmp_path):
    trained = json.loads((run / "results.json").read_text())["test"]
    labelled_folder(run, "*_1[01].wav", tmp_path / "folder")  # the test split of tones.ToneDataModule
    evaluate(run / "checkpoints/best.ckpt", "--dataset", "folder", "--data-root", tmp_path / "folder",
             "--cache-dir", tmp_path / "cache", "--json", tmp_path / "folder.json")
    scores = json.loads((tmp_path / "folder.json").read_text())["test"]
    assert scores["utterances"] == 6
    assert scores["accuracy"] == pytest.approx(trained["accuracy"])
    assert [row[:2] for row in scores["buckets"]] == [row[:2] for row in trained["buckets"]]


def test_bucket_edges_and_the_validation_split_can_be_chosen(run, tmp_path):
    evaluate(run / "checkpoints/best.ckpt", "--split", "validation", "--buckets", "10,20,40",
             "--batch-size", "2", "--json", tmp_path / "val.json")
    report = json.loads((tmp_path / "val.json").read_text())
    assert report["split"] == "validation"
    assert [row[0] for row in report["validation"]["buckets"]] == ["0000-0010", "0010-0020", "0020-0040",
                                                                   "0040-inf"]
    assert report["validation"]["utterances"] == 6


def test_a_missing_checkpoint_is_named(tmp_path, capsys):
    err = fails(capsys, tmp_path / "nope.ckpt")
    assert f"checkpoint {tmp_path / 'nope.ckpt'} not found" in err and "speechrnn fit" in err


def test_an_unreadable_checkpoint_is_named(tmp_path, capsys):
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint at all")
    assert f"cannot read checkpoint {tmp_path / 'bad.ckpt'}" in fails(capsys, tmp_path / "bad.ckpt")


def test_a_checkpoint_of_another_project_is_refused(tmp_path, capsys):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "other.ckpt")
    err = fails(capsys, tmp_path / "other.ckpt")
    assert "is not a speechrnn checkpoint" in err and "hyper_parameters.labels" in err


def test_labels_outside_the_checkpoints_vocabulary_are_listed(run, tmp_path, capsys):
    for label in ("1", "cat", "dog"):
        (tmp_path / "folder" / label).mkdir(parents=True)
        shutil.copy(run.parent / "data/tones/1_10.wav", tmp_path / "folder" / label / "a.wav")
    err = fails(capsys, run / "checkpoints/best.ckpt", "--dataset", "folder", "--data-root", tmp_path / "folder")
    assert "labels ['cat', 'dog']" in err and "does not know" in err


def test_a_data_root_without_the_dataset_is_named(run, tmp_path, capsys):
    err = fails(capsys, run / "checkpoints/best.ckpt", "--data-root", tmp_path)
    assert f"{tmp_path} holds no tones/ folder" in err and "--data-root" in err


def test_a_checkpoint_without_its_pipeline_is_refused_naming_the_fix(run, tmp_path, capsys):
    raw = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    raw["speechrnn_pipeline"] = raw.pop("ToneDataModule")["speechrnn_pipeline"]  # the layout before
    torch.save(raw, tmp_path / "old.ckpt")
    err = fails(capsys, tmp_path / "old.ckpt")
    assert "older speechrnn" in err and "retrain" in err


def test_a_folder_with_some_of_the_checkpoints_labels_is_scored_on_those(run, tmp_path):
    labelled_folder(run, "[02]_1[01].wav", tmp_path / "folder")  # test files of classes 0 and 2 only
    evaluate(run / "checkpoints/best.ckpt", "--dataset", "folder", "--data-root", tmp_path / "folder",
             "--cache-dir", tmp_path / "cache", "--json", tmp_path / "subset.json")
    scores = json.loads((tmp_path / "subset.json").read_text())["test"]
    assert scores["utterances"] == 4
    confusion = torch.tensor(scores["confusion"])
    assert confusion[1].sum() == 0 and confusion[[0, 2]].sum() == 4  # rows are the true classes


@pytest.mark.parametrize("tool", ["evaluate", "predict", "gradients"])
@pytest.mark.parametrize("content", [b"hello, not a checkpoint\n", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))])
def test_a_text_or_audio_file_given_as_checkpoint_is_one_line(tool, content, tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(content)
    with pytest.raises(SystemExit) as exit_:
        main([tool, str(tmp_path / "a.wav"), *([str(tmp_path / "a.wav")] if tool == "predict" else [])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot read checkpoint {tmp_path / 'a.wav'}" in err and "weights_only=False" not in err


def read_only(root: Path) -> list[Path]:
    """Take write permission off ``root`` and every folder in it; the folders, to give it back."""
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    return folders


def test_a_streaming_checkpoint_evaluates_against_a_read_only_data_root(tmp_path, capsys):
    trained_on, root = tmp_path / "data", tmp_path / "shared"
    stream = {"class_path": "speechrnn.corpora.streams.StreamDataModule", "init_args": {
        "keywords": {"class_path": "tones.ToneDataModule"},
        "fillers": {"class_path": "speechrnn.corpora.synth.SynthDataModule", "init_args": {"per_word": 3}},
        "window_s": [0.5, 1.0], "keyword_free_s": 5.0, "batch_size": 8}}
    (tmp_path / "stream.yaml").write_text(yaml.safe_dump({"data": stream}))
    main(["fit", "--config", str(tmp_path / "stream.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          *trainer_args(CONFIGS / "trainer/cpu.yaml"),
          "--data.init_args.keywords.init_args.data_root", str(trained_on),
          "--data.init_args.keywords.init_args.cache_dir", str(tmp_path / "cache"),
          "--data.init_args.fillers.init_args.data_root", str(trained_on),
          "--data.init_args.fillers.init_args.cache_dir", str(tmp_path / "cache"),
          "--run_dir", str(tmp_path / "run"), "--trainer.max_epochs", "1", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--model.hidden_size", "8", "--model.num_layers", "1",
          "--model.pooling", "last"])
    shutil.copytree(trained_on / "tones", root / "tones")  # a shared copy of the recordings alone
    before = sorted(root.rglob("*"))
    folders = read_only(root)
    try:  # a fresh cache: the fillers and the streams are made again, the recordings only read
        evaluate(tmp_path / "run/checkpoints/best.ckpt", "--data-root", root, "--cache-dir", tmp_path / "fresh")
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert sorted(root.rglob("*")) == before  # the test runs as root, which the modes do not stop
    assert "accuracy:" in capsys.readouterr().out


def test_an_espeak_checkpoint_evaluates_with_a_fresh_cache_generating_its_corpus_there(tmp_path, capsys):
    main(["fit", *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          "--data", "speechrnn.corpora.synth.SynthDataModule", "--data.per_word", "3",
          "--data.data_root", str(tmp_path / "data"), "--data.cache_dir", str(tmp_path / "cache"),
          "--run_dir", str(tmp_path / "run"), "--trainer.max_epochs", "1", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--model.hidden_size", "8", "--model.num_layers", "1"])
    evaluate(tmp_path / "run/checkpoints/best.ckpt", "--cache-dir", tmp_path / "fresh")
    assert "accuracy:" in capsys.readouterr().out and (tmp_path / "fresh" / "synth").is_dir()
    assert not (tmp_path / "data").exists()  # generated audio never goes to the data root
