"""A training run's folder: its checkpoints, from which it resumes exactly, and its log.

A checkpoint holds the model, the optimizer (both saved by accelerate), and the trainer's state:
the step, the data position, the plan and the training time so far. Its `trainer_state.json` is
written last, so a checkpoint without one is incomplete and never resumed from. The log,
`train_log.jsonl`, holds one JSON record per logged step; resuming drops what came after the
checkpoint, so that a resumed run's log reads as if it had not stopped.

Not here: what the state means (`slamlib.train.trainer`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

LOG_NAME = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
STATE_NAME = "trainer_state.json"


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINTS
    return sorted(p for p in root.glob("step-*") if (p / STATE_NAME).exists()) if root.exists() else []


def save_checkpoint(accelerator, out_dir: str | os.PathLike, step: int, state: Callable[[], dict],
                    keep: int = 2) -> Path:
    """Save a checkpoint at `step` (`state()` gives the trainer's state, read once the weights are
    saved) and keep only the `keep` latest."""
    path = Path(out_dir) / CHECKPOINTS / f"step-{step:07d}"
    accelerator.wait_for_everyone()
    # torch format: safetensors cannot hold tied embeddings without a warning on every save
    accelerator.save_state(str(path), safe_serialization=False)
    if accelerator.is_main_process:
        (path / STATE_NAME).write_text(json.dumps(state(), indent=2) + "\n")  # written last: complete
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def load_latest(accelerator, out_dir: str | os.PathLike) -> dict | None:
    """Load the latest checkpoint into the accelerator's model and optimizer and return the
    trainer's state saved with it (None when there is none); the log is cut back to it."""
    found = list_checkpoints(out_dir)
    if not found:
        return None
    accelerator.load_state(str(found[-1]))
    state = json.loads((found[-1] / STATE_NAME).read_text())
    if accelerator.is_main_process:
        truncate_log(out_dir, state["step"])
    return state


def start_log(out_dir: str | os.PathLike) -> None:
    (Path(out_dir) / LOG_NAME).write_text("")


def append_log(out_dir: str | os.PathLike, record: dict) -> None:
    with open(Path(out_dir) / LOG_NAME, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_log(out_dir: str | os.PathLike, step: int) -> None:
    """Drop the log records that came after `step`."""
    log = Path(out_dir) / LOG_NAME
    if log.exists():
        kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= step]
        log.write_text("".join(line + "\n" for line in kept))


def read_log(out_dir: str | os.PathLike) -> list[dict]:
    path = Path(out_dir) / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
