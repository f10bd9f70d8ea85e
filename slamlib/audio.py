"""Audio in and out: any file soundfile reads, as mono float32 at 16 kHz.

Decoding uses soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, ...) and resampling uses
soxr, so nothing here needs torchaudio or torchcodec (their registry wheels are CUDA-linked and do
not import on a CPU-only torch). Every failure raises `AudioError` naming the file and the reason.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au"})


class AudioError(ValueError):
    """Audio that cannot be used. `source` names the file (or dataset row) it came from."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def resample(wav: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 signal (soxr, high quality)."""
    if orig_sr == target_sr:
        return wav
    return soxr.resample(wav, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def _to_mono_16k(data: np.ndarray, sr: int, source: str, target_sr: int) -> np.ndarray:
    if data.ndim == 2:
        data = data.mean(axis=1)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.size == 0:
        raise AudioError(source, "no audio samples (zero length)")
    if not np.isfinite(data).all():
        raise AudioError(source, "contains NaN or infinite samples")
    return resample(data, sr, target_sr)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at `sample_rate`.

    >>> import tempfile
    >>> path = write_audio(Path(tempfile.mkdtemp()) / "half-second.flac", np.zeros(4000, np.float32), 8000)
    >>> wav = load_audio(path)                # 8 kHz resampled to 16 kHz
    >>> wav.dtype, wav.shape
    (dtype('float32'), (8000,))
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise AudioError(source, "no such file")
    if path.is_dir():
        raise AudioError(source, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(source, "empty file (0 bytes)")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(source, f"cannot be decoded as audio ({err})") from err
    return _to_mono_16k(data, sr, source, sample_rate)


def decode_audio(data: bytes, source: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode encoded audio bytes (e.g. a dataset's `audio.bytes`), as `load_audio` does a file."""
    if not data:
        raise AudioError(source, "empty audio bytes")
    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(source, f"cannot be decoded as audio ({err})") from err
    return _to_mono_16k(wav, sr, source, sample_rate)


def audio_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in a file, from its header (no decoding)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(str(path), f"cannot be decoded as audio ({err})") from err
    return float(info.frames) / info.samplerate if info.samplerate else 0.0


def write_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono audio; the format follows the suffix (.wav is 16-bit PCM). Atomic: a reader
    never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported audio suffix (use .wav, .flac, .ogg or .mp3)")
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    sf.write(tmp, np.clip(wav, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    os.replace(tmp, path)
    return path


def list_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under `folder` (recursively), sorted by path so the order is reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory of audio files")
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
