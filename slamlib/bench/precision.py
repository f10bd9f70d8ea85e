"""bf16 autocast against fp32: the loss curves of the same short run, step by step."""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from slamlib.bench.setup import bench_setup, bench_trainer, new_model
from slamlib.bench.timing import machine


def precision_curves(model_cfg, n_units: int, docs, cfg, device: str, steps: int, seed: int = 0) -> dict:
    """Loss per step of the same model (same initial weights, same batches) trained in fp32
    and with bf16 autocast, and how far apart the two curves are."""
    import dataclasses

    curves = {}
    for precision in ("fp32", "bf16"):
        model = new_model(model_cfg, n_units, device, seed=seed)
        with tempfile.TemporaryDirectory() as out:
            trainer = bench_trainer(model, docs, dataclasses.replace(cfg, compile=False), device, out,
                                    precision=precision)
            trainer.state.max_steps, trainer.state.warmup = steps, max(1, steps // 10)
            curves[precision] = [trainer.train_step()["loss"] for _ in range(steps)]
            trainer._stop_prefetch()
        del model, trainer
    fp32, bf16 = np.array(curves["fp32"]), np.array(curves["bf16"])
    relative = np.abs(bf16 - fp32) / np.abs(fp32)
    return {"steps": steps, "fp32": [round(x, 5) for x in fp32], "bf16": [round(x, 5) for x in bf16],
            "max_relative_difference": round(float(relative.max()), 5),
            "final_relative_difference": round(float(relative[-1]), 5),
            "loss_drop_fp32": round(float(fp32[0] - fp32[-1]), 4)}


def bench_precision(device: str | None = None, steps: int = 30, tolerance: float = 0.02) -> dict:
    """bf16 autocast against fp32 on a short run of the profile's model (the paper's on a GPU,
    with a micro-batch a step so that the run stays short): the curves must stay within
    `tolerance` (relative) of each other at every step."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    profile, n_units, model_cfg, cfg, docs = bench_setup(device, steps, grad_accum=1, learnable=True)
    result = {"benchmark": "precision", "machine": machine(), "config": profile.name, "device": device,
              "tolerance": tolerance, **precision_curves(model_cfg, n_units, docs, cfg, device, steps)}
    result["within_tolerance"] = result["max_relative_difference"] <= tolerance
    print(f"precision ({device}): bf16 vs fp32 loss at most {result['max_relative_difference']:.2%} apart "
          f"over {steps} steps", flush=True)
    return result
