"""The eSpeak NG binding against the real library that espeakng-loader ships."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from speechrnn.corpora import espeak
from speechrnn.errors import SpeechRNNError


def test_same_arguments_give_the_same_samples_whatever_ran_before():
    first = espeak.synthesize("seven", "en-us+m3", rate_wpm=150, pitch=40)
    for variant in ("whisper", "klatt", "croak"):  # leave eSpeak's internal state elsewhere
        espeak.synthesize("three", f"en-us+{variant}", rate_wpm=250, pitch=80)
    again = espeak.synthesize("seven", "en-us+m3", rate_wpm=150, pitch=40)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert first.phones == again.phones


def test_noise_seed_changes_only_the_breath_noise():
    one = espeak.synthesize("yes", "en-us+whisper", noise_seed=1)
    two = espeak.synthesize("yes", "en-us+whisper", noise_seed=2)
    assert not np.array_equal(one.samples, two.samples)
    assert [p for _, _, p in one.phones] == [p for _, _, p in two.phones]


def test_audio_is_float_in_unit_range_at_espeaks_rate():
    spoken = espeak.synthesize("zero", "en-us")
    assert spoken.sample_rate == 22050
    assert spoken.samples.dtype == np.float32 and spoken.samples.ndim == 1
    assert 0.05 < np.abs(spoken.samples).max() <= 1.0


def test_phones_are_contiguous_and_end_with_the_audio():
    spoken = espeak.synthesize("seven", "en-us+f2", rate_wpm=120)
    names = [name for _, _, name in spoken.phones]
    assert names[:5] == ["s", "'E", "v", "@", "n"]  # stress marks are eSpeak's own
    for (_, end, _), (start, _, _) in zip(spoken.phones, spoken.phones[1:]):
        assert end == start
    assert all(start < end for start, end, _ in spoken.phones)
    assert spoken.phones[-1][1] == pytest.approx(len(spoken.samples) / spoken.sample_rate)


def test_threads_get_the_same_audio_as_one_caller():
    jobs = [("go", "en-us+m1"), ("stop", "en-us+f3"), ("left", "en-us+klatt2")] * 3
    alone = [espeak.synthesize(text, voice).samples for text, voice in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda job: espeak.synthesize(*job).samples, jobs))
    for a, b in zip(alone, threaded):
        np.testing.assert_array_equal(a, b)


def test_variants_are_the_files_of_the_shipped_data():
    variants = espeak.variants()
    assert len(variants) > 50
    assert {"m3", "f2", "whisper", "klatt"} <= set(variants)
    assert list(variants) == sorted(variants)


def test_unknown_variant_is_an_error_naming_it():
    # eSpeak itself would speak with the plain voice and report success.
    with pytest.raises(SpeechRNNError, match="'nosuchvariant'.*variants()"):
        espeak.synthesize("yes", "en-us+nosuchvariant")


def test_unknown_language_is_an_error_naming_it():
    with pytest.raises(SpeechRNNError, match="'xx-nowhere'"):
        espeak.synthesize("yes", "xx-nowhere")


def test_rate_out_of_range_is_an_error():
    with pytest.raises(SpeechRNNError, match="rate_wpm=20.*80..450"):
        espeak.synthesize("yes", rate_wpm=20)
