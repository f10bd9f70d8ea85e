"""The global batches of a run, in an order fixed by the seed, collated ahead of the device.

An epoch's batches are a function of the seed and the epoch alone: its documents packed in a
seeded order, the rows shuffled, cut into global batches of `rows_per_step` rows. Each process
collates its share of a batch (every `num_processes`-th row) into micro-batches of `batch_size`
rows. With `packing="examples"` (SlamKit's) a row is one document and a micro-batch is
`batch_size` documents laid end to end in one unpadded row, so a step holds as many tokens as its
documents do, not `rows_per_step` x `context`. Keeping a GPU busy: with `prefetch` > 0 the next steps' batches (and the next epoch's
packing) are collated in a background thread into pinned memory, so that their copies to the
device do not wait for it; the order is the same either way, so resuming stays exact.

Not here: packing and collating themselves (`slamlib.train.packing`).
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np
import torch

from slamlib.train.packing import PACKINGS, Documents, collate, collate_flat, pack

Rows = list[np.ndarray]  # a global batch: packed rows of document indices
Micro = list[dict[str, torch.Tensor]]  # this process's micro-batches of it, collated on the host


class BatchLoader:
    def __init__(self, docs: Documents, *, context: int, batch_size: int, rows_per_step: int, seed: int,
                 process_index: int = 0, num_processes: int = 1, pin: bool = False, prefetch: int = 0,
                 packing: str = "rows"):
        if packing not in PACKINGS:
            raise ValueError(f"train.packing must be one of {PACKINGS}, not {packing!r}")
        self.docs, self.context, self.batch_size, self.packing = docs, context, batch_size, packing
        self.rows_per_step, self.seed, self.prefetch = rows_per_step, seed, prefetch
        self.process_index, self.num_processes, self.pin = process_index, num_processes, pin
        self._epochs: dict[int, list[Rows]] = {}
        self._lock = threading.Lock()  # the background thread packs epochs too
        self.ahead: dict = {}  # (epoch, cursor) -> future of a prepared batch
        self.pool = None

    def epoch(self, epoch: int) -> list[Rows]:
        """The global batches of an epoch: a function of seed and epoch."""
        with self._lock:
            if epoch in self._epochs:
                return self._epochs[epoch]
        rng = np.random.default_rng([self.seed, epoch])
        if self.packing == "examples":
            rows = [np.array([doc]) for doc in rng.permutation(len(self.docs))]
        else:
            rows = pack(self.docs.lengths, rng.permutation(len(self.docs)), self.context)
            rows = [rows[i] for i in rng.permutation(len(rows))]
        n = len(rows) // self.rows_per_step
        if n == 0:
            raise ValueError(f"{len(rows)} packed rows cannot fill one step of {self.rows_per_step} rows: "
                             "give more data or a smaller batch")
        batches = [rows[i * self.rows_per_step : (i + 1) * self.rows_per_step] for i in range(n)]
        with self._lock:
            self._epochs = {e: b for e, b in self._epochs.items() if e >= epoch - 1}  # this and the last
            self._epochs[epoch] = batches
        return batches

    def host(self, rows: Sequence[np.ndarray]) -> Micro:
        """This process's micro-batches of a global batch, collated on the host; in pinned
        memory on a GPU, so that their copies to the device do not wait for it."""
        mine = rows[self.process_index :: self.num_processes]
        out = []
        for i in range(0, len(mine), self.batch_size):
            part = mine[i : i + self.batch_size]
            batch = collate_flat(self.docs, part) if self.packing == "examples" else collate(self.docs, part, self.context)
            out.append({k: v.pin_memory() if self.pin else v for k, v in batch.items()})
        return out

    def prepare(self, epoch: int, cursor: int) -> tuple[Rows, Micro]:
        rows = self.epoch(epoch)[cursor]
        return rows, self.host(rows)

    def take(self, epoch: int, cursor: int) -> tuple[Rows, Micro]:
        """Batch `cursor` of `epoch` (prepared in the background if it was asked for in time),
        and the following ones asked for."""
        future = self.ahead.pop((epoch, cursor), None)
        prepared = future.result() if future is not None else self.prepare(epoch, cursor)
        if self.prefetch:
            self._prefetch(epoch, cursor)
        return prepared

    def _prefetch(self, epoch: int, cursor: int) -> None:
        n = len(self.epoch(epoch))  # packed by now (a new epoch in the background, when prefetching)
        upcoming = [(epoch, c) for c in range(cursor + 1, min(n, cursor + 1 + self.prefetch))]
        if cursor + self.prefetch >= n:
            upcoming.append((epoch + 1, 0))  # the next epoch is packed in the background too
        for key in [k for k in self.ahead if k not in upcoming]:  # stale after a resume or a probe
            self.ahead.pop(key).cancel()
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slamlib-batches")
        for key in upcoming:
            if key not in self.ahead:
                self.ahead[key] = self.pool.submit(self.prepare, *key)

    def stop(self) -> None:
        """Cancel what is prepared ahead and end the background thread."""
        for future in self.ahead.values():
            future.cancel()
        self.ahead.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
