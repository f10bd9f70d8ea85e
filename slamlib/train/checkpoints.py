"""A training run's folder: its checkpoints, from which it resumes exactly, and its log.

A checkpoint holds the model, the optimizer (both saved by accelerate), and the trainer's state:
the step, the data position, the plan and the training time so far. It is written under a hidden
temporary name and renamed to `step-NNNNNNN` when complete, so a crash mid-write leaves no
checkpoint that looks whole. A checkpoint damaged later (a truncated file) is named in a warning
on resume and the next older one is used. The log,
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
    partial = path.with_name(f".{path.name}.partial")  # every process of a job writes its part here
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)  # left by a crash
    accelerator.wait_for_everyone()
    # torch format: safetensors cannot hold tied embeddings without a warning on every save
    accelerator.save_state(str(partial), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / STATE_NAME).write_text(json.dumps(state(), indent=2) + "\n")
        if path.exists():
            shutil.rmtree(path)
        os.replace(partial, path)  # complete, under its name
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


class NoUsableCheckpoint(ValueError):
    """Every checkpoint of a run is damaged."""


def load_latest(accelerator, out_dir: str | os.PathLike) -> dict | None:
    """Load the newest readable checkpoint into the accelerator's model and optimizer and return
    the trainer's state saved with it (None when there is none); the log is cut back to it. A
    damaged checkpoint is named in a warning and the next older one is tried."""
    import warnings

    found = list_checkpoints(out_dir)
    damaged = []
    for path in reversed(found):
        try:
            state = json.loads((path / STATE_NAME).read_text())
            accelerator.load_state(str(path))
        except Exception as err:  # noqa: BLE001 (a truncated file fails in torch, pickle or json)
            damaged.append(path)
            warnings.warn(f"{path} is damaged and is not resumed from ({type(err).__name__}: {str(err)[:200]})"
                          + ("; resuming from the one before it" if path != found[0] else ""), stacklevel=2)
            continue
        if accelerator.is_main_process:
            truncate_log(out_dir, state["step"])
        return state
    if damaged:
        raise NoUsableCheckpoint(f"{Path(out_dir) / CHECKPOINTS}: no checkpoint can be read "
                                 f"({', '.join(p.name for p in damaged)} damaged); train again from the start with "
                                 "--restart (resume=False in Python), or delete the folder")
    return None


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
