"""What this machine can do, and what training on it should therefore use.

`Capabilities` describes one device (a CUDA GPU, a CPU, Apple's mps): its name, compute
capability, memory, native bf16, and which varlen attention kernels it can run. `detect()` reads
it from torch; tests and notebooks build one by hand (`Capabilities.gpu("Tesla T4", (7, 5), 15.0)`)
to see what slamlib would do on a card they do not have.

From it follow these choices, each with a reason that `announce` prints once per process:

- precision (`training_precision`): bf16 autocast on compute capability 8.0 and later (A100,
  A5000, H100: the paper's setting); fp16 autocast with gradient scaling below (T4, V100: they
  have no bf16 units, and fp16 gradients underflow without a loss scale); fp32 on a CPU;
- attention (`attention_kernel`): the varlen FlashAttention kernels where the card has them
  (cc >= 8.0), else the exact per-document kernel `slamlib.train.attention` already uses there;
- whether a profile fits: `slamlib.fits`, which warns, with numbers, when the slam profile would
  take months on a CPU or when its micro-batch likely exceeds the card's memory.

Left out: multi-GPU topology (accelerate handles it).

>>> t4 = Capabilities.gpu("Tesla T4", (7, 5), 15.0)
>>> training_precision(t4).name, attention_kernel(t4)
('fp16', 'sdpa')
"""

from __future__ import annotations

import inspect
import platform
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

GIB = 2**30
AMPERE = (8, 0)  # bf16 units and FlashAttention-2 start with compute capability 8.0


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


def known_card(name: str) -> Capabilities:
    """Well-known cards by short name ("T4", "V100", "A5000", "A100", "H100"), or "cpu", for trying
    out what slamlib would choose there. flash-attn is taken as not installed."""
    cards = {"T4": ("Tesla T4", (7, 5), 15.0), "V100": ("Tesla V100-SXM2-16GB", (7, 0), 16.0),
             "A5000": ("NVIDIA RTX A5000", (8, 6), 24.0), "A100": ("NVIDIA A100-SXM4-80GB", (8, 0), 80.0),
             "H100": ("NVIDIA H100 80GB HBM3", (9, 0), 80.0)}
    if name.lower() == "cpu":
        return Capabilities.cpu()
    return Capabilities.gpu(*cards[name])


__all__ = ["Capabilities", "Precision", "training_precision", "accelerator_precision", "grad_scaler",
           "attention_kernel", "describe_kernel", "announce", "known_card", "resolve_device", "cpu_name"]
