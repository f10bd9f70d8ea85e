"""Speech corpora as parquet: the real ones from the hub, ours, and their units.

Audio corpora (real or synthetic) are `datasets` parquet shards whose audio columns hold encoded
bytes; they are read with `Audio(decode=False)` and decoded with soundfile. Tokenizing one writes
the units layout of `slamlib.tokenization.corpus` (`id, units, durations, seconds` + kept columns).
Preference corpora (SpokenSwag and ours) have three audio columns; their units are written one row
per utterance with ids `PAIR/prompt`, `PAIR/chosen`, `PAIR/rejected`, and `read_preference_units`
puts each pair back on one row.

A preference corpus can be filtered as SlamKit filters SpokenSwag for DPO (`RepetitionFilter`):
pairs whose prompt + chosen text repeats itself (Auto-BLEU at or above a threshold) are left out
before any audio is decoded, and the kept and dropped counts go into the summary and into the
units folder (`repetition_filter.json`).

The real datasets' schemas, as published, are in `SCHEMAS`; our synthetic corpora use the same
field names and types (plus an `id`), so code written for one reads the other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pandas as pd
import pyarrow.parquet as pq

from slamlib import hub
from slamlib.audio import AudioError, decode_audio
from slamlib.metrics import auto_bleu_slamkit
from slamlib.tokenization.corpus import SHARD_GLOB, AudioItem, dataset_items, read_units, tokenize_corpus
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
    """A `HubCorpus` from the hub or a local copy, cut to its rows (or max_rows, if fewer).

    A preference corpus's `max_auto_bleu` is not applied here (the rows keep their numbers, which
    are the pairs' ids): `tokenize_audio_corpus(..., max_auto_bleu=corpus.max_auto_bleu)` drops
    the repetitive pairs before decoding any audio and reports the counts."""
    dataset = hub.load_dataset(corpus.dataset, name=corpus.config, split=corpus.split,
                               streaming=corpus.streaming, shards=corpus.shards, what=f"{corpus.name} corpus")
    dataset = undecoded(dataset)
    limits = [r for r in (corpus.rows, max_rows) if r is not None]
    if limits:
        rows = min(limits)
        dataset = dataset.take(rows) if corpus.streaming else dataset.select(range(min(rows, len(dataset))))
    if corpus.max_auto_bleu is not None and corpus.kind != "preference":
        raise ValueError(f"{corpus.name} ({corpus.dataset}): max_auto_bleu={corpus.max_auto_bleu} filters"
                         f" preference pairs, and this corpus is of kind {corpus.kind!r}")
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


FILTER_INFO = "repetition_filter.json"  # in a preference units folder: the filter its pairs passed
FILTER_TEXTS = ("prompt_text", "chosen_text")
FILTER_COLUMN = "auto_bleu2"  # SpokenSwag's stored score, used only where the texts are missing


class RepetitionFilter:
    """SpokenSwag's repetition filter, as SlamKit applies it to its DPO data (`repetition_filter`,
    `auto_bleu_n: 2`, `max_auto_bleu: 0.3` in config/data/preference_alignment_data.yaml): a pair
    is kept when the Auto-BLEU (NLTK word tokens, bigrams) of `prompt_text + " " + chosen_text` is
    strictly below `max_auto_bleu`. The score is computed from the texts, as SlamKit does, not read
    from the dataset; only a dataset without the texts falls back to its `auto_bleu2` column.
    `max_auto_bleu=None` keeps every pair. Called on each row; counts what it keeps and drops.

    >>> f = RepetitionFilter(0.3, "swag")
    >>> f({"prompt_text": "I don't know.", "chosen_text": "I don't know."})   # Auto-BLEU 0.5
    False
    >>> f({"prompt_text": "The boat drifted.", "chosen_text": "It reached the shore."})   # 0.0
    True
    >>> f.summary()
    {'max_auto_bleu': 0.3, 'scored_by': 'text', 'kept': 1, 'dropped': 1}
    """

    def __init__(self, max_auto_bleu: float | None, name: str = "preference"):
        self.max_auto_bleu, self.name = max_auto_bleu, name
        self.kept = self.dropped = 0
        self.scored_by: str | None = None  # "text" or FILTER_COLUMN, from the first row

    def __call__(self, row: dict) -> bool:
        keep = self.max_auto_bleu is None or self.score(row) < self.max_auto_bleu
        self.kept += keep
        self.dropped += not keep
        return keep

    def score(self, row: dict) -> float:
        """SlamKit's Auto-BLEU (n = 2) of the row's prompt + chosen text (or its stored score)."""
        if self.scored_by is None:
            self.scored_by = self._source(row)
        if self.scored_by == "text":
            return auto_bleu_slamkit(f"{row['prompt_text'] or ''} {row['chosen_text'] or ''}", n=2)
        if row.get(FILTER_COLUMN) is None:
            raise ValueError(f"{self.name}: a row has no {FILTER_COLUMN} value, so the repetition filter"
                             f" (max_auto_bleu={self.max_auto_bleu}) cannot score it")
        return float(row[FILTER_COLUMN])

    def _source(self, row: dict) -> str:
        if all(c in row for c in FILTER_TEXTS):
            return "text"
        if FILTER_COLUMN in row:
            return FILTER_COLUMN
        raise ValueError(
            f"{self.name}: the repetition filter (max_auto_bleu={self.max_auto_bleu}) needs the text columns"
            f" {list(FILTER_TEXTS)} or a {FILTER_COLUMN!r} column; the rows have {sorted(row)}"
            " (set max_auto_bleu to none to keep every pair)")

    def summary(self) -> dict:
        return {"max_auto_bleu": self.max_auto_bleu, "scored_by": self.scored_by, "kept": self.kept,
                "dropped": self.dropped}


def check_filter_setting(out_dir: str | os.PathLike, max_auto_bleu: float | None) -> None:
    """Refuse a units folder that may hold pairs this filter drops: one tokenized unfiltered (or
    before filter settings were recorded) or with a higher threshold. Pairs already tokenized are
    never tokenized again, so they would stay in. A looser filter only adds pairs, which is fine."""
    out_dir = Path(out_dir)
    if max_auto_bleu is None or not any(out_dir.glob(SHARD_GLOB)):
        return
    info = out_dir / FILTER_INFO
    old = json.loads(info.read_text()).get("max_auto_bleu") if info.exists() else None
    if old is None or max_auto_bleu < old:
        raise ValueError(
            f"{out_dir} holds pairs tokenized with max_auto_bleu={old}, some of which max_auto_bleu="
            f"{max_auto_bleu} drops; write to a new folder or delete the old shards")


def write_filter_info(out_dir: str | os.PathLike, info: dict) -> None:
    """Record the filter a units folder's pairs passed (and this run's counts) next to its shards."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / FILTER_INFO).write_text(json.dumps(info, indent=2) + "\n")


def preference_items(rows, *, id_column: str | None = None, keep_columns: Sequence[str] = (),
                     name: str = "preference", keep: Callable[[dict], bool] | None = None) -> Iterator[AudioItem]:
    """Three items per pair (prompt, chosen, rejected), each tagged with its pair and role.
    `rows`: an iterable of row dicts whose audio columns hold encoded bytes. `keep`: a test on
    the row (e.g. a `RepetitionFilter`); a pair it rejects yields nothing and its audio is never
    decoded. Pairs keep the ids of their rows, so filtering does not renumber them."""
    for index, row in enumerate(rows):
        if keep is not None and not keep(row):
            continue
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
                          audio_column: str = "audio", name: str = "corpus", max_auto_bleu: float | None = None,
                          progress: bool = True, replace_stale: bool = False) -> dict:
    """Tokenize an audio corpus (kind "speech" or "preference") into units shards. `source` is a
    folder of our parquet shards or a `datasets` dataset. A preference corpus is first passed
    through `RepetitionFilter(max_auto_bleu)` (None keeps every pair); the filter's counts are in
    the summary under "repetition_filter". Units made by another speech tokenizer or from other
    audio are refused, or with `replace_stale` replaced (`tokenize_corpus`)."""
    from slamlib.reuse import content_key

    stale = {"replace_stale": replace_stale}
    if isinstance(source, (str, os.PathLike)):
        columns, rows = parquet_columns(source), parquet_rows(source)
        stale["made_from"] = content_key(source)
    else:
        source = undecoded(source)
        columns, rows = list(source.column_names or []), source
    keep = [c for c in keep_columns if c in columns]
    if kind == "preference":
        repetition = RepetitionFilter(max_auto_bleu, name)
        return _tokenize_preference(rows, out_dir, tokenizer, repetition, id_column=id_column, keep_columns=keep,
                                    name=name, progress=progress, **stale)
    if kind != "speech":
        raise ValueError(f"unknown corpus kind {kind!r} (speech or preference)")
    if max_auto_bleu is not None:
        raise ValueError(f"{name}: max_auto_bleu={max_auto_bleu} filters preference pairs; this is a speech corpus")
    items = dataset_items(rows, audio_column=audio_column, id_column=id_column, keep_columns=keep, name=name)
    return tokenize_corpus(items, out_dir, tokenizer, keep_columns=keep, progress=progress, **stale)


def _tokenize_preference(rows, out_dir, tokenizer, repetition: RepetitionFilter, *, id_column, keep_columns, name,
                         progress, **stale) -> dict:
    """Filter the pairs, tokenize the kept ones and record the filter and its counts. Every row is
    seen on each run (already tokenized pairs are skipped after the filter), so the counts are
    right on a rerun too."""
    check_filter_setting(out_dir, repetition.max_auto_bleu)
    write_filter_info(out_dir, {"max_auto_bleu": repetition.max_auto_bleu})  # before any shard: what they pass
    items = preference_items(rows, id_column=id_column, keep_columns=keep_columns, name=name, keep=repetition)
    summary = tokenize_corpus(items, out_dir, tokenizer, keep_columns=["pair", "role", *keep_columns],
                              progress=progress, **stale)
    summary["repetition_filter"] = repetition.summary()
    write_filter_info(out_dir, summary["repetition_filter"])
    return summary


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
