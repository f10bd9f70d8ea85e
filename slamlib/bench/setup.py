"""What the training benchmarks train: the profile a device measures, random documents, a model, a trainer.

On a CPU the `tiny` profile, on a GPU the `slam` profile (the paper's model), always with random
weights, so that nothing is downloaded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


def profile_for(device: str):
    """(profile, units, model config) that a benchmark on `device` measures: the tiny profile on
    CPU, the slam profile (the paper's model) on a GPU; tiny's own architecture, sized for units."""
    import dataclasses

    from slamlib.profiles import get_profile

    profile = get_profile("tiny" if device == "cpu" else "slam")
    n_units = profile.tokenizer.n_units
    model_cfg = profile.model
    if model_cfg.text_lm is not None:
        model_cfg = dataclasses.replace(model_cfg, architecture=dataclasses.replace(
            model_cfg.architecture, vocab_size=n_units + 2))
    return profile, n_units, model_cfg


def bench_docs(n_units: int, low: int, high: int, tokens: int, seed: int = 0, learnable: bool = False):
    """Documents of random units (lengths uniform in [low, high)); `learnable`: drawn from a
    sparse random chain (each unit has 4 possible successors), so that a model's loss can fall
    well below that of uniform units."""
    from slamlib.train.packing import Documents

    rng = np.random.default_rng(seed)
    successors = rng.integers(2, n_units + 2, (n_units + 2, 4))
    docs, total = [], 0
    while total < tokens:
        n = int(rng.integers(low, high))
        if learnable:
            units = [int(rng.integers(2, n_units + 2))]
            for choice in rng.integers(0, 4, n - 3):
                units.append(int(successors[units[-1], choice]))
        else:
            units = rng.integers(2, n_units + 2, n - 2).tolist()
        docs.append([1, *units, 1])
        total += n
    return Documents.from_lists(docs)


class BenchSetup(NamedTuple):
    profile: Any  # slamlib.profiles.Profile
    n_units: int
    model_cfg: Any  # ModelConfig
    cfg: Any  # TrainConfig
    docs: Any  # slamlib.train.packing.Documents


def bench_setup(device: str, steps: int, grad_accum: int | None = None, learnable: bool = False) -> BenchSetup:
    """(profile, units, model config, train config, documents) for training benchmarks: the
    profile's batch (on a GPU the paper's 8 x 1024 per micro-batch, 16 micro-batches a step)."""
    import dataclasses

    profile, n_units, model_cfg = profile_for(device)
    cfg = dataclasses.replace(profile.train, grad_accum=grad_accum or profile.train.grad_accum)
    low, high = (90, 460) if device == "cpu" else (100, 1024)  # utterance lengths in units
    docs = bench_docs(n_units, low, high, tokens=cfg.context * cfg.batch_size * cfg.grad_accum * (steps + 6) * 2,
                      learnable=learnable)
    return BenchSetup(profile, n_units, model_cfg, cfg, docs)


def fresh_accelerator(device: str, precision: str):
    """An Accelerator for one benchmark (accelerate keeps one state per process: reset it, so
    that fp32 and bf16 can be measured one after the other)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    return Accelerator(cpu=device == "cpu", mixed_precision="bf16" if precision == "bf16" else "no")


def precision_for(cfg, device: str) -> str:
    return "bf16" if cfg.precision == "bf16" and device != "cpu" else "fp32"


def new_model(model_cfg, n_units: int, device: str, seed: int = 0):
    from slamlib.model import init_speech_lm

    return init_speech_lm(model_cfg, n_units, init="random", seed=seed).to(device)


def bench_trainer(model, docs, cfg, device: str, out: str, precision: str | None = None):
    from slamlib.train.trainer import Trainer

    accelerator = fresh_accelerator(device, precision or precision_for(cfg, device))
    trainer = Trainer(model, docs, cfg, out, accelerator=accelerator)
    trainer.state.max_steps, trainer.state.warmup = 10**6, 1
    return trainer
