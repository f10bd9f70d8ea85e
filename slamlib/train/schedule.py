"""The learning-rate schedule and the number of steps it runs over, from a step, token or clock budget.

The schedule is linear warmup then cosine decay to `min_lr`, over `max_steps`. With a wall-clock
budget, a few steps are timed first (forward and backward only, so the model and optimizer are
untouched) and max_steps is derived from them, so that the cosine ends when the budget does:
stopping a cosine schedule early by the clock is the pitfall SlamKit documents. At the end of
warmup the step time measured in training corrects that first estimate (`replan`). Token budgets
and explicit step counts work the same way.

Not here: timing the steps (the trainer does, on its own clock).
"""

from __future__ import annotations

import math
import re


def lr_factor(step: int, max_steps: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at max_steps (as a factor of lr)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / lr


def warmup_steps(cfg, max_steps: int) -> int:
    return min(max_steps, max(cfg.min_warmup_steps, round(cfg.warmup_ratio * max_steps)))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")


def parse_duration(text: str | float | int) -> float:
    """Seconds in '24h', '1h30m', '5m', '90s' or a number of seconds.

    >>> parse_duration("1h30m"), parse_duration("90s"), parse_duration(12)
    (5400.0, 90.0, 12.0)
    """
    if isinstance(text, (int, float)):
        return float(text)
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise ValueError(f"cannot read the duration {text!r} (use e.g. 24h, 1h30m, 5m, 90s)")
    return sum(float(v) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[u] for v, u in parts)


# --- how many steps ------------------------------------------------------------------------------
# A plan is a dict that says how max_steps was chosen; it is logged and checkpointed with the run.
# `eval_every` is None for a run without held-out documents (no evaluation time to budget for).

def _eval_share(eval_seconds: float, eval_every: int | None) -> float:
    return eval_seconds / eval_every if eval_every else 0.0


def plan_by_steps(max_steps: int) -> dict:
    return {"by": "steps", "max_steps": int(max_steps)}


def plan_by_tokens(tokens: int, tokens_per_step: float) -> dict:
    return {"by": "tokens", "tokens": int(tokens), "tokens_per_step": float(tokens_per_step),
            "max_steps": max(1, math.ceil(tokens / tokens_per_step))}


def plan_by_budget(seconds: float, available: float, step_seconds: float, eval_seconds: float,
                   eval_every: int | None) -> dict:
    """As many steps as fit in the `available` seconds left of a `seconds` budget, at the probed
    seconds per step and per evaluation."""
    per_step = step_seconds + _eval_share(eval_seconds, eval_every)
    return {"by": "budget", "budget_seconds": seconds, "probe_seconds_per_step": step_seconds,
            "probe_seconds_per_eval": eval_seconds, "max_steps": max(1, int(available / per_step))}


def replan(plan: dict, *, step: int, train_seconds: float, steps: int, spent: float, eval_every: int | None) -> int:
    """A budget plan corrected at `step` (the end of warmup, before the cosine starts) with the
    step time measured over the `steps` trained so far; `spent`: seconds of the budget used up.
    Updates the plan and returns its new max_steps."""
    step_time = train_seconds / max(steps, 1)
    evals = _eval_share(plan["probe_seconds_per_eval"], eval_every)
    remaining = plan["budget_seconds"] - spent
    new_max = max(step + 1, step + int(remaining / (step_time + evals)))
    plan.update(replanned_at=step, measured_seconds_per_step=step_time,
                max_steps_from_probe=plan["max_steps"], max_steps=new_max)
    return new_max
