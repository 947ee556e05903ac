"""The generated eSpeak corpus: reproducible, held out by voice, phones covering every file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from speechrnn.corpora.synth import (
    METADATA,
    SAMPLE_RATE,
    SILENCE,
    WORDS,
    SynthDataModule,
    corpus_name,
    generate_corpus,
    phone_set,
    read_corpus,
)
from speechrnn.errors import SpeechRNNError

PER_WORD = 3  # the fewest that give every split every word


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_corpus(tmp_path_factory.mktemp("synth") / "corpus", seed=0, per_word=PER_WORD)


def test_same_seed_gives_a_byte_identical_corpus(corpus, tmp_path):
    again = generate_corpus(tmp_path / "again", seed=0, per_word=PER_WORD)
    assert _files(again) == _files(corpus)


def test_another_seed_gives_another_corpus(corpus, tmp_path):
    other = generate_corpus(tmp_path / "other", seed=1, per_word=PER_WORD)
    ours, theirs = _files(corpus), _files(other)
    assert ours.keys() == theirs.keys()
    assert all(ours[name] != theirs[name] for name in ours)


def test_every_word_is_spoken_per_word_times_as_16khz_mono(corpus):
    utterances = read_corpus(corpus)
    assert len(utterances) == len(WORDS) * PER_WORD
    assert sorted(u.label for u in utterances) == sorted(WORDS * PER_WORD)
    info = sf.info(str(utterances[0].path))
    assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)


def test_phone_segments_cover_each_file_contiguously(corpus):
    for utt in read_corpus(corpus):
        duration_s = sf.info(str(utt.path)).frames / SAMPLE_RATE
        starts, ends, labels = zip(*utt.phones)
        assert starts[0] == 0.0
        assert ends[-1] == pytest.approx(duration_s, abs=1e-6)
        assert list(starts[1:]) == list(ends[:-1])
        assert all(start < end for start, end in zip(starts, ends))
        assert labels[0] == labels[-1] == SILENCE  # the added silence at both ends
        assert SILENCE not in labels[1:-1]  # eSpeak makes no pause inside a word
        assert not any(label.startswith(("_", "'", ",")) for label in labels)


def test_lengths_vary_with_rate_and_silence(corpus):
    durations = [sf.info(str(u.path)).duration for u in read_corpus(corpus)]
    assert min(durations) < 0.7 * max(durations)


def test_splits_hold_out_voices(corpus):
    utterances = read_corpus(corpus)
    voices = {split: {u.speaker for u in utterances if u.split == split}
              for split in ("train", "validation", "test")}
    assert voices["train"].isdisjoint(voices["validation"])
    assert voices["train"].isdisjoint(voices["test"])
    assert voices["validation"].isdisjoint(voices["test"])
    for split in voices:
        assert sorted(u.label for u in utterances if u.split == split) == sorted(WORDS)


def test_phone_vocabulary_is_what_the_corpus_uses(corpus):
    used = {label for utt in read_corpus(corpus) for _, _, label in utt.phones}
    assert used == set(phone_set())


def test_leftover_partial_generation_is_not_taken_for_a_corpus(corpus, make_data):
    dm = make_data(SynthDataModule, per_word=PER_WORD)
    assert dm.corpus_path.name == corpus_name(0, PER_WORD, (10.0, 30.0))
    # An interrupted run: files and even the metadata written, the rename never done.
    partial = dm.corpus_path.with_name(dm.corpus_path.name + ".partial")
    shutil.copytree(corpus, partial)
    (partial / "wav" / "zero-0000.wav").write_bytes(b"truncated")
    with pytest.raises(SpeechRNNError, match="no generated corpus"):
        dm.utterances()
    dm.download()
    assert not partial.exists()
    assert _files(dm.corpus_path) == _files(corpus)


def test_datamodule_lists_sorted_utterances_with_words_and_phones(corpus, make_data):
    dm = make_data(SynthDataModule, per_word=PER_WORD)
    shutil.copytree(corpus, dm.corpus_path)
    utterances = dm.utterances()
    assert [u.key for u in utterances] == sorted(u.key for u in utterances)
    metadata = json.loads((corpus / METADATA).read_text())["utterances"]
    words = {e["key"]: e["word"] for e in metadata}
    assert all(u.label == words[u.key] and u.phones for u in utterances)


def test_vocabulary_follows_the_task():
    keyword = SynthDataModule(per_word=PER_WORD)
    phones = SynthDataModule(task="phones", per_word=PER_WORD)
    assert keyword.labels == list(WORDS) and len(keyword.labels) == 20
    assert phones.labels == sorted(phones.labels) and SILENCE in phones.labels


def test_too_few_utterances_per_word_is_an_error():
    with pytest.raises(SpeechRNNError, match="per_word=2"):
        SynthDataModule(per_word=2)
