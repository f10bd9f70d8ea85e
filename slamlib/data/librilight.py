"""Libri-Light as its release lays it out, cut into utterances by its own voice activity.

The release (`small`, `medium`, `large`, `duplicate`) is `SUBSET/SPEAKER/BOOK/FILE.flac` with a
`FILE.json` beside each file: `speaker`, `book_meta`, `snr` and `voice_activity`, a list of
`[onset, offset]` in seconds. Its `data_preparation/cut_by_vad.py` makes utterances by joining
consecutive voiced segments until the next would pass a target length (a segment longer than the
target stands alone), dropping the silence between them. `librilight_items` cuts the same way
and names each utterance by its file and span: `SPEAKER/BOOK/FILE/0012.30-0071.90` (onset of its
first segment, offset of its last, in seconds). Nothing is decoded up front: an utterance reads
only its segments (soundfile seeks), so an hour-long file is never held whole.

Bad input is listed, never fatal: a file without a readable JSON is cut into back-to-back
windows of the target length instead (listed as such), a file with no voice activity is listed
and skipped, a segment outside the file is named and left out.

Not here: tokenizing the items (`slamlib.tokenization.corpus.tokenize_corpus`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from slamlib.audio import SAMPLE_RATE, list_audio_files
from slamlib.tokenization.corpus import AudioItem
from slamlib.tokenization.windows import LongAudio, Span

SUBSETS = ("small", "medium", "large", "duplicate")
TOLERANCE = 0.05  # seconds a segment may end past the file (rounding in the JSON)


def vad_groups(voice_activity, target_seconds: float) -> list[list[tuple[float, float]]]:
    """Consecutive segments joined while their voiced length stays within `target_seconds`.

    >>> vad_groups([(0, 20), (21, 45), (46, 70), (71, 200), (201, 202)], 60)
    [[(0, 20), (21, 45)], [(46, 70)], [(71, 200)], [(201, 202)]]
    """
    groups, current, length = [], [], 0.0
    for onset, offset in voice_activity:
        if current and length + (offset - onset) > target_seconds:
            groups.append(current)
            current, length = [], 0.0
        current.append((onset, offset))
        length += offset - onset
    if current:
        groups.append(current)
    return groups


def is_librilight(folder: str | os.PathLike) -> bool:
    """Whether a folder holds audio with Libri-Light JSONs beside it (its first audio file has one)."""
    try:
        files = list_audio_files(folder)
    except FileNotFoundError:
        return False
    return bool(files) and files[0].with_suffix(".json").is_file()


def made_from(folder: str | os.PathLike, target_seconds: float) -> str:
    """What units of a Libri-Light folder were made from: its files and the target length (ids
    depend on both), the same whether `slamlib tokenize` or notebook 03 tokenized it."""
    from slamlib.reuse import content_key

    return f"{content_key(folder)} target={target_seconds:g}"


def _voice_activity(meta_path: Path):
    """The `voice_activity` list of a JSON, or the reason it cannot be used."""
    if not meta_path.is_file():
        return None, "no voice-activity JSON beside it"
    try:
        meta = json.loads(meta_path.read_text())
        segments = [(float(on), float(off)) for on, off in meta["voice_activity"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"damaged voice-activity JSON ({type(err).__name__}: {err})"
    return segments, None


def librilight_items(root: str | os.PathLike, target_seconds: float = 60.0) -> tuple[list[AudioItem], list[dict]]:
    """The utterances of a Libri-Light folder (a subset, or a folder of subsets), and the list of
    what could not be read as it should (each with `source` and `reason`; `skipped` where the file
    gave nothing, `cut` where it was cut into windows instead). Ids are relative to `root`."""
    import soundfile as sf

    root = Path(root)
    items: list[AudioItem] = []
    notes: list[dict] = []
    for path in list_audio_files(root):
        rel = path.relative_to(root).with_suffix("").as_posix()
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as err:
            notes.append({"source": str(path), "reason": f"cannot be decoded as audio ({err})", "skipped": True})
            continue
        if info.samplerate != SAMPLE_RATE:
            notes.append({"source": str(path), "reason": f"is at {info.samplerate} Hz, not {SAMPLE_RATE} Hz",
                          "skipped": True})
            continue
        duration = info.frames / SAMPLE_RATE
        segments, problem = _voice_activity(path.with_suffix(".json"))
        if segments is None:
            notes.append({"source": str(path.with_suffix(".json")), "reason": f"{problem}; the file is cut into"
                          f" {target_seconds:g} s windows instead", "cut": "windows"})
            starts = [k * target_seconds for k in range(int(duration // target_seconds) + 1)]
            segments = [(t, min(duration, t + target_seconds)) for t in starts if t < duration]
        elif not segments:
            notes.append({"source": str(path), "reason": "no voice activity in its JSON; skipped", "skipped": True})
            continue
        kept = []
        for onset, offset in segments:
            if not (0 <= onset < offset <= duration + TOLERANCE):
                notes.append({"source": f"{path} [{onset}, {offset}]",
                              "reason": f"voice-activity span outside the file (0 to {duration:.2f} s); left out"})
            else:
                kept.append((onset, min(offset, duration)))
        for group in vad_groups(kept, target_seconds):
            spans = [Span(path, int(round(on * SAMPLE_RATE)), int(round(off * SAMPLE_RATE))) for on, off in group]
            spans = [s for s in spans if len(s) > 0]
            if not spans:
                continue
            audio_id = f"{rel}/{group[0][0]:07.2f}-{group[-1][1]:07.2f}"
            items.append(AudioItem(
                audio_id, f"{path} [{group[0][0]:.2f}-{group[-1][1]:.2f} s]",
                lambda spans=spans, name=audio_id: LongAudio(spans, name).whole(),
                sum(len(s) for s in spans) / SAMPLE_RATE, {},
                lambda spans=spans, name=audio_id: LongAudio(spans, name)))
    return items, notes


def long_example(data, tokenizer, sample_dir: str | os.PathLike | None = None, seconds: float | None = None) -> dict:
    """A long recording for notebook 01: its first `seconds` (default two and a half windows),
    its voiced spans, the seams of the windows it is encoded in, and its frame units encoded
    window by window and whole. The first Libri-Light file when `data.librilight` names a folder
    (its spans from its JSON), else the speech sample's utterances read one after another with
    pauses (their spans known)."""
    import numpy as np

    from slamlib.audio import load_audio
    from slamlib.tokenization.windows import window_cores, window_frames

    seconds = seconds or 2.5 * tokenizer.window_seconds
    n = int(seconds * SAMPLE_RATE)
    if data.librilight and is_librilight(data.librilight):
        path = list_audio_files(data.librilight)[0]
        audio = LongAudio.file(path)
        wav = audio.read(0, min(n, len(audio)))
        segments, _ = _voice_activity(path.with_suffix(".json"))
        spans = [(on, min(off, len(wav) / SAMPLE_RATE)) for on, off in segments or [] if on < len(wav) / SAMPLE_RATE]
        name = path.relative_to(data.librilight).as_posix()
    else:
        if sample_dir is None:
            raise ValueError("no Libri-Light folder (data.librilight) and no speech sample to build a long recording from")
        rng = np.random.default_rng(0)
        pieces, spans, t = [], [], 0.0
        for path in list_audio_files(sample_dir):
            pause = np.zeros(int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), np.float32)
            wav = load_audio(path)
            spans.append((t + len(pause) / SAMPLE_RATE, t + (len(pause) + len(wav)) / SAMPLE_RATE))
            pieces += [pause, wav]
            t = spans[-1][1]
            if t >= seconds:
                break
        wav = np.concatenate(pieces)[:n]
        spans = [(on, min(off, len(wav) / SAMPLE_RATE)) for on, off in spans if on < len(wav) / SAMPLE_RATE]
        name = f"{len(spans)} utterances of {Path(sample_dir).name}, one after another"
    whole = tokenizer.frame_units([wav])[0]
    windowed = tokenizer.frame_units_long(LongAudio.of(wav))
    core, _ = window_frames(tokenizer.window_seconds, tokenizer.window_overlap_seconds, tokenizer.frame_rate)
    seams = [k0 / tokenizer.frame_rate for k0, _ in window_cores(len(whole), core)[1:]
             if k0 / tokenizer.frame_rate < len(wav) / SAMPLE_RATE]
    return {"name": name, "wav": wav, "spans": spans, "seams": seams, "whole": whole, "windowed": windowed,
            "frame_rate": tokenizer.frame_rate, "agreement": float((whole == windowed).mean()) if len(whole) else None,
            "window_seconds": tokenizer.window_seconds, "overlap_seconds": tokenizer.window_overlap_seconds}
