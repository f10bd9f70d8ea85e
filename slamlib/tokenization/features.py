"""Frame-level speech features behind one small interface: log-mel (no weights) and HuBERT.

An extractor turns a batch of 16 kHz waveforms into one `(frames, dim)` float32 tensor per
waveform, at `frame_rate` frames per second. The result for a waveform never depends on what it
was batched with: padding is masked wherever it could leak (HuBERT's GroupNorm and attention).

- `LogMelExtractor`: log-mel filterbanks from `torch.stft`; consecutive frames can be stacked to
  lower the frame rate (80 bins at 100 Hz, pairs stacked: 160-dim features at 50 Hz), and each
  frame can carry its neighbours (`context`) without lowering it. The `tiny` profile's default
  (40 bins at 100 Hz, each frame with two neighbours on each side: 200-dim features at 100 Hz):
  no download, fast on CPU.
- `HubertExtractor`: a transformers `HubertModel` (the paper's `slprl/mhubert-base-25hz`, or any
  local HubertModel directory), hidden states of one layer (`hidden_states[11]` in the paper).
  In fp32 on every device by default, as SlamKit computes the units the published Slam models
  were trained on; bf16 autocast only when `precision="bf16"` asks for it (`uses_bf16`): it is
  faster on a GPU but moves some frames to another unit (`python -m slamlib bench unit-precision`).

Not here: k-means (`slamlib.tokenization.kmeans`) and deduplication (`slamlib.tokenization.units`). The settings
(`LogMelConfig`, `HubertConfig`) live with every other setting, in `slamlib.profiles`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from slamlib.audio import SAMPLE_RATE
from slamlib.profiles import HubertConfig, LogMelConfig


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pad_batch(wavs: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad waveforms with zeros into a (batch, samples) tensor; also return the lengths."""
    lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    batch = torch.zeros(len(wavs), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return batch.to(device, non_blocking=True), lengths.to(device)


# --- log-mel ----------------------------------------------------------------------------------

def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular filters on the HTK mel scale, shape (n_mels, n_fft // 2 + 1), peak 1."""
    bins_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz - lower) / (center - lower)
    falling = (upper - bins_hz) / (upper - center)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


class LogMelExtractor:
    """Stacked log-mel frames.

    >>> ex = LogMelExtractor(LogMelConfig())
    >>> feats = ex([np.zeros(16_000, dtype=np.float32)])
    >>> tuple(feats[0].shape), ex.frame_rate
    ((50, 160), 50.0)
    """

    def __init__(self, config: LogMelConfig = LogMelConfig(), device="auto"):
        self.config = config
        self.device = resolve_device(device)
        self.frame_rate = float(config.frame_rate)
        self.dim = config.dim
        fb = mel_filterbank(config.n_mels, config.n_fft, SAMPLE_RATE, config.f_min, config.f_max)
        self._fb = torch.from_numpy(fb).to(self.device)
        self._window = torch.hann_window(config.win, device=self.device)

    def n_frames(self, n_samples: int) -> int:
        return (1 + n_samples // self.config.hop) // self.config.stack

    def log_mel(self, wavs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Unstacked log-mel frames, (frames, n_mels) per waveform, at frame_rate * stack Hz."""
        cfg = self.config
        batch, lengths = pad_batch(wavs, self.device)
        spec = torch.stft(
            batch, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win, window=self._window,
            center=True, pad_mode="constant", return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (batch, freq, frames)
        mel = torch.log(torch.matmul(self._fb, power) + cfg.floor).transpose(1, 2)
        out = []
        for i, n in enumerate(lengths.tolist()):
            frames = mel[i, : 1 + n // cfg.hop]  # zero padding beyond a waveform never reaches these
            if cfg.cmn:
                frames = frames - frames.mean(dim=0, keepdim=True)
            out.append(frames)
        return out

    def __call__(self, wavs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        stack = self.config.stack
        out = []
        for frames in self.log_mel(wavs):
            n = frames.shape[0] // stack
            out.append(self._stack_context(frames[: n * stack], n, 0, 0, n))
        return out

    def _stack_context(self, raw: torch.Tensor, total: int, g0: int, k0: int, k1: int) -> torch.Tensor:
        """Frames k0..k1 of a file of `total` (stacked) frames, from its raw frames that start at
        stacked frame g0: stacked, each with its neighbours (the file's edge frames repeated)."""
        stack, context = self.config.stack, self.config.context
        stacked = raw.reshape(raw.shape[0] // stack, stack * raw.shape[1])
        if context > 1:
            offsets = torch.arange(context, device=stacked.device) - context // 2
            index = (torch.arange(k0, k1, device=stacked.device)[:, None] + offsets).clamp(0, max(total - 1, 0)) - g0
            return stacked[index].reshape(k1 - k0, context * stacked.shape[1]).contiguous()
        return stacked[k0 - g0: k1 - g0].contiguous()

    # --- long audio, window by window (slamlib.tokenization.windows) ---------------------------

    def _raw_frames(self, audio, r0: int, r1: int) -> torch.Tensor:
        """Unstacked log-mel frames r0..r1 of a LongAudio, equal to the whole file's (frame i is
        centred on sample i * hop, with zeros beyond the file, as `torch.stft(center=True)` pads)."""
        cfg = self.config
        half = cfg.n_fft // 2
        x = torch.from_numpy(audio.read(r0 * cfg.hop - half, (r1 - 1) * cfg.hop - half + cfg.n_fft)).to(self.device)
        spec = torch.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win, window=self._window,
                          center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.log(torch.matmul(self._fb, power) + cfg.floor).transpose(0, 1)

    def file_stats(self, audio, chunk_frames: int = 6000) -> dict:
        """What encoding a window needs from the whole file: the mean log-mel frame (`cmn`)."""
        if not self.config.cmn:
            return {}
        raw_total = 1 + len(audio) // self.config.hop
        total = torch.zeros(self.config.n_mels, dtype=torch.float64, device=self.device)
        for r0 in range(0, raw_total, chunk_frames):
            total += self._raw_frames(audio, r0, min(raw_total, r0 + chunk_frames)).double().sum(dim=0)
        return {"mean": (total / raw_total).float()}

    def frames_in(self, audio, k0: int, k1: int, margin: int, stats: dict) -> torch.Tensor:
        """Features of frames k0..k1 of a LongAudio, as the whole file would give them (`margin`
        is not needed: every frame is computed from its own samples)."""
        stack, c = self.config.stack, self.config.context // 2
        total = self.n_frames(len(audio))
        g0, g1 = max(0, k0 - c), min(total, k1 + c)
        raw = self._raw_frames(audio, g0 * stack, g1 * stack)
        if self.config.cmn:
            raw = raw - stats["mean"]
        return self._stack_context(raw, total, g0, k0, k1)

    def to_config(self) -> dict:
        return features_config_to_dict(self.config)


# --- HuBERT -------------------------------------------------------------------------------------

def _masked_instance_norm(h: torch.Tensor, lengths: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:
    """GroupNorm with one group per channel, statistics over each item's valid frames only.

    HuBERT-base normalises its first conv layer over time; over a zero-padded batch that would
    mix padding into every frame of shorter items."""
    h = h.float()
    mask = (torch.arange(h.shape[-1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)[:, None, :]
    count = mask.sum(dim=-1, keepdim=True).clamp_min(1.0)
    mean = (h * mask).sum(dim=-1, keepdim=True) / count
    var = ((h - mean).square() * mask).sum(dim=-1, keepdim=True) / count
    out = (h - mean) * torch.rsqrt(var + norm.eps)
    if norm.affine:
        out = out * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return out


def _normalized(h: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:
    """GroupNorm (one group per channel) with given per-channel statistics."""
    out = (h - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + norm.eps)
    if norm.affine:
        out = out * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return out


PRECISIONS = ("fp32", "bf16")
PRECISION_ALIASES = {"auto": "fp32"}  # the default before fp32 became it: saved tokenizers still carry it


def hubert_precision(value: str) -> str:
    """The precision a HubertConfig's `precision` names: "fp32" or "bf16".

    "auto" (what tokenizers saved before fp32 became the default carry) is read as "fp32": it
    used to mean bf16 autocast on CUDA, and now fp32 everywhere.

    >>> hubert_precision("auto"), hubert_precision("bf16")
    ('fp32', 'bf16')
    >>> hubert_precision("fp16")
    Traceback (most recent call last):
    ...
    ValueError: tokenizer.features.precision='fp16': choose fp32 (the default) or bf16 ('auto' is read as fp32)
    """
    name = PRECISION_ALIASES.get(value, value)
    if name not in PRECISIONS:
        raise ValueError(f"tokenizer.features.precision={value!r}: choose fp32 (the default) or bf16"
                         f" ('auto' is read as fp32)")
    return name


def uses_bf16(precision: str, device_type: str, native_bf16: bool) -> bool:
    """Whether HuBERT runs under bf16 autocast: only when asked for ("bf16"), on a CUDA card with
    native bf16 (compute capability 8.0 and later) or on a CPU (torch's CPU autocast; bf16
    units make it fast only on CPUs with AVX512-BF16 or AMX). Elsewhere (a T4 or V100, mps) a
    request for bf16 falls back to fp32 with a warning: bf16 is only ever a speed-up, and where
    it would be emulated it is none, while fp32 gives the reference units.

    >>> uses_bf16("fp32", "cuda", True), uses_bf16("auto", "cuda", True), uses_bf16("bf16", "cuda", True)
    (False, False, True)
    >>> uses_bf16("bf16", "cpu", False), uses_bf16("bf16", "cuda", False), uses_bf16("bf16", "mps", False)
    (True, False, False)
    """
    if hubert_precision(precision) == "fp32":
        return False
    return device_type == "cpu" or (device_type == "cuda" and native_bf16)


def _native_bf16(device) -> bool:
    from slamlib.device import Capabilities

    return Capabilities.detect(device).bf16


class HubertExtractor:
    """Hidden states of one HubertModel layer, batch-invariant.

    Only the layers up to `layer` are kept, so nothing above it is computed. `config.precision`
    is checked and "auto" read as "fp32" (`hubert_precision`); `self.bf16` says whether this
    device runs it under bf16 autocast (`uses_bf16`)."""

    def __init__(self, config: HubertConfig = HubertConfig(), device="auto", model=None):
        from transformers import HubertModel

        from slamlib import hub

        precision = hubert_precision(config.precision)  # a bad value fails before any download
        self.config = config = replace(config, precision=precision)
        self.device = resolve_device(device)
        if model is None:
            path = hub.resolve_model(config.model, what="HuBERT speech encoder")
            model = HubertModel.from_pretrained(path)
        n_layers = model.config.num_hidden_layers
        if not 1 <= config.layer <= n_layers:
            raise ValueError(f"layer {config.layer} is outside 1..{n_layers} of {config.model}")
        self._all_layers = model.encoder.layers
        model.encoder.layers = model.encoder.layers[: config.layer]
        self.model = model.eval().to(self.device)
        self.dim = model.config.hidden_size
        self.frame_rate = SAMPLE_RATE / math.prod(model.config.conv_stride)
        self.bf16 = uses_bf16(precision, self.device.type,
                              self.device.type == "cuda" and _native_bf16(self.device))
        if precision == "bf16" and not self.bf16:
            warnings.warn(f"tokenizer.features.precision='bf16': {self.device} has no native bf16, so HuBERT"
                          " runs in fp32", stacklevel=2)
        self._autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def n_frames(self, n_samples: int) -> int:
        n = torch.tensor([n_samples + 2 * self.config.pad_samples])
        return int(self.model._get_feat_extract_output_lengths(n)[0])

    def _conv_features(self, x: torch.Tensor, lengths: torch.Tensor,
                       norm_stats: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`norm_stats`: the per-channel mean and variance that the first layer's time-wise
        GroupNorm uses instead of the item's own (those of a whole file, for a window of it)."""
        h = x[:, None, :]
        for layer in self.model.feature_extractor.conv_layers:
            h = layer.conv(h)
            lengths = (lengths - layer.conv.kernel_size[0]) // layer.conv.stride[0] + 1
            norm = getattr(layer, "layer_norm", None)
            if isinstance(norm, torch.nn.GroupNorm) and norm_stats:
                h = _normalized(h.float(), norm_stats["mean"], norm_stats["var"], norm).to(h.dtype)
            elif isinstance(norm, torch.nn.GroupNorm):
                h = _masked_instance_norm(h, lengths, norm).to(h.dtype)
            elif norm is not None:  # LayerNorm over channels: per frame, nothing to mask
                h = norm(h.transpose(1, 2)).transpose(1, 2)
            h = layer.activation(h)
        return h.transpose(1, 2), lengths

    @torch.inference_mode()
    def __call__(self, wavs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        pad = self.config.pad_samples
        if self.config.normalize:
            wavs = [(w - w.mean()) / np.sqrt(w.var() + 1e-7) for w in wavs]
        if pad:
            wavs = [np.pad(w, (pad, pad)) for w in wavs]
        return self._encode(wavs)

    # --- long audio, window by window (slamlib.tokenization.windows) ---------------------------

    @property
    def hop(self) -> int:
        """Samples between frames."""
        return math.prod(self.model.config.conv_stride)

    @property
    def receptive_field(self) -> int:
        """Samples one frame is computed from by the convolutions."""
        field, step = 1, 1
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            field, step = field + (kernel - 1) * step, step * stride
        return field

    def _padded(self, audio, a: int, b: int, stats: dict) -> np.ndarray:
        """Samples a..b of the file as the encoder sees it: normalised (with the file's mean and
        variance) and with `pad_samples` zeros on each side, so index 0 is the first zero."""
        pad = self.config.pad_samples
        seg = audio.read(a - pad, b - pad)
        if self.config.normalize:
            lo, hi = min(max(0, pad - a), len(seg)), max(0, min(len(seg), len(audio) + pad - a))
            seg[lo:hi] = (seg[lo:hi] - stats["wav_mean"]) / np.sqrt(stats["wav_var"] + 1e-7)
        return seg

    @torch.inference_mode()
    def file_stats(self, audio, chunk_seconds: float = 30.0) -> dict:
        """What encoding a window needs from the whole file, in passes over it a chunk at a time:
        the waveform's mean and variance (`normalize`) and the first convolution's per-channel
        mean and variance over time (its GroupNorm normalises over the whole utterance)."""
        stats: dict = {}
        chunk = int(chunk_seconds * SAMPLE_RATE)
        if self.config.normalize:
            s = s2 = 0.0
            for a in range(0, len(audio), chunk):
                w = audio.read(a, min(len(audio), a + chunk)).astype(np.float64)
                s, s2 = s + w.sum(), s2 + np.square(w).sum()
            mean = s / len(audio)
            stats.update(wav_mean=mean, wav_var=max(0.0, s2 / len(audio) - mean * mean))
        first = self.model.feature_extractor.conv_layers[0]
        if not isinstance(getattr(first, "layer_norm", None), torch.nn.GroupNorm):
            return stats
        kernel, stride = first.conv.kernel_size[0], first.conv.stride[0]
        steps = (len(audio) + 2 * self.config.pad_samples - kernel) // stride + 1
        per_chunk = max(1, chunk // stride)
        total = torch.zeros(first.conv.out_channels, dtype=torch.float64, device=self.device)
        total2 = torch.zeros_like(total)
        with self._autocast:
            for t0 in range(0, steps, per_chunk):
                t1 = min(steps, t0 + per_chunk)
                x = torch.from_numpy(self._padded(audio, t0 * stride, (t1 - 1) * stride + kernel, stats))
                h = first.conv(x.to(self.device)[None, None, :])[0].double()
                total, total2 = total + h.sum(dim=1), total2 + h.square().sum(dim=1)
        mean = total / steps
        stats.update(mean=mean.float(), var=(total2 / steps - mean.square()).clamp_min(0).float())
        return stats

    def frames_in(self, audio, k0: int, k1: int, margin: int, stats: dict) -> torch.Tensor:
        """Features of frames k0..k1 of a LongAudio, encoded with `margin` frames of the file on
        each side (fewer at its ends); the convolutions match the whole file's exactly."""
        total = self.n_frames(len(audio))
        g0, g1 = max(0, k0 - margin), min(total, k1 + margin)
        seg = self._padded(audio, g0 * self.hop, (g1 - 1) * self.hop + self.receptive_field, stats)
        feats = self._encode([seg], norm_stats=stats)[0]
        if len(feats) != g1 - g0:
            raise AssertionError(f"a window of frames {g0}..{g1} gave {len(feats)} frames")
        return feats[k0 - g0: k1 - g0]

    @torch.inference_mode()
    def _encode(self, wavs: Sequence[np.ndarray], norm_stats: dict | None = None) -> list[torch.Tensor]:
        """Hidden states of waveforms already normalised and padded."""
        x, lengths = pad_batch(wavs, self.device)
        with self._autocast:
            feats, frames = self._conv_features(x, lengths, norm_stats)
            mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < frames[:, None]
            hidden = self.model.feature_projection(feats)
            # hidden_states[layer] is the output of the layer itself, before the final LayerNorm
            # that the stable-layer-norm variant applies: capture it there.
            captured = {}
            hook = self.model.encoder.layers[-1].register_forward_hook(
                lambda _m, _i, out: captured.__setitem__("h", out[0] if isinstance(out, tuple) else out)
            )
            try:
                self.model.encoder(hidden, attention_mask=mask)
            finally:
                hook.remove()
            out = captured["h"]
        out = out.float()
        return [out[i, :n] for i, n in enumerate(frames.tolist())]

    def to_config(self) -> dict:
        return features_config_to_dict(self.config)


def make_extractor(config: LogMelConfig | HubertConfig, device="auto", model=None):
    """The extractor for a features config."""
    if isinstance(config, LogMelConfig):
        return LogMelExtractor(config, device=device)
    if isinstance(config, HubertConfig):
        return HubertExtractor(config, device=device, model=model)
    raise TypeError(f"unknown features config {config!r}")


def features_config_to_dict(config: LogMelConfig | HubertConfig) -> dict:
    return {"kind": config.kind, **asdict(config)}


def features_config_from_dict(data: dict) -> LogMelConfig | HubertConfig:
    data = dict(data)
    kind = data.pop("kind")
    classes = {LogMelConfig.kind: LogMelConfig, HubertConfig.kind: HubertConfig}
    if kind not in classes:
        raise ValueError(f"unknown feature extractor kind {kind!r} (known: {sorted(classes)})")
    return classes[kind](**data)


def save_encoder(extractor: HubertExtractor, directory: str | Path) -> None:
    """Save a HuBERT extractor's whole encoder (all layers) as a HubertModel directory."""
    encoder = extractor.model.encoder
    kept = encoder.layers
    encoder.layers = extractor._all_layers
    try:
        extractor.model.save_pretrained(directory)
    finally:
        encoder.layers = kept
