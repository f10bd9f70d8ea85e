"""Training throughput and MFU of our trainer, beside a plain transformers Trainer in the same setting."""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from slamlib.bench.ceilings import peak_tflops
from slamlib.bench.setup import bench_setup, new_model, precision_for
from slamlib.bench.timing import machine, sync, time_ours


def train_flops_per_token(n_params: int, n_layers: int, hidden: int, lengths: np.ndarray) -> float:
    """6 N for the weights plus causal attention within each document: per layer and token,
    6 * hidden * n forward and backward for a document of n tokens, averaged over tokens."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return 6.0 * n_params + 6.0 * n_layers * hidden * float((lengths ** 2).sum() / lengths.sum())


def _time_hf_trainer(model, docs, cfg, device: str, steps: int) -> float:
    """tokens/s of a plain transformers Trainer set up as SlamKit does: padding-free batches from
    DataCollatorWithFlattening, about the same tokens per micro-batch and per step, the same
    precision and attention implementation as the model was built with."""
    from accelerate.state import AcceleratorState
    from transformers import DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    lengths = docs.lengths
    per_device = max(1, int(round(cfg.batch_size * cfg.context / lengths.mean())))
    data = [{"input_ids": docs[i].tolist()} for i in range(len(docs))]  # any indexable dataset will do
    marks = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            sync(torch.device(device))
            marks.append(time.perf_counter())

    AcceleratorState._reset_state(True)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=per_device, gradient_accumulation_steps=cfg.grad_accum,
            max_steps=steps + 2, learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=1,
            max_grad_norm=cfg.max_grad_norm, bf16=precision_for(cfg, device) == "bf16",
            use_cpu=device == "cpu", report_to=[], save_strategy="no", logging_strategy="no",
            dataloader_drop_last=True, remove_unused_columns=False, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorWithFlattening(return_position_ids=True), callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # it prints a dict amid our JSON
        trainer.train()
    step = float(np.median(np.diff(marks[1:])))
    return per_device * cfg.grad_accum * float(lengths.mean()) / step


def _mfu(tokens_s: float, flops: float, tflops: float | None) -> float | None:
    return round(tokens_s * flops / (tflops * 1e12), 4) if tflops else None


def _variants(cfg, compile: bool, micro_batches: list[int] | None) -> list[tuple[str, object]]:
    """(label, train config) of each of our trainer's runs: eager, compiled, other micro-batches."""
    import dataclasses

    variants = [("eager", cfg)]
    if compile:
        variants.append(("compiled", dataclasses.replace(cfg, compile=True)))
    rows_per_step = cfg.batch_size * cfg.grad_accum
    for size in micro_batches or []:
        if size != cfg.batch_size and rows_per_step % size == 0:
            split = f"{size} x {rows_per_step // size}"
            variants.append((f"compiled, {split}" if compile else split,
                             dataclasses.replace(cfg, batch_size=size, grad_accum=rows_per_step // size, compile=compile)))
    return variants


def _ours(label: str, variant, setup, device: str, steps: int, peak: float | None, matmul_tflops: float | None) -> dict:
    """One row: our trainer's throughput, MFU and peak memory with one train config."""
    from slamlib.model import count_parameters
    from slamlib.train.attention import choose, cuda_kernel_name

    profile, n_units, model_cfg, _, docs = setup
    gpu = device != "cpu"
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = new_model(model_cfg, n_units, device)
    n_params = count_parameters(model)
    row = {"config": profile.name, "variant": label, "device": device, "context": variant.context,
           "micro_batch": variant.batch_size, "grad_accum": variant.grad_accum,
           "precision": precision_for(variant, device), "parameters": n_params,
           "attention": choose(variant.attention, device)}
    if gpu:
        row["varlen_kernel"] = cuda_kernel_name()
    flops = train_flops_per_token(n_params, model.config.num_hidden_layers, model.config.hidden_size,
                                  docs.chunked(variant.context).lengths)
    row["gflops_per_token"] = round(flops / 1e9, 3)
    try:
        tokens_s, step_s = time_ours(model, docs, variant, device, steps, warmup=3 if variant.compile else 2)
    except torch.OutOfMemoryError as error:
        row["error"] = f"out of memory: {str(error)[:160]}"
        return row
    row.update(tokens_per_second=round(tokens_s), seconds_per_step=round(step_s, 4),
               mfu=_mfu(tokens_s, flops, peak), mfu_of_measured_matmul=_mfu(tokens_s, flops, matmul_tflops))
    if gpu:  # weights, AdamW state, gradients and the activations of one micro-batch
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del model
    print(f"{profile.name} on {device} ({label}): {row['tokens_per_second']:,} tokens/s"
          + (f", MFU {row['mfu']:.1%}" if row.get("mfu") else ""), flush=True)
    return row


def _theirs(setup, device: str, steps: int, peak: float | None, ours: list[dict]) -> dict:
    """One row: a plain transformers Trainer in the same setting, and how the best of `ours` compares."""
    profile, n_units, model_cfg, cfg, docs = setup
    if device != "cpu":
        torch.cuda.empty_cache()
    hf_model = new_model(model_cfg, n_units, device)
    row = {"config": profile.name, "variant": "transformers Trainer + DataCollatorWithFlattening",
           "device": device, "attention": hf_model.config._attn_implementation,
           "micro_batch": f"~{cfg.batch_size * cfg.context} tokens", "grad_accum": cfg.grad_accum,
           "precision": precision_for(cfg, device)}
    hf_tokens_s = _time_hf_trainer(hf_model, docs, cfg, device, steps)
    del hf_model
    flops = float(ours[-1]["gflops_per_token"]) * 1e9
    row.update(tokens_per_second=round(hf_tokens_s), mfu=_mfu(hf_tokens_s, flops, peak))
    measured = [r for r in ours if r.get("tokens_per_second")]
    best = max(measured, key=lambda r: r["tokens_per_second"]) if measured else None
    if best:
        row["best_of_ours_over_this"] = round(best["tokens_per_second"] / hf_tokens_s, 2)
    print(f"{profile.name} on {device}: transformers Trainer {row['tokens_per_second']:,} tokens/s", flush=True)
    return row


def bench_train(devices: list[str] | None = None, steps: int = 10, compare: bool = True,
                compile: bool = False, micro_batches: list[int] | None = None,
                matmul_tflops: float | None = None) -> dict:
    """Training throughput: the tiny config on CPU; the paper model (Qwen2.5-0.5B architecture,
    502-unit vocabulary, context 1024, 8 x 16 sequences a step, bf16, random weights) on a GPU,
    with MFU (against the datasheet peak, and against `matmul_tflops` when a measured ceiling
    is given) and the peak memory of a step, each beside a plain transformers Trainer in the
    same setting. With `compile`, also our trainer with torch.compile; `micro_batches` adds rows
    for other splits of the same global batch (e.g. 16 sequences x 8 micro-batches)."""
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        setup = bench_setup(device, steps)
        peak = peak_tflops(torch.cuda.get_device_name(0)) if device != "cpu" else None
        ours = [_ours(label, variant, setup, device, steps, peak, matmul_tflops)
                for label, variant in _variants(setup.cfg, compile, micro_batches)]
        results += ours
        if compare:
            results.append(_theirs(setup, device, steps, peak, ours))
    return {"benchmark": "train", "machine": machine(), "results": results}
