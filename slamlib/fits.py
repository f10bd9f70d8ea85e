"""Does a profile's pretraining suit a device? Counted, not tried: its FLOPs against what a CPU's
matrix products reach, and its memory (weights, gradients, AdamW moments, activations) against a
card's. `check_profile_fits` warns, with the numbers, when the slam profile would take months on
a CPU or when its micro-batch likely exceeds the card's memory.

>>> from slamlib.device import known_card, training_precision
>>> from slamlib.profiles import SLAM
>>> round(memory_estimate(SLAM, training_precision(known_card("A5000"))) / 1e9, 1)
20.4

Not here: what the device can do (`slamlib.device`). Left out: any measured memory: the memory
check is a count, not a trial allocation.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass

import torch

from slamlib.device import GIB, Capabilities, Precision, training_precision

# Steps the paper's pretraining made in its 23.5 h on one A5000 (Table 4, SlamKit's config): the
# work a budget-only config (the slam profile's "23h30m") stands for.
PAPER_STEPS = 17_625
# No CPU runs fp32 matrix products faster than this (a 2-socket server with AVX-512 does a few):
# a run that would be quick even at this rate is not worth timing the CPU for.
CPU_TFLOPS_CEILING = 10.0
TOO_SLOW_SECONDS = 86_400.0  # warn when training would take longer than a day
# Activations an eager Qwen2 layer keeps for its backward pass, per token: about four tensors as
# wide as the MLP and eighteen as wide as the model (README, "Memory for the paper batch": some
# 70 kB a token a layer for the paper model in bf16).
ACT_MLP_TENSORS, ACT_HIDDEN_TENSORS = 4, 18


@dataclass(frozen=True)
class Workload:
    """The training a profile (or a trainer) asks for, in the numbers its cost depends on."""

    name: str
    parameters: int
    layers: int
    hidden: int
    intermediate: int
    context: int
    batch_size: int  # rows per micro-batch
    rows_per_step: int
    steps: int
    checkpointing: bool = False

    @property
    def tokens(self) -> int:
        """Token positions computed over the run (padding in a packed row costs as much as a token)."""
        return self.steps * self.rows_per_step * self.context

    @property
    def flops(self) -> float:
        """6 N per token: forward and backward through every weight (attention's own few percent left out)."""
        return 6.0 * self.parameters * self.tokens

    @classmethod
    def of_profile(cls, profile) -> "Workload":
        arch, train = profile.model.architecture, profile.train
        n_units = profile.tokenizer.n_units
        return cls(profile.name, speech_lm_parameters(arch, n_units), arch.num_hidden_layers, arch.hidden_size,
                   arch.intermediate_size, train.context, train.batch_size, train.batch_size * train.grad_accum,
                   planned_steps(train), train.gradient_checkpointing)

    @classmethod
    def of_model(cls, model, cfg, name: str = "this run", processes: int = 1) -> "Workload":
        config = model.config
        hidden = config.hidden_size
        return cls(name, sum(p.numel() for p in model.parameters()), config.num_hidden_layers, hidden,
                   getattr(config, "intermediate_size", None) or 4 * hidden, cfg.context, cfg.batch_size,
                   cfg.batch_size * cfg.grad_accum * processes,
                   planned_steps(cfg, processes), cfg.gradient_checkpointing)


def speech_lm_parameters(arch, n_units: int) -> int:
    """Parameters of a Qwen2 speech LM over `n_units` units (+ <PAD>, <S>), each counted once.

    >>> from slamlib.profiles import SLAM
    >>> speech_lm_parameters(SLAM.model.architecture, 500)  # the paper model (REFERENCE §2)
    358347904
    """
    h, head = arch.hidden_size, arch.hidden_size // arch.num_attention_heads
    kv = arch.num_key_value_heads * head
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with biases; o without
    layer = attention + 3 * h * arch.intermediate_size + 2 * h  # gate, up, down; two RMSNorms
    vocab = n_units + 2
    output = 0 if arch.tie_word_embeddings else vocab * h
    return arch.num_hidden_layers * layer + h + vocab * h + output


def planned_steps(cfg, processes: int = 1) -> int:
    """The optimizer steps a training config asks for: max_steps, or its token budget in steps,
    or for a wall-clock budget alone the paper's 17,625 (what 23.5 h bought on an A5000)."""
    if cfg.max_steps:
        return int(cfg.max_steps)
    if cfg.tokens:
        return max(1, math.ceil(cfg.tokens / (cfg.context * cfg.batch_size * cfg.grad_accum * processes)))
    return PAPER_STEPS


@functools.lru_cache(maxsize=None)
def measure_cpu_tflops(size: int = 1024, repeats: int = 3) -> float:
    """fp32 TFLOP/s of a square matrix product on this CPU, best of a few (about 0.2 s on 2 cores).
    Training reaches less than this, so estimates made with it are lower bounds on time."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    a @ b  # warm-up: thread pool, allocations
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / max(best, 1e-9) / 1e12


def _workload(profile) -> Workload:
    return profile if isinstance(profile, Workload) else Workload.of_profile(profile)


def cpu_estimate(profile, tflops: float) -> float:
    """Seconds the profile's pretraining would take on a CPU doing `tflops` TFLOP/s (a lower bound
    with a measured matrix-product rate). `profile`: a Profile or a Workload.

    >>> from slamlib.profiles import SLAM
    >>> round(cpu_estimate(SLAM, 0.06) / 86400)  # 5.0e18 FLOPs at 60 GFLOP/s
    958
    """
    return _workload(profile).flops / (tflops * 1e12)


def cpu_message(profile, tflops: float) -> str:
    work = _workload(profile)
    days = cpu_estimate(work, tflops) / 86_400
    return (f"the {work.name} profile is far too slow on a CPU: {work.parameters / 1e6:.0f}M parameters over "
            f"{work.tokens / 1e9:.2f}B tokens ({work.steps:,} steps of {work.rows_per_step} x {work.context}) are "
            f"{work.flops:.1e} FLOPs, which at the {tflops:.3g} TFLOP/s this CPU's matrix products reach is about "
            f"{days:,.0f} days, at least (the paper trained for one day on one A5000). Use `--profile tiny`, or a "
            "CUDA GPU.")


def memory_estimate(profile, precision: Precision) -> int:
    """Bytes training needs on the device, counted: fp32 weights, gradients and AdamW moments (16
    bytes a parameter), autocast's 16-bit weight copies, and one micro-batch's activations (all
    layers', or with activation checkpointing one layer's plus each layer's input)."""
    work = _workload(profile)
    half = precision.autocast
    width = 2 if half else 4
    tokens = work.batch_size * work.context
    per_layer = width * (ACT_MLP_TENSORS * work.intermediate + ACT_HIDDEN_TENSORS * work.hidden) * tokens
    activations = (per_layer + work.layers * width * work.hidden * tokens) if work.checkpointing \
        else work.layers * per_layer
    return int(work.parameters * (16 + (2 if half else 0)) + activations)


def check_profile_fits(profile, caps: Capabilities, *, precision: Precision | None = None,
                       tflops: float | None = None, too_slow_seconds: float = TOO_SLOW_SECONDS) -> list[str]:
    """Warn (not raise) when the profile's pretraining does not suit `caps`: on a CPU when it would
    take longer than `too_slow_seconds` (the CPU is timed only when that is possible at all), on a
    GPU when its micro-batch likely exceeds the card's memory (in `precision`, by default the one
    `training_precision` picks there). Returns the warnings' messages. `profile`: a Profile or a
    Workload."""
    work = _workload(profile)
    messages = []
    if caps.device_type == "cpu":
        if work.flops / (CPU_TFLOPS_CEILING * 1e12) > too_slow_seconds:
            rate = tflops if tflops is not None else measure_cpu_tflops()
            if cpu_estimate(work, rate) > too_slow_seconds:
                messages.append(cpu_message(work, rate))
    elif caps.total_memory:
        need = memory_estimate(work, precision or training_precision(caps))
        if need > caps.total_memory:
            advice = ("set train.gradient_checkpointing=true, or " if not work.checkpointing else "") + \
                "halve train.batch_size and double train.grad_accum (the same global batch)"
            messages.append(
                f"the {work.name} profile's micro-batch ({work.batch_size} x {work.context} tokens, "
                f"{work.parameters / 1e6:.0f}M parameters) likely needs about {need / GIB:.1f} GiB, more than "
                f"{caps.describe()} has (a count, not a measurement): {advice}")
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return messages
