"""Stand-ins of the speech encoder (mHuBERT-25Hz), its k-means and the unit HiFi-GAN: the official
file formats, random weights."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from slamlib.standins.speech import SAMPLE_RATE


HUBERT_LAYER = 11  # the slam profile's hidden_states[11]
N_UNITS = 500
FIT_SECONDS = 40.0  # speech the k-means is fitted on (1,000 frames at 25 Hz: 2 per centroid)
KMEANS_NAME = "mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin"  # the official file names
HIFIGAN_NAME = "hifigan_lj_mhubert_base_25hz.pt"
HIFIGAN_CONFIG_NAME = "hifigan_lj_mhubert_base_25hz_config.json"


def _hubert(folder: Path, seed: int):
    """A random HubertModel with mHuBERT-25Hz's convolutions (total stride 640: 25 Hz at 16 kHz),
    12 layers (the profile reads layer 11) of width 32."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    config = HubertConfig(
        hidden_size=32, num_hidden_layers=12, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 4), conv_kernel=(10, 3, 3, 3, 3, 2, 4), conv_bias=False,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="group",
        do_stable_layer_norm=False, architectures=["HubertModel"],
    )
    torch.manual_seed(seed)
    model = HubertModel(config).eval()
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=False,
                             return_attention_mask=False).save_pretrained(folder)
    return model


def _kmeans(path: Path, hubert, waves: list[np.ndarray], seed: int) -> None:
    """sklearn KMeans (500 clusters) on layer-11 features of the speech, pickled with joblib as
    the official file is. Features as SlamKit computes them: 40 zero samples on both sides,
    `hidden_states[11]`."""
    import joblib
    import torch
    from sklearn.cluster import KMeans

    # the first FIT_SECONDS of speech as one recording: one forward pass (a few seconds less than
    # one per utterance on a cold CPU, where every new input length costs a kernel setup)
    speech = np.concatenate(waves)[: int(FIT_SECONDS * SAMPLE_RATE)]
    with torch.inference_mode():
        out = hubert(torch.from_numpy(np.pad(speech, 40))[None], output_hidden_states=True)
    x = out.hidden_states[HUBERT_LAYER][0].numpy().astype(np.float32)
    if len(x) < 2 * N_UNITS:  # too little speech for 500 clusters: add features near it
        extra = np.random.default_rng(seed).normal(x.mean(0), x.std(0), size=(2 * N_UNITS - len(x), x.shape[1]))
        x = np.concatenate([x, extra.astype(np.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-duplicate frames: fewer distinct points than clusters
        km = KMeans(n_clusters=N_UNITS, n_init=1, max_iter=20, random_state=seed).fit(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(km, path)


# The official config's fields; widths small (the loader reads every size from the config).
# 10 * 8 * 8 = 640 samples per unit frame, as the official [5, 4, 4, 4, 2].
_HIFIGAN_CONFIG = {
    "resblock": "1", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
    "lr_decay": 0.999, "seed": 1234,
    "upsample_rates": [10, 8, 8], "upsample_kernel_sizes": [20, 16, 16], "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "num_embeddings": N_UNITS, "embedding_dim": 16, "model_in_dim": 16,
    "segment_size": 8960, "code_hop_size": 640, "f0": False, "num_mels": 80, "num_freq": 1025, "n_fft": 1024,
    "hop_size": 256, "win_size": 1024, "dur_prediction_weight": 1.0,
    "dur_predictor_params": {"encoder_embed_dim": 16, "var_pred_hidden_dim": 16, "var_pred_kernel_size": 3,
                             "var_pred_dropout": 0.5},
    "sampling_rate": SAMPLE_RATE, "fmin": 0, "fmax": 8000, "fmax_for_loss": None,
}


def _hifigan(checkpoint: Path, config_path: Path, seed: int) -> None:
    """`{"generator": state_dict}` with the original CodeHiFiGAN's parameter names and
    old-style weight norm (`weight_g`, `weight_v`), random weights."""
    import torch

    cfg = _HIFIGAN_CONFIG
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, shape: tuple[int, int, int], bias: int):
        v = torch.randn(shape, generator=gen) * 0.01
        state[f"{name}.weight_g"] = v.square().sum(dim=(1, 2), keepdim=True).sqrt()
        state[f"{name}.weight_v"] = v
        state[f"{name}.bias"] = torch.randn(bias, generator=gen) * 0.01

    c, emb = cfg["upsample_initial_channel"], cfg["embedding_dim"]
    state["dict.weight"] = torch.randn(cfg["num_embeddings"], emb, generator=gen)
    conv("conv_pre", (c, cfg["model_in_dim"], 7), c)
    for i, (u, k) in enumerate(zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"])):
        conv(f"ups.{i}", (c // 2**i, c // 2 ** (i + 1), k), c // 2 ** (i + 1))  # ConvTranspose1d: (in, out, k)
    j = 0
    for i in range(len(cfg["upsample_rates"])):
        ch = c // 2 ** (i + 1)
        for k, dilations in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]):
            for n in range(len(dilations)):
                conv(f"resblocks.{j}.convs1.{n}", (ch, ch, k), ch)
                conv(f"resblocks.{j}.convs2.{n}", (ch, ch, k), ch)
            j += 1
    conv("conv_post", (1, c // 2 ** len(cfg["upsample_rates"]), 7), 1)
    dp = cfg["dur_predictor_params"]
    h, kk = dp["var_pred_hidden_dim"], dp["var_pred_kernel_size"]
    for name, shape in (("conv1.0", (h, dp["encoder_embed_dim"], kk)), ("conv2.0", (h, h, kk))):
        state[f"dur_predictor.{name}.weight"] = torch.randn(shape, generator=gen) * 0.1
        state[f"dur_predictor.{name}.bias"] = torch.zeros(h)
    for name in ("ln1", "ln2"):
        state[f"dur_predictor.{name}.weight"] = torch.ones(h)
        state[f"dur_predictor.{name}.bias"] = torch.zeros(h)
    state["dur_predictor.proj.weight"] = torch.randn(1, h, generator=gen) * 0.1
    state["dur_predictor.proj.bias"] = torch.tensor([0.7])  # exp(0.7) - 1: about one frame per unit
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": state}, checkpoint)
    config_path.write_text(json.dumps(cfg, indent=4) + "\n")


