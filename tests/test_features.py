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
