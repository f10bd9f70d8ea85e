"""What this machine can do, and what training on it should therefore use.

`Capabilities` describes one device (a CUDA GPU, a CPU, Apple's mps): its name, compute
capability, memory, native bf16, and which varlen attention kernels it can run. `detect()` reads
it from torch; tests and notebooks build one by hand (`Capabilities.gpu("Tesla T4", (7, 5), 15.0)`)
to see what slamlib would do on a card they do not have.

From it follow three choices, each with a reason that `announce` prints once per process:

- precision (`training_precision`): bf16 autocast on compute capability 8.0 and later (A100,
  A5000, H100: the paper's setting); fp16 autocast with gradient scaling below (T4, V100: they
  have no bf16 units, and fp16 gradients underflow without a loss scale); fp32 on a CPU;
- attention (`attention_kernel`): the varlen FlashAttention kernels where the card has them
  (cc >= 8.0), else the exact per-document kernel `slamlib.train.attention` already uses there;
- whether a profile fits (`check_profile_fits`): a warning, with numbers, when the slam profile
  would take months on a CPU or when its micro-batch likely exceeds the card's memory.

Left out: multi-GPU topology (accelerate handles it), and any measured memory: the memory check
is a count (weights, gradients, AdamW moments, activations), not a trial allocation.

>>> t4 = Capabilities.gpu("Tesla T4", (7, 5), 15.0)
>>> training_precision(t4).name, attention_kernel(t4)
('fp16', 'sdpa')
"""

from __future__ import annotations

import functools
import inspect
import math
import platform
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

GIB = 2**30
AMPERE = (8, 0)  # bf16 units and FlashAttention-2 start with compute capability 8.0
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


# --- the device ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Capabilities:
    """One device, as far as training cares. `capability` is CUDA's (major, minor), None elsewhere;
    `flash_attn` / `torch_varlen`: that varlen kernel can run here (installed and cc >= 8.0)."""

    device_type: str  # "cuda", "cpu" or "mps"
    name: str
    capability: tuple[int, int] | None = None
    total_memory: int | None = None  # bytes
    bf16: bool = False  # native bf16 arithmetic (not emulated)
    flash_attn: bool = False  # the flash-attn package's flash_attn_varlen_func
    torch_varlen: bool = False  # torch.nn.attention.varlen (FlashAttention-2 inside PyTorch)

    @classmethod
    def gpu(cls, name: str, capability: tuple[int, int], memory_gib: float, *, flash_attn: bool = False,
            torch_varlen: bool = False) -> "Capabilities":
        """A CUDA card by hand: bf16 and the kernels follow from the compute capability, as on real cards."""
        modern = tuple(capability) >= AMPERE
        return cls("cuda", name, tuple(capability), int(memory_gib * GIB), bf16=modern,
                   flash_attn=flash_attn and modern, torch_varlen=torch_varlen and modern)

    @classmethod
    def cpu(cls, name: str | None = None) -> "Capabilities":
        return cls("cpu", name or cpu_name())

    @classmethod
    def detect(cls, device=None) -> "Capabilities":
        """This process's device (`device`, or CUDA when there is one, else the CPU), read from torch."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            props = torch.cuda.get_device_properties(index)
            capability = (props.major, props.minor)
            modern = capability >= AMPERE
            bf16 = torch.cuda.is_bf16_supported() if torch.version.hip else modern  # ROCm reports gfx numbers
            return cls("cuda", props.name, capability, int(props.total_memory), bf16=bf16,
                       flash_attn=modern and flash_attn_varlen() is not None,
                       torch_varlen=modern and torch_varlen() is not None)
        if device.type == "mps":
            return cls("mps", "Apple GPU (mps)")
        return cls.cpu()

    @property
    def memory_gib(self) -> float | None:
        return self.total_memory / GIB if self.total_memory else None

    def describe(self) -> str:
        """'Tesla T4 (cc 7.5, 15.0 GiB)', 'CPU (AMD EPYC 7B13, 2 threads)'."""
        if self.device_type == "cpu":
            return f"CPU ({self.name}, {torch.get_num_threads()} threads)"
        details = []
        if self.capability:
            details.append(f"cc {self.capability[0]}.{self.capability[1]}")
        if self.total_memory:
            details.append(f"{self.memory_gib:.1f} GiB")
        return f"{self.name} ({', '.join(details)})" if details else self.name


def resolve_device(device: str) -> str:
    """A profile's `device` as torch takes it: "auto" is the GPU when there is one, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def cpu_name() -> str:
    """The CPU's model name ('AMD EPYC 7B13'), or what the platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# --- precision -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Precision:
    """How training computes: `dtype` is autocast's (float32: no autocast); `grad_scaler`: the loss
    is scaled before backward and the gradients unscaled before clipping (fp16 only)."""

    name: str  # "bf16", "fp16" or "fp32"
    dtype: torch.dtype
    grad_scaler: bool
    reason: str

    @property
    def autocast(self) -> bool:
        return self.dtype != torch.float32

    @property
    def trl_args(self) -> dict[str, bool]:
        """TRL's DPOConfig / transformers' TrainingArguments flags. Both are always given: TRL
        turns bf16 on by itself when fp16 is not set."""
        return {"bf16": self.name == "bf16", "fp16": self.name == "fp16"}

    def describe(self) -> str:
        return {"bf16": "bf16 autocast", "fp16": "fp16 autocast with gradient scaling", "fp32": "fp32"}[self.name]


BF16, FP16, FP32 = "bf16", "fp16", "fp32"


def _precision(name: str, reason: str) -> Precision:
    dtype = {BF16: torch.bfloat16, FP16: torch.float16, FP32: torch.float32}[name]
    return Precision(name, dtype, grad_scaler=name == FP16, reason=reason)


def training_precision(caps: Capabilities, requested: str = "auto") -> Precision:
    """The precision to train in on `caps`. `requested` is the profile's `precision`: "bf16" (the
    paper's) and "auto" both mean mixed precision where the card does it well, "fp16" forces fp16
    on any GPU, "fp32" keeps full precision everywhere.

    >>> training_precision(Capabilities.gpu("NVIDIA A100-SXM4-80GB", (8, 0), 80)).name
    'bf16'
    >>> training_precision(Capabilities.cpu("a CPU"), "bf16").reason
    'fp32 on a CPU (half-precision matrix products are slow or missing on most CPUs)'
    """
    if requested not in ("auto", BF16, FP16, FP32):
        raise ValueError(f"precision {requested!r}: choose auto, bf16, fp16 or fp32")
    if requested == FP32:
        return _precision(FP32, "fp32 as the profile asks")
    if caps.device_type == "cpu":
        return _precision(FP32, "fp32 on a CPU (half-precision matrix products are slow or missing on most CPUs)")
    if caps.device_type != "cuda":
        return _precision(FP32, f"fp32 on {caps.device_type} (mixed precision is only set up for CUDA here)")
    if requested == FP16:
        return _precision(FP16, "fp16 as the profile asks")
    if caps.bf16:
        return _precision(BF16, "bf16 as in the paper")
    return _precision(FP16, "no bf16 below compute capability 8.0")


def accelerator_precision(accelerator) -> Precision:
    """The precision an Accelerator someone else built was set to (the trainer then follows it)."""
    mode = accelerator.mixed_precision
    name = {"bf16": BF16, "fp16": FP16}.get(mode, FP32)
    return _precision(name, f"as the accelerator was set up (mixed_precision={mode!r})")


def grad_scaler(precision: Precision, accelerator) -> torch.amp.GradScaler:
    """The trainer's loss scaler: enabled for fp16 unless accelerate already scales (its own fp16
    mode on a GPU). A disabled scaler passes everything through, so one loop serves every precision."""
    own = precision.grad_scaler and getattr(accelerator, "scaler", None) is None
    return torch.amp.GradScaler(accelerator.device.type, enabled=own)


# --- attention -------------------------------------------------------------------------------

VARLEN = "slamlib_varlen"  # slamlib.train.attention's attention for packed documents


@lru_cache(maxsize=None)
def torch_varlen() -> Callable | None:
    """torch's varlen_attn, adapted to one signature (its arguments changed between releases)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    if "enable_gqa" in params:
        causal["enable_gqa"] = True

    def call(q, k, v, cu, max_len, scale):
        if "scale" in params:
            return varlen_attn(q, k, v, cu, cu, max_len, max_len, scale=scale, **causal)
        if abs(scale - q.shape[-1] ** -0.5) > 1e-12:
            raise ValueError(f"this torch's varlen_attn has no scale argument; the model needs scale {scale}")
        return varlen_attn(q, k, v, cu, cu, max_len, max_len, **causal)

    return call


@lru_cache(maxsize=None)
def flash_attn_varlen() -> Callable | None:
    """flash-attn's varlen kernel, adapted to the same signature, or None where it is not installed."""
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None

    def call(q, k, v, cu, max_len, scale):
        return flash_attn_varlen_func(q, k, v, cu, cu, max_len, max_len, dropout_p=0.0, softmax_scale=scale,
                                      causal=True)

    return call


def attention_kernel(caps: Capabilities) -> str:
    """The attention implementation `train.attention="auto"` trains with on `caps` (the names
    `slamlib.train.attention.choose` uses): transformers' flash-attn varlen path where flash-attn runs,
    slamlib's varlen attention with PyTorch's FlashAttention-2 where that runs, and below compute
    capability 8.0 the exact per-document kernel, sdpa with a block-diagonal causal mask from the
    restarting position_ids. On a CPU, slamlib's varlen attention groups documents by length."""
    if caps.device_type != "cuda":
        return VARLEN
    modern = caps.capability is not None and tuple(caps.capability) >= AMPERE
    if caps.flash_attn and modern:
        return "flash_attention_2"
    if caps.torch_varlen and modern:
        return VARLEN
    return "sdpa"


def describe_kernel(kernel: str, caps: Capabilities) -> str:
    if kernel == "flash_attention_2":
        return "FlashAttention-2 varlen (flash-attn)"
    if kernel == VARLEN:
        if caps.device_type == "cuda":
            return f"{VARLEN}, FlashAttention-2 varlen inside PyTorch" if caps.torch_varlen else \
                f"{VARLEN}, exact per-document reference"
        return f"{VARLEN}, documents grouped by length"
    if kernel == "sdpa" and caps.device_type == "cuda":
        why = ("FlashAttention needs cc 8.0" if caps.capability and caps.capability < AMPERE
               else "neither flash-attn nor PyTorch's varlen attention is available")
        return f"exact per-document kernel, sdpa with a block-diagonal mask ({why})"
    return kernel


_announced = False


def announce(caps: Capabilities, precision: Precision, kernel: str, *, force: bool = False) -> str | None:
    """Print what training will use here, in one line, once per process; returns the line (None
    when already printed)."""
    global _announced
    if _announced and not force:
        return None
    _announced = True
    line = (f"device: {caps.describe()} — {precision.describe()} ({precision.reason}); "
            f"attention: {describe_kernel(kernel, caps)}")
    print(line, flush=True)
    return line


# --- does the profile fit? -------------------------------------------------------------------

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


def known_card(name: str) -> Capabilities:
    """Well-known cards by short name ("T4", "V100", "A5000", "A100", "H100"), or "cpu", for trying
    out what slamlib would choose there. flash-attn is taken as not installed."""
    cards = {"T4": ("Tesla T4", (7, 5), 15.0), "V100": ("Tesla V100-SXM2-16GB", (7, 0), 16.0),
             "A5000": ("NVIDIA RTX A5000", (8, 6), 24.0), "A100": ("NVIDIA A100-SXM4-80GB", (8, 0), 80.0),
             "H100": ("NVIDIA H100 80GB HBM3", (9, 0), 80.0)}
    if name.lower() == "cpu":
        return Capabilities.cpu()
    return Capabilities.gpu(*cards[name])


__all__ = ["Capabilities", "Precision", "Workload", "training_precision", "accelerator_precision", "grad_scaler",
           "attention_kernel", "describe_kernel", "announce", "check_profile_fits", "cpu_estimate", "cpu_message",
           "memory_estimate", "measure_cpu_tflops", "speech_lm_parameters", "planned_steps", "known_card"]
