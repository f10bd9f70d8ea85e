import numpy as np
import pytest
import torch
from conftest import tiny_hubert_config

from slamlib.profiles import HubertConfig, LogMelConfig
from slamlib.tokenization.features import (
    HubertExtractor,
    LogMelExtractor,
    features_config_from_dict,
    features_config_to_dict,
    mel_filterbank,
)
from slamlib.tokenization.kmeans import KMeans


def test_logmel_shape_and_frame_rate():
    ex = LogMelExtractor(LogMelConfig(n_mels=80, frame_rate=50, stack=2), device="cpu")
    feats = ex([np.random.default_rng(0).normal(0, 0.1, 16_000 * 3).astype(np.float32)])
    assert feats[0].shape == (150, 160) == (ex.n_frames(48_000), ex.dim)
    ex100 = LogMelExtractor(LogMelConfig(frame_rate=100, stack=1), device="cpu")
    assert ex100.n_frames(16_000) == 101 and ex100.dim == 80


def test_logmel_context_frames_carry_their_neighbours():
    wav = np.random.default_rng(1).normal(0, 0.1, 16_000).astype(np.float32)
    plain = LogMelExtractor(LogMelConfig(n_mels=40, frame_rate=100, stack=1), device="cpu")([wav])[0]
    ex = LogMelExtractor(LogMelConfig(n_mels=40, frame_rate=100, stack=1, context=5), device="cpu")
    feats = ex([wav])[0]
    assert feats.shape == (plain.shape[0], 200) and ex.dim == 200 and ex.frame_rate == 100
    windows = feats.reshape(-1, 5, 40)
    assert torch.equal(windows[10], plain[8:13])  # centred on its own frame
    assert torch.equal(windows[0, :3], plain[0].expand(3, 40))  # the edge frame repeated


def test_logmel_rejects_fractional_hop():
    with pytest.raises(ValueError, match="whole number of samples"):
        LogMelConfig(frame_rate=30, stack=2).hop


def test_mel_filterbank_covers_the_band():
    fb = mel_filterbank(40, 512, 16_000, 20.0, 7600.0)
    assert fb.shape == (40, 257) and fb.max() <= 1.0
    assert (fb.sum(axis=1) > 0).all()  # no empty filter
    centres = fb.argmax(axis=1)
    assert (np.diff(centres) >= 0).all()  # filters ordered by frequency


@pytest.mark.parametrize("cmn", [True, False])
def test_logmel_batching_invariance(speech, cmn):
    ex = LogMelExtractor(LogMelConfig(cmn=cmn), device="cpu")
    wavs = [w for _, _, w in speech]
    alone = [ex([w])[0] for w in wavs]
    together = ex(wavs)
    for a, b in zip(alone, together):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _hubert_pair(tmp_path, **config_overrides):
    from transformers import HubertModel

    torch.manual_seed(1)
    model = HubertModel(tiny_hubert_config(**config_overrides)).eval()
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize("variant", [{}, {"feat_extract_norm": "layer", "do_stable_layer_norm": True}])
@pytest.mark.parametrize("layer", [2, 3])
def test_hubert_features_equal_transformers_hidden_states(tmp_path, speech, variant, layer):
    """Our batch-invariant forward computes what HubertModel reports as hidden_states[layer]."""
    reference = _hubert_pair(tmp_path, **variant)
    ex = HubertExtractor(HubertConfig(model=str(tmp_path), layer=layer, pad_samples=0), device="cpu")
    for _, _, wav in speech[:2]:
        with torch.no_grad():
            expected = reference(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[layer][0]
        torch.testing.assert_close(ex([wav])[0], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_hubert_units_do_not_depend_on_the_batch(tiny_hubert_dir, speech, norm, tmp_path):
    """Padding a short utterance next to a long one must not change its features or units
    (HuBERT-base's GroupNorm over time would, without masking)."""
    path = tiny_hubert_dir
    if norm == "layer":
        _hubert_pair(tmp_path, feat_extract_norm="layer")
        path = tmp_path
    ex = HubertExtractor(HubertConfig(model=str(path), layer=2), device="cpu")
    wavs = [w for _, _, w in speech]
    wavs.append(wavs[0][:3000])  # a very short one: mostly padding in the batch
    alone = [ex([w])[0] for w in wavs]
    together = ex(wavs)
    reversed_batch = ex(wavs[::-1])[::-1]
    km = KMeans(torch.cat(alone)[torch.randperm(sum(len(a) for a in alone),
                                                generator=torch.Generator().manual_seed(0))[:16]])
    for a, b, c in zip(alone, together, reversed_batch):
        assert a.shape[0] == b.shape[0] == c.shape[0]
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4)
        assert torch.equal(km.assign(a), km.assign(b))


def test_hubert_frame_rate_and_padding(tiny_hubert_dir):
    ex = HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=1, pad_samples=40), device="cpu")
    assert ex.frame_rate == 25.0
    assert len(ex.model.encoder.layers) == 1  # layers above the chosen one are never computed
    for seconds in (1.0, 2.5):
        n = int(seconds * 16_000)
        feats = ex([np.zeros(n, dtype=np.float32) + 0.01])[0]
        assert feats.shape == (ex.n_frames(n), 32)
        assert abs(feats.shape[0] - 25 * seconds) <= 1


def test_hubert_layer_out_of_range(tiny_hubert_dir):
    with pytest.raises(ValueError, match="layer 4 is outside 1..3"):
        HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=4), device="cpu")


def test_features_config_round_trip():
    for config in (LogMelConfig(n_mels=40, cmn=False), HubertConfig(model="x/y", layer=6)):
        assert features_config_from_dict(features_config_to_dict(config)) == config
    with pytest.raises(ValueError, match="unknown feature extractor kind"):
        features_config_from_dict({"kind": "mfcc"})


# --- precision: fp32 by default everywhere, bf16 only when asked ----------------------------------

def test_hubert_precision_defaults_to_fp32():
    assert HubertConfig().precision == "fp32"


@pytest.mark.parametrize("precision,device_type,native_bf16,expected", [
    ("fp32", "cpu", False, False),
    ("fp32", "cuda", True, False),  # an A100 or H100 too: no autocast unless asked
    ("fp32", "cuda", False, False),
    ("auto", "cuda", True, False),  # the old default: read as fp32, no longer bf16 on CUDA
    ("auto", "cpu", False, False),
    ("bf16", "cuda", True, True),
    ("bf16", "cuda", False, False),  # a T4 or V100: falls back to fp32
    ("bf16", "cpu", False, True),  # torch's CPU autocast
    ("bf16", "mps", False, False),
])
def test_uses_bf16(precision, device_type, native_bf16, expected):
    from slamlib.tokenization.features import uses_bf16

    assert uses_bf16(precision, device_type, native_bf16) is expected


@pytest.mark.parametrize("bad", ["fp16", "bfloat16", "", "AUTO"])
def test_a_bad_precision_names_the_setting_and_the_choices(tiny_hubert_dir, bad):
    from slamlib.tokenization.features import uses_bf16

    for fail in (lambda: uses_bf16(bad, "cuda", True),
                 lambda: HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=1, precision=bad),
                                         device="cpu")):
        with pytest.raises(ValueError, match=r"tokenizer\.features\.precision=.*choose fp32 \(the default\) or bf16"):
            fail()


def test_hubert_runs_in_fp32_unless_bf16_is_asked_for(tiny_hubert_dir, speech):
    wav = speech[0][2]
    default = HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=2), device="cpu")
    auto = HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=2, precision="auto"), device="cpu")
    bf16 = HubertExtractor(HubertConfig(model=str(tiny_hubert_dir), layer=2, precision="bf16"), device="cpu")
    assert not default.bf16 and not default._autocast._enabled and default.config.precision == "fp32"
    assert not auto.bf16 and auto.config.precision == "fp32"  # saved again, it says fp32
    assert bf16.bf16 and bf16._autocast._enabled
    a, b, c = default([wav])[0], auto([wav])[0], bf16([wav])[0]
    assert a.dtype == b.dtype == c.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.testing.assert_close(a, c, atol=0.1, rtol=0.05)


def _legacy_fingerprint(tokenizer) -> str:
    """The fingerprint as computed before precision counted in it (precision left out)."""
    import hashlib
    import json

    config = {k: v for k, v in tokenizer.to_config().items() if k != "kmeans"}
    config["features"] = {k: v for k, v in config["features"].items() if k not in ("precision", "model")}
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def test_bf16_gets_its_own_fingerprint_and_old_tokenizers_keep_theirs(tiny_hubert_dir, tmp_path):
    import json

    from slamlib.tokenization.speech_tokenizer import CONFIG_NAME, SpeechTokenizer

    km = KMeans(torch.randn(8, 32, generator=torch.Generator().manual_seed(0)))

    def tokenizer(precision):
        config = HubertConfig(model=str(tiny_hubert_dir), layer=2, precision=precision)
        return SpeechTokenizer(HubertExtractor(config, device="cpu"), km)

    fp32, auto, bf16 = tokenizer("fp32"), tokenizer("auto"), tokenizer("bf16")
    assert fp32.fingerprint() == auto.fingerprint() == _legacy_fingerprint(fp32)  # saved units stay valid
    assert bf16.fingerprint() != fp32.fingerprint()

    # a tokenizer saved before fp32 became the default carries "auto": it loads, and runs in fp32
    folder = fp32.save(tmp_path / "tok")
    saved = json.loads((folder / CONFIG_NAME).read_text())
    saved["features"]["precision"] = "auto"
    (folder / CONFIG_NAME).write_text(json.dumps(saved))
    loaded = SpeechTokenizer.load(folder, device="cpu")
    assert loaded.extractor.config.precision == "fp32" and not loaded.extractor.bf16
    assert loaded.fingerprint() == fp32.fingerprint()
    as_bf16 = SpeechTokenizer.load(folder, device="cpu", precision="bf16")  # how it runs, asked for on loading
    assert as_bf16.extractor.bf16 and as_bf16.fingerprint() == bf16.fingerprint()


def test_a_saved_tokenizer_runs_in_the_precision_its_profile_asks_for(tiny_hubert_dir, speech, tmp_path):
    """Changing only `precision` reuses the saved k-means (no refit) and runs the encoder as asked."""
    from slamlib.profiles import TokenizerConfig
    from slamlib.tokenization.speech_tokenizer import load_or_build_speech_tokenizer

    def config(precision):
        return TokenizerConfig(features=HubertConfig(model=str(tiny_hubert_dir), layer=2, precision=precision),
                               n_units=4, fit_seconds=3.0)

    wavs = [w for _, _, w in speech]
    built = load_or_build_speech_tokenizer(config("fp32"), tmp_path / "tok", fit_audio=wavs, device="cpu")
    again = load_or_build_speech_tokenizer(config("bf16"), tmp_path / "tok", device="cpu")  # no fit audio: loads
    assert again.extractor.bf16 and torch.equal(again.kmeans.centroids, built.kmeans.centroids)
    assert again.fingerprint() != built.fingerprint()
    back = load_or_build_speech_tokenizer(config("auto"), tmp_path / "tok", device="cpu")
    assert not back.extractor.bf16 and back.fingerprint() == built.fingerprint()
