"""Whether the paper's batch trains on a card of a given size (the A5000's 24 GiB)."""

from __future__ import annotations

import torch

from slamlib.bench.setup import bench_setup, new_model
from slamlib.bench.timing import machine, time_ours


def bench_memory(gib: float = 24.0, steps: int = 3, compile: bool = False, checkpointing: bool = False) -> dict:
    """Whether the paper's recipe (its model, 8 x 1024 tokens a micro-batch, bf16 autocast, fused
    AdamW) trains on a card of `gib` GiB (the A5000 has 24): this process is held to that much
    GPU memory (less what the CUDA context takes on such a card) for a few steps; optionally
    with activation checkpointing (`train.gradient_checkpointing`)."""
    import dataclasses

    if not torch.cuda.is_available():
        raise SystemExit("bench memory needs a CUDA GPU")
    device = "cuda"
    profile, n_units, model_cfg, cfg, docs = bench_setup(device, steps, grad_accum=2)
    cfg = dataclasses.replace(cfg, compile=compile, gradient_checkpointing=checkpointing)
    total = torch.cuda.get_device_properties(0).total_memory
    context_gib = 0.5  # what a CUDA context and cuBLAS workspaces take outside PyTorch's allocator
    fraction = min(1.0, (gib - context_gib) * 2**30 / total)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.set_per_process_memory_fraction(fraction)
    row = {"benchmark": "memory", "machine": machine(), "config": profile.name, "card_gib": gib,
           "allowed_gib": round(fraction * total / 2**30, 2), "micro_batch": cfg.batch_size, "context": cfg.context,
           "compiled": compile, "checkpointing": checkpointing}
    try:
        model = new_model(model_cfg, n_units, device)
        tokens_s, _ = time_ours(model, docs, cfg, device, steps, warmup=1)
        row.update(fits=True, tokens_per_second=round(tokens_s))
    except torch.OutOfMemoryError as error:
        row.update(fits=False, error=str(error)[:300])
    finally:
        row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    print(f"memory: the paper batch {'fits' if row['fits'] else 'does NOT fit'} in {gib} GiB "
          f"(peak {row['peak_allocated_gib']} GiB allocated)", flush=True)
    return row
