"""Where a training step's time goes, by kind of operation, under torch.profiler."""

from __future__ import annotations

import tempfile

import torch

from slamlib.bench.setup import bench_setup, bench_trainer, new_model
from slamlib.bench.timing import machine, timed_steps

_CATEGORIES = (  # (category, substrings of an op's or kernel's name), first match wins
    ("attention", ("attn", "attention", "flash")),
    ("compiled kernels", ("triton", "compiledfunction")),
    ("optimizer and clipping", ("adam", "multi_tensor_apply", "foreach")),
    ("matrix products", ("mm", "matmul", "linear", "gemm", "cutlass", "sm90_xmma", "bmm")),
    ("cross-entropy", ("cross_entropy", "nll_loss", "log_softmax", "_softmax")),
    ("copies to the device", ("memcpy", "to_copy", "copy_", "pin_memory")),
)


def _category(name: str) -> str:
    lower = name.lower()
    for category, keys in _CATEGORIES:
        if any(k in lower for k in keys):
            return category
    return "elementwise, norms, other"


def bench_profile(device: str | None = None, steps: int = 3, compile: bool = False, top: int = 15) -> dict:
    """Where a training step's time goes: `steps` steps of the profile's trainer under
    torch.profiler, the device time by kind of operation (attention, matrix products, the
    optimizer, cross-entropy, copies, the rest) and the top operations, and how busy the
    device was (device time over wall time: below 1, the device waited for the host)."""
    import dataclasses

    from torch.profiler import ProfilerActivity, profile

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device != "cpu"
    setup, n_units, model_cfg, cfg, docs = bench_setup(device, steps + 3)
    cfg = dataclasses.replace(cfg, compile=compile)
    model = new_model(model_cfg, n_units, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with tempfile.TemporaryDirectory() as out:
        prof = profile(activities=activities)
        trainer = bench_trainer(model, docs, cfg, device, out)
        wall, _ = timed_steps(trainer, device, steps, 3 if compile else 2, around=prof)
    events = prof.key_averages()

    def self_time(e) -> float:  # microseconds
        if gpu:
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
        return float(e.self_cpu_time_total)

    ops = [(e.key, self_time(e), e.count) for e in events if self_time(e) > 0 and not e.key.startswith("ProfilerStep")]
    if gpu:  # kernels themselves (not the aten ops that launched them, which would count twice)
        kernels = [(e.key, self_time(e), e.count) for e in events
                   if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")
                   and self_time(e) > 0]
        ops = kernels or ops
    total = sum(t for _, t, _ in ops) / 1e6
    by_category: dict[str, float] = {}
    for name, t, _ in ops:
        by_category[_category(name)] = by_category.get(_category(name), 0.0) + t / 1e6
    ops.sort(key=lambda o: -o[1])
    result = {
        "benchmark": "profile", "machine": machine(), "config": setup.name, "device": device, "compiled": compile,
        "steps": steps, "micro_batch": cfg.batch_size, "grad_accum": cfg.grad_accum,
        "attention": model.config._attn_implementation,  # as the trainer set it
        "wall_seconds_per_step": round(wall / steps, 4),
        ("device_seconds_per_step" if gpu else "cpu_seconds_per_step"): round(total / steps, 4),
        "by_category_seconds_per_step": {k: round(v / steps, 5) for k, v in
                                         sorted(by_category.items(), key=lambda kv: -kv[1])},
        "top": [{"op": name[:90], "seconds_per_step": round(t / 1e6 / steps, 5), "calls_per_step": round(n / steps, 1)}
                for name, t, n in ops[:top]],
    }
    if gpu:
        result["device_busy"] = round(total / wall, 3)
    print(f"profile ({device}, {'compiled' if compile else 'eager'}): {wall / steps:.3f} s/step; "
          + ", ".join(f"{k} {v:.4f}" for k, v in result["by_category_seconds_per_step"].items()), flush=True)
    return result
