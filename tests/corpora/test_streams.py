import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pipelines import streaming
from pipelines.configs import CONFIGS, recipe_args
from speechrnn.cli import main
from speechrnn.corpora.fsdd import FSDDDataModule
from speechrnn.corpora.streams import (
    CLEAR_S,
    INSIDE_MARGIN_S,
    POSITIVE_S,
    StreamDataModule,
)
from speechrnn.data.corpus import BACKGROUND
from speechrnn.data.features import MFCC
from speechrnn.data.pipeline import build_data_module, data_config
from speechrnn.data.timeline import read_timeline
from speechrnn.errors import SpeechRNNError
from tones import ToneDataModule, write_fsdd_recordings


def streams(tmp_path, seed: int = 0, cache=None) -> StreamDataModule:
    """Tones 0-2 as keywords, tones 3-4 (another corpus) as fillers; a 60 s keyword-free test stream."""
    keywords = ToneDataModule(data_root=str(tmp_path / "keywords"), cache_dir=str(cache or tmp_path / "cache"))
    fillers = ToneDataModule(num_classes=5, per_class=12, data_root=str(tmp_path / "fillers"))
    return StreamDataModule(keywords, fillers, filler_words=["3", "4"], window_s=(0.5, 1.0),
                            keyword_free_s=60.0, seed=seed)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    dm = streams(tmp_path_factory.mktemp("streams"))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_labels_are_the_keywords_and_background_and_features_the_keyword_corpus(prepared):
    assert prepared.labels == ["0", "1", "2", BACKGROUND]
    assert prepared.features == prepared.keywords.features and prepared.name == "tones-stream"
    assert prepared.hparams["sample_rate"] == prepared.features.sample_rate  # a checkpoint names them


def test_each_split_stream_holds_exactly_that_splits_keywords(prepared):
    keys = {split: {u.key for u in prepared.keywords.utterances() if u.split == split}
            for split in ("validation", "test")}
    for split in ("validation", "test"):
        timeline = read_timeline(prepared.stream_files(split)["keywords"])
        spoken = [e for e in timeline["events"] if e["kind"] == "keyword"]
        assert {e["source"] for e in spoken} == keys[split] and len(spoken) == len(keys[split])
        assert {e["kind"] for e in timeline["events"]} <= {"keyword", "filler", "noise", "silence"}
        fillers = {e["label"] for e in timeline["events"] if e["kind"] == "filler"}
        assert fillers <= {"3", "4"}
        starts = [e["start_s"] for e in timeline["events"]]
        assert starts == sorted(starts) and all(e["end_s"] > e["start_s"] for e in timeline["events"])


def test_keyword_free_stream_has_no_keyword_and_lasts_as_asked(prepared):
    path = prepared.stream_files("test")["keyword_free"]
    timeline = read_timeline(path)
    assert all(e["kind"] != "keyword" for e in timeline["events"])
    info = sf.info(str(path))
    assert info.samplerate == prepared.features.sample_rate and info.duration == timeline["duration_s"] == 60.0
    assert max(e["end_s"] for e in timeline["events"]) <= 60.0


def window_spans(prepared, split: str) -> list[tuple[int, int]]:
    """``(first, last)`` tape frame of each window of ``split``, found by looking its rows up in the tape."""
    tape = np.load(prepared.directory / f"{split}.tape.npy")
    frame_of = {row.tobytes(): t for t, row in enumerate(tape)}
    assert len(frame_of) == len(tape)  # the noise floor makes every frame unique
    windows = prepared.splits[split]
    spans = []
    for first, last in zip(windows.offsets[:-1].tolist(), windows.offsets[1:].tolist()):
        frames = [frame_of[row.tobytes()] for row in windows.feats[first:last].numpy()]
        assert frames == list(range(frames[0], frames[0] + len(frames)))  # a stretch of the tape, in order
        spans.append((frames[0], frames[-1]))
    return spans


def test_windows_are_labelled_by_where_they_end(prepared):
    train = prepared.splits["train"]
    events = read_timeline(prepared.directory / "train.json")["events"]
    kinds = [e["kind"] for e in events]
    counts = torch.bincount(train.targets, minlength=4)
    # positives=2, negatives=4 per keyword, filler_negatives=1 per filler word
    assert counts[:3].sum() == 2 * kinds.count("keyword")
    assert counts[3] == 4 * kinds.count("keyword") + kinds.count("filler") > 4 * kinds.count("keyword")
    hop = prepared.features.frame_s
    keywords = [e for e in events if e["kind"] == "keyword"]
    fillers = [e for e in events if e["kind"] == "filler"]

    def ends_just_after(word, end_s):  # within POSITIVE_S of the word's end, give or take a frame's rounding
        return POSITIVE_S[0] - hop <= end_s - word["end_s"] <= POSITIVE_S[1] + hop

    for (first, last), target in zip(window_spans(prepared, "train"), train.targets.tolist()):
        label, end_s = prepared.labels[target], last * hop
        if label != BACKGROUND:
            word = next((k for k in keywords if ends_just_after(k, end_s)), None)
            assert word is not None, f"a {label!r} window ends at {end_s:.2f} s, just after no keyword"
            assert word["label"] == label and first * hop <= word["start_s"]  # the whole keyword is in it
            continue
        inside = any(k["start_s"] + 0.1 - hop <= end_s <= k["end_s"] - INSIDE_MARGIN_S + hop for k in keywords)
        clear = all(not k["start_s"] + hop < end_s < k["end_s"] + CLEAR_S - hop for k in keywords)
        assert inside or clear or any(ends_just_after(f, end_s) for f in fillers), (end_s, label)
    assert 0.5 / hop - 1 <= int(train.lengths[train.targets == 3].min())  # background windows are whole
    assert int(train.lengths.max()) <= 1.0 / hop + 1 + round(0.6 / hop)  # + a keyword kept whole


def test_tape_features_are_those_of_the_written_stream(prepared):
    wave, _ = sf.read(prepared.stream_files("validation")["keywords"], dtype="float32")
    tape = np.load(prepared.directory / "validation.tape.npy")
    offline = MFCC(prepared.features)(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))[0].numpy()
    assert tape.shape == offline.shape
    # the WAV holds 16-bit samples of the same audio: every coefficient of every frame within 1 on a
    # range of about +-190 (measured: at most 0.42); a frame off by one hop differs by tens
    assert np.abs(tape - offline).max() < 1.0
    assert np.abs(tape[1:] - offline[:-1]).max() > 10


def composed(dm: StreamDataModule, split: str) -> tuple[np.ndarray, dict]:
    return np.load(dm.directory / f"{split}.tape.npy"), read_timeline(dm.directory / f"{split}.json")


def test_same_seed_same_streams_other_seed_other_streams(prepared, tmp_path):
    root = prepared.keywords.data_root.parent
    again, other = streams(root, cache=tmp_path / "again"), streams(root, seed=1, cache=tmp_path / "other")
    for dm in (again, other):  # composed afresh, each in its own cache
        dm.prepare_data()
    for split in ("train", "validation", "test"):
        tape, timeline = composed(prepared, split)
        same_tape, same_timeline = composed(again, split)
        np.testing.assert_array_equal(same_tape, tape)
        assert same_timeline == timeline
        other_tape, other_timeline = composed(other, split)
        assert other_timeline["events"] != timeline["events"] and not np.array_equal(other_tape, tape)
    for name in ("test.wav", "test-keyword-free.wav"):
        assert (again.directory / name).read_bytes() == (prepared.directory / name).read_bytes()


def test_a_keyword_cannot_be_a_filler(tmp_path):
    keywords = ToneDataModule(data_root=str(tmp_path))
    with pytest.raises(SpeechRNNError, match=r"\['1'\] given as fillers"):
        StreamDataModule(keywords, ToneDataModule(num_classes=5, data_root=str(tmp_path)), filler_words=["1", "3"])


def test_a_keyword_label_the_corpus_lacks_is_refused_naming_it(tmp_path):
    keywords, fillers = ToneDataModule(data_root=str(tmp_path)), ToneDataModule(num_classes=5, data_root=str(tmp_path))
    with pytest.raises(SpeechRNNError, match=r"keyword_labels \['7'\] are not labels of tones \['0', '1', '2'\]"):
        StreamDataModule(keywords, fillers, filler_words=["3", "4"], keyword_labels=["1", "7"])
    with pytest.raises(SpeechRNNError, match="keyword_labels is empty"):
        StreamDataModule(keywords, fillers, filler_words=["3", "4"], keyword_labels=[])


# ----- the honest setting: some of the corpus's labels are keywords, the others real unknown words -----

KEYWORDS, UNKNOWN = ["0", "1"], {"2", "3"}


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """Tones 0-1 as keywords and 2-3 of the same corpus as unknown words; tones 4-5 as fillers."""
    root = tmp_path_factory.mktemp("honest")
    keywords = ToneDataModule(num_classes=4, data_root=str(root / "keywords"), cache_dir=str(root / "cache"))
    fillers = ToneDataModule(num_classes=6, per_class=12, data_root=str(root / "fillers"))
    dm = StreamDataModule(keywords, fillers, filler_words=["4", "5"], keyword_labels=["1", "0"], window_s=(0.5, 1.0),
                          keyword_free_s=60.0)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_the_models_labels_are_the_keywords_and_background(honest):
    assert honest.labels == [*KEYWORDS, BACKGROUND]  # in the corpus's order
    assert build_data_module(honest.description()).labels == honest.labels  # as a checkpoint rebuilds it


def test_unknown_words_are_in_each_tape_once_and_never_keywords(honest):
    for split in ("train", "validation", "test"):
        keys = {u.key for u in honest.keywords.utterances() if u.split == split and u.label in UNKNOWN}
        events = read_timeline(honest.directory / f"{split}.json")["events"]
        unknowns = [e for e in events if e["kind"] == "unknown"]
        assert sorted(e["source"] for e in unknowns) == sorted(keys) and keys
        assert {e["label"] for e in unknowns} == UNKNOWN
        assert {e["label"] for e in events if e["kind"] == "keyword"} == set(KEYWORDS)


def test_windows_ending_just_after_an_unknown_word_are_background(honest):
    train = honest.splits["train"]
    events = read_timeline(honest.directory / "train.json")["events"]
    kinds = [e["kind"] for e in events]
    hop = honest.features.frame_s
    # negatives=4 per keyword, filler_negatives=1 per filler and per unknown word
    background = 4 * kinds.count("keyword") + kinds.count("filler") + kinds.count("unknown")
    assert int((train.targets == honest.labels.index(BACKGROUND)).sum()) == background
    ends = [(last, honest.labels[target]) for (_, last), target in
            zip(window_spans(honest, "train"), train.targets.tolist(), strict=True)]
    for word in (e for e in events if e["kind"] == "unknown"):
        after = [label for last, label in ends if POSITIVE_S[0] - hop <= last * hop - word["end_s"] <= POSITIVE_S[1] + hop]
        assert after and set(after) == {BACKGROUND}, (word, after)


def test_the_keyword_free_stream_holds_real_unknown_words(honest):
    keys = {u.key for u in honest.keywords.utterances() if u.split == "test" and u.label in UNKNOWN}
    events = read_timeline(honest.stream_files("test")["keyword_free"])["events"]
    assert {e["kind"] for e in events} == {"unknown", "filler", "noise", "silence"}
    spoken = [e for e in events if e["kind"] == "unknown"]
    assert {e["source"] for e in spoken} <= keys and len(spoken) > len(keys)  # drawn again and again


def real_words(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] in ("keyword", "unknown")]


def test_held_out_speakers_are_the_only_voices_of_the_test_streams(tmp_path):
    write_fsdd_recordings(tmp_path / "fsdd" / "recordings", ("alice", "bob", "carol"), range(8))
    keywords = FSDDDataModule(split="speakers", test_speakers=["bob"], data_root=str(tmp_path),
                              cache_dir=str(tmp_path / "cache"))
    fillers = ToneDataModule(num_classes=7, data_root=str(tmp_path / "fillers"))
    dm = StreamDataModule(keywords, fillers, filler_words=["5", "6"], keyword_labels=["0", "1", "2", "3", "4"],
                          window_s=(0.5, 1.0), keyword_free_s=30.0)
    dm.prepare_data()
    bob = {u.key for u in keywords.utterances() if u.speaker == "bob"}
    for split in ("train", "validation", "test"):
        spoken = real_words(read_timeline(dm.directory / f"{split}.json")["events"])
        assert all(e["speaker"] == e["source"].split("_")[1] for e in spoken)  # the event names its speaker
        speakers = {e["speaker"] for e in spoken}
        assert speakers == ({"bob"} if split == "test" else {"alice", "carol"}), split
    test = real_words(read_timeline(dm.stream_files("test")["keywords"])["events"])
    assert {e["source"] for e in test} == bob  # every held-out recording, keywords and unknown words alike
    free = real_words(read_timeline(dm.stream_files("test")["keyword_free"])["events"])
    assert free and {e["speaker"] for e in free} == {"bob"} and {e["kind"] for e in free} == {"unknown"}


def test_espeak_digits_are_spoken_cut_in_the_training_tapes_only(tmp_path):
    write_fsdd_recordings(tmp_path / "fsdd" / "recordings", ("alice", "bob"), range(6))
    keywords = FSDDDataModule(split="speakers", test_speakers=["bob"], espeak_per_digit=1, data_root=str(tmp_path),
                              cache_dir=str(tmp_path / "cache"))
    fillers = ToneDataModule(num_classes=7, data_root=str(tmp_path / "fillers"))
    dm = StreamDataModule(keywords, fillers, filler_words=["5", "6"], keyword_labels=["0", "1", "2", "3", "4"],
                          window_s=(0.5, 1.0), keyword_free_s=30.0)
    dm.prepare_data()
    synthetic = {u.key: u for u in keywords.utterances() if u.key.startswith("espeak-")}
    train = [e for e in read_timeline(dm.directory / "train.json")["events"] if e["source"] in synthetic]
    assert sorted(e["source"] for e in train) == sorted(synthetic)  # each once, keyword or unknown word
    assert {e["kind"] for e in train} == {"keyword", "unknown"}
    for e in train:  # the clip as FSDD cuts it, not the whole generated file
        assert e["end_s"] - e["start_s"] == pytest.approx(synthetic[e["source"]].duration_s, abs=1e-3)
    for split in ("validation", "test"):
        for path in dm.stream_files(split).values():
            assert not any(e["source"] in synthetic for e in read_timeline(path)["events"]), path


def test_make_streaming_holds_out_george_and_keeps_5_to_9_as_unknown_words(tmp_path, capsys):
    config = streaming.DATA  # the pipeline's default data config
    assert config == CONFIGS / "data/fsdd_stream_heldout.yaml"
    with pytest.raises(SystemExit):  # as `make streaming` stacks it
        main(["fit", *recipe_args(config), "--config", str(CONFIGS / "model/gru.yaml"), "--print_config"])
    config_out = yaml.safe_load(capsys.readouterr().out)
    data = config_out["data"]["init_args"]
    assert data["keyword_labels"] == ["0", "1", "2", "3", "4"]
    # FSDD's recipe for unheard voices, as the corpus's own classifier trains
    assert (data["keywords"]["init_args"]["vtlp"], config_out["model"]["weight_decay"]) == (0.1, 0.01)
    assert (data["keywords"]["init_args"]["split"], data["keywords"]["init_args"]["test_speakers"]) == (
        "speakers", ["george"])
    assert data["keywords"]["init_args"]["espeak_per_digit"] == 100  # synthetic voices, training tapes only
    write_fsdd_recordings(tmp_path / "fsdd" / "recordings", ("george", "jackson"), range(8))
    described = data_config(config)
    described["init_args"]["keywords"]["init_args"]["espeak_per_digit"] = 0  # 1,000 clips take seconds to make
    dm = build_data_module(described, data_root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert dm.labels == ["0", "1", "2", "3", "4", BACKGROUND]
    assert {u.speaker for u in dm.keywords.utterances() if u.split == "test"} == {"george"}


def test_the_keyword_corpus_augmentation_acts_on_the_training_windows(tmp_path):
    keywords = ToneDataModule(data_root=str(tmp_path / "keywords"), vtlp=0.1, time_masks=2)
    fillers = ToneDataModule(num_classes=5, per_class=12, data_root=str(tmp_path / "fillers"))
    dm = StreamDataModule(keywords, fillers, filler_words=["3", "4"])
    assert dm.augmentation is keywords.augmentation and dm.augmentation.settings.vtlp == 0.1
