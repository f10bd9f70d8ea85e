"""Every count, budget, rate and probability checked where it enters, before any work starts.

Settings are checked by name wherever they occur (`check_settings`, called by `get_profile` and by
the stages that take a settings group directly); the arguments that stand beside them in the
Python API and on the command line use the same rules (`check`, `arg`). A bad value gives one
error naming the setting and the value:

    >>> check("train.max_steps", -5, "count")
    Traceback (most recent call last):
    ...
    ValueError: train.max_steps=-5: expected a whole number of at least 1
    >>> check("dpo.beta", float("nan"), "positive")
    Traceback (most recent call last):
    ...
    ValueError: dpo.beta=nan: expected a finite number above 0

Not here: what the settings mean (`slamlib.profiles`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

# rule -> (test, what is expected)
RULES = {
    "count": (lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    "count0": (lambda v: _is_int(v) and v >= 0, "a whole number of at least 0"),
    "positive": (lambda v: _is_real(v) and v > 0, "a finite number above 0"),
    "nonnegative": (lambda v: _is_real(v) and v >= 0, "a finite number of at least 0"),
    "probability": (lambda v: _is_real(v) and 0 <= v <= 1, "a probability, from 0 to 1"),
    "budget": (lambda v: _budget_seconds(v) is not None and _budget_seconds(v) > 0,
               "a duration above 0 such as 90s, 5m, 2h or 1h30m (or seconds)"),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
}

# the rule of each setting, by its field name (the same name means the same kind of value everywhere)
FIELDS = {
    **dict.fromkeys((
        "n_units", "n_utterances", "n_mels", "stack", "context", "batch_size", "grad_accum", "max_steps", "tokens",
        "steps", "probe_steps", "eval_every", "save_every", "log_every", "max_length", "eval_pairs", "max_new_tokens",
        "top_k", "n_generations", "batch_tokens", "shard_size", "workers", "hidden_size", "intermediate_size",
        "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
        "min_run", "rows", "shards", "n_stories", "n_read", "n_preference", "n_heldout_preference", "n_test_stories",
        "n_sblimp", "rate"), "count"),
    **dict.fromkeys(("warmup_steps", "min_warmup_steps", "prefetch", "pad_samples", "layer", "seed", "pitch", "vocab_size",
                     "n_swuggy"), "count0"),
    **dict.fromkeys((
        "lr", "temperature", "beta", "fit_seconds", "batch_seconds", "prompt_seconds", "epochs", "repetition_penalty",
        "max_grad_norm", "adam_eps", "rope_theta", "frame_rate", "win_ms", "floor", "rms_norm_eps", "seconds",
        "window_seconds", "chunk_seconds", "target_seconds", "librilight_target_seconds"),
        "positive"),
    **dict.fromkeys(("min_lr", "weight_decay", "sft_weight", "f_min", "f_max", "window_overlap_seconds"), "nonnegative"),
    **dict.fromkeys(("action_prob", "home_prob", "feeling_prob", "read_activity_fraction", "max_auto_bleu",
                     "warmup_ratio", "valid_fraction"), "probability"),
    "budget": "budget",
    **dict.fromkeys(("dedup", "cmn", "normalize", "compile", "gradient_checkpointing", "precompute_ref", "genppl",
                     "streaming", "tie_word_embeddings", "trust_pickle"), "flag"),
}
CHOICES = {"score": ("mean", "sum"), "packing": ("rows", "examples"), "init": ("twist", "random"),
           "vocabulary": ("word", "char"), "unit_embeddings": ("normal", "text_rows")}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _budget_seconds(value) -> float | None:
    from slamlib.train.schedule import parse_duration

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        seconds = parse_duration(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def check(name: str, value, rule: str, *, optional: bool = True):
    """`value` if it keeps `rule` (None passes when `optional`); otherwise ValueError naming `name`."""
    if value is None and optional:
        return value
    test, expected = RULES[rule]
    if not test(value):
        raise ValueError(f"{name}={value!r}: expected {expected}")
    return value


def check_settings(obj, prefix: str = ""):
    """Check every field of a settings dataclass (and the groups inside it) by its name; returns
    `obj`. Also checks the named choices and, for the Adam betas, that each lies in [0, 1)."""
    if not dataclasses.is_dataclass(obj):
        return obj
    for field in dataclasses.fields(obj):
        value, key = getattr(obj, field.name), f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            check_settings(value, f"{key}.")
        elif isinstance(value, tuple) and value and all(dataclasses.is_dataclass(v) for v in value):
            for item in value:
                check_settings(item, f"{key}.{getattr(item, 'name', '')}.".replace("..", "."))
        elif field.name in FIELDS:
            check(key, value, FIELDS[field.name], optional="None" in str(field.type))
        elif field.name in CHOICES and value not in CHOICES[field.name]:
            raise ValueError(f"{key}={value!r}: expected one of {list(CHOICES[field.name])}")
        elif field.name == "adam_betas" and not (len(value) == 2 and all(_is_real(b) and 0 <= b < 1 for b in value)):
            raise ValueError(f"{key}={value!r}: expected two numbers from 0 up to (not including) 1")
    return obj


def arg(rule: str):
    """An argparse `type` for a command-line value under `rule`: `--max-steps 0` is refused by
    argparse, naming the option."""
    def parse(text: str):
        value = text if rule == "budget" else _number(text)
        try:
            return check("value", value, rule, optional=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {RULES[rule][1]}") from None
    parse.__name__ = rule
    return parse


def _number(text: str):
    """'12' -> 12, '1e-3' -> 0.001, 'nan' -> nan; text that is no number stays text (and fails its rule)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
