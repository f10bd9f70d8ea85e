"""Pairwise benchmark sets on disk: writing ours, reading ours and the official layouts.

A pairwise benchmark is a list of (positive, negative) audio files: the model should find the
positive more likely. Pairs are always matched explicitly by id and role, never by file order.

Layouts `read_pairs` accepts:
- ours: a folder with `pairs.csv` (columns `id,positive,negative`, paths relative to the
  manifest; extra columns such as `positive_text`, `negative_text`, `category` are kept);
- SpokenStoryCloze (sSC, tSC): a folder of `[N_]STORY_correct.wav` and `[M_]STORY_incorrect.wav`
  files, paired by STORY;
- ZeroSpeech 2021 sBLIMP: a folder with `gold.csv` (`filename, voice, id, type, subtype, correct,
  transcription`) and the wavs, paired by (`id`, `voice`); `correct` 1 is the positive;
- SALMon: a part folder (`bg_alignment`, `speaker_consistency`, ...) of `sample_<index>_<j>.wav`
  files, paired by index, j = 0 the positive; or the root folder holding several parts.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

BENCHMARKS = ("sblimp", "ssc", "tsc", "salmon")  # the pairwise benchmarks `slamlib.evaluate` scores

MANIFEST = "pairs.csv"


@dataclass(frozen=True)
class Pair:
    id: str
    positive: Path
    negative: Path
    info: dict = field(default_factory=dict, compare=False)


class BenchmarkFormatError(ValueError):
    """A benchmark folder or manifest that cannot be read; the message names the file."""


def write_pairs(folder: str | os.PathLike, rows: list[dict]) -> Path:
    """Write `pairs.csv` for rows with `id`, `positive`, `negative` (paths relative to folder)."""
    folder = Path(folder)
    table = pd.DataFrame(rows)
    missing = {"id", "positive", "negative"} - set(table.columns)
    if missing:
        raise ValueError(f"pairs need columns {sorted(missing)}")
    columns = ["id", "positive", "negative"] + [c for c in table.columns if c not in ("id", "positive", "negative")]
    tmp = folder / f".{MANIFEST}.tmp"
    table[columns].to_csv(tmp, index=False)
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Pairs from our manifest, a SpokenStoryCloze folder or a ZeroSpeech sBLIMP folder."""
    path = Path(path)
    if path.is_file() and path.name.endswith(".csv"):
        return _read_gold(path) if _is_gold(path) else _read_manifest(path)
    if not path.is_dir():
        raise BenchmarkFormatError(f"{path}: no such benchmark file or folder")
    if (path / MANIFEST).exists():
        return _read_manifest(path / MANIFEST)
    if (path / "gold.csv").exists():
        return _read_gold(path / "gold.csv")
    if any(path.rglob("*_correct.wav")):
        return _read_storycloze(path)
    if any(path.glob("sample_*_0.wav")) or any(path.glob("*/sample_*_0.wav")):
        return _read_salmon(path)
    raise BenchmarkFormatError(
        f"{path}: not a benchmark folder (expected pairs.csv, a ZeroSpeech gold.csv, or "
        "SpokenStoryCloze *_correct.wav / *_incorrect.wav files, or SALMon sample_<i>_<j>.wav files)"
    )


def genppl_prompts(path: str | os.PathLike, n: int) -> list[Path]:
    """GenPPL's prompt files: the first `n` positive (correct) files of an sStoryCloze set, in
    the order of the number that begins each SpokenStoryCloze file name (`12_STORY_correct.wav`
    is 12: "the first 1,000 correct files" of the paper and SlamKit's GenPPL config), not in the
    order of story ids. Files without a number (our manifests) keep the reader's order, after
    the numbered ones.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> for name in ("10_b", "2_a", "1_z"):
    ...     for role in ("correct", "incorrect"): _ = (folder / f"{name}_{role}.wav").write_bytes(b"")
    >>> [p.name for p in genppl_prompts(folder, 2)]
    ['1_z_correct.wav', '2_a_correct.wav']
    """
    if n < 0:
        raise ValueError(f"eval.n_generations must be 0 or more, not {n}")

    def order(pair: Pair) -> tuple:
        match = _STORYCLOZE.match(pair.positive.stem)
        return (0, int(match.group(1)), pair.positive.name) if match and match.group(1) else (1, 0, "")

    return [pair.positive for pair in sorted(read_pairs(path), key=order)][:n]


def _is_gold(path: Path) -> bool:
    return {"filename", "correct", "id", "voice"} <= set(pd.read_csv(path, nrows=0).columns)


def _existing(base: Path, relative: str, where: str) -> Path:
    file = (base / relative).resolve()
    if not file.is_file():
        raise BenchmarkFormatError(f"{where}: {relative} does not exist (looked for {file})")
    return file


def _read_manifest(manifest: Path) -> list[Pair]:
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = {"id", "positive", "negative"} - set(table.columns)
    if missing:
        raise BenchmarkFormatError(f"{manifest}: missing column(s) {sorted(missing)}")
    duplicated = table.id[table.id.duplicated()].tolist()
    if duplicated:
        raise BenchmarkFormatError(f"{manifest}: duplicate pair id(s) {duplicated[:5]}")
    base = manifest.parent
    pairs = []
    for i, row in enumerate(table.to_dict("records")):
        where = f"{manifest} row {i + 2} (id {row['id']})"
        info = {k: v for k, v in row.items() if k not in ("id", "positive", "negative")}
        pairs.append(Pair(row["id"], _existing(base, row["positive"], where),
                          _existing(base, row["negative"], where), info))
    return pairs


_STORYCLOZE = re.compile(r"^(?:(\d+)_)?(.*?)_(correct|incorrect)$")


def _read_storycloze(folder: Path) -> list[Pair]:
    roles: dict[str, dict[str, Path]] = defaultdict(dict)
    for wav in sorted(folder.rglob("*.wav")):
        match = _STORYCLOZE.match(wav.stem)
        if not match:
            continue
        story = match.group(2) or match.group(1)
        if match.group(3) in roles[story]:
            raise BenchmarkFormatError(f"{folder}: story {story!r} has two {match.group(3)} files")
        roles[story][match.group(3)] = wav
    incomplete = sorted(s for s, r in roles.items() if len(r) != 2)
    if incomplete:
        raise BenchmarkFormatError(f"{folder}: stories without both a correct and an incorrect file: {incomplete[:5]}")
    return [Pair(story, r["correct"], r["incorrect"], {}) for story, r in sorted(roles.items())]


def _read_gold(gold: Path) -> list[Pair]:
    table = pd.read_csv(gold, dtype=str, keep_default_na=False)
    pairs = []
    for (pair_id, voice), group in table.groupby(["id", "voice"], sort=True):
        correct = group[group.correct == "1"]
        wrong = group[group.correct == "0"]
        if len(correct) != 1 or len(wrong) != 1:
            raise BenchmarkFormatError(f"{gold}: id {pair_id} voice {voice} needs one correct and one incorrect row")
        where = f"{gold} (id {pair_id}, voice {voice})"
        good, bad = correct.iloc[0], wrong.iloc[0]
        info = {"voice": voice, "type": good.get("type", ""), "subtype": good.get("subtype", ""),
                "positive_text": good.get("transcription", ""), "negative_text": bad.get("transcription", "")}
        wav = lambda name: name if name.endswith(".wav") else f"{name}.wav"  # noqa: E731
        pairs.append(Pair(f"{pair_id}/{voice}", _existing(gold.parent, wav(good.filename), where),
                          _existing(gold.parent, wav(bad.filename), where), info))
    return pairs


_SALMON = re.compile(r"^sample_(\d+)_([01])$")


def _read_salmon(folder: Path) -> list[Pair]:
    parts = [folder] if any(folder.glob("sample_*_0.wav")) else sorted(p for p in folder.iterdir() if p.is_dir())
    pairs = []
    for part in parts:
        roles: dict[int, dict[str, Path]] = defaultdict(dict)
        for wav in part.glob("sample_*.wav"):
            match = _SALMON.match(wav.stem)
            if match:
                roles[int(match.group(1))]["positive" if match.group(2) == "0" else "negative"] = wav
        incomplete = sorted(i for i, r in roles.items() if len(r) != 2)
        if incomplete:
            raise BenchmarkFormatError(f"{part}: samples without both _0 and _1 files: {incomplete[:5]}")
        pairs += [Pair(f"{part.name}/{i}", r["positive"], r["negative"], {"part": part.name})
                  for i, r in sorted(roles.items())]
    if not pairs:
        raise BenchmarkFormatError(f"{folder}: no SALMon sample_<index>_<0|1>.wav files")
    return pairs
