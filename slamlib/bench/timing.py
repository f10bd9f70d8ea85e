"""What every benchmark shares: the machine it ran on, and timing that waits for the device.

`timed` is the median of repeats after a warm-up (CUDA events on a GPU, the clock elsewhere);
`timed_steps` runs trainer steps back to back as `fit` runs them, so that the host is not made to
wait for the device between steps.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from slamlib.bench.setup import bench_trainer
from slamlib.device import cpu_name


def machine() -> dict:
    info = {"cpu": cpu_name(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of fn() after a warm-up: CUDA events on a GPU, the clock elsewhere."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return float(np.median(times))


def timed_steps(trainer, device: str, steps: int, warmup: int, around=None) -> tuple[float, int]:
    """(seconds, tokens) of `steps` optimizer steps run back to back as `fit` runs them (the
    host is not made to wait between steps), after `warmup` steps; `around`: a context to run
    them in."""
    from contextlib import nullcontext

    for _ in range(warmup):
        trainer.read_record(trainer.train_step(read=False))
    sync(torch.device(device))
    before = trainer.state.tokens
    with around or nullcontext():
        start = time.perf_counter()
        for _ in range(steps):
            record = trainer.train_step(read=False)
        trainer.read_record(record)
        sync(torch.device(device))
        seconds = time.perf_counter() - start
    trainer._stop_prefetch()
    return seconds, trainer.state.tokens - before


def time_ours(model, docs, cfg, device: str, steps: int, warmup: int = 2) -> tuple[float, float]:
    """(tokens/s, seconds/step) of our trainer (see `timed_steps`)."""
    with tempfile.TemporaryDirectory() as out:
        seconds, tokens = timed_steps(bench_trainer(model, docs, cfg, device, out), device, steps, warmup)
    return tokens / seconds, seconds / steps
