"""Packing (the paper's "padding-free" batches): documents laid end to end in rows of `context` tokens.

`position_ids` restart at 0 for every document, and the first token of each document is not a
target, so nothing is attended or predicted across a boundary. transformers turns restarting
position_ids into per-document attention: FlashAttention-2 varlen kernels on CUDA when installed,
otherwise a block-diagonal causal mask (sdpa), which is exact but quadratic in the row length.
`collate` also gives the documents' boundaries (`cu_seq_lens`), which slamlib's varlen attention
(`slamlib.train.attention`, the default on a CUDA GPU) takes directly.

Not here: which rows make a step and in what order (`slamlib.train.batches`), the loop itself
(`slamlib.train.trainer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from slamlib.tokenization.units import BOS_ID, EOS_ID, PAD_ID, UNIT_OFFSET

IGNORE = -100


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
        """(train, valid): a seeded random `fraction` of documents held out, at least one when
        the fraction is not 0 and there are two or more (a small corpus still gets a held-out loss)."""
        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), dtype=bool)
        n_valid = int(round(len(self) * fraction))
        if fraction > 0 and n_valid == 0 and len(self) >= 2:
            n_valid = 1
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


# --- packing rows ---------------------------------------------------------------------------------

PACKINGS = ("rows", "examples")  # train.packing: full rows of `context` tokens, or SlamKit's documents per micro-batch


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


def collate_flat(docs: Documents, rows: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """Every document of `rows` end to end in one row exactly as long as they are, no padding:
    SlamKit's packing (transformers' `DataCollatorWithFlattening`), where a micro-batch is a number
    of documents rather than a number of full rows. Positions restart and first tokens are not
    targets, as in `collate`.

    >>> docs = Documents.from_lists([[1, 5, 1], [1, 6, 7, 1]])
    >>> batch = collate_flat(docs, [np.array([0]), np.array([1])])
    >>> batch["position_ids"].tolist(), batch["labels"].tolist()
    ([[0, 1, 2, 0, 1, 2, 3]], [[-100, 5, 1, -100, 6, 7, 1]])
    """
    order = np.concatenate([np.asarray(row) for row in rows])
    return collate(docs, [order], int(docs.lengths[order].sum()))


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


def packing_stats(docs: Documents, context: int, seed: int = 0, batch_size: int = 8) -> dict:
    """How full packed rows are: documents, tokens, rows, the share of row slots used, and the
    tokens a micro-batch of `batch_size` holds on average under each packing (`PACKINGS`): full
    rows hold about batch_size x context x fill, SlamKit's documents batch_size x mean length.

    >>> stats = packing_stats(Documents.from_lists([[1, 2, 1]] * 4 + [[1] * 6]), context=8, batch_size=2)
    >>> stats["rows"], stats["tokens_per_micro_batch"]
    (3, {'rows': 12.0, 'examples': 7.2})
    """
    docs = docs.chunked(context)
    rows = pack(docs.lengths, np.random.default_rng(seed).permutation(len(docs)), context)
    fill = docs.n_tokens / (len(rows) * context)
    mean = float(docs.lengths.mean())
    return {"documents": len(docs), "tokens": docs.n_tokens, "rows": len(rows), "fill": fill,
            "mean_document": mean, "max_document": int(docs.lengths.max()),
            "tokens_per_micro_batch": {"rows": batch_size * context * fill, "examples": batch_size * mean}}
