"""The Griffin-Lim vocoder, for the `tiny` profile's log-mel units: an honest inversion with nothing learned.

Each unit's k-means centroid is a stack of log-mel frames. Repeated by run length, they give a
log-mel spectrogram; mel power goes back to a linear power spectrum by non-negative least squares
against the mel filterbank; the square root is the magnitude, and Griffin-Lim (with momentum)
finds a phase that fits it. Limits: a unit is a cluster average over many frames and voices, so
every occurrence of a unit sounds the same, little of the pitch survives, and the phase is
invented: the spectral envelope comes back (the log-mel of the output correlates at 0.93-0.98 with
the original's on the test utterances, 64-200 units), the voice quality does not. Enough to hear
what a unit sequence roughly says, not to judge a voice. Unknown durations come from per-unit mean
run lengths measured on tokenized data (`fit_durations`).

Not here: the interface and the choice of vocoder (`slamlib.vocoders.base`).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch

from slamlib.audio import SAMPLE_RATE
from slamlib.profiles import LogMelConfig
from slamlib.tokenization.features import LogMelExtractor, mel_filterbank, resolve_device
from slamlib.vocoders.base import check_units, spread_durations


def mel_to_linear_power(mel_power: torch.Tensor, filterbank: torch.Tensor, n_iter: int = 30) -> torch.Tensor:
    """Non-negative least squares: linear power spectra P >= 0 with `P @ filterbank.T ~ mel_power`.

    mel_power is (frames, n_mels), filterbank (n_mels, n_freq). There are fewer mel bands than
    frequency bins, so many spectra fit; starting from a smooth guess (each band's power spread
    over its triangle) and refining with multiplicative updates (Lee & Seung, 2001), which keep
    P non-negative and never make the fit worse, picks a smooth one. Bins outside every filter
    stay at zero. A few dozen updates are enough: on the tiny profile's units the inverted
    audio's log-mel matches equally well after 30 updates as after 200."""
    fb = filterbank.to(mel_power.dtype)
    eps = torch.finfo(mel_power.dtype).tiny
    area = fb.sum(dim=1).clamp_min(eps)
    power = mel_power.clamp_min(0.0) @ (fb / area[:, None])
    numerator = mel_power.clamp_min(0.0) @ fb
    gram = fb.T @ fb
    for _ in range(n_iter):
        power = power * numerator / (power @ gram + eps)
    return power


def griffin_lim(magnitude: torch.Tensor, *, n_fft: int, hop: int, win: int, length: int,
                n_iter: int = 32, momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """A waveform of `length` samples whose STFT magnitude approximates `magnitude`
    (n_fft // 2 + 1, frames), by Griffin-Lim with the momentum of Perraudin et al. (2013).

    The initial phase is random from `seed`, so the result is deterministic."""
    window = torch.hann_window(win, device=magnitude.device)
    stft = dict(n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=gen, dtype=torch.float64).to(magnitude.device)
    angles = torch.polar(torch.ones_like(magnitude), (2 * math.pi * phase).to(magnitude.dtype))
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wav = torch.istft(magnitude * angles, length=length, **stft)
        rebuilt = torch.stft(wav, pad_mode="constant", return_complex=True, **stft)
        # momentum: step past the projection in the direction it moved
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    return torch.istft(magnitude * angles, length=length, **stft)


class GriffinLimVocoder:
    """Log-mel units -> audio by inverting their centroids (no learned weights).

    >>> from slamlib.tokenization.kmeans import KMeans
    >>> cfg = LogMelConfig(cmn=False)
    >>> voc = GriffinLimVocoder(cfg, KMeans(torch.full((3, cfg.dim), -2.0)).centroids, n_iter=2)
    >>> voc([0, 2, 1], [1, 3, 1]).shape  # 5 frames of 2 stacked 10 ms mel frames
    (1600,)

    With `config.cmn` (per-utterance mean normalisation) a centroid says how the spectrum moves
    around the utterance's average, not its level: absolute loudness and the average spectrum
    (much of the voice's colour) are lost. The level does not matter (output is peak-normalised);
    the missing average is taken as flat unless `mean_log_mel` (n_mels,) supplies one, for
    example the mean un-normalised log-mel of some speech. (On the test utterances the output's
    log-mel correlates with the original's at about 0.8 with a flat average, 0.8-0.94 with one.)
    """

    def __init__(self, config: LogMelConfig, centroids: torch.Tensor | np.ndarray, *, n_iter: int = 32,
                 momentum: float = 0.99, seed: int = 0, default_duration: int = 2,
                 mean_log_mel: np.ndarray | None = None, device="cpu"):
        centroids = torch.as_tensor(np.asarray(centroids, dtype=np.float32))
        if centroids.ndim != 2 or centroids.shape[1] != config.dim:
            raise ValueError(f"centroids must be (units, {config.dim}) for this log-mel config, "
                             f"got {tuple(centroids.shape)}")
        if default_duration < 1:
            raise ValueError("default_duration must be at least 1 frame")
        if mean_log_mel is not None and not config.cmn:
            raise ValueError("mean_log_mel restores what mean normalisation removed; these features have none")
        self.config = config
        self.device = resolve_device(device)
        self.sample_rate = SAMPLE_RATE
        self.n_iter, self.momentum, self.seed = n_iter, momentum, seed
        self.default_duration = default_duration
        self.n_units = centroids.shape[0]
        self.unit_durations: np.ndarray | None = None  # per-unit mean run length, from fit_durations
        self.magnitudes = self._centroid_magnitudes(centroids, mean_log_mel)

    @classmethod
    def from_tokenizer(cls, speech_tokenizer, **kwargs) -> "GriffinLimVocoder":
        """The vocoder for a speech tokenizer whose extractor is a `LogMelExtractor`."""
        extractor = speech_tokenizer.extractor
        if not isinstance(extractor, LogMelExtractor):
            raise TypeError(f"Griffin-Lim inverts log-mel units; this tokenizer's features are "
                            f"{type(extractor).__name__}")
        return cls(extractor.config, speech_tokenizer.kmeans.centroids, **kwargs)

    @property
    def samples_per_frame(self) -> int:
        """Samples per feature frame (one unit-frame): hop * stack."""
        return self.config.hop * self.config.stack

    def _centroid_magnitudes(self, centroids: torch.Tensor, mean_log_mel) -> torch.Tensor:
        """STFT magnitudes (units, stack, n_freq) for every centroid's stacked mel frames.

        Done once per unit, not per call: a call only looks them up and runs Griffin-Lim."""
        cfg = self.config
        # a centroid is `context` stacks of `stack` frames (frame t of a stack first): keep the centre
        log_mel = centroids.double().reshape(-1, cfg.context, cfg.stack, cfg.n_mels)[:, cfg.context // 2]
        if cfg.cmn:
            if mean_log_mel is not None:
                log_mel = log_mel + torch.as_tensor(np.asarray(mean_log_mel), dtype=torch.float64)
            mel_power = log_mel.exp()  # relative level only: the floor means nothing here
        else:
            mel_power = (log_mel.exp() - cfg.floor).clamp_min(0.0)
        fb = torch.from_numpy(mel_filterbank(cfg.n_mels, cfg.n_fft, SAMPLE_RATE, cfg.f_min, cfg.f_max))
        power = mel_to_linear_power(mel_power.reshape(-1, cfg.n_mels), fb.double())
        return power.sqrt().float().reshape(centroids.shape[0], cfg.stack, -1).to(self.device)

    # --- durations ------------------------------------------------------------------------------

    def fit_durations(self, tokenized: Iterable) -> "GriffinLimVocoder":
        """Measure each unit's mean run length (in feature frames) on tokenized utterances:
        `Tokenized` objects or (units, durations) pairs. Units never seen get the overall mean."""
        total = np.zeros(self.n_units)
        count = np.zeros(self.n_units)
        for item in tokenized:
            units, durations = (item.units, item.durations) if hasattr(item, "units") else item
            units, durations = check_units(units, durations, self.n_units)
            np.add.at(total, units, durations)
            np.add.at(count, units, 1)
        if not count.any():
            raise ValueError("no units to measure durations on")
        overall = total.sum() / count.sum()
        self.unit_durations = np.where(count > 0, total / np.maximum(count, 1), overall)
        return self

    def expected_durations(self, units: Sequence[int]) -> np.ndarray:
        """Durations for units without any: fitted per-unit means (spread to whole frames), or
        `default_duration` frames each when nothing was fitted."""
        units, _ = check_units(units, None, self.n_units)
        if self.unit_durations is None:
            return np.full(units.shape, self.default_duration, dtype=np.int64)
        return spread_durations(self.unit_durations[units])

    # --- synthesis --------------------------------------------------------------------------------

    def magnitude(self, units: Sequence[int], durations: Sequence[int] | None = None) -> torch.Tensor:
        """The STFT magnitude (n_freq, frames) the units stand for, one STFT frame per mel frame."""
        units, durations = check_units(units, durations, self.n_units)
        if durations is None:
            durations = self.expected_durations(units)
        frames = np.repeat(units, durations)
        mags = self.magnitudes[torch.from_numpy(frames).to(self.device)]  # (frames, stack, n_freq)
        return mags.reshape(-1, mags.shape[-1]).T

    @torch.inference_mode()
    def __call__(self, units: Sequence[int], durations: Sequence[int] | None = None) -> np.ndarray:
        cfg = self.config
        mag = self.magnitude(units, durations)
        n = mag.shape[1]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        # A signal of n * hop samples has n + 1 centred STFT frames: repeat the last one.
        mag = torch.cat([mag, mag[:, -1:]], dim=1)
        wav = griffin_lim(mag, n_fft=cfg.n_fft, hop=cfg.hop, win=cfg.win, length=n * cfg.hop,
                          n_iter=self.n_iter, momentum=self.momentum, seed=self.seed)
        wav = wav.cpu().numpy().astype(np.float32)
        peak = float(np.abs(wav).max())
        return wav * (0.95 / peak) if peak > 0 else wav
