"""Evaluation: pairwise likelihood benchmarks, preference accuracy, and generation.

Pairwise benchmarks (sBLIMP, sStoryCloze, tStoryCloze, SALMon, and our tiny-world sets): each
utterance is tokenized with the model's own speech tokenizer and scored as `<S> units <S>`. The
score is the mean log-likelihood per predicted token (every token after the first `<S>`, the
closing `<S>` included), or the sum with `score="sum"`. A pair counts 1 when the positive scores
higher, 0.5 on a tie, 0 otherwise; accuracy is the mean times 100. Scoring runs in
length-sorted batches, and right padding never changes a sequence's score.

ZeroSpeech 2021 sBLIMP and sWUGGY are aggregated as ZeroSpeech does it: pair scores are averaged
over voices for each (type, subtype, id), or each id, first, then averaged; sWUGGY is also reported
in-vocabulary and OOV, by frequency band and by length, SALMon by part. Everything else is a plain
mean over pairs.

Generation follows the paper's sampling: temperature 0.8, top-k 25, 150 new tokens, repetition
penalty 1.1, from prompts cut from the start of utterances (3 s).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from slamlib.audio import SAMPLE_RATE, load_audio
from slamlib.data.benchmarks import BENCHMARKS, Pair, read_pairs
from slamlib.profiles import GenerationConfig
from slamlib.progress import progress as progress_bar
from slamlib.tokenization.units import BOS_ID, EOS_ID, PAD_ID

# --- scoring -------------------------------------------------------------------------------------

@torch.no_grad()
def sequence_scores(model, sequences: Sequence[Sequence[int]], *, score: str = "mean", batch_tokens: int = 8192,
                    progress: bool = False) -> np.ndarray:
    """Log-likelihood of each id sequence under the model: the mean (or sum) over every token
    after the first, each predicted from the tokens before it."""
    if score not in ("mean", "sum"):
        raise ValueError(f"score must be 'mean' or 'sum', not {score!r}")
    if any(len(s) < 2 for s in sequences):
        raise ValueError("every sequence needs at least two tokens (<S> and something to predict)")
    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in sequences])[::-1]  # longest first: memory peaks at once
    out = np.zeros(len(sequences))
    batches, current = [], []
    for i in order:
        if current and (len(current) + 1) * len(sequences[current[0]]) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    model.eval()
    for batch in progress_bar(batches, desc="scoring", enabled=progress):
        longest = len(sequences[batch[0]])
        ids = torch.full((len(batch), longest), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, : len(sequences[i])] = torch.as_tensor(sequences[i])
            mask[row, : len(sequences[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        logp = (logp * mask[:, 1:]).sum(dim=1)
        if score == "mean":
            logp = logp / mask[:, 1:].sum(dim=1)
        out[batch] = logp.cpu().double().numpy()
    return out


def pair_accuracy(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Per pair: 1 if the positive scores higher, 0.5 on a tie, 0 otherwise.

    >>> pair_accuracy(np.array([2.0, 1.0, 3.0]), np.array([1.0, 1.0, 4.0])).tolist()
    [1.0, 0.5, 0.0]
    """
    return np.where(positive > negative, 1.0, np.where(positive == negative, 0.5, 0.0))


def interval95(accuracy_percent: float, n: int) -> float:
    """Half-width of the 95% normal interval of an accuracy over n pairs, in points."""
    p = accuracy_percent / 100
    return 100 * 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def paired_change(before: Sequence[float], after: Sequence[float]) -> tuple[float, float]:
    """(change in accuracy, half-width of its 95% interval), in points, of two models scored on the
    same pairs (per-pair 1 / 0.5 / 0: `pair_accuracy`). Paired: the interval comes from the spread
    of the per-pair differences, so pairs both models get right or both get wrong add no noise.

    >>> paired_change([1, 1, 0, 0], [1, 1, 1, 0])
    (25.0, 49.0)
    >>> paired_change([1, 0] * 500, [1, 1] * 500)  # +50 points on 1000 pairs: +-3.1
    (50.0, 3.1)
    """
    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if b.shape != a.shape or b.size < 2:
        raise ValueError(f"paired_change needs the same pairs, at least two: got {b.size} and {a.size}")
    d = a - b
    return round(100 * float(d.mean()), 2), round(100 * 1.96 * float(d.std(ddof=1)) / math.sqrt(d.size), 2)


_UNITS: dict[tuple[str, str, int], list[int]] = {}  # (tokenizer, path, mtime) -> ids, for this process


def utterance_ids(speech_tokenizer, paths: Sequence[Path], progress: bool = False,
                  batch: int = 64, cache_dir: str | os.PathLike | None = None) -> dict[Path, list[int]]:
    """`<S> units <S>` ids for audio files, tokenized in batches. Units depend only on the
    speech tokenizer, so they are kept for the process, and with `cache_dir` also on disk (one
    JSON file per speech tokenizer, keyed by file and modification time): evaluating a second
    model on the same files, in this process or a later one, costs only the scoring."""
    paths = list(dict.fromkeys(paths))
    fingerprint = speech_tokenizer.fingerprint()
    keys = {p: (fingerprint, str(p), Path(p).stat().st_mtime_ns) for p in paths}  # one stat a file
    cache = Path(cache_dir) / f"units-{fingerprint}.json" if cache_dir is not None else None
    if cache is not None and cache.exists():
        for path, (mtime, ids) in json.loads(cache.read_text()).items():
            _UNITS.setdefault((fingerprint, path, mtime), ids)
    todo = [p for p in paths if keys[p] not in _UNITS]
    for start in progress_bar(range(0, len(todo), batch), desc="tokenizing", enabled=progress):
        chunk = todo[start : start + batch]
        for path, tokenized in zip(chunk, speech_tokenizer.tokenize([load_audio(p) for p in chunk])):
            _UNITS[keys[path]] = [int(i) for i in speech_tokenizer.unit_tokenizer.encode(tokenized.units)]
    if cache is not None and todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        entries = {str(p): [keys[p][2], _UNITS[keys[p]]] for p in paths}
        partial = cache.with_suffix(".partial")
        partial.write_text(json.dumps(entries))
        partial.replace(cache)  # a complete file or none
    return {p: _UNITS[keys[p]] for p in paths}


@dataclass
class BenchmarkResult:
    name: str
    accuracy: float  # percent
    pairs: int
    interval: float  # 95% half-width, points
    per_pair: pd.DataFrame  # id, positive score, negative score, correct, info columns
    breakdown: dict  # accuracy by category / type / part (SALMon) / frequency band and length (sWUGGY), percent
    breakdown_pairs: dict = None  # pairs counted in each breakdown group

    def to_dict(self, correct: bool = False) -> dict:
        """The numbers; with `correct`, also each pair's 1 / 0.5 / 0 in the benchmark's order (for
        paired comparisons of two models, `paired_change`)."""
        out = {"benchmark": self.name, "accuracy": self.accuracy, "pairs": self.pairs,
               "interval95": self.interval, "breakdown": self.breakdown,
               "breakdown_pairs": self.breakdown_pairs or {}}
        return {**out, "correct": self.per_pair.correct.tolist()} if correct else out


def evaluate_pairs(model, speech_tokenizer, pairs: Sequence[Pair], *, name: str = "pairs", score: str = "mean",
                   batch_tokens: int = 8192, progress: bool = False,
                   units_cache: str | os.PathLike | None = None) -> BenchmarkResult:
    """Accuracy of a model on pairs of audio files (their units kept in `units_cache` if given)."""
    if not pairs:
        raise ValueError(f"{name}: no pairs to evaluate")
    ids = utterance_ids(speech_tokenizer, [p.positive for p in pairs] + [p.negative for p in pairs], progress,
                        cache_dir=units_cache)
    files = list(ids)
    scores = dict(zip(files, sequence_scores(model, [ids[f] for f in files], score=score,
                                             batch_tokens=batch_tokens, progress=progress)))
    table = pd.DataFrame([{"id": p.id, "positive": scores[p.positive], "negative": scores[p.negative], **p.info}
                          for p in pairs])
    table["correct"] = pair_accuracy(table.positive.to_numpy(), table.negative.to_numpy())
    accuracy, n, breakdown, counts = summarize_pairs(table)
    return BenchmarkResult(name, accuracy, n, interval95(accuracy, n), table, breakdown, counts)


# sWUGGY's frequency bands (zerospeech2021 lexical.py): pandas.cut(bins=[0, 1, 5, 20, 100, inf],
# right=False), so each band is [lower, upper): "1-5" holds counts 1 to 4 and "6-20" holds 5 to 19
FREQUENCY_BANDS = ((0, 1, "oov"), (1, 5, "1-5"), (5, 20, "6-20"), (20, 100, "21-100"), (100, math.inf, ">100"))


def frequency_band(count) -> str | None:
    """The official band of a word's LibriSpeech count (None where the release gives none).

    >>> [frequency_band(c) for c in (0, 1, 4, 5, 20, 99, 100, None)]
    ['oov', '1-5', '1-5', '6-20', '21-100', '21-100', '>100', None]
    """
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return None
    return next(name for low, high, name in FREQUENCY_BANDS if low <= count < high)


def summarize_pairs(table: pd.DataFrame) -> tuple[float, int, dict, dict]:
    """(accuracy in percent, pairs counted, accuracy by category, pairs by category) from per-pair
    `correct` values, aggregated as each benchmark's official scorer does.

    ZeroSpeech sBLIMP rows (`type`, `subtype`, `voice`, `item` TYPE/SUBTYPE/ID, or ids
    `TYPE/SUBTYPE/ID/VOICE`) are averaged over voices per item first; the breakdown is by type.
    ZeroSpeech sWUGGY rows (`frequency`, `length`, `item` ID) are averaged over voices per id; the breakdown is
    in-vocabulary (frequency 1 or more) and OOV (0, or none given), the frequency bands and the
    lengths in phones. Otherwise every row is a pair, broken down by `category`, `part` (SALMon)
    or `mood` when present."""
    columns = set(table.columns)
    if {"type", "subtype", "voice"} <= columns or {"frequency", "length", "voice"} <= columns:
        # the item a row belongs to, whatever its voice (a voice's name may hold a "/")
        pair = table["item"].astype(str) if "item" in columns else table.id.str.rsplit("/", n=1).str[0]
        keys = ["type", "subtype", "pair"] if "type" in columns else ["pair"]
        extra = [] if "type" in columns else ["frequency", "length"]
        by_pair = table.assign(pair=pair).groupby(keys, as_index=False, dropna=False).agg(
            correct=("correct", "mean"), **{c: (c, "first") for c in extra})
        if "type" in columns:
            groups = {f"{t}": by_pair.type == t for t in sorted(by_pair.type.unique())}
        else:
            counts = pd.to_numeric(by_pair.frequency, errors="coerce")  # a missing count is NaN
            bands = counts.map(frequency_band)
            groups = {"in-vocabulary": counts >= 1, "OOV": counts.isna() | (counts < 1),
                      **{f"frequency {name}": bands == name for *_, name in FREQUENCY_BANDS},
                      **{f"length {n:g}": by_pair.length == n for n in sorted(by_pair.length.dropna().unique())}}
        breakdown = {k: round(float(100 * by_pair.correct[m].mean()), 2) for k, m in groups.items() if m.any()}
        return float(100 * by_pair.correct.mean()), len(by_pair), breakdown, {
            k: int(m.sum()) for k, m in groups.items() if m.any()}
    for column in ("category", "part", "mood"):
        if column in columns:
            grouped = table.groupby(column).correct
            return (float(100 * table.correct.mean()), len(table), (100 * grouped.mean()).round(2).to_dict(),
                    grouped.size().to_dict())
    return float(100 * table.correct.mean()), len(table), {}, {}


def evaluate_benchmark(model, speech_tokenizer, name: str, data: str | os.PathLike, **kwargs) -> BenchmarkResult:
    """One benchmark (sblimp, ssc, tsc, salmon) from a pairs manifest or an official folder."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {list(BENCHMARKS)}")
    return evaluate_pairs(model, speech_tokenizer, read_pairs(data), name=name, **kwargs)


def preference_accuracy(model, units_dir: str | os.PathLike, *, score: str = "mean", batch_tokens: int = 8192,
                        unit_tokenizer=None) -> dict:
    """Percent of preference pairs whose prompt + chosen scores above prompt + rejected (whole
    sequences `<S> prompt continuation <S>`, as a benchmark pair is scored)."""
    from slamlib.data.corpora import read_preference_units
    from slamlib.tokenization.units import UnitTokenizer

    pairs = read_preference_units(units_dir)
    tok = unit_tokenizer or UnitTokenizer(model.config.vocab_size - 2)
    seqs = [tok.encode([*r.prompt_units, *r.chosen_units]) for r in pairs.itertuples()]
    seqs += [tok.encode([*r.prompt_units, *r.rejected_units]) for r in pairs.itertuples()]
    scores = sequence_scores(model, seqs, score=score, batch_tokens=batch_tokens)
    correct = pair_accuracy(scores[: len(pairs)], scores[len(pairs):])
    result = {"accuracy": float(100 * correct.mean()), "pairs": len(pairs),
              "interval95": interval95(100 * correct.mean(), len(pairs)), "correct": correct.tolist()}
    if "kind" in pairs.columns:
        result["by_kind"] = {k: float(100 * correct[(pairs.kind == k).to_numpy()].mean()) for k in sorted(pairs.kind.unique())}
    return result


# --- generation ----------------------------------------------------------------------------------

def prompt_units(speech_tokenizer, wav: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Units and durations of the first `seconds` of a waveform."""
    tokenized = speech_tokenizer.tokenize(wav[: int(seconds * SAMPLE_RATE)])
    return tokenized.units, tokenized.durations


@torch.no_grad()
def continue_units(model, units: Sequence[int], cfg: GenerationConfig = GenerationConfig(), *,
                   seed: int = 0, do_sample: bool = True) -> list[int]:
    """New units after a prompt's units (sampling stops at `<S>` or max_new_tokens)."""
    device = next(model.parameters()).device
    ids = torch.tensor([[BOS_ID, *(np.asarray(units, dtype=np.int64) + 2).tolist()]], device=device)
    torch.manual_seed(seed)
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=do_sample, temperature=cfg.temperature if do_sample else None,
        top_k=cfg.top_k if do_sample else None, top_p=None, max_new_tokens=cfg.max_new_tokens,
        repetition_penalty=cfg.repetition_penalty, eos_token_id=EOS_ID, pad_token_id=PAD_ID, use_cache=True)
    new = out[0, ids.shape[1]:].tolist()
    if EOS_ID in new:
        new = new[: new.index(EOS_ID)]
    return [t - 2 for t in new if t >= 2]


def generate_continuation(model, speech_tokenizer, vocoder, wav: np.ndarray, cfg: GenerationConfig = GenerationConfig(),
                          *, seed: int = 0) -> dict:
    """Prompt (the first seconds of wav) -> continuation units -> audio of the prompt and the
    continuation, both vocoded from units, as GenPPL hears them (the prompt with its measured unit
    durations, the continuation with the vocoder's own)."""
    units, durations = prompt_units(speech_tokenizer, wav, cfg.prompt_seconds)
    new = continue_units(model, units, cfg, seed=seed)
    prompt_audio = vocoder(units, durations)
    new_audio = vocoder(np.asarray(new, dtype=np.int64), None) if new else np.zeros(0, dtype=np.float32)
    return {"prompt_units": units.tolist(), "new_units": new, "prompt_audio": prompt_audio,
            "continuation_audio": new_audio, "audio": np.concatenate([prompt_audio, new_audio]),
            "original_prompt": wav[: int(cfg.prompt_seconds * SAMPLE_RATE)]}


# --- a whole model -------------------------------------------------------------------------------

def models_to_evaluate(run, model: str | os.PathLike | None = None) -> dict[str, str | Path]:
    """{name: model}: a run's pretrained and DPO models (notebooks 04 and 05), or one model given by
    folder or hub id (a published checkpoint such as `slprl/slam`), named as given."""
    if model is not None:
        return {str(model): model}
    return {"pretrained": run.require("models/pretrained", "04_packed_pretraining.ipynb"),
            "DPO": run.require("models/dpo", "05_dpo.ipynb")}


def model_fingerprint(model_dir: str | os.PathLike, profile) -> str | None:
    """SHA-256 of what decides a saved model's scores: its config, weights and speech tokenizer
    (the profile's, for a checkpoint without one), and the scoring settings. None for a hub id."""
    root = Path(model_dir)
    if not root.is_dir():
        return None
    h = hashlib.sha256(f"{profile.eval.score}".encode())
    own = sorted((root / "speech_tokenizer").glob("*")) if (root / "speech_tokenizer").is_dir() else []
    if not own:
        h.update(repr(profile.tokenizer).encode())
    for path in [root / "config.json", *sorted(root.glob("*.safetensors")), *own]:
        if path.is_file():
            h.update(path.name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    h.update(block)
    return h.hexdigest()


def _files_key(paths: Sequence[Path]) -> str:
    """What a data set's scores depend on besides the model: its files, sizes and modification times."""
    stats = []
    for path in paths:
        st = Path(path).stat()
        stats.append((str(path), st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()


REPAIRED = ("sblimp",)  # benchmarks whose pairs changed when they came to be read as their official scorers read them


class _ScoreCache:
    """Results of one model on each data set, kept under RUN/scores/ by model and data fingerprint:
    notebook 06 re-reads what notebook 05 scored. A changed model or data set gets new keys."""

    def __init__(self, run_root: str | os.PathLike, model_key: str | None):
        self.dir, self.model_key = Path(run_root) / "scores", model_key

    def path(self, name: str, data_key: str) -> Path | None:
        if self.model_key is None:
            return None
        digest = hashlib.sha256(f"{self.model_key}/{name}/{data_key}".encode()).hexdigest()[:24]
        return self.dir / f"{name}-{digest}.json"

    def get(self, name: str, data_key: str, compute):
        path = self.path(name, data_key)
        if path is not None and path.exists():
            cached = json.loads(path.read_text())
            # older entries lack the per-pair results: score again. Entries from before breakdowns
            # were counted stand as they are, except sBLIMP's, paired then by (id, voice) alone
            if "correct" in cached and ("breakdown_pairs" in cached or name not in REPAIRED):
                return {"breakdown_pairs": {}, **cached}
        result = compute()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps(result))
            partial.replace(path)  # a complete file or none
        return result


def evaluate_model(model_dir: str | os.PathLike, profile, run_root: str | os.PathLike, *,
                   benchmarks: Sequence[str] | None = None, progress: bool = False, device: str = "cpu") -> dict:
    """Every benchmark of the profile (and the held-out preference pairs) for one saved model.
    A benchmark whose data is missing is reported as such, not as a failure. Scores of a model
    folder are kept under RUN/scores/, so evaluating the same model on the same data again reads them."""
    from slamlib.model import load_speech_lm

    cfg = profile.eval
    cache = _ScoreCache(run_root, model_fingerprint(model_dir, profile))
    loaded: list = []

    def model_and_tokenizer():
        if not loaded:  # a checkpoint without its own speech tokenizer (a published one) gets the profile's
            loaded.extend(load_speech_lm(model_dir, device=device, tokenizer_config=profile.tokenizer))
        return loaded

    out: dict = {"model": str(model_dir), "benchmarks": {}, "missing": {}}
    for name, path in cfg.benchmarks:
        if benchmarks is not None and name not in benchmarks:
            continue
        data = Path(path) if Path(path).is_absolute() else Path(run_root) / path
        if not data.exists():
            out["missing"][name] = str(data)
            continue
        pairs = read_pairs(data)

        def score(name=name, pairs=pairs):
            return evaluate_pairs(*model_and_tokenizer(), pairs, name=name, score=cfg.score,
                                  batch_tokens=cfg.batch_tokens, progress=progress,
                                  units_cache=Path(run_root) / "units" / "benchmarks" / name).to_dict(correct=True)

        files = [f for p in pairs for f in (p.positive, p.negative)]
        out["benchmarks"][name] = cache.get(name, _files_key(files), score)
    heldout = Path(run_root) / "units" / cfg.preference_heldout if cfg.preference_heldout else None
    if heldout is not None and heldout.exists():
        def score_heldout():
            return preference_accuracy(model_and_tokenizer()[0], heldout, score=cfg.score, batch_tokens=cfg.batch_tokens)

        out["preference_heldout"] = cache.get("preference_heldout", _files_key(sorted(heldout.rglob("*.parquet"))),
                                              score_heldout)
    return out


def changes(before: dict, after: dict) -> pd.DataFrame:
    """What a training step changed, from two `evaluate_model` results on the same data: one row per
    benchmark (and the held-out preference pairs), accuracy before and after, the paired change
    and its 95% interval (points). Rows without per-pair results get no interval."""
    parts = {name: (before["benchmarks"][name], result) for name, result in after["benchmarks"].items()
             if name in before["benchmarks"]}
    if "preference_heldout" in before and "preference_heldout" in after:
        parts["held-out preference pairs"] = (before["preference_heldout"], after["preference_heldout"])
    rows = {}
    for name, (b, a) in parts.items():
        change, half = (paired_change(b["correct"], a["correct"]) if "correct" in a and "correct" in b
                        else (round(a["accuracy"] - b["accuracy"], 2), float("nan")))
        rows[name] = {"before": round(b["accuracy"], 2), "after": round(a["accuracy"], 2), "change": change,
                      "interval95": half, "pairs": a["pairs"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def describe_changes(table: pd.DataFrame) -> str:
    """`changes` in words, one line a row: a change inside its 95% interval is called no change.

    >>> row = {"before": 60.0, "after": 61.0, "change": 1.0, "interval95": 2.5, "pairs": 1000}
    >>> print(describe_changes(pd.DataFrame({"tsc": row}).T))
    tsc: 60.0 -> 61.0 (+1.0 ± 2.5): no change these pairs can tell from noise
    """
    lines = []
    for name, row in table.iterrows():
        verdict = ("no change these pairs can tell from noise" if abs(row.change) <= row.interval95
                   else "higher" if row.change > 0 else "lower")
        lines.append(f"{name}: {row.before:.1f} -> {row.after:.1f} ({row.change:+.1f} ± {row.interval95:.1f}): {verdict}")
    return "\n".join(lines)


def without_per_pair(result: dict) -> dict:
    """An `evaluate_model` result without its per-pair lists (for printing)."""
    if isinstance(result, dict):
        return {k: without_per_pair(v) for k, v in result.items() if k != "correct"}
    return result


# --- generative metrics ----------------------------------------------------------------------------

def unit_repetition(unit_sequences: Sequence[Sequence[int]]) -> float:
    """Mean share of unit bigrams that repeat within a generated sequence (SlamKit's Auto-BLEU
    definition applied to units, not words). An offline proxy for degenerate, looping generations;
    not the paper's Auto-BLEU, which is computed on ASR transcripts."""
    from slamlib.metrics import auto_bleu_slamkit

    scores = [auto_bleu_slamkit(" ".join(f"u{u}" for u in seq), n=2) for seq in unit_sequences if len(seq) > 1]
    return float(np.mean(scores)) if scores else float("nan")


def generative_metrics(waveforms: Sequence[np.ndarray], profile, *, device: str = "cpu") -> dict:
    """GenPPL and Auto-BLEU of vocoded continuations (prompt included), when the profile asks for
    them and the ASR model and judge LM can be had; otherwise a plain statement of why not."""
    from slamlib.hub import AssetUnavailableError

    cfg = profile.eval
    needs = (f"an ASR model ({cfg.asr_model}) and a judge LM ({cfg.judge_model}), hub assets; "
             "give local copies with --set eval.asr_model=DIR --set eval.judge_model=DIR")
    if not cfg.genppl:
        return {"computed": False, "reason": f"GenPPL and Auto-BLEU need {needs}; this profile does not compute them."}
    from slamlib.genppl import evaluate_continuations

    try:
        result = evaluate_continuations(list(waveforms), cfg.asr_model, cfg.judge_model, device=device)
    except AssetUnavailableError as err:
        return {"computed": False, "reason": f"GenPPL and Auto-BLEU need {needs}. {err}"}
    return {"computed": True, **result}
