"""Training-batch augmentation: tempo, VTLP, gain, SpecAugment masks, noise, shifts; seeded, and only ever on training batches."""

import math

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.batch import IGNORE_INDEX, Batch
from speechrnn.data.augment import (
    Augmentation,
    AugmentSettings,
    NoiseMixer,
    add_gain,
    change_tempo,
    coeff_mask,
    time_mask,
    time_shift,
    vtlp_band_warp,
    warp_vocal_tract,
)
from speechrnn.data.batching import PaddedBatches
from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier


def ramp_batch(lengths: list[int], dim: int = 3, framewise: bool = False) -> Batch:
    """Frame t of every utterance holds t + 1 in every feature; zeros past each length."""
    steps = max(lengths)
    lengths_t = torch.tensor(lengths)
    valid = torch.arange(steps)[None, :] < lengths_t[:, None]
    feats = (torch.arange(1.0, steps + 1)[None, :, None] * valid[..., None]).expand(-1, -1, dim).contiguous()
    targets = (torch.arange(steps).repeat(len(lengths), 1).masked_fill(~valid, IGNORE_INDEX) if framewise
               else torch.zeros(len(lengths), dtype=torch.long))
    return Batch(feats, lengths_t, targets, lengths_t.clone(), torch.arange(len(lengths)))


def test_time_masks_fill_whole_frames_inside_the_length():
    feats = torch.ones(16, 50, 4)
    lengths = torch.full((16,), 30)
    fill = torch.full((4,), 7.0)
    masked = time_mask(feats, lengths, count=2, max_frames=5, fill=fill, generator=torch.Generator().manual_seed(0))
    filled = (masked == 7).all(-1)  # (B, T)
    assert torch.all((masked == 7).any(-1) == filled)
    assert filled.any() and not filled[:, 30:].any()
    assert torch.all(filled.sum(1) <= 10)


def test_coefficient_masks_hit_the_same_coefficients_in_every_delta_block():
    feats = torch.ones(8, 5, 3 * 13)
    masked = coeff_mask(feats, n_mfcc=13, count=1, max_width=4, fill=torch.zeros(39),
                        generator=torch.Generator().manual_seed(0)).view(8, 5, 3, 13)
    hit = masked == 0
    assert hit.any()
    assert torch.all(hit == hit[:, :1, :1, :])  # same coefficients for every frame and block


def test_tempo_resamples_frames_and_keeps_lengths_consistent():
    batch = ramp_batch([10, 7, 3], framewise=True)
    out = change_tempo(batch, torch.tensor([2.0, 0.5, 1.0]))
    assert out.lengths.tolist() == [5, 14, 3] and out.feats.shape == (3, 14, 3)
    assert out.feats[0, :5, 0].tolist() == [1, 3, 5, 7, 9]  # every other frame
    assert out.feats[1, :4, 0].tolist() == [1, 1.5, 2, 2.5]  # halfway frames interpolated
    torch.testing.assert_close(out.feats[2, :3], batch.feats[2, :3])
    valid = torch.arange(14)[None, :] < out.lengths[:, None]
    assert torch.all(out.feats[~valid] == 0)
    assert torch.equal(out.targets != IGNORE_INDEX, valid)  # framewise targets follow the lengths
    assert out.targets[0, :5].tolist() == [0, 2, 4, 6, 8]
    assert torch.all(out.speech_lengths <= out.lengths)


def test_gain_in_the_mfcc_domain_matches_features_of_the_scaled_waveform():
    settings = FeatureSettings(sample_rate=8000, n_mfcc=20, n_mels=40, deltas=True)
    mfcc = MFCC(settings)
    wave = torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 0.1
    wave = wave * torch.sin(torch.linspace(0, 3, 4000)).abs()  # a loudness envelope, like speech
    gain_db = torch.tensor([6.0, -9.0])
    louder = [mfcc((wave * 10 ** (g / 20))[None], torch.tensor([4000]))[0] for g in gain_db.tolist()]
    (feats,) = mfcc(wave[None], torch.tensor([4000]))
    batch = feats[None].repeat(2, 1, 1)  # (2, T, 60)
    out = add_gain(batch, torch.tensor([len(feats)] * 2), gain_db, settings.n_mels)
    torch.testing.assert_close(out, torch.stack(louder), atol=2e-3, rtol=1e-4)
    assert (out - batch)[0, :, 0].mean() == pytest.approx(6.0 * math.sqrt(40), rel=1e-5)


def tone_mfcc(freq: float, settings: FeatureSettings) -> torch.Tensor:
    t = torch.arange(settings.sample_rate) / settings.sample_rate
    (feats,) = MFCC(settings)(0.5 * torch.sin(2 * math.pi * freq * t)[None], torch.tensor([settings.sample_rate]))
    return feats


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_vtlp_moves_a_tone_as_a_vocal_tract_of_that_length_would(alpha):
    """Warped by alpha, a tone at f lands in the mel band of a real tone at f / alpha; 1 changes nothing."""
    settings = FeatureSettings(sample_rate=8000, n_mfcc=40, n_mels=40, deltas=True)
    dct = torch.linalg.pinv(MFCC(settings).dct)  # cepstra -> log-mel bands
    for freq in (500.0, 1000.0, 2000.0):
        feats = tone_mfcc(freq, settings)[None]  # (1, T, 120)
        warped = warp_vocal_tract(feats, torch.tensor([alpha]), 40, 40, 8000)[0]
        band = int((warped[:, :40] @ dct).mean(0).argmax())
        assert band == int((tone_mfcc(freq / alpha, settings)[:, :40] @ dct).mean(0).argmax())
        assert band != int((feats[0, :, :40] @ dct).mean(0).argmax())
    torch.testing.assert_close(warp_vocal_tract(feats, torch.tensor([1.0]), 40, 40, 8000), feats, atol=1e-3, rtol=1e-4)
    assert torch.allclose(vtlp_band_warp(torch.tensor([1.0]), 40, 8000)[0], torch.eye(40, dtype=torch.float64))


def test_augmentation_is_repeatable_under_a_seed_and_changes_with_it():
    batch = ramp_batch([12, 9, 5, 12], dim=6)
    fill = torch.zeros(6)

    def augmented(seed: int) -> list[Batch]:
        augment = Augmentation(AugmentSettings(time_masks=1, time_mask_frames=3, coeff_masks=1,
                                               coeff_mask_width=2, tempo_factors=(0.9, 1.0, 1.1),
                                               gain_db=6.0, vtlp=0.1, seed=seed, n_mfcc=6, n_mels=8))
        return [augment(batch, fill) for _ in range(3)]

    first, again, other = augmented(1), augmented(1), augmented(2)
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(first[0].feats, first[1].feats)  # a new draw every batch
    assert any(a.feats.shape != b.feats.shape or not torch.equal(a.feats, b.feats) for a, b in zip(first, other))


def test_negative_settings_are_refused():
    with pytest.raises(SpeechRNNError, match="tempo_factors"):
        AugmentSettings(tempo_factors=(0.0, 1.0))
    with pytest.raises(SpeechRNNError, match="gain_db"):
        AugmentSettings(gain_db=-1.0)
    with pytest.raises(SpeechRNNError, match="vtlp"):
        AugmentSettings(vtlp=0.6)


class SeenBatches(L.Callback):
    """Keeps each batch as the model receives it, per stage."""

    def __init__(self) -> None:
        self.seen: dict[str, list[Batch]] = {"train": [], "val": [], "test": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen["train"].append(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.seen["val"].append(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.seen["test"].append(batch)


@pytest.mark.parametrize("option", [{"time_masks": 2, "time_mask_frames": 4}, {"coeff_masks": 2, "coeff_mask_width": 3},
                                    {"tempo_factors": [0.8, 1.25]}, {"gain_db": 6.0},
                                    {"vtlp": 0.1}])
def test_each_augmentation_changes_training_batches_only(tmp_path, option):
    from tones import ToneDataModule

    dm = ToneDataModule(data_root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **option)
    model = SpeechClassifier(dm.labels, dm.feature_dim, hidden_size=8, num_layers=1)
    seen = SeenBatches()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[seen])
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    split_of = {"train": "train", "val": "validation", "test": "test"}
    for stage, batches in seen.seen.items():
        assert batches, stage
        raw = PaddedBatches(dm.splits[split_of[stage]], framewise=False)
        changed = [not torch.equal(batch.feats, raw[batch.indices.tolist()].feats) for batch in batches]
        assert any(changed) if stage == "train" else not any(changed), stage


def test_time_shift_moves_frames_within_each_length_and_keeps_padding_zero():
    torch.manual_seed(0)
    feats = torch.arange(1.0, 11.0)[None, :, None].repeat(2, 1, 3)  # (2, 10, 3)
    lengths = torch.tensor([10, 6])
    feats[1, 6:] = 0
    shifted = time_shift(feats, lengths, max_frames=3)
    assert torch.all(shifted[1, 6:] == 0)
    for b, n in enumerate(lengths.tolist()):
        values = shifted[b, :n, 0]
        steps = values.diff()
        assert torch.all((steps == 0) | (steps == 1))  # a shifted ramp with repeated edges
        assert values.min() >= 1 and values.max() <= n


RATE = 16000


def _noise_setup(tmp_path):
    settings = FeatureSettings(sample_rate=RATE, n_mfcc=40, n_mels=40)
    mfcc = MFCC(settings)
    rng = np.random.default_rng(1)
    noise_path = tmp_path / "noise.wav"
    sf.write(noise_path, (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32), RATE)
    t = torch.arange(RATE) / RATE
    speech = (0.3 * torch.sin(2 * torch.pi * 440 * t)).float()
    (ceps,) = mfcc(speech[None], torch.tensor([RATE]))
    mean, std = ceps.mean(0), ceps.std(0)
    return mfcc, NoiseMixer.from_files([noise_path], mfcc), ceps, mean, std


def test_noise_mixing_is_the_identity_when_no_clip_is_chosen(tmp_path):
    _, mixer, ceps, mean, std = _noise_setup(tmp_path)
    feats = ((ceps - mean) / std)[None]
    out = mixer(feats, torch.tensor([len(ceps)]), mean, std, probability=0.0, snr_db=(0.0, 0.0))
    torch.testing.assert_close(out, feats, atol=1e-3, rtol=1e-3)


def test_noise_mixing_matches_mfccs_of_the_mixed_waveform(tmp_path):
    torch.manual_seed(0)
    mfcc, mixer, ceps, mean, std = _noise_setup(tmp_path)
    feats = ((ceps - mean) / std)[None]
    out = mixer(feats, torch.tensor([len(ceps)]), mean, std, probability=1.0, snr_db=(0.0, 0.0))
    mixed_db = (out[0] * std + mean) @ mfcc.dct.T
    speech_db = ceps @ mfcc.dct.T
    # The noise is stationary, so the mixture's spectrum is what white noise at 0 dB SNR adds.
    t = torch.arange(RATE) / RATE
    speech = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    noise = torch.randn(RATE, generator=torch.Generator().manual_seed(2))
    noise *= speech.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt()
    (reference,) = mfcc((speech + noise)[None], torch.tensor([RATE]))
    reference_db = reference @ mfcc.dct.T
    # Mean mel-band level, away from the reflect-padded edge frames.
    inner = slice(5, -5)
    assert (mixed_db[inner] - reference_db[inner]).mean(0).abs().mean() < 1.5
    assert (mixed_db[inner] - speech_db[inner]).mean(0).abs().mean() > 10
