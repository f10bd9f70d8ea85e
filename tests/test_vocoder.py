import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from slamlib import hub
from slamlib.profiles import HubertConfig, get_profile
from slamlib.tokenization.features import HubertExtractor
from slamlib.tokenization.kmeans import KMeans
from slamlib.tokenization.speech_tokenizer import SpeechTokenizer, build_speech_tokenizer
from slamlib.vocoders.base import spread_durations
from slamlib.vocoders.load import load_vocoder
from slamlib.vocoders.griffin_lim import GriffinLimVocoder, mel_to_linear_power
from slamlib.vocoders.hifigan import HIFIGAN_CHECKPOINT_URL, HIFIGAN_CONFIG_URL, UnitHiFiGAN, WeightNormConv1d

# The official config's fields (speech-resynthesis / textlesslib CodeHiFiGAN), with small widths.
# 10 * 8 * 8 = 640 samples per unit frame: 25 Hz units at 16 kHz, like mHuBERT-25Hz's.
SMALL_HIFIGAN = {
    "resblock": "1",
    "upsample_rates": [10, 8, 8],
    "upsample_kernel_sizes": [20, 16, 16],
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "num_embeddings": 20,
    "embedding_dim": 16,
    "model_in_dim": 16,
    "segment_size": 8960,
    "code_hop_size": 640,
    "f0": False,
    "num_mels": 80,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "dur_prediction_weight": 1.0,
    "dur_predictor_params": {
        "encoder_embed_dim": 16, "var_pred_hidden_dim": 16, "var_pred_kernel_size": 3, "var_pred_dropout": 0.5,
    },
    "sampling_rate": 16000,
    "fmin": 0,
    "fmax": 8000,
}


# 80-bin log-mel, pairs of 10 ms frames stacked (50 Hz), no context frames, plain dedup: the
# stacked-frame case; the tiny profile's own settings are tested further down
STACKED = {"tokenizer.features.n_mels": 80, "tokenizer.features.frame_rate": 50.0, "tokenizer.features.stack": 2,
           "tokenizer.features.context": 1, "tokenizer.min_run": 1}


@pytest.fixture(scope="module")
def logmel_tokenizer(speech):
    config = get_profile("tiny", {**STACKED, "tokenizer.n_units": 64}).tokenizer
    return build_speech_tokenizer(config, fit_audio=[w for _, _, w in speech], device="cpu")


@pytest.fixture(scope="module")
def griffin_lim(logmel_tokenizer):
    return GriffinLimVocoder.from_tokenizer(logmel_tokenizer)


def log_mel_pearson(extractor, original, rebuilt, frames):
    """Pearson correlation of two waveforms' log-mel images and of their frame energy envelopes."""
    a = extractor.log_mel([original])[0][:frames].double()
    b = extractor.log_mel([rebuilt])[0][:frames].double()
    image = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    envelope = np.corrcoef(a.exp().sum(1).log().numpy(), b.exp().sum(1).log().numpy())[0, 1]
    return image, envelope


# --- Griffin-Lim ---------------------------------------------------------------------------------

def test_griffin_lim_inverts_log_mel_units(griffin_lim, logmel_tokenizer, speech):
    cfg = logmel_tokenizer.extractor.config
    for _, _, wav in speech:
        tok = logmel_tokenizer.tokenize(wav)
        out = griffin_lim(tok.units, tok.durations)
        frames = int(tok.durations.sum())
        assert out.dtype == np.float32 and out.ndim == 1
        assert len(out) == frames * cfg.hop * cfg.stack
        assert abs(len(out) - len(wav)) < cfg.win + cfg.hop * cfg.stack  # the frames cover the audio
        assert np.isfinite(out).all()
        assert np.abs(out).max() == pytest.approx(0.95, abs=1e-4) and out.std() > 0.01
        image, envelope = log_mel_pearson(logmel_tokenizer.extractor, wav, out, frames * cfg.stack)
        # measured: 0.93-0.96 on both with 64 units; the same units reversed give 0.1-0.3
        assert image > 0.8 and envelope > 0.8
        backwards, _ = log_mel_pearson(logmel_tokenizer.extractor, wav,
                                       griffin_lim(tok.units[::-1], tok.durations[::-1]), frames * cfg.stack)
        assert backwards < image - 0.3


def test_griffin_lim_is_deterministic_given_its_seed(griffin_lim, logmel_tokenizer, speech):
    tok = logmel_tokenizer.tokenize(speech[1][2])
    first = griffin_lim(tok.units, tok.durations)
    assert np.array_equal(first, griffin_lim(tok.units, tok.durations))
    other = GriffinLimVocoder.from_tokenizer(logmel_tokenizer, seed=1)(tok.units, tok.durations)
    assert not np.array_equal(first, other) and len(other) == len(first)


def test_griffin_lim_without_durations_uses_fitted_unit_durations(logmel_tokenizer, speech):
    vocoder = GriffinLimVocoder.from_tokenizer(logmel_tokenizer, n_iter=4)
    samples = vocoder.samples_per_frame
    tokenized = logmel_tokenizer.tokenize([w for _, _, w in speech])
    units = tokenized[0].units
    assert len(vocoder(units)) == 2 * len(units) * samples  # nothing fitted: 2 frames a unit

    vocoder.fit_durations(tokenized)
    all_units = np.concatenate([t.units for t in tokenized])
    all_durations = np.concatenate([t.durations for t in tokenized])
    for unit in np.unique(all_units)[:5]:
        assert vocoder.unit_durations[unit] == pytest.approx(all_durations[all_units == unit].mean())
    expected = vocoder.expected_durations(units)
    assert (expected >= 1).all()
    assert len(vocoder(units)) == expected.sum() * samples
    # rounding errors are carried, so the total is close to what the units really lasted
    assert abs(expected.sum() - vocoder.unit_durations[units].sum()) <= 1
    assert vocoder.fit_durations([(units, tokenized[0].durations)]).unit_durations[units[0]] > 0


def test_griffin_lim_with_mean_normalised_features(speech, logmel_tokenizer):
    wavs = [w for _, _, w in speech]
    config = get_profile("tiny", {**STACKED, "tokenizer.n_units": 32, "tokenizer.features.cmn": True}).tokenizer
    tokenizer = build_speech_tokenizer(config, fit_audio=wavs, device="cpu")
    absolute = logmel_tokenizer.extractor  # same settings without normalisation
    average = np.mean([absolute.log_mel([w])[0].mean(0).numpy() for w in wavs], axis=0)
    flat = GriffinLimVocoder.from_tokenizer(tokenizer)
    coloured = GriffinLimVocoder.from_tokenizer(tokenizer, mean_log_mel=average)
    scores = []
    for wav in wavs:
        tok = tokenizer.tokenize(wav)
        frames = int(tok.durations.sum()) * config.features.stack
        out = [v(tok.units, tok.durations) for v in (flat, coloured)]
        assert all(np.isfinite(o).all() and len(o) == len(out[0]) for o in out)
        scores.append([log_mel_pearson(absolute, wav, o, frames)[0] for o in out])
    scores = np.array(scores)
    assert (scores[:, 0] > 0.7).all()  # measured 0.80-0.83
    assert scores[:, 1].mean() > scores[:, 0].mean()  # measured 0.82-0.92
    with pytest.raises(ValueError, match="mean_log_mel"):
        GriffinLimVocoder.from_tokenizer(logmel_tokenizer, mean_log_mel=average)


def test_griffin_lim_inverts_the_tiny_profiles_context_units(speech):
    """The tiny profile's frames carry their neighbours and short runs are dropped: the vocoder
    uses each centroid's centre frame, and the durations still cover every frame. With one-frame
    runs dropped the log-mel image and the energy envelope come back closely; with the profile's
    3-frame minimum (about 8 units a second) each unit stands for longer stretches, and the image
    still comes back, more coarsely."""
    wavs = [w for _, _, w in speech]
    profile_config = get_profile("tiny", {"tokenizer.n_units": 32}).tokenizer
    assert profile_config.features.context > 1 and profile_config.min_run == 3
    images = {}
    for min_run in (2, 3):
        config = dataclasses.replace(profile_config, min_run=min_run)
        tokenizer = build_speech_tokenizer(config, fit_audio=wavs, device="cpu")
        voc = GriffinLimVocoder.from_tokenizer(tokenizer)
        for wav in wavs:
            tok = tokenizer.tokenize(wav)
            frames = int(tok.durations.sum())
            out = voc(tok.units, tok.durations)
            assert frames == tokenizer.extractor.n_frames(len(wav)) and len(out) == frames * config.features.hop
            image, envelope = log_mel_pearson(tokenizer.extractor, wav, out, frames)
            images.setdefault(min_run, []).append(image)
            if min_run == 2:
                assert image > 0.7 and envelope > 0.7
    assert min(images[3]) > 0.4 and np.mean(images[3]) > 0.55


def test_spread_durations_keeps_the_total():
    out = spread_durations([1.4] * 10)
    assert out.sum() == 14 and set(out.tolist()) == {1, 2}
    assert spread_durations([0.2, 0.2, 5.0]).tolist() == [1, 1, 3]  # the clamp to 1 is paid back


def test_mel_inversion_is_non_negative_and_fits(logmel_tokenizer):
    from slamlib.tokenization.features import mel_filterbank

    cfg = logmel_tokenizer.extractor.config
    fb = torch.from_numpy(mel_filterbank(cfg.n_mels, cfg.n_fft, 16_000, cfg.f_min, cfg.f_max)).double()
    truth = torch.rand(6, fb.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mel = truth @ fb.T
    power = mel_to_linear_power(mel, fb)
    assert (power >= 0).all()
    assert ((power @ fb.T - mel).norm() / mel.norm()) < 0.05


def test_griffin_lim_rejects_model_ids_and_bad_durations(griffin_lim):
    with pytest.raises(ValueError, match="outside"):
        griffin_lim([64])
    with pytest.raises(ValueError, match="durations"):
        griffin_lim([1, 2], [1])
    assert griffin_lim([], []).shape == (0,)


# --- unit HiFi-GAN -------------------------------------------------------------------------------

def small_hifigan(seed=0) -> UnitHiFiGAN:
    torch.manual_seed(seed)
    return UnitHiFiGAN.from_config(SMALL_HIFIGAN)


def test_weight_norm_conv_matches_torch_weight_norm():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 20)
    for transposed in (False, True):
        ours = WeightNormConv1d(6, 4, 8, stride=4 if transposed else 1, padding=2, transposed=transposed)
        with torch.no_grad():
            ours.weight_g.mul_(torch.rand_like(ours.weight_g) + 0.5)
        plain = nn.ConvTranspose1d(6, 4, 8, 4, padding=2) if transposed else nn.Conv1d(6, 4, 8, padding=2)
        theirs = nn.utils.parametrizations.weight_norm(plain)  # reads the legacy weight_g / weight_v keys
        theirs.load_state_dict(ours.state_dict())
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_hifigan_state_dict_has_the_official_layout():
    state = small_hifigan().generator.state_dict()
    # conv_pre, 3 upsamplers, 3 stages x 3 ResBlocks x 6 convs, conv_post: weight_g, weight_v, bias each
    assert sum(k.endswith("weight_g") for k in state) == 1 + 3 + 3 * 3 * 6 + 1
    assert state["dict.weight"].shape == (20, 16)
    assert state["conv_pre.weight_g"].shape == (32, 1, 1)
    assert state["ups.0.weight_v"].shape == (32, 16, 20)  # transposed conv: (in, out, kernel)
    assert state["ups.0.weight_g"].shape == (32, 1, 1)  # norm along dim 0, as torch's weight_norm
    assert state["resblocks.8.convs1.2.weight_v"].shape == (4, 4, 11)
    assert state["resblocks.0.convs2.0.bias"].shape == (16,)
    assert state["conv_post.weight_v"].shape == (1, 4, 7)
    assert {k for k in state if k.startswith("dur_predictor.")} == {
        f"dur_predictor.{m}.{p}" for m in ("conv1.0", "ln1", "conv2.0", "ln2", "proj") for p in ("weight", "bias")}


def test_hifigan_output_length_is_frames_times_upsampling():
    vocoder = small_hifigan()
    assert vocoder.samples_per_frame == 640 and vocoder.sample_rate == 16_000
    units, durations = np.array([3, 7, 1, 19, 0]), np.array([1, 2, 3, 1, 4])
    wav = vocoder(units, durations)
    assert wav.dtype == np.float32 and wav.shape == (durations.sum() * 640,)
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0 and wav.std() > 0


def test_hifigan_predicts_durations_when_none_are_given():
    vocoder = small_hifigan()
    units = np.array([3, 7, 1, 19, 0, 5])
    predicted = vocoder.predict_durations(units)
    assert predicted.shape == units.shape and (predicted >= 1).all()
    assert len(vocoder(units)) == predicted.sum() * 640
    # the predictor outputs log(1 + frames): a constant log(4) means 3 frames per unit
    with torch.no_grad():
        vocoder.generator.dur_predictor.proj.weight.zero_()
        vocoder.generator.dur_predictor.proj.bias.fill_(math.log(4.0))
    assert vocoder.predict_durations(units).tolist() == [3] * 6
    assert np.array_equal(vocoder(units), vocoder(units, [3] * 6))


def test_hifigan_without_duration_predictor_needs_durations():
    config = {k: v for k, v in SMALL_HIFIGAN.items() if k != "dur_predictor_params"}
    vocoder = UnitHiFiGAN.from_config(config)
    assert len(vocoder([1, 2], [2, 2])) == 4 * 640
    with pytest.raises(ValueError, match="duration predictor"):
        vocoder([1, 2])


def test_hifigan_rejects_conditioning_it_does_not_implement():
    with pytest.raises(ValueError, match="multispkr"):
        UnitHiFiGAN.from_config({**SMALL_HIFIGAN, "multispkr": True})


def save_official_format(vocoder, tmp_path):
    checkpoint, config = tmp_path / "g_00400000.pt", tmp_path / "config.json"
    torch.save({"generator": vocoder.generator.state_dict()}, checkpoint)
    config.write_text(json.dumps(vocoder.config, indent=4))
    return checkpoint, config


def test_hifigan_loads_a_checkpoint_in_the_official_format(tmp_path):
    original = small_hifigan(seed=3)
    checkpoint, config = save_official_format(original, tmp_path)
    loaded = UnitHiFiGAN.from_pretrained(str(checkpoint), str(config))
    units, durations = [4, 9, 2, 11], [2, 1, 3, 2]
    assert np.array_equal(loaded(units, durations), original(units, durations))
    assert np.array_equal(loaded(units), original(units))
    assert not np.array_equal(small_hifigan(seed=4)(units, durations), original(units, durations))

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**SMALL_HIFIGAN, "upsample_initial_channel": 64}))
    with pytest.raises(ValueError, match="does not match"):
        UnitHiFiGAN.from_pretrained(str(checkpoint), str(wrong))
    bare = tmp_path / "other.pt"
    torch.save({"model": {}}, bare)
    with pytest.raises(ValueError, match="not a unit HiFi-GAN checkpoint"):
        UnitHiFiGAN.from_pretrained(str(bare), str(config))


def test_official_hifigan_files_fail_offline_with_a_clear_error(tmp_path):
    with pytest.raises(hub.AssetUnavailableError, match="hifigan_lj_mhubert_base_25hz_config.json"):
        UnitHiFiGAN.from_pretrained()
    checkpoint, config = save_official_format(small_hifigan(), tmp_path)
    with pytest.raises(hub.AssetUnavailableError, match="hifigan_lj_mhubert_base_25hz.pt") as err:
        UnitHiFiGAN.from_pretrained(HIFIGAN_CHECKPOINT_URL, str(config))
    assert "vocoder checkpoint" in str(err.value) and "offline" in str(err.value)
    with pytest.raises(hub.AssetUnavailableError, match="vocoder config") as err:
        UnitHiFiGAN.from_pretrained(str(checkpoint), HIFIGAN_CONFIG_URL)
    assert HIFIGAN_CONFIG_URL in str(err.value)


# --- choosing a vocoder --------------------------------------------------------------------------

def hubert_tokenizer(tiny_hubert_dir, n_units):
    extractor = HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=2), device="cpu")
    return SpeechTokenizer(extractor, KMeans(torch.randn(n_units, extractor.dim)))


def test_load_vocoder_picks_by_features(logmel_tokenizer, tiny_hubert_dir, tmp_path):
    assert isinstance(load_vocoder(logmel_tokenizer), GriffinLimVocoder)

    checkpoint, config = save_official_format(small_hifigan(), tmp_path)
    tokenizer = hubert_tokenizer(tiny_hubert_dir, SMALL_HIFIGAN["num_embeddings"])
    vocoder = load_vocoder(tokenizer, hifigan_checkpoint=str(checkpoint), hifigan_config=str(config))
    assert isinstance(vocoder, UnitHiFiGAN)
    with pytest.raises(hub.AssetUnavailableError, match="hifigan_lj_mhubert_base_25hz"):
        load_vocoder(tokenizer)
    with pytest.raises(ValueError, match="knows 20 units"):
        load_vocoder(hubert_tokenizer(tiny_hubert_dir, 7), hifigan_checkpoint=str(checkpoint),
                     hifigan_config=str(config))

    class OtherFeatures:
        dim, frame_rate = 4, 50.0

    with pytest.raises(TypeError, match="no vocoder for units from OtherFeatures"):
        load_vocoder(SpeechTokenizer(OtherFeatures(), KMeans(torch.zeros(3, 4))))
