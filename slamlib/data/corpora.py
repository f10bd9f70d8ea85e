"""Speech corpora as parquet: the real ones from the hub, ours, and their units.

Audio corpora (real or synthetic) are `datasets` parquet shards whose audio columns hold encoded
bytes; they are read with `Audio(decode=False)` and decoded with soundfile. Tokenizing one writes
the units layout of `slamlib.tokenization.corpus` (`id, units, durations, seconds` + kept columns).
Preference corpora (SpokenSwag and ours) have three audio columns; their units are written one row
per utterance with ids `PAIR/prompt`, `PAIR/chosen`, `PAIR/rejected`, and `read_preference_units`
puts each pair back on one row.

The real datasets' schemas, as published, are in `SCHEMAS`; our synthetic corpora use the same
field names and types (plus an `id`), so code written for one reads the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow.parquet as pq

from slamlib import hub
from slamlib.audio import AudioError, decode_audio
from slamlib.tokenization.corpus import AudioItem, dataset_items, read_units, tokenize_corpus
from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

ROLES = ("prompt", "chosen", "rejected")

# Field -> type of the published datasets (their dataset cards).
SCHEMAS = {
    "slprl/sTinyStories": {"audio": "Audio (16 kHz)", "text": "string",
                           "aligned_text": "list of {word: string, start_time: float64, end_time: float64}",
                           "split_sentence": "bool"},
    "slprl/SpokenSwag": {"speaker": "string", "prompt_text": "string", "chosen_text": "string",
                         "rejected_text": "string", "prompt": "Audio", "chosen": "Audio", "rejected": "Audio",
                         "auto_bleu2": "float64"},
    "openslr/librispeech_asr": {"file": "string", "audio": "Audio (16 kHz)", "text": "string",
                                "speaker_id": "int64", "chapter_id": "int64", "id": "string"},
}


def undecoded(dataset):
    """The dataset with every Audio column left as encoded bytes (decoded later with soundfile)."""
    from datasets import Audio

    for column, feature in (dataset.features or {}).items():
        if isinstance(feature, Audio) and feature.decode:
            dataset = dataset.cast_column(column, Audio(decode=False))
    return dataset


def load_hub_corpus(corpus, max_rows: int | None = None):
    """A `HubCorpus` from the hub or a local copy, cut to its rows (or max_rows, if fewer)."""
    dataset = hub.load_dataset(corpus.dataset, name=corpus.config, split=corpus.split,
                               streaming=corpus.streaming, shards=corpus.shards, what=f"{corpus.name} corpus")
    dataset = undecoded(dataset)
    limits = [r for r in (corpus.rows, max_rows) if r is not None]
    if limits:
        rows = min(limits)
        dataset = dataset.take(rows) if corpus.streaming else dataset.select(range(min(rows, len(dataset))))
    return dataset


def parquet_rows(folder: str | os.PathLike, columns: Sequence[str] | None = None) -> Iterator[dict]:
    """The rows of a folder of parquet shards, in order, read batch by batch with pyarrow (no
    copy into the `datasets` cache)."""
    for shard in sorted(Path(folder).glob("shard-*.parquet")):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=64, columns=columns):
            yield from batch.to_pylist()


def parquet_columns(folder: str | os.PathLike) -> list[str]:
    shards = sorted(Path(folder).glob("shard-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{folder}: no shard-*.parquet files")
    return pq.read_schema(shards[0]).names


def preference_items(rows, *, id_column: str | None = None, keep_columns: Sequence[str] = (),
                     name: str = "preference") -> Iterator[AudioItem]:
    """Three items per pair (prompt, chosen, rejected), each tagged with its pair and role.
    `rows`: an iterable of row dicts whose audio columns hold encoded bytes."""
    for index, row in enumerate(rows):
        missing = [c for c in ROLES if c not in row]
        if missing:
            raise ValueError(f"{name} has no audio column(s) {missing} (columns: {sorted(row)})")
        pair = str(row[id_column]) if id_column else f"row-{index:09d}"
        extra = {"pair": pair, **{c: row.get(c) for c in keep_columns}}
        for role in ROLES:
            audio = row[role] or {}
            source = f"{name}[{index}].{role}"

            def load(audio=audio, source=source):
                if not audio.get("bytes"):
                    raise AudioError(source, "row has no audio bytes")
                return decode_audio(audio["bytes"], source)

            yield AudioItem(f"{pair}/{role}", source, load, None, {**extra, "role": role})


def tokenize_audio_corpus(source, out_dir: str | os.PathLike, tokenizer: SpeechTokenizer, *, kind: str = "speech",
                          id_column: str | None = None, keep_columns: Sequence[str] = ("text",),
                          audio_column: str = "audio", name: str = "corpus", progress: bool = True) -> dict:
    """Tokenize an audio corpus (kind "speech" or "preference") into units shards. `source` is a
    folder of our parquet shards or a `datasets` dataset."""
    if isinstance(source, (str, os.PathLike)):
        columns, rows = parquet_columns(source), parquet_rows(source)
    else:
        source = undecoded(source)
        columns, rows = list(source.column_names or []), source
    keep = [c for c in keep_columns if c in columns]
    if kind == "preference":
        items = preference_items(rows, id_column=id_column, keep_columns=keep, name=name)
        return tokenize_corpus(items, out_dir, tokenizer, keep_columns=["pair", "role", *keep], progress=progress)
    if kind != "speech":
        raise ValueError(f"unknown corpus kind {kind!r} (speech or preference)")
    items = dataset_items(rows, audio_column=audio_column, id_column=id_column, keep_columns=keep, name=name)
    return tokenize_corpus(items, out_dir, tokenizer, keep_columns=keep, progress=progress)


def read_preference_units(out_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per pair: `pair`, `prompt_units`, `chosen_units`, `rejected_units` and the kept
    columns (texts, speaker). Pairs missing any of the three utterances are left out."""
    long = read_units(out_dir)
    extra = [c for c in long.columns if c not in ("id", "units", "durations", "seconds", "pair", "role")]
    wide = long.pivot(index="pair", columns="role", values="units")
    complete = wide.dropna().index
    out = pd.DataFrame({"pair": complete})
    for role in ROLES:
        out[f"{role}_units"] = wide.loc[complete, role].to_list()
    if extra:
        first = long.drop_duplicates("pair").set_index("pair")
        for column in extra:
            out[column] = first.loc[complete, column].to_list()
    return out


def units_tables(units_root: str | os.PathLike, skip: Sequence[str] = ("speech_sample",)) -> dict[str, pd.DataFrame]:
    """Every tokenized corpus under a units folder (by relative name), without the unit lists'
    durations: {name: DataFrame with id, units, seconds, ...}."""
    root = Path(units_root)
    tables = {}
    for info in sorted(root.rglob("units_info.json")):
        name = info.parent.relative_to(root).as_posix()
        if name not in skip and any(info.parent.glob("shard-*.parquet")):
            tables[name] = read_units(info.parent).drop(columns=["durations"])
    return tables


# Which of our corpora follows which published dataset's schema.
OUR_COUNTERPART = {"slprl/sTinyStories": "spoken_stories", "slprl/SpokenSwag": "preference/train",
                   "openslr/librispeech_asr": "read_speech"}


def schema_table(audio_root: str | os.PathLike) -> pd.DataFrame:
    """The published datasets' fields and types next to those of our corpora that stand in for
    them (read from our parquet files' own schema)."""
    import datasets

    rows = []
    for dataset, fields in SCHEMAS.items():
        folder = Path(audio_root) / OUR_COUNTERPART[dataset]
        shards = sorted(folder.glob("shard-*.parquet"))
        ours = datasets.Features.from_arrow_schema(pq.read_schema(shards[0])) if shards else {}
        for field, published in fields.items():
            mine = ours.get(field)
            rows.append({"dataset": dataset, "field": field, "published type": published,
                         "ours": OUR_COUNTERPART[dataset] if shards else "-",
                         "our type": _describe(mine) if mine is not None else "-"})
    return pd.DataFrame(rows)


def _describe(feature) -> str:
    from datasets import Audio, List, Value

    if isinstance(feature, Audio):
        return f"Audio ({feature.sampling_rate // 1000} kHz)" if feature.sampling_rate else "Audio"
    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List):
        inner = feature.feature
        if isinstance(inner, dict):
            return "list of {" + ", ".join(f"{k}: {_describe(v)}" for k, v in inner.items()) + "}"
        return f"list of {_describe(inner)}"
    return type(feature).__name__
