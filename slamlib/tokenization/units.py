"""Discrete speech units: deduplication and the unit tokenizer.

The unit tokenizer follows SlamKit's id convention, so published Slam checkpoints read our
sequences and we read theirs: `<PAD>` = 0, `<S>` = 1 as both BOS and EOS, unit u -> id u + 2.
With 500 units the vocabulary has 502 entries, and an utterance is `[1, u0+2, u1+2, ..., 1]`.

For libraries that need a real tokenizer object (TRL's DPOTrainer), `UnitTokenizer.to_hf()` gives
an equivalent `PreTrainedTokenizerFast` over unit strings `<S><u17><u4>...`. It raises on any
string that is not a unit, instead of silently mapping it to nothing. Saved beside a model, it
loads with `PreTrainedTokenizerFast.from_pretrained`, not `AutoTokenizer` (see `save`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

PAD_ID = 0
BOS_ID = EOS_ID = 1
UNIT_OFFSET = 2
PAD_TOKEN = "<PAD>"
SEP_TOKEN = "<S>"


def dedup(units: Sequence[int], min_run: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Collapse consecutive repeats, keeping each run's length.

    With `min_run` > 1, runs shorter than that many frames are dropped first and their frames
    given to the run before them (the first kept run, at the start): a unit that flickers for
    one frame at a boundary between two sounds says more about where the frame grid fell than
    about the speech. Durations still add up to the number of frames. An utterance with no run
    that long keeps its plain deduplication.

    >>> dedup([5, 5, 3, 3, 3, 5])
    (array([5, 3, 5]), array([2, 3, 1]))
    >>> dedup([5, 5, 7, 5, 3, 3, 3, 9], min_run=2)
    (array([5, 3]), array([4, 4]))
    """
    units = np.asarray(units, dtype=np.int64)
    if units.size == 0:
        return units, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], units[1:] != units[:-1])))
    values, durations = units[starts], np.diff(np.append(starts, units.size))
    keep = durations >= min_run
    if min_run <= 1 or not keep.any():
        return values, durations
    owner = np.maximum.accumulate(np.where(keep, np.arange(len(values)), -1))  # last kept run so far
    owner[owner < 0] = np.flatnonzero(keep)[0]
    frames = np.bincount(owner, weights=durations, minlength=len(values))[keep].astype(np.int64)
    return dedup(undedup(values[keep], frames))


def undedup(units: Sequence[int], durations: Sequence[int]) -> np.ndarray:
    """Repeat each unit by its run length: the inverse of `dedup`."""
    return np.repeat(np.asarray(units, dtype=np.int64), np.asarray(durations, dtype=np.int64))


def unit_token(unit: int) -> str:
    return f"<u{unit}>"


@dataclass(frozen=True)
class UnitTokenizer:
    """Map units to model ids and back (SlamKit convention).

    >>> tok = UnitTokenizer(500)
    >>> tok.vocab_size
    502
    >>> tok.encode([0, 7, 499])
    [1, 2, 9, 501, 1]
    >>> tok.decode([1, 2, 9, 501, 1])
    [0, 7, 499]
    """

    n_units: int

    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def __post_init__(self):
        if self.n_units < 1:
            raise ValueError(f"n_units must be positive, got {self.n_units}")

    @property
    def vocab_size(self) -> int:
        return self.n_units + UNIT_OFFSET

    def encode(self, units: Sequence[int], bos: bool = True, eos: bool = True) -> list[int]:
        units = np.asarray(units, dtype=np.int64)
        if units.size and (units.min() < 0 or units.max() >= self.n_units):
            bad = units[(units < 0) | (units >= self.n_units)][0]
            raise ValueError(f"unit {bad} is outside this tokenizer's 0..{self.n_units - 1}")
        ids = (units + UNIT_OFFSET).tolist()
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids: Sequence[int]) -> list[int]:
        """Units from ids, dropping `<PAD>` and `<S>`."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"id outside this tokenizer's vocabulary of {self.vocab_size}")
        return (ids[ids >= UNIT_OFFSET] - UNIT_OFFSET).tolist()

    def vocab(self) -> dict[str, int]:
        vocab = {PAD_TOKEN: self.pad_id, SEP_TOKEN: self.bos_id}
        vocab.update({unit_token(u): u + UNIT_OFFSET for u in range(self.n_units)})
        return vocab

    def to_text(self, units: Sequence[int], bos: bool = True, eos: bool = True) -> str:
        """Units as the unit string that the `to_hf()` tokenizer reads: `<S><u3><u9><S>`."""
        body = "".join(unit_token(int(u)) for u in units)
        return SEP_TOKEN * bos + body + SEP_TOKEN * eos

    def to_hf(self):
        """An equivalent transformers `PreTrainedTokenizerFast` (for TRL and `save_pretrained`)."""
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        # No unk token: a string that is not a unit is an error, never an empty sequence.
        core = Tokenizer(models.WordLevel(self.vocab(), unk_token=None))
        core.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"<[^<>]*>"), "isolated")]
        )
        hf = PreTrainedTokenizerFast(
            tokenizer_object=core, pad_token=PAD_TOKEN, bos_token=SEP_TOKEN, eos_token=SEP_TOKEN,
            model_input_names=["input_ids", "attention_mask"],
        )
        hf.init_kwargs["n_units"] = self.n_units
        return hf

    def save(self, directory: str | Path) -> None:
        """Save as a transformers tokenizer plus `unit_tokenizer.json`.

        Load it with `PreTrainedTokenizerFast.from_pretrained(directory)`. (`AutoTokenizer` picks
        the tokenizer class from a model directory's config.json, and for Qwen2 models transformers
        forces Qwen2's byte-level text tokenizer, which would read unit strings wrongly.)"""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.to_hf().save_pretrained(directory)
        (directory / "unit_tokenizer.json").write_text(json.dumps({"n_units": self.n_units}) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "UnitTokenizer":
        path = Path(directory) / "unit_tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no unit tokenizer here (save one with UnitTokenizer.save)")
        return cls(int(json.loads(path.read_text())["n_units"]))
