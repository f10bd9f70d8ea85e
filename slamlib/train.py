"""Packed pretraining under a wall-clock or token budget, with exact resume, on one device or many.

Packing (the paper's "padding-free" batches): documents are laid end to end in rows of `context`
tokens; `position_ids` restart at 0 for every document, and the first token of each document is
not a target, so nothing is attended or predicted across a boundary. transformers turns restarting
position_ids into per-document attention: FlashAttention-2 varlen kernels on CUDA when installed,
otherwise a block-diagonal causal mask (sdpa), which is exact but quadratic in the row length.
`collate` also gives the documents' boundaries (`cu_seq_lens`), which slamlib's varlen attention
(`slamlib.attention`, the default on a CUDA GPU) takes directly.

Keeping a GPU busy: the next steps' batches are collated in a background thread into pinned
memory and copied to the device without blocking; the loss and gradient norm stay on the device
and are read only every `log_every` steps, so the host runs ahead of the device instead of
waiting for it after every step.

The schedule is linear warmup then cosine decay to `min_lr`, over `max_steps`. With a wall-clock
budget, a few steps are timed first (forward and backward only, so the model and optimizer are
untouched) and max_steps is derived from them, so that the cosine ends when the budget does:
stopping a cosine schedule early by the clock is the pitfall SlamKit documents. Token budgets and
explicit step counts work the same way.

Checkpoints hold the model, the optimizer, the step, the data position and the log; a resumed run
continues exactly as if it had not stopped (same batches, same losses). One code path serves one
CPU, one GPU, or many processes under `accelerate launch` (DDP): each process takes its share of
every global batch, and the loss is normalised by the global count of target tokens.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from slamlib.progress import progress as progress_bar
from slamlib.units import BOS_ID, EOS_ID, PAD_ID, UNIT_OFFSET

IGNORE = -100
LOG_NAME = "train_log.jsonl"
CHECKPOINTS = "checkpoints"


# --- documents -----------------------------------------------------------------------------------

@dataclass
class Documents:
    """Token-id documents, stored as one flat int32 array plus offsets (cheap for millions)."""

    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def from_lists(cls, docs: Sequence[Sequence[int]]) -> "Documents":
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        values = np.concatenate([np.asarray(d, dtype=np.int32) for d in docs]) if docs else np.zeros(0, np.int32)
        return cls(values, np.concatenate([[0], np.cumsum(lengths)]))

    def split(self, fraction: float, seed: int = 0) -> tuple["Documents", "Documents"]:
        """(train, valid): a seeded random `fraction` of documents held out."""
        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), dtype=bool)
        n_valid = int(round(len(self) * fraction))
        held[rng.permutation(len(self))[:n_valid]] = True
        return self.subset(np.flatnonzero(~held)), self.subset(np.flatnonzero(held))

    def subset(self, index: np.ndarray) -> "Documents":
        return Documents.from_lists([self[i] for i in index])

    def chunked(self, context: int) -> "Documents":
        """Documents longer than `context` cut into consecutive pieces of at most `context`."""
        if len(self) == 0 or self.lengths.max() <= context:
            return self
        pieces = []
        for i in range(len(self)):
            doc = self[i]
            pieces += [doc[s : s + context] for s in range(0, len(doc), context)]
        return Documents.from_lists(pieces)


def unit_documents(folders: Sequence[str | os.PathLike]) -> Documents:
    """Every utterance of the units folders as `[<S>, u0+2, ..., <S>]` (SlamKit's ids)."""
    import pyarrow.parquet as pq

    values, lengths = [], []
    for folder in folders:
        shards = sorted(Path(folder).glob("shard-*.parquet"))
        if not shards:
            raise FileNotFoundError(f"{folder}: no units shards (tokenize a corpus into it first)")
        for shard in shards:
            column = pq.read_table(shard, columns=["units"]).column("units").combine_chunks()
            flat = column.values.to_numpy().astype(np.int32) + UNIT_OFFSET
            offsets = column.offsets.to_numpy()
            for start, end in zip(offsets[:-1], offsets[1:]):
                values += [np.array([BOS_ID], np.int32), flat[start:end], np.array([EOS_ID], np.int32)]
                lengths.append(end - start + 2)
    if not lengths:
        raise ValueError(f"no utterances in {list(map(str, folders))}")
    return Documents(np.concatenate(values), np.concatenate([[0], np.cumsum(lengths)]))


# --- packing -------------------------------------------------------------------------------------

def pack(lengths: np.ndarray, order: np.ndarray, context: int, open_rows: int = 16) -> list[np.ndarray]:
    """Rows of document indices, each row's documents fitting in `context` tokens.

    First fit over a few open rows: each document (in `order`) goes into the first open row with
    room, else opens a new one; when too many rows are open, the fullest is closed. Short
    utterances so fill the gaps that long ones leave, in one pass, for millions of documents.

    >>> [r.tolist() for r in pack(np.array([3, 4, 2, 5]), np.arange(4), context=8)]
    [[0, 1], [2, 3]]
    """
    closed: list[list[int]] = []
    rows: list[list[int]] = []  # open rows
    used: list[int] = []
    for doc in order:
        length = int(lengths[doc])
        if length > context:
            raise ValueError(f"document {doc} has {length} tokens, more than the context of {context}")
        for i, u in enumerate(used):
            if u + length <= context:
                rows[i].append(doc)
                used[i] += length
                break
        else:
            rows.append([doc])
            used.append(length)
            if len(rows) > open_rows:
                fullest = int(np.argmax(used))
                closed.append(rows.pop(fullest))
                used.pop(fullest)
    return [np.array(r) for r in closed + rows]


def collate(docs: Documents, rows: Sequence[np.ndarray], context: int) -> dict[str, torch.Tensor]:
    """input_ids, position_ids (restarting per document) and labels (-100 on every document's
    first token and on padding) for packed rows; padding forms its own document at the end.
    `cu_seq_lens` holds where each document starts and ends in the flattened batch (int32, as
    varlen attention kernels take them), computed here on the host so that no device has to
    find them."""
    n = len(rows)
    input_ids = np.full((n, context), PAD_ID, dtype=np.int64)
    position_ids = np.zeros((n, context), dtype=np.int64)
    labels = np.full((n, context), IGNORE, dtype=np.int64)
    bounds = [0]
    for r, row in enumerate(rows):
        at = 0
        for doc in row:
            tokens = docs[doc]
            end = at + len(tokens)
            input_ids[r, at:end] = tokens
            position_ids[r, at:end] = np.arange(len(tokens))
            labels[r, at + 1 : end] = tokens[1:]
            at = end
            bounds.append(r * context + end)
        position_ids[r, at:] = np.arange(context - at)
        if at < context:
            bounds.append((r + 1) * context)
    return {"input_ids": torch.from_numpy(input_ids), "position_ids": torch.from_numpy(position_ids),
            "labels": torch.from_numpy(labels), "cu_seq_lens": torch.tensor(bounds, dtype=torch.int32)}


def token_losses(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token losses, number of targets) for a packed batch. The documents'
    boundaries go to the attention as `cu_seq_lens_q/k` (used by varlen attention, ignored by
    the others), with the row length as the longest a document can be."""
    extra = {}
    if "cu_seq_lens" in batch:
        length = batch["input_ids"].shape[1]
        extra = {"cu_seq_lens_q": batch["cu_seq_lens"], "cu_seq_lens_k": batch["cu_seq_lens"],
                 "max_length_q": length, "max_length_k": length}
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], **extra).logits
    targets = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
        ignore_index=IGNORE, reduction="sum")
    return loss, (targets != IGNORE).sum()


# --- schedule and budgets ----------------------------------------------------------------------------

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


# --- the trainer ---------------------------------------------------------------------------------------

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


class Trainer:
    """Trains a causal LM on packed documents; see the module docstring.

    `callbacks` are called with each log record (a dict) on the main process."""

    def __init__(self, model, train_docs: Documents, cfg, out_dir: str | os.PathLike, *,
                 valid_docs: Documents | None = None, seed: int = 0, accelerator=None,
                 callbacks: Sequence[Callable[[dict], None]] = (), save_model: Callable | None = None,
                 capabilities=None):
        from accelerate import Accelerator

        from slamlib import device as devices

        self.cfg = cfg
        self.out = Path(out_dir)
        self.seed = seed
        self.callbacks = list(callbacks)
        self.save_model = save_model
        gpu = torch.cuda.is_available()
        # what this card does well (`slamlib.device`; `capabilities` to pretend another card):
        # bf16 from compute capability 8.0, fp16 with loss scaling below, fp32 on a CPU; an
        # accelerator passed in keeps its own setting
        self.capabilities = capabilities or devices.Capabilities.detect(
            accelerator.device if accelerator is not None else ("cuda" if gpu else "cpu"))
        self.precision = (devices.training_precision(self.capabilities, cfg.precision) if accelerator is None
                          else devices.accelerator_precision(accelerator))
        self.accelerator = accelerator or Accelerator(
            cpu=not gpu,  # without it, processes launched on a CPU machine would not form a group (gloo)
            mixed_precision="bf16" if self.precision.name == "bf16" else "no",  # fp16: self.scaler below
            log_with=list(cfg.trackers) or None, project_dir=str(self.out))
        self.train_docs = train_docs.chunked(cfg.context)
        self._epoch_cache: dict[int, list] = {}
        self._epoch_lock = threading.Lock()
        self._ahead: dict = {}  # (epoch, cursor) -> future of a prepared batch
        self._pool = None
        self.valid_docs = valid_docs.chunked(cfg.context) if valid_docs is not None and len(valid_docs) else None
        from slamlib.attention import choose

        attention = choose(cfg.attention, self.accelerator.device, self.capabilities)
        if model.config._attn_implementation != attention:
            model.set_attn_implementation(attention)
        if cfg.gradient_checkpointing:  # the newer name first (the older is deprecated in transformers 5)
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable({"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps,
            fused=torch.cuda.is_available() and self.accelerator.device.type == "cuda")
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scaler = devices.grad_scaler(self.precision, self.accelerator)  # disabled: passes everything through
        if self.scaler.is_enabled():
            self.accelerator.register_for_checkpointing(self.scaler)  # its scale resumes with the run
        if self.accelerator.is_main_process:
            devices.announce(self.capabilities, self.precision, attention)
            devices.check_profile_fits(devices.Workload.of_model(model, cfg, processes=self.accelerator.num_processes),
                                       self.capabilities, precision=self.precision)
        # what the training step calls: the prepared model, or its torch.compile'd version (which
        # shares its weights, so saving, evaluation and checkpoints use self.model unchanged)
        self.step_model = torch.compile(self.model) if cfg.compile else self.model
        self.state = TrainState()
        self.clock = time.perf_counter  # every duration the budget logic uses is read from this clock
        self.rows_per_step = cfg.batch_size * cfg.grad_accum * self.accelerator.num_processes

    # data ----------------------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[np.ndarray]]:
        """The global batches (lists of packed rows) of an epoch: a function of seed and epoch."""
        with self._epoch_lock:
            if epoch in self._epoch_cache:
                return self._epoch_cache[epoch]
        rng = np.random.default_rng([self.seed, epoch])
        rows = pack(self.train_docs.lengths, rng.permutation(len(self.train_docs)), self.cfg.context)
        rows = [rows[i] for i in rng.permutation(len(rows))]
        n = len(rows) // self.rows_per_step
        if n == 0:
            raise ValueError(f"{len(rows)} packed rows cannot fill one step of {self.rows_per_step} rows: "
                             "give more data or a smaller batch")
        batches = [rows[i * self.rows_per_step : (i + 1) * self.rows_per_step] for i in range(n)]
        with self._epoch_lock:
            self._epoch_cache = {e: b for e, b in self._epoch_cache.items() if e >= epoch - 1}  # this and the last
            self._epoch_cache[epoch] = batches
        return batches

    def _host_batches(self, rows: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """This process's micro-batches of a global batch, collated on the host; in pinned
        memory on a GPU, so that their copies to the device do not wait for it."""
        mine = rows[self.accelerator.process_index :: self.accelerator.num_processes]
        pin = self.accelerator.device.type == "cuda"
        out = []
        for i in range(0, len(mine), self.cfg.batch_size):
            batch = collate(self.train_docs, mine[i : i + self.cfg.batch_size], self.cfg.context)
            out.append({k: v.pin_memory() if pin else v for k, v in batch.items()})
        return out

    def _prepare(self, epoch: int, cursor: int) -> tuple[list[np.ndarray], list[dict[str, torch.Tensor]]]:
        rows = self.batches(epoch)[cursor]
        return rows, self._host_batches(rows)

    def next_batch(self) -> tuple[list[np.ndarray], list[dict[str, torch.Tensor]]]:
        """The next global batch: its rows and this process's micro-batches on the host.

        With `cfg.prefetch` > 0 the following steps' batches are collated in a background
        thread while the device computes; the order is the same either way (a function of the
        seed and the position in the epoch), so resuming stays exact."""
        epoch, cursor = self.state.epoch, self.state.cursor
        if cursor >= len(self.batches(epoch)):
            epoch, cursor = epoch + 1, 0
        self.state.epoch, self.state.cursor = epoch, cursor + 1
        future = self._ahead.pop((epoch, cursor), None)
        prepared = future.result() if future is not None else self._prepare(epoch, cursor)
        n = len(self.batches(epoch))  # packed by now (a new epoch in the background, when prefetching)
        if self.cfg.prefetch:
            upcoming = [(epoch, c) for c in range(cursor + 1, min(n, cursor + 1 + self.cfg.prefetch))]
            if cursor + self.cfg.prefetch >= n:
                upcoming.append((epoch + 1, 0))  # the next epoch is packed in the background too
            for key in [k for k in self._ahead if k not in upcoming]:  # stale after a resume or a probe
                self._ahead.pop(key).cancel()
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slamlib-batches")
            for key in upcoming:
                if key not in self._ahead:
                    self._ahead[key] = self._pool.submit(self._prepare, *key)
        return prepared

    def _stop_prefetch(self) -> None:
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _targets(self, rows: list[np.ndarray]) -> int:
        lengths = self.train_docs.lengths
        return int(sum(int(lengths[row].sum()) - len(row) for row in rows))

    # one step -----------------------------------------------------------------------------------
    def _forward_backward(self, rows: list[np.ndarray], micro: list[dict] | None = None) -> torch.Tensor:
        """Gradients of the mean loss over the global batch's targets; returns that loss as a
        device tensor (this process's share; reading it would wait for the device).

        A compiled model that fails to compile (compilation happens at its first call) is
        dropped, with a warning, and the step is redone eagerly."""
        micro = micro if micro is not None else self._host_batches(rows)
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
        return self.cfg.lr * lr_factor(s.step, s.max_steps, s.warmup, self.cfg.lr, self.cfg.min_lr)

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

    def plan(self, *, budget: str | float | None, tokens: int | None, max_steps: int | None, started: float) -> dict:
        """Choose max_steps from (in this order) an explicit count, a token budget, or a clock."""
        if max_steps:
            plan = {"by": "steps", "max_steps": int(max_steps)}
        elif tokens:
            batches = self.batches(0)
            per_step = np.mean([sum(self.train_docs.lengths[row].sum() for row in b) for b in batches])
            plan = {"by": "tokens", "tokens": int(tokens), "tokens_per_step": float(per_step),
                    "max_steps": max(1, math.ceil(tokens / per_step))}
        elif budget is not None:
            seconds = parse_duration(budget)
            step_time, eval_time = self._probe()
            available = seconds - (self.clock() - started)
            per_step = step_time + (eval_time / self.cfg.eval_every if self.valid_docs is not None else 0.0)
            plan = {"by": "budget", "budget_seconds": seconds, "probe_seconds_per_step": step_time,
                    "probe_seconds_per_eval": eval_time, "max_steps": max(1, int(available / per_step))}
        else:
            raise ValueError("give a budget (e.g. '24h'), a token budget or max_steps")
        self.state.max_steps = plan["max_steps"]
        self.state.warmup = warmup_steps(self.cfg, plan["max_steps"])
        self.state.plan = plan
        return plan

    def _replan(self, train_seconds: float, steps: int) -> None:
        """At the end of warmup, before the cosine starts, correct max_steps with the step time
        measured in training (the probe's few steps are a rough first estimate)."""
        plan = self.state.plan
        step_time = train_seconds / max(steps, 1)
        evals = plan["probe_seconds_per_eval"] / self.cfg.eval_every if self.valid_docs is not None else 0.0
        remaining = plan["budget_seconds"] - (self.state.seconds + self._elapsed())
        new_max = max(self.state.step + 1, self.state.step + int(remaining / (step_time + evals)))
        plan.update(replanned_at=self.state.step, measured_seconds_per_step=step_time,
                    max_steps_from_probe=plan["max_steps"], max_steps=new_max)
        self.state.max_steps = new_max

    # checkpoints --------------------------------------------------------------------------------
    def _checkpoints(self) -> list[Path]:
        root = self.out / CHECKPOINTS
        return sorted(p for p in root.glob("step-*") if (p / "trainer_state.json").exists()) if root.exists() else []

    def save_checkpoint(self, keep: int = 2) -> Path:
        path = self.out / CHECKPOINTS / f"step-{self.state.step:07d}"
        self.accelerator.wait_for_everyone()
        # torch format: safetensors cannot hold tied embeddings without a warning on every save
        self.accelerator.save_state(str(path), safe_serialization=False)
        if self.accelerator.is_main_process:
            state = {**self.state.__dict__, "seconds": self.state.seconds + self._elapsed()}
            (path / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")  # written last: complete
            for old in self._checkpoints()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return path

    def resume(self) -> bool:
        checkpoints = self._checkpoints()
        if not checkpoints:
            return False
        latest = checkpoints[-1]
        self.accelerator.load_state(str(latest))
        self.state = TrainState(**json.loads((latest / "trainer_state.json").read_text()))
        log = self.out / LOG_NAME
        if self.accelerator.is_main_process and log.exists():  # drop what came after the checkpoint
            kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= self.state.step]
            log.write_text("".join(line + "\n" for line in kept))
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
            cfg = self.cfg
            self.plan(budget=budget if budget is not None else (None if (tokens or max_steps) else cfg.budget),
                      tokens=tokens or (None if budget or max_steps else cfg.tokens),
                      max_steps=max_steps or (None if budget or tokens else cfg.max_steps), started=self._started)
            if self.accelerator.is_main_process:
                (self.out / LOG_NAME).write_text("")
        main = self.accelerator.is_main_process
        if self.cfg.trackers:
            self.accelerator.init_trackers("slamlib", config={"max_steps": self.state.max_steps})
        self.model.train()
        bar = progress_bar(total=self.state.max_steps, initial=self.state.step, desc="training", unit="step",
                           enabled=progress and main)
        window_tokens, window_start = self.state.tokens, self.clock()
        if not resumed and self.valid_docs is not None:
            self._log({"step": 0, "valid_loss": self.evaluate(), "tokens": 0, "elapsed": self._elapsed()})
        loop_start, loop_steps, eval_seconds = self.clock(), 0, 0.0
        try:
            while self.state.step < self.state.max_steps:
                record = self.train_step(read=False)
                bar.update(1)
                loop_steps += 1
                s = self.state.step
                if s == self.state.warmup and self.state.plan.get("by") == "budget" and "replanned_at" not in self.state.plan:
                    self._sync()  # the host may be ahead of the device: time what the device did
                    self._replan(self.clock() - loop_start - eval_seconds, loop_steps)
                    bar.total = self.state.max_steps
                last = s == self.state.max_steps
                if s % self.cfg.log_every == 0 or last:
                    record = self.read_record(record)  # waits for the device: only every log_every steps
                    now = self.clock()
                    record["tokens_per_second"] = (record["tokens"] - window_tokens) / max(now - window_start, 1e-9)
                    record["elapsed"] = self.state.seconds + self._elapsed()
                    if self.valid_docs is not None and (s % self.cfg.eval_every == 0 or last):
                        eval_start = self.clock()
                        record["valid_loss"] = self.evaluate()
                        eval_seconds += self.clock() - eval_start
                    self._log(record)
                    window_tokens, window_start = record["tokens"], self.clock()
                    bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_second']:,.0f}")
                if s % self.cfg.save_every == 0 and not last:
                    self.save_checkpoint()
        finally:
            self._stop_prefetch()
        bar.close()
        self.accelerator.wait_for_everyone()
        summary = {"steps": self.state.step, "max_steps": self.state.max_steps, "tokens": self.state.tokens,
                   "epochs": self.state.epoch + self.state.cursor / max(1, len(self.batches(self.state.epoch))),
                   "seconds": self.state.seconds + self._elapsed(), "plan": self.state.plan, "resumed": resumed,
                   "processes": self.accelerator.num_processes}
        summary["tokens_per_second"] = self.state.tokens / max(summary["seconds"], 1e-9)
        records = read_log(self.out) if main else []
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
        with open(self.out / LOG_NAME, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.cfg.trackers:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])
        for callback in self.callbacks:
            callback(record)


def read_log(out_dir: str | os.PathLike) -> list[dict]:
    path = Path(out_dir) / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def training_folders(data: str | os.PathLike, corpora: Sequence[str]) -> list[Path]:
    """The units folders to train on: `data` itself if it holds shards, else data/units/<corpus>
    (a run folder) or data/<corpus> (a units folder) for each corpus."""
    data = Path(data)
    if any(data.glob("shard-*.parquet")):
        return [data]
    for root in (data / "units", data):
        folders = [root / c for c in corpora]
        if all(any(f.glob("shard-*.parquet")) for f in folders):
            return folders
    raise FileNotFoundError(
        f"{data}: neither a units folder nor a run folder with units of {list(corpora)} "
        "(run notebook 03, or `python -m slamlib synth`, first)")


def pretrain(model_dir: str | os.PathLike, folders: Sequence[str | os.PathLike], cfg, out_dir: str | os.PathLike, *,
             seed: int = 0, budget=None, tokens: int | None = None, max_steps: int | None = None,
             resume: bool = True, progress: bool = True, callbacks=(), device: str | None = None) -> dict:
    """Continue a saved speech LM (e.g. the TWIST-initialised one) on packed units; the result,
    saved in out_dir, is a speech LM directory like its start. A finished run is not redone."""
    from slamlib.model import load_speech_lm, save_speech_lm

    out = Path(out_dir)
    done = out / "train_summary.json"
    if resume and done.exists() and (out / "config.json").exists():
        return {**json.loads(done.read_text()), "already_done": True}
    model, speech_tokenizer = load_speech_lm(model_dir, device="cpu")
    docs = unit_documents(folders)
    train_docs, valid_docs = docs.split(cfg.valid_fraction, seed=seed)
    accelerator = None
    if device == "cpu":
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True, log_with=list(cfg.trackers) or None, project_dir=str(out))
    trainer = Trainer(model, train_docs, cfg, out, valid_docs=valid_docs, seed=seed, callbacks=callbacks,
                      accelerator=accelerator, save_model=lambda m, d: save_speech_lm(m, d, speech_tokenizer))
    summary = trainer.fit(budget=budget, tokens=tokens, max_steps=max_steps, resume=resume, progress=progress)
    summary.update(documents=len(docs), data_tokens=docs.n_tokens, start=str(model_dir))
    if trainer.accelerator.is_main_process:
        done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def short_run_config(cfg, steps: int):
    """The profile's training settings for a short comparison run: one micro-batch a step, a
    fixed number of steps, frequent held-out evaluation, no checkpoints."""
    import dataclasses

    return dataclasses.replace(cfg, grad_accum=1, max_steps=steps, budget=None, tokens=None,
                               min_warmup_steps=max(1, steps // 10), warmup_ratio=0.0, valid_fraction=0.1,
                               eval_every=max(1, steps // 10), save_every=10**9, log_every=1, trackers=())


def compare_inits(models: dict, folders: Sequence[str | os.PathLike], cfg, out_root: str | os.PathLike, *,
                  steps: int, seed: int = 0, progress: bool = True, callbacks: dict | None = None,
                  device: str | None = None) -> dict:
    """Train each initial model ({name: model dir}) for the same short run on the same data;
    return {name: log records}."""
    short = short_run_config(cfg, steps)
    logs = {}
    for name, model_dir in models.items():
        out = Path(out_root) / f"short_{name}"
        pretrain(model_dir, folders, short, out, seed=seed, max_steps=steps, progress=progress,
                 callbacks=(callbacks or {}).get(name, ()), device=device)
        logs[name] = read_log(out)
    return logs


def packing_stats(docs: Documents, context: int, seed: int = 0) -> dict:
    """How full packed rows are: documents, tokens, rows, and the share of row slots used."""
    docs = docs.chunked(context)
    rows = pack(docs.lengths, np.random.default_rng(seed).permutation(len(docs)), context)
    return {"documents": len(docs), "tokens": docs.n_tokens, "rows": len(rows),
            "fill": docs.n_tokens / (len(rows) * context), "mean_document": float(docs.lengths.mean()),
            "max_document": int(docs.lengths.max())}
