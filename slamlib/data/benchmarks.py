"""Pairwise benchmark sets on disk: writing ours, reading ours and the official layouts.

A pairwise benchmark is a list of (positive, negative) audio files: the model should find the
positive more likely. Pairs are always matched explicitly by id and role, never by file order.

Layouts `read_pairs` accepts:
- ours: a folder with `pairs.csv` (columns `id,positive,negative`, paths relative to the
  manifest; extra columns such as `positive_text`, `negative_text`, `category` are kept);
- SpokenStoryCloze (sSC, tSC): a folder of `[N_]STORY_correct.wav` and `[M_]STORY_incorrect.wav`
  files, paired by STORY;
- ZeroSpeech 2021 sBLIMP: a folder with `gold.csv` (`filename, voice, id, type, subtype, correct,
  transcription`) and the wavs, paired by (`type`, `subtype`, `id`, `voice`); `correct` 1 is the
  positive;
- ZeroSpeech 2021 sWUGGY: the same with the lexical `gold.csv` (`filename, id, voice, frequency,
  word, phones, length, correct`), paired by (`id`, `voice`), the texts from `word`;
- SALMon: a part folder (`bg_alignment`, `speaker_consistency`, ...) of `sample_<index>_<j>.wav`
  files, paired by index, the first name of a pair (j = 0) the positive, as SALMon's scorer sorts
  them; or the root folder holding several parts.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

BENCHMARKS = ("sblimp", "swuggy", "ssc", "tsc", "salmon")  # the pairwise benchmarks `slamlib.evaluate` scores

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


GOLD_KEYS = {"syntactic": ("type", "subtype", "id", "voice"), "lexical": ("id", "voice")}


def _gold_kind(table: pd.DataFrame, gold: Path) -> str:
    """ZeroSpeech 2021's syntactic (sBLIMP: type, subtype, transcription) or lexical (sWUGGY:
    frequency, word, phones, length) gold.csv."""
    if {"type", "subtype"} <= set(table.columns):
        return "syntactic"
    if {"word", "frequency", "length"} <= set(table.columns):
        return "lexical"
    raise BenchmarkFormatError(f"{gold}: neither ZeroSpeech's syntactic gold.csv (type, subtype, transcription) nor"
                               f" its lexical one (frequency, word, phones, length); columns {list(table.columns)}")


def _read_gold(gold: Path) -> list[Pair]:
    """ZeroSpeech 2021 pairs as its scorers read them: sBLIMP keyed by (type, subtype, id, voice),
    an id being unique only within its subtype; sWUGGY by (id, voice). Each key holds one correct
    and one incorrect row (the official scorers pair the k-th correct row with the k-th incorrect
    one, which is the same pairing in a well-formed file)."""
    table = pd.read_csv(gold, dtype=str, keep_default_na=False)
    kind = _gold_kind(table, gold)
    keys = list(GOLD_KEYS[kind])
    bad = table[~table.correct.isin(["0", "1"])]
    if len(bad):
        raise BenchmarkFormatError(f"{gold} row {bad.index[0] + 2}: correct is {bad.correct.iloc[0]!r}, not 1 or 0")
    wav = lambda name: name if name.endswith(".wav") else f"{name}.wav"  # noqa: E731
    pairs = []
    for key, group in table.groupby(keys, sort=True):
        correct, wrong = group[group.correct == "1"], group[group.correct == "0"]
        named = ", ".join(f"{k} {v}" for k, v in zip(keys, key))
        if len(correct) != 1 or len(wrong) != 1:
            rows = ", ".join(str(i + 2) for i in group.index)
            raise BenchmarkFormatError(f"{gold} rows {rows} ({named}): {len(correct)} correct and {len(wrong)}"
                                       " incorrect files; each needs one of each")
        where = f"{gold} row {correct.index[0] + 2} ({named})"
        good, bad = correct.iloc[0], wrong.iloc[0]
        if kind == "syntactic":
            info = {"item": "/".join(map(str, key[:-1])), "voice": good.voice, "type": good.type, "subtype": good.subtype,
                    "positive_text": good.get("transcription", ""), "negative_text": bad.get("transcription", "")}
        else:
            info = {"item": str(key[0]), "voice": good.voice, "frequency": _frequency(good.frequency, where),
                    "length": int(good.length) if good.length.strip() else None,
                    "positive_text": good.word, "negative_text": bad.word}
        pairs.append(Pair("/".join(map(str, key)), _existing(gold.parent, wav(good.filename), where),
                          _existing(gold.parent, wav(bad.filename), where), info))
    return pairs


def _frequency(value: str, where: str) -> int | None:
    """A word's count in LibriSpeech (sWUGGY's `frequency`; empty where the release leaves it so)."""
    if not value.strip():
        return None
    try:
        return int(float(value))
    except ValueError:
        raise BenchmarkFormatError(f"{where}: frequency {value!r} is not a count") from None


def _read_salmon(folder: Path) -> list[Pair]:
    """SALMon as its scorer (slp-rl/salmon `salmon.py`) reads a part folder: files grouped by the
    number after the first `_` of their name (`sample_<index>_<j>.wav`), each group's two paths
    sorted, the first the positive. The root folder may hold several parts."""
    parts = [folder] if any(folder.glob("sample_*_0.wav")) else sorted(p for p in folder.iterdir() if p.is_dir())
    pairs = []
    for part in parts:
        groups: dict[int, list[Path]] = defaultdict(list)
        for wav in part.glob("*.wav"):
            fields = wav.stem.split("_")
            if len(fields) > 1 and fields[1].isdigit():
                groups[int(fields[1])].append(wav)
        uneven = sorted(i for i, files in groups.items() if len(files) != 2)
        if uneven:
            raise BenchmarkFormatError(f"{part}: samples without exactly two files (a positive and a negative):"
                                       f" {[sorted(p.name for p in groups[i]) for i in uneven[:3]]}")
        for index, files in sorted(groups.items()):
            positive, negative = sorted(files, key=str)
            pairs.append(Pair(f"{part.name}/{index}", positive, negative, {"part": part.name}))
    if not pairs:
        raise BenchmarkFormatError(f"{folder}: no SALMon sample_<index>_<0|1>.wav files")
    return pairs
