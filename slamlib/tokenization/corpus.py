"""A corpus of speech -> parquet shards of units, resumably.

`tokenize_corpus` turns a folder of audio, or a `datasets` dataset with an audio column, into
parquet shards with one row per utterance: `id`, `units`, `durations` (frames per unit), `seconds`.
Re-running it is idempotent: utterances already in a shard are skipped, so an interrupted run
resumes by shard and a finished one adds nothing. Bad audio is skipped and listed; the rest goes on.

Not here: the speech tokenizer itself (`slamlib.tokenization.speech_tokenizer`).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf

from slamlib.audio import SAMPLE_RATE, AudioError, decode_audio, list_audio_files, load_audio
from slamlib.checks import check
from slamlib.locks import folder_lock, share_lock
from slamlib.progress import progress as progress_bar
from slamlib.tokenization.speech_tokenizer import SpeechTokenizer
from slamlib.tokenization.windows import LongAudio


@dataclass
class AudioItem:
    """An utterance to tokenize: an id, how to decode it, and extra columns to keep."""

    id: str
    source: str
    load: Callable[[], np.ndarray]
    seconds: float | None = None
    extra: dict = field(default_factory=dict)
    # the same audio read piece by piece, for audio longer than the tokenizer's window (None: load it whole)
    long: Callable[[], LongAudio] | None = None


def folder_items(folder: str | os.PathLike, keep_columns: Sequence[str] = ()) -> list[AudioItem]:
    """Items for every audio file under a folder; ids are relative paths without the suffix.

    Columns in `keep_columns` come from a `metadata.csv` beside the audio (column `file`)."""
    folder = Path(folder)
    meta = {}
    if keep_columns and (folder / "metadata.csv").exists():
        import pandas as pd

        table = pd.read_csv(folder / "metadata.csv", dtype=str, keep_default_na=False)
        missing = [c for c in keep_columns if c not in table.columns]
        if missing:
            raise ValueError(f"{folder / 'metadata.csv'} has no column(s) {missing}")
        meta = {row["file"]: {c: row[c] for c in keep_columns} for _, row in table.iterrows()}
    items = []
    for path in list_audio_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            info = sf.info(str(path))
            seconds, rate = (info.frames / info.samplerate if info.samplerate else 0.0), info.samplerate
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            seconds = rate = None  # decoding will fail and report it
        extra = meta.get(rel, {c: None for c in keep_columns})
        long = (lambda p=path: LongAudio.file(p)) if rate == SAMPLE_RATE else None  # others are resampled whole
        items.append(AudioItem(rel.rsplit(".", 1)[0], str(path), lambda p=path: load_audio(p), seconds, extra, long))
    return items


def dataset_items(rows, *, audio_column: str = "audio", id_column: str | None = None,
                  keep_columns: Sequence[str] = (), name: str = "dataset") -> Iterator[AudioItem]:
    """Items for the rows of a `datasets` Dataset or IterableDataset, or any iterable of row dicts.

    The audio is read undecoded and its bytes decoded with soundfile (the `datasets` decoder
    needs torchcodec, which a CPU-only torch cannot import)."""
    if hasattr(rows, "cast_column"):
        from datasets import Audio

        if audio_column not in (rows.column_names or []):
            raise ValueError(f"{name} has no audio column {audio_column!r} (columns: {rows.column_names})")
        rows = rows.cast_column(audio_column, Audio(decode=False))
    for index, row in enumerate(rows):
        if audio_column not in row:
            raise ValueError(f"{name} has no audio column {audio_column!r} (columns: {sorted(row)})")
        audio = row[audio_column] or {}
        item_id = str(row[id_column]) if id_column else f"row-{index:09d}"  # paths can repeat
        source = f"{name}[{index}] ({audio.get('path') or item_id})"

        def load(audio=audio, source=source):
            if audio.get("bytes"):
                return decode_audio(audio["bytes"], source)
            if audio.get("path") and Path(audio["path"]).exists():
                return load_audio(audio["path"])
            raise AudioError(source, "row has no audio bytes and no readable path")

        yield AudioItem(item_id, source, load, None, {c: row.get(c) for c in keep_columns})


def _decoded(items: Iterable[AudioItem], threads: int, ahead: int,
             is_long: Callable[[int], bool] = lambda n: False) -> Iterator[tuple[AudioItem, Any]]:
    """Decode items in background threads, in order, at most `ahead` in flight: the compute
    never waits for decoding unless decoding is the slower of the two. An item longer than the
    tokenizer's window (`is_long`, in samples) that can be read in pieces comes as a LongAudio,
    not decoded."""

    def load(item):
        try:
            if item.long is not None and item.seconds is not None and is_long(int(item.seconds * SAMPLE_RATE)):
                return item.long()
            return item.load()
        except AudioError as err:
            return err

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(load, item)))
            if len(pending) >= ahead:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


SHARD_GLOB = "shard-*.parquet"
INFO_NAME = "units_info.json"


def done_ids(out_dir: str | os.PathLike) -> set[str]:
    """Ids already written to the shards of a units folder."""
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for shard in sorted(Path(out_dir).glob(SHARD_GLOB)):
        ids.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    return ids


def _write_shard(path: Path, rows: list[dict], extra_columns: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "units": pa.array([r["units"] for r in rows], pa.list_(pa.int32())),
        "durations": pa.array([r["durations"] for r in rows], pa.list_(pa.int32())),
        "seconds": pa.array([r["seconds"] for r in rows], pa.float64()),
        **{c: pa.array([r["extra"].get(c) for r in rows]) for c in extra_columns},
    })
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # no two processes share a temporary file
    pq.write_table(table, tmp)
    os.replace(tmp, path)  # a shard exists whole or not at all


def _check_info(out_dir: Path, tokenizer: SpeechTokenizer, made_from: str | None, replace_stale: bool) -> None:
    """Units from another speech tokenizer (or, where `made_from` is given, from other audio) are
    never mixed with new ones: refused, or with `replace_stale` removed first, saying so."""
    info = {"tokenizer": tokenizer.fingerprint(), "n_units": tokenizer.n_units,
            "frame_rate": tokenizer.frame_rate, "dedup": tokenizer.dedup}
    if made_from is not None:
        info["made_from"] = made_from
    path = out_dir / INFO_NAME
    if path.exists():
        old = json.loads(path.read_text())
        stale = [f"{key} {old.get(key)} -> {info[key]}" for key in ("tokenizer", "made_from")
                 if key in info and old.get(key) != info[key]]
        if not stale:
            return
        if not replace_stale:
            raise ValueError(
                f"{out_dir} holds units from another speech tokenizer or other audio ({'; '.join(stale)});"
                " write to a new folder or delete the old shards"
            )
        print(f"{out_dir}: made from another speech tokenizer or other audio ({'; '.join(stale)});"
              " tokenizing again", flush=True)
        for old_file in [*out_dir.glob("shard-*.parquet"), *out_dir.glob("bad_audio*.json"), path]:
            old_file.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    info["windows"] = {"window_seconds": tokenizer.window_seconds,  # how audio longer than a window was encoded
                       "window_overlap_seconds": tokenizer.window_overlap_seconds}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the shares of one job write it side by side
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)


COMPANIONS = ("metadata.csv",)  # files that belong beside audio (columns of it)


def not_audio(folder: str | os.PathLike) -> list[dict]:
    """The files under `folder` that are not audio, so not tokenized, each with why; hidden files,
    `metadata.csv` and a JSON beside an audio file of the same name (Libri-Light's) belong there.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("a.wav", "a.json", "notes.txt", "metadata.csv", ".lock"):
    ...     _ = (root / name).write_text("")
    >>> [(Path(s["source"]).name, s["reason"]) for s in not_audio(root)]
    [('notes.txt', 'not an audio file (.txt)')]
    """
    from slamlib.audio import AUDIO_EXTENSIONS

    folder = Path(folder)
    audio = {p.with_suffix("") for p in list_audio_files(folder)}
    return [{"source": str(p), "reason": f"not an audio file ({p.suffix or 'no suffix'})"}
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix.lower() not in AUDIO_EXTENSIONS and not p.name.startswith(".")
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.name not in COMPANIONS and not (p.suffix == ".json" and p.with_suffix("") in audio)]


def _source_items(source, *, audio_column: str, id_column: str | None, keep_columns: Sequence[str],
                  target_seconds: float = 60.0) -> tuple[Iterable[AudioItem], float | None, str, list[dict]]:
    """The items of a folder (Libri-Light's layout cut by its voice activity), a `datasets`
    dataset or AudioItems; their total seconds where they are known up front (for the progress
    bar); a name for messages; what the reading noted (files cut or skipped)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from slamlib.data.librilight import is_librilight, librilight_items

        items, notes = librilight_items(source, target_seconds) if is_librilight(source) else (
            folder_items(source, keep_columns), [])
        return items, sum(i.seconds or 0.0 for i in items), str(source), notes
    if isinstance(source, (str, os.PathLike)):
        raise FileNotFoundError(f"{source}: not a folder of audio (for a hub dataset, load it with slamlib.hub.load_dataset)")
    if not hasattr(source, "column_names"):  # already AudioItems
        return source, None, "items", []
    name = getattr(source, "info", None) and source.info.dataset_name or "dataset"
    return dataset_items(source, audio_column=audio_column, id_column=id_column, keep_columns=keep_columns,
                         name=name), None, name, []


def _pending(items: Iterable[AudioItem], already: set[str], name: str, max_items: int | None) -> Iterator[AudioItem]:
    """The first `max_items` items (all by default) less those already written; ids must be unique."""
    ids: set[str] = set()
    for item in items:
        if max_items is not None and len(ids) >= max_items:
            return
        if item.id in ids:
            raise ValueError(f"{name}: utterance id {item.id!r} occurs twice ({item.source}); ids must be unique")
        ids.add(item.id)
        if item.id not in already:
            yield item


class _ShardWriter:
    """Decoded utterances in, parquet shards out: tokenized `chunk_seconds` of audio
    at a time (one batched call of the tokenizer), written `shard_size` utterances a shard."""

    def __init__(self, out_dir: Path, tokenizer: SpeechTokenizer, *, keep_columns: Sequence[str], shard_size: int,
                 chunk_seconds: float, bar, share: str | None = None):
        self.out_dir, self.tokenizer, self.keep_columns, self.bar = out_dir, tokenizer, keep_columns, bar
        self.shard_size, self.window_samples = shard_size, chunk_seconds * SAMPLE_RATE
        self.prefix = f"shard-{share}-" if share else "shard-"  # a share numbers its own shards
        existing = [p for p in out_dir.glob(f"{self.prefix}*.parquet") if p.stem[len(self.prefix):].isdigit()]
        self.next_shard = 1 + max((int(p.stem[len(self.prefix):]) for p in existing), default=-1)
        self.window: list[tuple[AudioItem, np.ndarray]] = []
        self.samples = 0  # in the window since it was last tokenized
        self.rows: list[dict] = []
        self.shards_written = self.utterances = 0
        self.seconds = self.units = self.frames = 0.0

    def add(self, item: AudioItem, wav: np.ndarray | LongAudio) -> None:
        if isinstance(wav, LongAudio):  # encoded window by window, on its own
            self._row(item, self.tokenizer.tokenize_long(wav))
            self.bar.update(wav.seconds)
        else:
            self.window.append((item, wav))
            self.samples += len(wav)
        if self.samples >= self.window_samples:
            self.flush_window()
        if len(self.rows) + len(self.window) >= self.shard_size:
            self.flush_shard()

    def _row(self, item: AudioItem, res) -> None:
        self.rows.append({"id": item.id, "units": res.units.astype(np.int32), "durations":
                          res.durations.astype(np.int32), "seconds": res.seconds, "extra": item.extra})
        self.seconds += res.seconds
        self.units += len(res.units)
        self.frames += int(res.durations.sum())
        self.utterances += 1

    def flush_window(self) -> None:
        self.samples = 0
        if not self.window:
            return
        results = self.tokenizer.tokenize([wav for _, wav in self.window])
        for (item, _), res in zip(self.window, results):
            self._row(item, res)
        self.bar.update(sum(len(w) for _, w in self.window) / SAMPLE_RATE)
        self.window.clear()

    def flush_shard(self) -> None:
        self.flush_window()
        if self.rows:
            _write_shard(self.out_dir / f"{self.prefix}{self.next_shard:05d}.parquet", self.rows, self.keep_columns)
            self.next_shard += 1
            self.shards_written += 1
            self.rows.clear()


def tokenize_corpus(
    source: str | os.PathLike | Any,
    out_dir: str | os.PathLike,
    tokenizer: SpeechTokenizer,
    *,
    shard_size: int = 1000,
    chunk_seconds: float = 600.0,
    audio_column: str = "audio",
    id_column: str | None = None,
    keep_columns: Sequence[str] = (),
    max_items: int | None = None,
    decode_threads: int | None = None,
    progress: bool = True,
    made_from: str | None = None,
    replace_stale: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    target_seconds: float = 60.0,
) -> dict:
    """Tokenize a folder of audio, a `datasets` dataset, or AudioItems into parquet shards.

    An interrupted run resumes: utterances already in a shard are skipped. Shards made by another
    speech tokenizer, or from other audio (`made_from`: a key of the source's content, for example
    `slamlib.reuse.content_key`), are refused, or replaced when `replace_stale` is set.

    Audio is decoded in `decode_threads` background threads (default: one per CPU core, up to
    16), far enough ahead that the next chunk is decoded while the current one is tokenized. A
    16 kHz file longer than the tokenizer's `window_seconds` is never decoded whole: it is read
    and encoded window by window (`SpeechTokenizer.tokenize_long`).

    A folder in Libri-Light's layout (audio with a voice-activity JSON beside it) is cut into
    utterances by its voice activity, joined up to `target_seconds` (`slamlib.data.librilight`).

    One corpus can be spread over processes: with `num_shards` N, the process `shard_index` I
    takes every N-th utterance (longest first, so that a lack of memory shows at once; in
    source order where lengths are unknown) and writes its own shards (`shard-I-of-N-K.parquet`)
    into the one folder. The shares work side by side, each resumable on its own; together they
    hold exactly the rows one process writes.

    Only one process writes `out_dir` (or a share of it) at a time (`slamlib.locks`): shard
    numbers are taken under its lock.

    Returns a summary: counts, audio seconds, units per second, speed, and the bad inputs
    (also written to `bad_audio.json`, or `bad_audio-I-of-N.json` for a share)."""
    check("shard_size", shard_size, "count", optional=False), check("max_items", max_items, "count")
    check("chunk_seconds", chunk_seconds, "positive", optional=False)
    check("num_shards", num_shards, "count", optional=False), check("target_seconds", target_seconds, "positive")
    if not (isinstance(shard_index, int) and 0 <= shard_index < num_shards):
        raise ValueError(f"shard_index={shard_index!r} must be a whole number from 0 to num_shards - 1 ({num_shards - 1})")
    share = share_name(num_shards, shard_index)
    lock = share_lock(out_dir, "tokenizing", share) if share else folder_lock(out_dir, "tokenizing")
    with lock:
        return _tokenize_corpus(source, Path(out_dir), tokenizer, shard_size=shard_size, chunk_seconds=chunk_seconds,
                                audio_column=audio_column, id_column=id_column, keep_columns=keep_columns,
                                max_items=max_items, decode_threads=decode_threads, progress=progress,
                                made_from=made_from, replace_stale=replace_stale, num_shards=num_shards,
                                shard_index=shard_index, target_seconds=target_seconds)


def share_name(num_shards: int, shard_index: int) -> str | None:
    """How one share of a sharded job names its lock and files (None when there is one process).

    >>> share_name(8, 2), share_name(1, 0)
    ('2-of-8', None)
    """
    return f"{shard_index}-of-{num_shards}" if num_shards > 1 else None


def share_of(items: Iterable[AudioItem], num_shards: int, shard_index: int) -> Iterable[AudioItem]:
    """The items of one share: every `num_shards`-th of them, longest first (ties by id) when
    every length is known, else in source order (a stream is never held whole).

    >>> items = [AudioItem(f"u{i}", "", None, s) for i, s in enumerate([1.0, 5.0, 3.0, 4.0, 2.0])]
    >>> [i.id for i in share_of(items, 2, 0)], [i.id for i in share_of(items, 2, 1)]
    (['u1', 'u2', 'u0'], ['u3', 'u4'])
    """
    if num_shards == 1:
        return items
    if isinstance(items, list) and all(i.seconds is not None for i in items):
        ordered = sorted(items, key=lambda i: (-i.seconds, i.id))
        return ordered[shard_index::num_shards]
    return (item for k, item in enumerate(items) if k % num_shards == shard_index)


def _tokenize_corpus(source, out_dir: Path, tokenizer: SpeechTokenizer, *, shard_size, chunk_seconds, audio_column,
                     id_column, keep_columns, max_items, decode_threads, progress, made_from, replace_stale,
                     num_shards, shard_index, target_seconds) -> dict:
    _check_info(out_dir, tokenizer, made_from, replace_stale)
    items, total_seconds, name, notes = _source_items(source, audio_column=audio_column, id_column=id_column,
                                                      keep_columns=keep_columns, target_seconds=target_seconds)
    share = share_name(num_shards, shard_index)
    if share:
        items = share_of(items, num_shards, shard_index)
        if isinstance(items, list):
            total_seconds = sum(i.seconds or 0.0 for i in items)
    already = done_ids(out_dir)
    start = time.perf_counter()
    bar = progress_bar(total=total_seconds, unit="s", unit_scale=True, desc="tokenizing (audio s)",
                       enabled=progress)
    writer = _ShardWriter(out_dir, tokenizer, keep_columns=keep_columns, shard_size=shard_size,
                          chunk_seconds=chunk_seconds, bar=bar, share=share)
    bad = []
    threads = decode_threads or min(16, os.cpu_count() or 4)
    for item, wav in _decoded(_pending(items, already, name, max_items), threads, ahead=max(64, 4 * threads),
                              is_long=tokenizer.is_long):
        if isinstance(wav, AudioError):
            bad.append({"id": item.id, "source": item.source, "reason": wav.reason})
        else:
            writer.add(item, wav)
    writer.flush_shard()
    bar.close()
    wall = time.perf_counter() - start

    # bad audio failed to decode; files that are not audio were skipped (listed, not counted as failures)
    skipped = not_audio(source) if isinstance(source, (str, os.PathLike)) else []
    listed = bad + [{**s, "skipped": True} for s in skipped] + list(notes)
    listing = out_dir / (f"bad_audio-{share}.json" if share else "bad_audio.json")
    tmp = listing.with_name(f".{listing.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(listed, indent=2) + "\n")
    os.replace(tmp, listing)
    w = writer
    return {
        "out": str(out_dir),
        "share": share,
        "tokenized": w.utterances,
        "already_done": len(already),
        "bad": bad,
        "skipped": skipped,
        "notes": list(notes),
        "shards_written": w.shards_written,
        "audio_seconds": round(w.seconds, 3),
        "units": int(w.units),
        "units_per_second": round(w.units / w.seconds, 3) if w.seconds else None,
        "dedup_ratio": round(w.units / w.frames, 4) if w.frames else None,
        "wall_seconds": round(wall, 3),
        "x_realtime": round(w.seconds / wall, 1) if wall > 0 and w.seconds else None,
    }


def read_units(out_dir: str | os.PathLike, columns: Sequence[str] | None = None):
    """All shards of a units folder as one pandas DataFrame (in shard order)."""
    import pandas as pd
    import pyarrow.parquet as pq

    shards = sorted(Path(out_dir).glob(SHARD_GLOB))
    if not shards:
        raise FileNotFoundError(f"{out_dir}: no {SHARD_GLOB} files (tokenize a corpus into it first)")
    return pd.concat([pq.read_table(s, columns=columns).to_pandas() for s in shards], ignore_index=True)
