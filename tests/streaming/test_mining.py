import numpy as np
import pytest
import torch

from speechrnn.corpora.streams import StreamDataModule
from speechrnn.data.corpus import BACKGROUND
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.detect import Detection
from speechrnn.streaming.mining import MINE_EVERY_S, fired_windows, mine, write_mined
from tones import ToneDataModule


def streams(root, mined_windows=None) -> StreamDataModule:
    keywords = ToneDataModule(data_root=str(root / "keywords"), cache_dir=str(root / "cache"))
    fillers = ToneDataModule(num_classes=5, per_class=12, data_root=str(root / "fillers"))
    return StreamDataModule(keywords, fillers, filler_words=["3", "4"], window_s=(0.5, 1.0), keyword_free_s=60.0,
                            mined_windows=mined_windows)


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """The tone streams, and what an untrained spotter fires on in their training keyword-free tape."""
    root = tmp_path_factory.mktemp("mining")
    dm = streams(root)
    dm.prepare_data()
    torch.manual_seed(0)
    model = SpeechClassifier(labels=dm.labels, input_size=dm.features.feature_dim, cell="gru", hidden_size=8,
                             pooling="last")
    point = OperatingPoint(threshold=0.3, smooth_s=0.04)  # an untrained model hovers near 1/4 per class
    windows, detections = mine(model, dm, point)
    path = root / "mined.json"
    write_mined(path, dm.directory.name, windows, point, len(detections))
    return root, dm, windows, detections, path


def test_a_window_ends_at_each_detections_first_frame_and_then_every_tenth_of_a_second():
    clock = ToneDataModule().features
    found = [Detection("0", clock.centre_s(10), clock.centre_s(22), 0.9, 0.0), Detection("1", clock.centre_s(40),
                                                                                         clock.centre_s(40), 0.8, 0.0)]
    windows = fired_windows(found, clock, (0.5, 1.0), np.random.default_rng(0))
    every = clock.frames_in(MINE_EVERY_S)
    assert [last for _, last in windows] == [*range(10, 23, every), 40]
    assert all(0.5 - clock.frame_s <= (last + 1 - first) * clock.frame_s <= 1.0 + clock.frame_s or first == 0
               for first, last in windows)


def test_mining_adds_exactly_the_fired_windows_as_background_examples(mined):
    root, plain, windows, detections, path = mined
    assert detections and windows
    clock = plain.features
    for _, last in windows:  # each ends inside a detection
        assert any(clock.frames_in(d.start_s) <= last <= clock.frames_in(d.end_s) for d in detections)
    plain.setup("fit")
    with_mined = streams(root, mined_windows=str(path))
    with_mined.setup("fit")
    base, train = plain.splits["train"], with_mined.splits["train"]
    assert len(train) == len(base) + len(windows)
    assert torch.equal(train.targets[: len(base)], base.targets)
    assert set(train.targets[len(base):].tolist()) == {with_mined.labels.index(BACKGROUND)}
    tape, _ = with_mined.tape("train", keyword_free=True)
    for i, (first, last) in enumerate(windows):
        start, end = train.offsets[len(base) + i], train.offsets[len(base) + i + 1]
        assert torch.equal(train.feats[start:end], tape[first : last + 1])
    assert torch.equal(with_mined.splits["validation"].targets, plain.splits["validation"].targets)


def test_windows_mined_from_other_streams_are_refused_naming_the_file(mined, tmp_path):
    root, _, windows, _, _ = mined
    stale = tmp_path / "stale.json"
    write_mined(stale, "tones-stream-0000", windows, OperatingPoint(), 0)
    with pytest.raises(SpeechRNNError, match=f"mined_windows {stale} were mined from the streams tones-stream-0000"):
        streams(root, mined_windows=str(stale)).setup("fit")
    with pytest.raises(SpeechRNNError, match="does not exist"):
        streams(root, mined_windows=str(tmp_path / "absent.json")).setup("fit")
