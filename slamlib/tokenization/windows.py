"""Long audio in bounded memory: audio read piece by piece, and the windows it is encoded in.

A `LongAudio` is a waveform made of spans of files (or of an array) that is never decoded whole:
`read(a, b)` decodes samples `a..b` of the concatenation, seeking in each file (soundfile), with
zeros outside it. A Libri-Light utterance is the concatenation of its voice-activity segments,
a long file one span of itself.

`SpeechTokenizer.tokenize_long` encodes such audio window by window: the frames are cut into
cores of `window - overlap` seconds, each core is encoded with `overlap / 2` seconds of audio on
either side, and only the core's frames are kept, so the seams fall in the middle of the context
an encoder saw. Peak memory is that of one window, whatever the length. The extractors say how
(`frames_in`): log-mel frames are exact (the STFT reads only its own samples, and the per-file
mean of `cmn` is taken in a first pass); HuBERT's convolutions are exact too (the first layer's
per-file normalisation comes from a first pass over the file), and only its attention sees less
than the whole file. `windowed_agreement` measures how often the windowed units equal the whole
file's.

Not here: the extractors (`slamlib.tokenization.features`) and corpora (`slamlib.tokenization.corpus`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from slamlib.audio import SAMPLE_RATE, AudioError


@dataclass(frozen=True)
class Span:
    """Samples `start..stop` of a file (16 kHz) or of an in-memory array."""

    source: str | os.PathLike | np.ndarray
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def name(self) -> str:
        return "array" if isinstance(self.source, np.ndarray) else str(self.source)


def _read_file(path, start: int, n: int) -> np.ndarray:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != SAMPLE_RATE:
                raise AudioError(str(path), f"is at {f.samplerate} Hz; reading it in pieces needs {SAMPLE_RATE} Hz")
            f.seek(start)
            data = f.read(n, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(str(path), f"cannot be decoded as audio ({err})") from err
    if len(data) < n:
        raise AudioError(str(path), f"ends at sample {start + len(data)}, before sample {start + n} of a span")
    data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(data).all():
        raise AudioError(str(path), "contains NaN or infinite samples")
    return data


class LongAudio:
    """The concatenation of spans, read on demand.

    >>> audio = LongAudio.of(np.arange(10, dtype=np.float32))
    >>> audio.read(-2, 3).tolist(), len(audio)
    ([0.0, 0.0, 0.0, 1.0, 2.0], 10)
    >>> two = LongAudio([Span(np.arange(5, dtype=np.float32), 1, 3), Span(np.arange(5, dtype=np.float32), 4, 5)])
    >>> two.read(0, 4).tolist()
    [1.0, 2.0, 4.0, 0.0]
    """

    def __init__(self, spans: Sequence[Span], name: str | None = None):
        self.spans = list(spans)
        self.offsets = np.cumsum([0] + [len(s) for s in self.spans])
        self.name = name or (self.spans[0].name() if self.spans else "audio")

    @classmethod
    def of(cls, wav: np.ndarray) -> "LongAudio":
        return cls([Span(np.asarray(wav, dtype=np.float32), 0, len(wav))])

    @classmethod
    def file(cls, path: str | os.PathLike) -> "LongAudio":
        """A whole 16 kHz file, read in pieces."""
        import soundfile as sf

        info = sf.info(str(path))
        if info.samplerate != SAMPLE_RATE:
            raise AudioError(str(path), f"is at {info.samplerate} Hz; reading it in pieces needs {SAMPLE_RATE} Hz")
        return cls([Span(Path(path), 0, info.frames)], str(path))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def seconds(self) -> float:
        return len(self) / SAMPLE_RATE

    def read(self, a: int, b: int) -> np.ndarray:
        """Samples a..b of the concatenation (float32), zeros where that is outside it."""
        out = np.zeros(max(0, b - a), dtype=np.float32)
        for span, offset in zip(self.spans, self.offsets[:-1]):
            lo, hi = max(a, int(offset)), min(b, int(offset) + len(span))
            if lo >= hi:
                continue
            start = span.start + lo - int(offset)
            if isinstance(span.source, np.ndarray):
                out[lo - a: hi - a] = span.source[start: start + hi - lo]
            else:
                out[lo - a: hi - a] = _read_file(span.source, start, hi - lo)
        return out

    def whole(self) -> np.ndarray:
        return self.read(0, len(self))


def window_cores(n_frames: int, core: int) -> list[tuple[int, int]]:
    """The frame ranges that windows keep: back to back, `core` frames each (the last shorter).

    >>> window_cores(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    if core < 1:
        raise ValueError(f"a window must keep at least one frame (core of {core} frames)")
    return [(k, min(n_frames, k + core)) for k in range(0, n_frames, core)]


def window_frames(window_seconds: float, overlap_seconds: float, frame_rate: float) -> tuple[int, int]:
    """(frames a window keeps, frames of context on each side) for a window of `window_seconds`
    that shares `overlap_seconds` with the next.

    >>> window_frames(60.0, 10.0, 25.0)
    (1250, 125)
    """
    if not 0 <= overlap_seconds < window_seconds:
        raise ValueError(f"tokenizer.window_overlap_seconds={overlap_seconds} must be at least 0 and below"
                         f" tokenizer.window_seconds={window_seconds}")
    return (max(1, int(round((window_seconds - overlap_seconds) * frame_rate))),
            int(round(overlap_seconds / 2 * frame_rate)))


def windowed_agreement(tokenizer, wavs: Sequence[np.ndarray], window_seconds: float,
                       overlap_seconds: float) -> dict:
    """How often windowed encoding gives each frame the unit whole-file encoding gives it, over
    `wavs` (each short enough to encode whole): frames agreeing / frames, and the same for the
    frames near a seam (within half an overlap, and at least a second)."""
    agree = total = seam_agree = seam_total = 0
    for wav in wavs:
        whole = tokenizer.frame_units([wav])[0]
        windowed = tokenizer.frame_units_long(LongAudio.of(wav), window_seconds, overlap_seconds)
        if len(whole) != len(windowed):
            raise AssertionError(f"windowed encoding gave {len(windowed)} frames, whole gave {len(whole)}")
        same = whole == windowed
        core, margin = window_frames(window_seconds, overlap_seconds, tokenizer.frame_rate)
        band = max(margin, int(round(tokenizer.frame_rate)))  # at least a second each side
        near = np.zeros(len(whole), dtype=bool)
        for k0, _ in window_cores(len(whole), core)[1:]:
            near[max(0, k0 - band): k0 + band] = True
        agree, total = agree + int(same.sum()), total + len(same)
        seam_agree, seam_total = seam_agree + int(same[near].sum()), seam_total + int(near.sum())
    return {"window_seconds": window_seconds, "overlap_seconds": overlap_seconds, "frames": total,
            "agreement": agree / total if total else None,
            "near_seams": seam_total, "agreement_near_seams": seam_agree / seam_total if seam_total else None}
