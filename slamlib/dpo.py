"""Preference optimisation (DPO) of a speech LM on spoken preference pairs, through TRL.

The pairs are SpokenSwag-style: a prompt, a chosen continuation and a rejected one, each an
utterance tokenized into units (`slamlib.data.corpora.read_preference_units`). TRL's DPOTrainer works on
strings through a tokenizer, so each pair is written as unit strings for the unit tokenizer
(`UnitTokenizer.to_hf()`, SlamKit's ids): prompt = `<S>` + prompt units, chosen and rejected =
their units + `<S>`. The model sees `<S> prompt chosen <S>`, exactly the sequence it would score.

TRL's silent failure: with a tokenizer that maps the strings to nothing (or to the wrong ids),
DPO trains on empty completions and the loss stays at log 2 = 0.6931 without any error.
`train_dpo` therefore checks, before training, that the ids TRL tokenized for the first pairs are
exactly the expected unit ids, and refuses to start otherwise.

The reference model is a frozen copy of the starting model (or its log-probabilities, computed
once, with `precompute_ref=True`). An optional likelihood term on the chosen continuation
(`sft_weight`, the "RPO" combination of TRL's `sigmoid` and `sft` losses) keeps DPO from lowering
the likelihood of good continuations while it separates them from bad ones.

The schedule is inverse square root (paper Table 5), which has no end point: a wall-clock budget
simply stops training when time is up, without cutting a schedule short.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from slamlib import reuse
from slamlib.checks import check, check_settings
from slamlib.locks import folder_lock
from slamlib.tokenization.units import UnitTokenizer

CHECKED_PAIRS = 8


def preference_rows(units_dir: str | os.PathLike, unit_tokenizer: UnitTokenizer) -> list[dict]:
    """The pairs of a preference units folder as TRL's prompt / chosen / rejected strings (with
    their unit lists, to check what TRL makes of the strings)."""
    from slamlib.data.corpora import read_preference_units

    pairs = read_preference_units(units_dir)
    if pairs.empty:
        raise ValueError(f"{units_dir}: no complete preference pairs")
    return [{"pair": row.pair,
             "prompt": unit_tokenizer.to_text(row.prompt_units, bos=True, eos=False),
             "chosen": unit_tokenizer.to_text(row.chosen_units, bos=False, eos=True),
             "rejected": unit_tokenizer.to_text(row.rejected_units, bos=False, eos=True),
             "units": {role: [int(u) for u in getattr(row, f"{role}_units")]
                       for role in ("prompt", "chosen", "rejected")}}
            for row in pairs.itertuples()]


def expected_ids(row: dict, unit_tokenizer: UnitTokenizer) -> dict[str, list[int]]:
    """The ids TRL must produce for a row: prompt with <S> first, completions with <S> last."""
    units = row["units"]
    return {"prompt_ids": unit_tokenizer.encode(units["prompt"], bos=True, eos=False),
            "chosen_ids": unit_tokenizer.encode(units["chosen"], bos=False, eos=True),
            "rejected_ids": unit_tokenizer.encode(units["rejected"], bos=False, eos=True)}


class TokenizationMismatch(RuntimeError):
    """TRL tokenized the pairs differently from the units: training would silently learn nothing."""


def check_trainer_ids(dataset, rows: Sequence[dict], unit_tokenizer: UnitTokenizer, n: int = CHECKED_PAIRS) -> None:
    """Compare the ids in TRL's processed dataset with the expected unit ids."""
    for i in range(min(n, len(rows))):
        want = expected_ids(rows[i], unit_tokenizer)
        got = {k: list(dataset[i][k]) for k in want}
        for key in want:
            if not got[key] or got[key] != want[key]:
                raise TokenizationMismatch(
                    f"pair {rows[i]['pair']}: TRL's {key} are {got[key][:12]}... but the units give "
                    f"{want[key][:12]}... (a tokenizer that does not read unit strings makes DPO learn nothing)")


def _trl_config(cfg, out: Path, *, max_steps: int, seed: int, eval_dataset: bool, device: str | None):
    import torch
    from trl import DPOConfig

    from slamlib.device import Capabilities, training_precision

    gpu = torch.cuda.is_available() and device != "cpu"
    # bf16 from compute capability 8.0, fp16 (TRL scales the loss) below, fp32 on a CPU
    precision = training_precision(Capabilities.detect("cuda" if gpu else "cpu"), cfg.precision)
    losses = ["sigmoid"] + (["sft"] if cfg.sft_weight else [])
    return DPOConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr, lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_steps, beta=cfg.beta,
        loss_type=losses, loss_weights=[1.0, cfg.sft_weight] if cfg.sft_weight else None,
        max_length=cfg.max_length, max_steps=max_steps, logging_steps=cfg.log_every,
        eval_strategy="steps" if eval_dataset else "no", eval_steps=cfg.eval_every,
        save_strategy="no", report_to="none", **precision.trl_args, use_cpu=not gpu, seed=seed,
        precompute_ref_log_probs=cfg.precompute_ref, disable_tqdm=True, dataloader_drop_last=True,
        max_grad_norm=cfg.max_grad_norm,
        activation_checkpointing=False,  # recomputing activations only pays for memory-bound large models
    )


def _stopwatch(seconds: float | None, callbacks: Sequence[Callable[[dict], None]]):
    from transformers import TrainerCallback

    class Stopwatch(TrainerCallback):
        """Stops at the wall-clock budget and hands every log record to the callbacks."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if seconds is not None and time.perf_counter() - self.start >= seconds:
                control.should_training_stop = True
            if control.should_training_stop or state.global_step >= state.max_steps:
                control.should_log = True  # the last step's loss and margins are always recorded

        def on_log(self, args, state, control, logs=None, **kwargs):
            record = {"step": state.global_step, "elapsed": time.perf_counter() - self.start, **(logs or {})}
            for callback in callbacks:
                callback(record)

    return Stopwatch()


def dpo_trainer(model, speech_tokenizer, rows: list[dict], cfg, out_dir: str | os.PathLike, *,
                heldout_rows: list[dict] | None = None, max_steps: int = 1, seconds: float | None = None,
                seed: int = 0, callbacks=(), device: str | None = None):
    """TRL's DPOTrainer on unit strings, with a frozen reference, checked to see the right ids."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOTrainer

    unit_tokenizer = speech_tokenizer.unit_tokenizer
    columns = ["prompt", "chosen", "rejected"]
    torch.manual_seed(seed)
    trainer = DPOTrainer(
        model=model, ref_model=None if cfg.precompute_ref else copy.deepcopy(model).eval(),
        args=_trl_config(cfg, Path(out_dir), max_steps=max_steps, seed=seed, eval_dataset=bool(heldout_rows),
                         device=device),
        train_dataset=Dataset.from_list([{k: r[k] for k in columns} for r in rows]),
        eval_dataset=Dataset.from_list([{k: r[k] for k in columns} for r in heldout_rows]) if heldout_rows else None,
        processing_class=unit_tokenizer.to_hf(),
        callbacks=[_stopwatch(seconds, callbacks)],
    )
    trainer.remove_callback(PrinterCallback)  # records go to dpo_log.jsonl and the callbacks instead
    check_trainer_ids(trainer.train_dataset, rows, unit_tokenizer)
    return trainer


def train_dpo(model_dir: str | os.PathLike, train_units: str | os.PathLike, cfg, out_dir: str | os.PathLike, *,
              heldout_units: str | os.PathLike | None = None, budget: str | float | None = None,
              max_steps: int | None = None, seed: int = 0, callbacks=(), device: str | None = None,
              progress: bool = True, restart: bool = False, on_change: str = "refuse") -> dict:
    """DPO from a saved speech LM; the result is saved in out_dir as a speech LM directory (with
    its speech tokenizer) and `dpo_log.jsonl`. A finished run is reused only when its settings, start
    and pairs are the ones asked for (`slamlib.reuse`); a run made otherwise is refused
    (`SettingsChanged`, naming what differs) or, with `on_change="restart"`, replaced; `restart`
    always trains again. Only one process writes `out_dir` at a time (`slamlib.locks`)."""
    check_settings(cfg, "dpo.")
    check("budget", budget, "budget"), check("max_steps", max_steps, "count")
    with folder_lock(out_dir, "DPO"):
        return _train_dpo(model_dir, train_units, cfg, Path(out_dir), heldout_units=heldout_units, budget=budget,
                          max_steps=max_steps, seed=seed, callbacks=callbacks, device=device, progress=progress,
                          restart=restart, on_change=on_change)


def _train_dpo(model_dir, train_units, cfg, out: Path, *, heldout_units, budget, max_steps, seed, callbacks, device,
               progress, restart, on_change) -> dict:
    from slamlib.model import load_speech_lm, save_speech_lm
    from slamlib.train.schedule import parse_duration

    done = out / "dpo_summary.json"
    made_with = {**reuse.settings(cfg, "dpo.", leave_out=("log_every",)), "seed": seed, "budget": budget,
                 "max_steps": max_steps, "start": reuse.content_key(model_dir),
                 "data": reuse.content_key(train_units), "heldout": reuse.content_key(heldout_units)}
    if not restart and reuse.reuse_or_refuse(out, made_with, what=str(out), on_change=on_change,
                                             flag="--restart (restart=True in Python)"):
        if done.exists() and (out / "config.json").exists():
            return {**json.loads(done.read_text()), "already_done": True}
    reuse.forget(out, done.name, "dpo_log.jsonl")
    model, speech_tokenizer = load_speech_lm(model_dir, device="cpu")
    rows = preference_rows(train_units, speech_tokenizer.unit_tokenizer)
    heldout = preference_rows(heldout_units, speech_tokenizer.unit_tokenizer)[: cfg.eval_pairs] if heldout_units else None
    steps_per_epoch = max(1, len(rows) // (cfg.batch_size * cfg.grad_accum))
    steps = max_steps or cfg.max_steps or max(1, round(cfg.epochs * steps_per_epoch))
    budget = budget if budget is not None else cfg.budget
    seconds = parse_duration(budget) if budget else None
    records: list[dict] = []
    trainer = dpo_trainer(model, speech_tokenizer, rows, cfg, out, heldout_rows=heldout, max_steps=steps,
                          seconds=seconds, seed=seed, callbacks=[records.append, *callbacks], device=device)
    start = time.perf_counter()
    trainer.train()
    seconds_taken = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "dpo_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    save_speech_lm(trainer.accelerator.unwrap_model(trainer.model), out, speech_tokenizer)
    train_logs = [r for r in records if "loss" in r and "eval_loss" not in r]
    eval_logs = [r for r in records if "eval_loss" in r]
    summary = {"steps": trainer.state.global_step, "planned_steps": steps, "pairs": len(rows),
               "epochs": trainer.state.global_step / steps_per_epoch, "seconds": seconds_taken,
               "budget_seconds": seconds, "first_loss": train_logs[0]["loss"] if train_logs else None,
               "final_loss": train_logs[-1]["loss"] if train_logs else None,
               "final_margin": train_logs[-1].get("rewards/margins") if train_logs else None,
               "final_heldout_reward_accuracy": eval_logs[-1].get("eval_rewards/accuracies") if eval_logs else None,
               "start": str(model_dir), **trainer_settings(trainer)}
    done.write_text(json.dumps(summary, indent=2) + "\n")
    reuse.record(out, made_with)
    return summary


def trainer_settings(trainer) -> dict:
    """What TRL trained with, read back from the trainer (not from our config): beta, the peak
    learning rate and the schedule's name (the paper's: 0.1, 5e-5, inverse_sqrt)."""
    args = trainer.args
    scheduler = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    return {"beta": args.beta, "learning_rate": args.learning_rate, "lr_scheduler": str(scheduler),
            "loss_type": ",".join(args.loss_type) if isinstance(args.loss_type, (list, tuple)) else str(args.loss_type)}


def read_dpo_log(out_dir: str | os.PathLike) -> list[dict]:
    path = Path(out_dir) / "dpo_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
