"""The training loop: packed pretraining under a wall-clock or token budget, with exact resume,
on one device or many.

Each step takes the next global batch (`slamlib.train.batches`, collated ahead of the device),
accumulates gradients of the mean next-token loss over its micro-batches, and takes an AdamW step
at the scheduled learning rate (`slamlib.train.schedule`). The loss and gradient norm stay on the
device and are read only every `log_every` steps, so the host runs ahead of the device instead of
waiting for it after every step.

A resumed run (`slamlib.train.checkpoints`) continues exactly as if it had not stopped (same
batches, same losses). One code path serves one CPU, one GPU, or many processes under
`accelerate launch` (DDP): each process takes its share of every global batch, and the loss is
normalised by the global count of target tokens.

Not here: packing (`slamlib.train.packing`), the pretraining entry point (`slamlib.train.pretrain`).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from slamlib.progress import progress as progress_bar
from slamlib.train import checkpoints, schedule
from slamlib.train.batches import BatchLoader
from slamlib.train.packing import Documents, collate, pack, token_losses


@dataclass
class TrainState:
    step: int = 0
    max_steps: int = 0
    warmup: int = 0
    epoch: int = 0
    cursor: int = 0  # global batches of this epoch already used
    tokens: int = 0
    seconds: float = 0.0  # training time before this process started (resumed runs)
    plan: dict = field(default_factory=dict)  # how max_steps was chosen


@dataclass
class _Pace:
    """What the loop measures as it goes: tokens since the last log record (for tokens/s), and
    steps and evaluation time since the loop began (for the correction at the end of warmup)."""

    window_tokens: int
    window_start: float
    loop_start: float = 0.0
    steps: int = 0
    eval_seconds: float = 0.0


def make_accelerator(cfg, out_dir: Path, precision):
    from accelerate import Accelerator

    return Accelerator(
        cpu=not torch.cuda.is_available(),  # without it, CPU processes would not form a group (gloo)
        mixed_precision="bf16" if precision.name == "bf16" else "no",  # fp16: the trainer's own scaler
        log_with=list(cfg.trackers) or None, project_dir=str(out_dir))


def prepare_model(model, cfg, device: torch.device, capabilities=None) -> str:
    """The attention the config asks for on this device, and activation checkpointing if asked;
    returns the attention's name."""
    from slamlib.train.attention import choose

    attention = choose(cfg.attention, device, capabilities)
    if model.config._attn_implementation != attention:
        model.set_attn_implementation(attention)
    if cfg.gradient_checkpointing:  # the newer name first (the older is deprecated in transformers 5)
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return attention


def adamw(model, cfg, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms and biases); fused on a GPU."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps,
        fused=torch.cuda.is_available() and device.type == "cuda")


class Trainer:
    """Trains a causal LM on packed documents; see the module docstring.

    `callbacks` are called with each log record (a dict) on the main process."""

    def __init__(self, model, train_docs: Documents, cfg, out_dir: str | os.PathLike, *,
                 valid_docs: Documents | None = None, seed: int = 0, accelerator=None,
                 callbacks: Sequence[Callable[[dict], None]] = (), save_model: Callable | None = None,
                 capabilities=None):
        from slamlib import device as devices
        from slamlib import fits

        self.cfg = cfg
        self.out = Path(out_dir)
        self.seed = seed
        self.callbacks = list(callbacks)
        self.save_model = save_model
        # what this card does well (`slamlib.device`; `capabilities` to pretend another card):
        # bf16 from compute capability 8.0, fp16 with loss scaling below, fp32 on a CPU; an
        # accelerator passed in keeps its own setting
        self.capabilities = capabilities or devices.Capabilities.detect(
            accelerator.device if accelerator is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = (devices.training_precision(self.capabilities, cfg.precision) if accelerator is None
                          else devices.accelerator_precision(accelerator))
        self.accelerator = accelerator or make_accelerator(cfg, self.out, self.precision)
        self.train_docs = train_docs.chunked(cfg.context)
        self.valid_docs = valid_docs.chunked(cfg.context) if valid_docs is not None and len(valid_docs) else None
        attention = prepare_model(model, cfg, self.accelerator.device, self.capabilities)
        optimizer = adamw(model, cfg, self.accelerator.device)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scaler = devices.grad_scaler(self.precision, self.accelerator)  # disabled: passes everything through
        if self.scaler.is_enabled():
            self.accelerator.register_for_checkpointing(self.scaler)  # its scale resumes with the run
        if self.accelerator.is_main_process:
            devices.announce(self.capabilities, self.precision, attention)
            fits.check_profile_fits(fits.Workload.of_model(model, cfg, processes=self.accelerator.num_processes),
                                  self.capabilities, precision=self.precision)
        # what the training step calls: the prepared model, or its torch.compile'd version (which
        # shares its weights, so saving, evaluation and checkpoints use self.model unchanged)
        self.step_model = torch.compile(self.model) if cfg.compile else self.model
        self.state = TrainState()
        self.clock = time.perf_counter  # every duration the budget logic uses is read from this clock
        self.rows_per_step = cfg.batch_size * cfg.grad_accum * self.accelerator.num_processes
        self.loader = BatchLoader(
            self.train_docs, context=cfg.context, batch_size=cfg.batch_size, rows_per_step=self.rows_per_step,
            seed=seed, process_index=self.accelerator.process_index, num_processes=self.accelerator.num_processes,
            pin=self.accelerator.device.type == "cuda", prefetch=cfg.prefetch, packing=cfg.packing)

    # data ----------------------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[np.ndarray]]:
        """The global batches (lists of packed rows) of an epoch: a function of seed and epoch."""
        return self.loader.epoch(epoch)

    def next_batch(self) -> tuple[list[np.ndarray], list[dict[str, torch.Tensor]]]:
        """The next global batch: its rows and this process's micro-batches on the host."""
        epoch, cursor = self.state.epoch, self.state.cursor
        if cursor >= len(self.batches(epoch)):
            epoch, cursor = epoch + 1, 0
        self.state.epoch, self.state.cursor = epoch, cursor + 1
        return self.loader.take(epoch, cursor)

    @property
    def _pool(self):
        return self.loader.pool

    @property
    def _ahead(self) -> dict:
        return self.loader.ahead

    def _stop_prefetch(self) -> None:
        self.loader.stop()

    def _targets(self, rows: list[np.ndarray]) -> int:
        lengths = self.train_docs.lengths
        return int(sum(int(lengths[row].sum()) - len(row) for row in rows))

    # one step -----------------------------------------------------------------------------------
    def _forward_backward(self, rows: list[np.ndarray], micro: list[dict] | None = None) -> torch.Tensor:
        """Gradients of the mean loss over the global batch's targets; returns that loss as a
        device tensor (this process's share; reading it would wait for the device).

        A compiled model that fails to compile (compilation happens at its first call) is
        dropped, with a warning, and the step is redone eagerly."""
        micro = micro if micro is not None else self.loader.host(rows)
        if self.step_model is self.model:
            return self._accumulate(rows, micro)
        try:
            return self._accumulate(rows, micro)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001: whatever the compiler raised
            import warnings

            warnings.warn(f"torch.compile failed ({type(error).__name__}: {str(error)[:200]}); training eagerly")
            self.step_model = self.model
            self.optimizer.zero_grad(set_to_none=True)
            return self._accumulate(rows, micro)

    def _accumulate(self, rows: list[np.ndarray], micro: list[dict]) -> torch.Tensor:
        total = self._targets(rows)
        scale = self.accelerator.num_processes / max(total, 1)  # DDP averages over processes
        device = self.accelerator.device
        loss_sum = torch.zeros((), device=device)
        for i, host in enumerate(micro):
            batch = {k: v.to(device, non_blocking=True) for k, v in host.items()}
            if self.step_model is not self.model:  # one compiled graph for any number of documents
                torch._dynamo.maybe_mark_dynamic(batch["cu_seq_lens"], 0)
            sync = i == len(micro) - 1
            context = self.accelerator.no_sync(self.model) if not sync else nullcontext()
            with context, self._autocast():
                loss, _ = token_losses(self.step_model, batch)
                self.accelerator.backward(self.scaler.scale(loss * scale))
            loss_sum += loss.detach()
        return loss_sum / max(total, 1)

    def _autocast(self):
        """fp16 autocast when the trainer scales the loss itself, else accelerate's (bf16 or none)."""
        if self.scaler.is_enabled():
            return torch.autocast(self.accelerator.device.type, dtype=self.precision.dtype)
        return self.accelerator.autocast()

    def _lr(self) -> float:
        s = self.state
        return self.cfg.lr * schedule.lr_factor(s.step, s.max_steps, s.warmup, self.cfg.lr, self.cfg.min_lr)

    def train_step(self, read: bool = True) -> dict:
        """One optimizer step. With read=False the loss and gradient norm stay device tensors
        (`read_record` turns them into numbers), so that the host never waits for the device."""
        rows, micro = self.next_batch()
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        loss = self._forward_backward(rows, micro)
        self.scaler.unscale_(self.optimizer)  # fp16: clip the true gradients, not the scaled ones
        grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.scaler.step(self.optimizer)  # fp16: skipped when a gradient overflowed (inf grad_norm)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = int(sum(self.train_docs.lengths[row].sum() for row in rows))
        self.state.step += 1
        self.state.tokens += tokens
        record = {"step": self.state.step, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                  "grad_norm": grad_norm, "tokens": self.state.tokens, "epoch": self.state.epoch}
        return self.read_record(record) if read else record

    def read_record(self, record: dict) -> dict:
        """A step's record with its device values read (the loss summed over processes)."""
        loss = record["loss"]
        if isinstance(loss, torch.Tensor):
            record["loss"] = float(self.accelerator.reduce(loss, "sum"))
        if isinstance(record.get("grad_norm"), torch.Tensor):
            record["grad_norm"] = float(record["grad_norm"])
        return record

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean next-token loss on the held-out documents."""
        if self.valid_docs is None:
            return None
        self.model.eval()
        rows = pack(self.valid_docs.lengths, np.arange(len(self.valid_docs)), self.cfg.context)
        mine = rows[self.accelerator.process_index :: self.accelerator.num_processes]
        loss_sum = torch.zeros((), device=self.accelerator.device)
        count = torch.zeros((), device=self.accelerator.device)
        for i in range(0, len(mine), self.cfg.batch_size):
            batch = {k: v.to(self.accelerator.device)
                     for k, v in collate(self.valid_docs, mine[i : i + self.cfg.batch_size], self.cfg.context).items()}
            with self._autocast():
                loss, n = token_losses(self.model, batch)
            loss_sum += loss
            count += n
        self.model.train()
        return float(self.accelerator.reduce(loss_sum, "sum") / self.accelerator.reduce(count, "sum").clamp_min(1))

    # planning -----------------------------------------------------------------------------------
    def _probe(self) -> tuple[float, float]:
        """Seconds per step and per evaluation, timed without changing model or optimizer."""
        batches = self.batches(0)
        n = max(2, min(self.cfg.probe_steps, len(batches)))
        times = []
        for i in range(n):
            self._sync()
            start = self.clock()
            self._forward_backward(batches[i % len(batches)])
            self._sync()
            times.append(self.clock() - start)
        self.optimizer.zero_grad(set_to_none=True)
        start = self.clock()
        self.evaluate()
        eval_time = self.clock() - start
        # the first step pays for warm-up (allocations, kernels); the optimizer step adds a little
        return float(np.median(times[1:])) * 1.05, eval_time

    def _sync(self) -> None:
        if self.accelerator.device.type == "cuda":
            torch.cuda.synchronize(self.accelerator.device)

    def _eval_every(self) -> int | None:
        return self.cfg.eval_every if self.valid_docs is not None else None

    def plan(self, *, budget: str | float | None, tokens: int | None, max_steps: int | None, started: float) -> dict:
        """Choose max_steps from (in this order) an explicit count, a token budget, or a clock."""
        if max_steps:
            plan = schedule.plan_by_steps(max_steps)
        elif tokens:
            per_step = np.mean([sum(self.train_docs.lengths[row].sum() for row in b) for b in self.batches(0)])
            plan = schedule.plan_by_tokens(tokens, per_step)
        elif budget is not None:
            seconds = schedule.parse_duration(budget)
            step_time, eval_time = self._probe()
            plan = schedule.plan_by_budget(seconds, seconds - (self.clock() - started), step_time, eval_time,
                                           self._eval_every())
        else:
            raise ValueError("give a budget (e.g. '24h'), a token budget or max_steps")
        self.state.max_steps = plan["max_steps"]
        self.state.warmup = schedule.warmup_steps(self.cfg, plan["max_steps"])
        self.state.plan = plan
        return plan

    def _replan(self, train_seconds: float, steps: int) -> None:
        """At the end of warmup, before the cosine starts, correct max_steps with the step time
        measured in training (the probe's few steps are a rough first estimate)."""
        self.state.max_steps = schedule.replan(
            self.state.plan, step=self.state.step, train_seconds=train_seconds, steps=steps,
            spent=self.state.seconds + self._elapsed(), eval_every=self._eval_every())

    # checkpoints --------------------------------------------------------------------------------
    def save_checkpoint(self, keep: int = 2) -> Path:
        return checkpoints.save_checkpoint(
            self.accelerator, self.out, self.state.step, keep=keep,
            state=lambda: {**self.state.__dict__, "seconds": self.state.seconds + self._elapsed()})

    def resume(self) -> bool:
        state = checkpoints.load_latest(self.accelerator, self.out)
        if state is None:
            return False
        self.state = TrainState(**state)
        return True

    def _elapsed(self) -> float:
        return self.clock() - self._started

    # the loop ---------------------------------------------------------------------------------------
    def fit(self, *, budget: str | float | None = None, tokens: int | None = None, max_steps: int | None = None,
            resume: bool = True, progress: bool = True) -> dict:
        """Train until max_steps (chosen from the arguments, or the config's). Returns a summary."""
        self._started = self.clock()
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = resume and self.resume()
        if not resumed:
            self._plan_fresh_run(budget, tokens, max_steps)
        if self.cfg.trackers:
            self.accelerator.init_trackers("slamlib", config={"max_steps": self.state.max_steps})
        self.model.train()
        bar = progress_bar(total=self.state.max_steps, initial=self.state.step, desc="training", unit="step",
                           enabled=progress and self.accelerator.is_main_process)
        pace = _Pace(window_tokens=self.state.tokens, window_start=self.clock())
        if not resumed and self.valid_docs is not None:
            self._log({"step": 0, "valid_loss": self.evaluate(), "tokens": 0, "elapsed": self._elapsed()})
        pace.loop_start = self.clock()
        try:
            while self.state.step < self.state.max_steps:
                self._loop_step(bar, pace)
        finally:
            self._stop_prefetch()
        bar.close()
        self.accelerator.wait_for_everyone()
        return self._finish(resumed)

    def _plan_fresh_run(self, budget, tokens, max_steps) -> None:
        """The plan from the arguments where given, else from the config; a fresh log."""
        cfg = self.cfg
        self.plan(budget=budget if budget is not None else (None if (tokens or max_steps) else cfg.budget),
                  tokens=tokens or (None if budget or max_steps else cfg.tokens),
                  max_steps=max_steps or (None if budget or tokens else cfg.max_steps), started=self._started)
        if self.accelerator.is_main_process:
            checkpoints.start_log(self.out)

    def _loop_step(self, bar, pace: _Pace) -> None:
        """One step of `fit`, and what follows it: the correction at the end of warmup, a log
        record (with evaluation) every `log_every` steps, a checkpoint every `save_every`."""
        record = self.train_step(read=False)
        bar.update(1)
        pace.steps += 1
        s = self.state.step
        if s == self.state.warmup and self.state.plan.get("by") == "budget" and "replanned_at" not in self.state.plan:
            self._sync()  # the host may be ahead of the device: time what the device did
            self._replan(self.clock() - pace.loop_start - pace.eval_seconds, pace.steps)
            bar.total = self.state.max_steps
        last = s == self.state.max_steps
        if s % self.cfg.log_every == 0 or last:
            record = self._log_step(record, pace, evaluate=s % self.cfg.eval_every == 0 or last)
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_second']:,.0f}")
        if s % self.cfg.save_every == 0 and not last:
            self.save_checkpoint()

    def _log_step(self, record: dict, pace: _Pace, evaluate: bool) -> dict:
        record = self.read_record(record)  # waits for the device: only every log_every steps
        now = self.clock()
        record["tokens_per_second"] = (record["tokens"] - pace.window_tokens) / max(now - pace.window_start, 1e-9)
        record["elapsed"] = self.state.seconds + self._elapsed()
        if self.valid_docs is not None and evaluate:
            eval_start = self.clock()
            record["valid_loss"] = self.evaluate()
            pace.eval_seconds += self.clock() - eval_start
        self._log(record)
        pace.window_tokens, pace.window_start = record["tokens"], self.clock()
        return record

    def _finish(self, resumed: bool) -> dict:
        """The run's summary (also written to train_summary.json), and the trained model saved."""
        main = self.accelerator.is_main_process
        summary = {"steps": self.state.step, "max_steps": self.state.max_steps, "tokens": self.state.tokens,
                   "epochs": self.state.epoch + self.state.cursor / max(1, len(self.batches(self.state.epoch))),
                   "seconds": self.state.seconds + self._elapsed(), "plan": self.state.plan, "resumed": resumed,
                   "processes": self.accelerator.num_processes}
        summary["tokens_per_second"] = self.state.tokens / max(summary["seconds"], 1e-9)
        records = checkpoints.read_log(self.out) if main else []
        losses = [r["loss"] for r in records if "loss" in r]
        valid = [r["valid_loss"] for r in records if r.get("valid_loss") is not None]
        summary.update(first_loss=losses[0] if losses else None, final_loss=losses[-1] if losses else None,
                       final_valid_loss=valid[-1] if valid else None)
        if main:
            if self.save_model is not None:
                self.save_model(self.accelerator.unwrap_model(self.model), self.out)
            (self.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.cfg.trackers:
            self.accelerator.end_training()
        return summary

    def _log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        checkpoints.append_log(self.out, record)
        if self.cfg.trackers:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])
        for callback in self.callbacks:
            callback(record)
