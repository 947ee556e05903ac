import pytest
import torch

from speechrnn.data.delayed import DelayedDataModule
from speechrnn.errors import SpeechRNNError
from tones import ToneDataModule

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
