"""Speech -> deduplicated units: the speech tokenizer.

A `SpeechTokenizer` chains a feature extractor (`slamlib.tokenization.features`), k-means
(`slamlib.tokenization.kmeans`), deduplication and the unit tokenizer (`slamlib.tokenization.units`).
It saves to and loads from a directory, so a trained model can carry the exact tokenizer it was
trained with.

Not here: tokenizing a whole corpus into parquet shards (`slamlib.tokenization.corpus`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from slamlib.audio import SAMPLE_RATE
from slamlib.profiles import HubertConfig
from slamlib.tokenization.features import (
    HubertExtractor,
    features_config_from_dict,
    features_config_to_dict,
    make_extractor,
    save_encoder,
)
from slamlib.tokenization.kmeans import KMeans, fit_kmeans, load_kmeans
from slamlib.tokenization.units import UnitTokenizer, dedup
from slamlib.tokenization.windows import LongAudio, window_cores, window_frames

FORMAT_VERSION = 1
CONFIG_NAME = "speech_tokenizer.json"
KMEANS_NAME = "kmeans.npy"


@dataclass
class Tokenized:
    """One utterance's units. `durations[i]` is how many feature frames unit i covered."""

    units: np.ndarray
    durations: np.ndarray
    seconds: float
    frame_rate: float

    @property
    def units_per_second(self) -> float:
        return len(self.units) / self.seconds if self.seconds else 0.0


def length_batches(lengths: Sequence[int], max_padded: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size stays under max_padded.

    >>> length_batches([5, 1, 4, 2], max_padded=8)
    [[1, 3], [2], [0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current = [], []
    for i in order:
        # sorted ascending, so the newest item is the longest: padded size = count * its length
        if current and (len(current) + 1) * lengths[i] > max_padded:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class SpeechTokenizer:
    """Waveforms -> units (extractor + k-means + dedup) and ids (unit tokenizer)."""

    def __init__(self, extractor, kmeans: KMeans, dedup: bool = True, batch_seconds: float = 160.0,
                 min_run: int = 1, window_seconds: float = 60.0, window_overlap_seconds: float = 5.0):
        if kmeans.dim != extractor.dim:
            raise ValueError(f"k-means has {kmeans.dim}-dim centroids but the features are {extractor.dim}-dim")
        self.extractor = extractor
        self.kmeans = kmeans
        self.dedup = dedup
        self.min_run = min_run  # runs shorter than this many frames are dropped before dedup
        self.batch_seconds = batch_seconds
        # audio longer than a window is encoded window by window (slamlib.tokenization.windows)
        window_frames(window_seconds, window_overlap_seconds, 1.0)  # checks the pair
        self.window_seconds, self.window_overlap_seconds = window_seconds, window_overlap_seconds

    @property
    def n_units(self) -> int:
        return self.kmeans.n_units

    @property
    def frame_rate(self) -> float:
        return self.extractor.frame_rate

    @property
    def unit_tokenizer(self) -> UnitTokenizer:
        return UnitTokenizer(self.n_units)

    def features(self, wavs: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Frame features for each waveform, computed in length-sorted batches."""
        max_padded = int(self.batch_seconds * SAMPLE_RATE)
        out: list[torch.Tensor | None] = [None] * len(wavs)
        for batch in length_batches([len(w) for w in wavs], max_padded):
            for i, feats in zip(batch, self.extractor([wavs[i] for i in batch])):
                out[i] = feats
        return out

    def frame_units(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The unit of every frame (before dedup), each waveform encoded whole."""
        feats = self.features(wavs)
        if feats and feats[0].is_cuda:  # one assignment and one copy to the host: no wait per utterance
            flat = self.kmeans.assign(torch.cat(feats)).cpu().numpy()
            return np.split(flat, np.cumsum([len(f) for f in feats])[:-1])
        # per utterance: on a CPU its distances stay in cache (15-30% faster than all at once)
        return [self.kmeans.assign(f).numpy() for f in feats]

    def frame_units_long(self, audio: LongAudio, window_seconds: float | None = None,
                         overlap_seconds: float | None = None) -> np.ndarray:
        """The unit of every frame of audio of any length, encoded window by window (cores of
        `window - overlap` seconds, each with `overlap / 2` seconds of context on both sides):
        memory stays that of one window."""
        window = self.window_seconds if window_seconds is None else window_seconds
        overlap = self.window_overlap_seconds if overlap_seconds is None else overlap_seconds
        core, margin = window_frames(window, overlap, self.frame_rate)
        stats = self.extractor.file_stats(audio)
        n_frames = self.extractor.n_frames(len(audio))
        units = np.empty(n_frames, dtype=np.int64)  # one array for the whole file, filled window by window
        for k0, k1 in window_cores(n_frames, core):
            units[k0:k1] = self.kmeans.assign(self.extractor.frames_in(audio, k0, k1, margin, stats)).cpu().numpy()
        return units

    def _result(self, frames: np.ndarray, n_samples: int) -> Tokenized:
        if self.dedup:
            units, durations = dedup(frames, self.min_run)
        else:
            units, durations = frames, np.ones_like(frames)
        return Tokenized(units, durations, n_samples / SAMPLE_RATE, self.frame_rate)

    def tokenize_long(self, audio: LongAudio) -> Tokenized:
        """Units of audio read piece by piece (a long file, a Libri-Light utterance), deduplicated
        across window seams as if it were encoded whole."""
        return self._result(self.frame_units_long(audio), len(audio))

    def is_long(self, n_samples: int) -> bool:
        """Whether audio this long is encoded window by window."""
        return n_samples > self.window_seconds * SAMPLE_RATE

    def tokenize(self, wavs: Sequence[np.ndarray] | np.ndarray) -> list[Tokenized] | Tokenized:
        """Units for one waveform or a list of them (16 kHz mono float32); a waveform longer
        than `window_seconds` is encoded window by window."""
        single = isinstance(wavs, np.ndarray) and wavs.ndim == 1
        batch = [wavs] if single else list(wavs)
        short = [i for i, w in enumerate(batch) if not self.is_long(len(w))]
        results: list[Tokenized | None] = [None] * len(batch)
        for i, frames in zip(short, self.frame_units([batch[i] for i in short])):
            results[i] = self._result(frames, len(batch[i]))
        for i in set(range(len(batch))) - set(short):
            results[i] = self.tokenize_long(LongAudio.of(batch[i]))
        return results[0] if single else results

    def encode(self, wav: np.ndarray) -> list[int]:
        """Model ids for one waveform: `[<S>, u0+2, ..., <S>]`."""
        return self.unit_tokenizer.encode(self.tokenize(wav).units)

    # --- identity, saving and loading ---------------------------------------------------------

    def to_config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "features": self.extractor.to_config(),
            "n_units": self.n_units,
            "dedup": self.dedup,
            "min_run": self.min_run,
            "frame_rate": self.frame_rate,
            "kmeans": KMEANS_NAME,
            "kmeans_sha256": self.kmeans.fingerprint(),
        }

    def fingerprint(self) -> str:
        """Identifies what this tokenizer computes (features settings + centroids), not where its
        files are: the same after `save` and `load` (a local encoder is copied into the saved folder,
        so its path changes) and the same for a hub id and a local copy of it. The centroids
        belong to one encoder's features, so they stand for the encoder too.

        HuBERT under bf16 autocast moves some frames to another unit, so a tokenizer that runs
        it in bf16 here (`HubertExtractor.bf16`) has its own fingerprint. One in fp32 (the
        default; "auto" is read as fp32, and "bf16" falls back to it on a card without bf16)
        keeps the fingerprint tokenizers had before precision counted, so their units stay valid."""
        config = {k: v for k, v in self.to_config().items() if k not in ("kmeans",)}
        config["features"] = {k: v for k, v in config["features"].items() if k not in ("precision", "model")}
        if getattr(self.extractor, "bf16", False):
            config["features"]["precision"] = "bf16"
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

    def save(self, directory: str | os.PathLike, include_encoder: bool | None = None) -> Path:
        """Write `speech_tokenizer.json`, `kmeans.npy` and the unit tokenizer files.

        A HuBERT encoder named by hub id is recorded by id; one loaded from a local directory is
        copied into `encoder/` (or always, with include_encoder=True) so the folder stands alone."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.to_config()
        if isinstance(self.extractor, HubertExtractor):
            from slamlib import hub

            local = not hub.is_remote(self.extractor.config.model)
            if include_encoder or (include_encoder is None and local):
                save_encoder(self.extractor, directory / "encoder")
                config["features"]["model"] = "encoder"
        self.kmeans.save(directory / KMEANS_NAME)
        self.unit_tokenizer.save(directory)
        tmp = directory / f".{CONFIG_NAME}.tmp"
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, directory / CONFIG_NAME)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device="auto", batch_seconds: float = 160.0,
             precision: str | None = None, window_seconds: float = 60.0,
             window_overlap_seconds: float = 5.0) -> "SpeechTokenizer":
        """`precision`: run a HuBERT encoder in this precision instead of the saved one (it
        decides how the encoder runs, not which k-means goes with it). The batch and window
        settings say how it runs, so they are not saved."""
        directory = Path(directory)
        path = directory / CONFIG_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path}: no speech tokenizer here (save one with SpeechTokenizer.save)")
        config = json.loads(path.read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {config.get('format_version')} is not {FORMAT_VERSION}")
        features = dict(config["features"])
        if features["kind"] == HubertConfig.kind and (directory / features["model"]).is_dir():
            features["model"] = str(directory / features["model"])
        if features["kind"] == HubertConfig.kind and precision is not None:
            features["precision"] = precision
        kmeans = KMeans.load(directory / config["kmeans"])
        if kmeans.fingerprint() != config["kmeans_sha256"]:
            raise ValueError(f"{directory / config['kmeans']}: centroids differ from those {path} was saved with")
        extractor = make_extractor(features_config_from_dict(features), device=device)
        return cls(extractor, kmeans, dedup=config["dedup"], batch_seconds=batch_seconds,
                   min_run=config.get("min_run", 1), window_seconds=window_seconds,
                   window_overlap_seconds=window_overlap_seconds)


def fit_speech_tokenizer(config, wavs: Iterable[np.ndarray], *, device="auto", seed: int = 0) -> SpeechTokenizer:
    """Fit k-means on the features of `wavs` (up to config.fit_seconds of audio)."""
    extractor = make_extractor(config.features, device=device)
    budget = int(config.fit_seconds * SAMPLE_RATE)
    chosen, total = [], 0
    for wav in wavs:
        if total >= budget:
            break
        chosen.append(wav[: budget - total])
        total += len(chosen[-1])
    if not chosen:
        raise ValueError("no audio to fit the k-means on")
    probe = SpeechTokenizer(extractor, KMeans(torch.zeros(1, extractor.dim)), batch_seconds=config.batch_seconds)
    feats = torch.cat(probe.features(chosen))
    kmeans = fit_kmeans(feats, config.n_units, seed=seed, device=extractor.device)
    return _configured(config, extractor, kmeans)


def _configured(config, extractor, kmeans: KMeans) -> SpeechTokenizer:
    """A SpeechTokenizer with a `TokenizerConfig`'s dedup, batch and min_run settings."""
    return SpeechTokenizer(extractor, kmeans, dedup=config.dedup, batch_seconds=config.batch_seconds,
                           min_run=config.min_run, window_seconds=config.window_seconds,
                           window_overlap_seconds=config.window_overlap_seconds)


def build_speech_tokenizer(config, *, fit_audio: Iterable[np.ndarray] | None = None, device="auto",
                           seed: int = 0) -> SpeechTokenizer:
    """The speech tokenizer a `TokenizerConfig` describes: its pretrained k-means when it names
    one, else k-means fitted on `fit_audio`."""
    if config.kmeans:
        extractor = make_extractor(config.features, device=device)
        kmeans = load_kmeans(config.kmeans, sha256=config.kmeans_sha256, trust=config.trust_pickle)
        if kmeans.n_units != config.n_units:
            raise ValueError(f"{config.kmeans} has {kmeans.n_units} centroids; the profile expects {config.n_units}")
        return _configured(config, extractor, kmeans)
    if fit_audio is None:
        raise ValueError("this profile fits its k-means: pass fit_audio (waveforms to fit on)")
    return fit_speech_tokenizer(config, fit_audio, device=device, seed=seed)


def load_or_build_speech_tokenizer(config, directory: str | os.PathLike, *,
                                   fit_audio: Iterable[np.ndarray] | None = None, device="auto",
                                   seed: int = 0, fit_from: dict | None = None) -> SpeechTokenizer:
    """The speech tokenizer saved in `directory` if it was made with the settings of `config` (and,
    for a fitted k-means, the same seed and fitting audio, which `fit_from` describes: for example
    the speech sample's settings); otherwise build it (fitting k-means when the config names none)
    and save it there. Re-running a notebook therefore never refits, and units written earlier stay
    valid; a changed setting is named in one line and the tokenizer is made again."""
    from slamlib import reuse

    directory = Path(directory)
    # how it runs (applied on loading) and where the encoder is stored do not change the units
    made_with = reuse.settings(config, "tokenizer.", leave_out=("batch_seconds", "features.precision",
                                                                "features.model", "window_seconds",
                                                                "window_overlap_seconds"))
    if not config.kmeans:
        made_with.update({"seed": seed, **{f"fit on {k}": v for k, v in (fit_from or {}).items()}})
    if (directory / CONFIG_NAME).exists() and reuse.matches(directory, made_with, what=str(directory),
                                                            redo="building it again"):
        return SpeechTokenizer.load(directory, device=device, batch_seconds=config.batch_seconds,
                                    precision=getattr(config.features, "precision", None),
                                    window_seconds=config.window_seconds,
                                    window_overlap_seconds=config.window_overlap_seconds)
    tokenizer = build_speech_tokenizer(config, fit_audio=fit_audio, device=device, seed=seed)
    tokenizer.save(directory)
    reuse.record(directory, made_with)
    return tokenizer
