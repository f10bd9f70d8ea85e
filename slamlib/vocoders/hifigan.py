"""The unit HiFi-GAN ("CodeHiFiGAN"), for the paper's mHuBERT-25Hz units.

The vocoder of speech-resynthesis / textlesslib, trained on LJ Speech (one voice) with a duration
predictor, published next to the TWIST k-means (`HIFIGAN_CHECKPOINT_URL`, `HIFIGAN_CONFIG_URL`).
The architecture is written here from its description (Polyak et al., 2021; Kong et al., 2020)
with the original parameter names, so the official checkpoint loads as it is.

Not here: the interface and the choice of vocoder (`slamlib.vocoders.base`).
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slamlib.audio import SAMPLE_RATE
# the official files (the slam profile's eval.hifigan_*), beside the official k-means; slamlib.hub
# verifies their SHA-256
from slamlib.profiles import HIFIGAN_CHECKPOINT_URL, HIFIGAN_CONFIG_URL  # noqa: F401
from slamlib.tokenization.features import resolve_device
from slamlib.vocoders.base import check_units


LRELU_SLOPE = 0.1  # HiFi-GAN's slope everywhere but before conv_post, which uses torch's 0.01


class WeightNormConv1d(nn.Module):
    """A Conv1d (or ConvTranspose1d) with weight normalisation (Salimans & Kingma, 2016):
    weight = g * v / ||v||, one norm per slice along dim 0, as `torch.nn.utils.weight_norm` did.

    The parameters are named `weight_g`, `weight_v` and `bias`, which is how checkpoints trained
    with torch's weight norm store them, so those state dicts load unchanged. The effective
    weight is recomputed on each call: cheap next to the convolution over audio samples."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, transposed: bool = False, init_std: float | None = 0.01):
        super().__init__()
        self.stride, self.padding, self.dilation, self.transposed = stride, padding, dilation, transposed
        shape = (in_channels, out_channels, kernel_size) if transposed else (out_channels, in_channels, kernel_size)
        v = torch.empty(shape)
        if init_std is None:  # torch's default conv initialisation
            nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        else:  # HiFi-GAN's init_weights: N(0, 0.01)
            nn.init.normal_(v, 0.0, init_std)
        fan_in = shape[1] * kernel_size
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(self._norm(v).detach().clone())
        bound = 1 / math.sqrt(fan_in)
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    @staticmethod
    def _norm(v: torch.Tensor) -> torch.Tensor:
        return v.square().sum(dim=tuple(range(1, v.ndim)), keepdim=True).sqrt()

    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self._norm(self.weight_v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose1d(x, self.weight(), self.bias, self.stride, self.padding,
                                      dilation=self.dilation)
        return F.conv1d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation)


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size - 1) * dilation // 2


class ResBlock1(nn.Module):
    """HiFi-GAN's residual block "1": per dilation d, x += conv(lrelu(conv_d(lrelu(x))))."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, d), dilation=d)
            for d in dilations)
        self.convs2 = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size))
            for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN's lighter residual block "2": per dilation d, x += conv_d(lrelu(x))."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, d), dilation=d)
            for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class DurationPredictor(nn.Module):
    """FastSpeech 2's variance predictor, as the unit vocoder uses it: two (conv, ReLU,
    LayerNorm, dropout) layers and a linear projection to one number per deduplicated unit,
    log(1 + frames). Parameter names follow the original (conv1.0, ln1, conv2.0, ln2, proj)."""

    def __init__(self, encoder_embed_dim: int, var_pred_hidden_dim: int, var_pred_kernel_size: int,
                 var_pred_dropout: float):
        super().__init__()
        k = var_pred_kernel_size
        # Both convolutions keep the length ("same" padding; the original hard-codes padding=1
        # in the second, which is the same thing for its kernel size of 3).
        self.conv1 = nn.Sequential(nn.Conv1d(encoder_embed_dim, var_pred_hidden_dim, k, padding=(k - 1) // 2),
                                   nn.ReLU())
        self.ln1 = nn.LayerNorm(var_pred_hidden_dim)
        self.conv2 = nn.Sequential(nn.Conv1d(var_pred_hidden_dim, var_pred_hidden_dim, k, padding=(k - 1) // 2),
                                   nn.ReLU())
        self.ln2 = nn.LayerNorm(var_pred_hidden_dim)
        self.proj = nn.Linear(var_pred_hidden_dim, 1)
        self.dropout = var_pred_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, units, channels) -> predicted log(1 + frames), (batch, units)."""
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.ln1(x), self.dropout, self.training)
        x = self.conv2(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.ln2(x), self.dropout, self.training)
        return self.proj(x).squeeze(-1)


_REQUIRED = ("upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel", "resblock_kernel_sizes",
             "resblock_dilation_sizes", "num_embeddings", "embedding_dim")
_UNSUPPORTED = ("multispkr", "multistyle", "embedder_params", "f0", "f0_quant_num_bin", "lambda_commit",
                "lambda_commit_code", "f0_quantizer_path")


class CodeHiFiGANGenerator(nn.Module):
    """Unit embedding (`dict`), optional duration predictor, and the HiFi-GAN generator:
    conv_pre (kernel 7) -> per stage [leaky ReLU, transposed conv upsampling by rate u with
    kernel k and padding (k - u) // 2, mean of the multi-receptive-field ResBlocks] -> leaky ReLU
    (slope 0.01) -> conv_post (kernel 7, one channel) -> tanh. Channels halve at every stage.
    Attribute names are those of the original, so its state dict keys match."""

    def __init__(self, config: dict):
        super().__init__()
        missing = [k for k in _REQUIRED if k not in config]
        if missing:
            raise ValueError(f"unit HiFi-GAN config lacks {missing}")
        used = [k for k in _UNSUPPORTED if config.get(k)]
        if used:
            raise ValueError(f"unit HiFi-GAN config asks for {used}: only single-speaker, unit-only "
                             "vocoders (like the LJ mHuBERT-25Hz one) are supported")
        in_dim = config.get("model_in_dim", config["embedding_dim"])
        if in_dim != config["embedding_dim"]:
            raise ValueError(f"model_in_dim {in_dim} differs from embedding_dim {config['embedding_dim']}:"
                             " a unit-only vocoder feeds the unit embedding straight to conv_pre")
        rates, kernels = list(config["upsample_rates"]), list(config["upsample_kernel_sizes"])
        if len(rates) != len(kernels):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        resblock = {"1": ResBlock1, "2": ResBlock2}.get(str(config.get("resblock", "1")))
        if resblock is None:
            raise ValueError(f"unknown resblock type {config.get('resblock')!r} (known: '1', '2')")
        channels = config["upsample_initial_channel"]

        self.dict = nn.Embedding(config["num_embeddings"], config["embedding_dim"])
        self.conv_pre = WeightNormConv1d(in_dim, channels, 7, padding=3, init_std=None)
        self.ups = nn.ModuleList(
            WeightNormConv1d(channels // 2**i, channels // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2,
                             transposed=True)
            for i, (u, k) in enumerate(zip(rates, kernels)))
        self.resblocks = nn.ModuleList(
            resblock(channels // 2 ** (i + 1), k, d)
            for i in range(len(rates))
            for k, d in zip(config["resblock_kernel_sizes"], config["resblock_dilation_sizes"]))
        self.conv_post = WeightNormConv1d(channels // 2 ** len(rates), 1, 7, padding=3)
        params = config.get("dur_predictor_params")
        names = ("encoder_embed_dim", "var_pred_hidden_dim", "var_pred_kernel_size", "var_pred_dropout")
        self.dur_predictor = DurationPredictor(*(params[n] for n in names)) if params else None
        self.n_kernels = len(config["resblock_kernel_sizes"])

    def predict_durations(self, units: torch.Tensor) -> torch.Tensor:
        """Frames per unit for (1, units) deduplicated units: round(exp(prediction) - 1), at least
        1 (the predictor was trained on log(1 + frames))."""
        log_dur = self.dur_predictor(self.dict(units))
        return torch.round(torch.exp(log_dur) - 1).long().clamp_min(1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame-rate units (batch, frames) -> waveform (batch, 1, frames * prod(upsample_rates))."""
        x = self.conv_pre(self.dict(frames).transpose(1, 2))
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.n_kernels: (i + 1) * self.n_kernels]
            x = sum(block(x) for block in blocks) / self.n_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


class UnitHiFiGAN:
    """The unit HiFi-GAN vocoder with duration prediction (CodeHiFiGAN).

    `from_pretrained()` loads the official LJ vocoder for mHuBERT-25Hz units (500 units, 16 kHz);
    any CodeHiFiGAN checkpoint in the same format (`{"generator": state_dict}` plus a JSON config)
    loads the same way. With durations the units are repeated by them; without, the duration
    predictor chooses (as SlamKit does for generated speech). Each unit frame becomes
    prod(upsample_rates) samples: 640 = 16 kHz / 25 Hz for the official one.
    """

    def __init__(self, generator: CodeHiFiGANGenerator, config: dict, device="cpu"):
        self.device = resolve_device(device)
        self.generator = generator.eval().to(self.device)
        self.config = dict(config)
        self.sample_rate = int(config.get("sampling_rate", SAMPLE_RATE))
        self.n_units = int(config["num_embeddings"])
        self.samples_per_frame = math.prod(config["upsample_rates"])

    @classmethod
    def from_config(cls, config: dict, device="cpu") -> "UnitHiFiGAN":
        """A randomly initialised vocoder of the shape a config describes (official field names)."""
        return cls(CodeHiFiGANGenerator(config), config, device=device)

    @classmethod
    def from_pretrained(cls, checkpoint: str = HIFIGAN_CHECKPOINT_URL, config: str = HIFIGAN_CONFIG_URL,
                        device="cpu", trust_checkpoint: bool = False) -> "UnitHiFiGAN":
        """Load a checkpoint (`{"generator": state_dict}`, the format speech-resynthesis saves) and
        its JSON config, each a local path or a URL (fetched through `slamlib.hub`, checked against
        the official SHA-256 when it is the official URL).

        The checkpoint is read with `torch.load(weights_only=True)`, which unpickles only tensors
        and plain containers. A file holding other Python objects is refused unless
        `trust_checkpoint=True` (full unpickling can run code: only for files you trust)."""
        from slamlib import hub

        config_path = hub.resolve_file(config, what="unit HiFi-GAN vocoder config")
        checkpoint_path = hub.resolve_file(checkpoint, what="unit HiFi-GAN vocoder checkpoint")
        cfg = json.loads(config_path.read_text())
        try:
            saved = torch.load(checkpoint_path, map_location="cpu", weights_only=not trust_checkpoint)
        except pickle.UnpicklingError as err:
            raise ValueError(f"{checkpoint_path} holds more than tensors, so it was not unpickled; pass "
                             "trust_checkpoint=True if you trust where it comes from") from err
        state = saved.get("generator", saved) if isinstance(saved, dict) else None
        if not isinstance(state, dict) or "dict.weight" not in state:
            keys = sorted(saved)[:10] if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(f"{checkpoint_path} is not a unit HiFi-GAN checkpoint (expected a 'generator' "
                             f"state dict with 'dict.weight'; found {keys})")
        generator = CodeHiFiGANGenerator(cfg)
        try:
            generator.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{checkpoint_path} does not match the config {config_path}: {err}") from err
        return cls(generator, cfg, device=device)

    @property
    def has_duration_predictor(self) -> bool:
        return self.generator.dur_predictor is not None

    @torch.inference_mode()
    def predict_durations(self, units: Sequence[int]) -> np.ndarray:
        """Frames per unit, as the duration predictor sees them."""
        units, _ = check_units(units, None, self.n_units)
        if not self.has_duration_predictor:
            raise ValueError("this unit HiFi-GAN has no duration predictor (its config has no "
                             "dur_predictor_params): pass durations")
        if units.size == 0:
            return np.zeros(0, dtype=np.int64)
        x = torch.from_numpy(units).to(self.device)[None]
        return self.generator.predict_durations(x)[0].cpu().numpy()

    @torch.inference_mode()
    def __call__(self, units: Sequence[int], durations: Sequence[int] | None = None) -> np.ndarray:
        units, durations = check_units(units, durations, self.n_units)
        if durations is None:
            durations = self.predict_durations(units)
        frames = np.repeat(units, durations)
        if frames.size == 0:
            return np.zeros(0, dtype=np.float32)
        wav = self.generator(torch.from_numpy(frames).to(self.device)[None])
        return wav.reshape(-1).float().cpu().numpy()
