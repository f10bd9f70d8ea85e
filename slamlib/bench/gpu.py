"""Every measurement of the `slam` profile on one GPU, in one process, and the short table of its numbers."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

import torch

from slamlib.bench.attention import bench_attention
from slamlib.bench.ceilings import bench_ceilings
from slamlib.bench.eval import bench_eval
from slamlib.bench.memory import bench_memory
from slamlib.bench.precision import bench_precision
from slamlib.bench.profile import bench_profile
from slamlib.bench.timing import machine
from slamlib.bench.long_audio import bench_long
from slamlib.bench.tokenize import bench_tokenize
from slamlib.bench.train import bench_train
from slamlib.bench.unit_precision import bench_unit_precision


def bench_gpu(out: str | Path | None = None, audio: Path | None = None, steps: int = 6,
              only: list[str] | None = None) -> dict:
    """Every measurement of the `slam` profile on one GPU, in one process, each section on its
    own (one that fails is recorded with its error and the rest go on): the ceilings, training
    (eager, compiled, compiled with 16 x 8 micro-batches, and the transformers Trainer), where a
    step's time goes (eager and compiled), bf16 against fp32, the paper batch on 24 GiB,
    evaluation at ~1,900 pairs, tokenization (and peak memory of 1- to 60-minute files), and the share of units that bf16 features change. The JSON is rewritten to `out` after every
    section, and a short table printed at the end. `only`: these sections alone."""
    if not torch.cuda.is_available():
        raise SystemExit("bench gpu needs a CUDA GPU")
    report: dict = {"benchmark": "gpu", "machine": machine(), "sections": {}}
    ceiling: dict = {}

    def matmul():
        return ceiling.get("matmul_tflops square")

    sections = [  # the most telling first: a run cut short by a time limit still has them
        ("ceilings", lambda: bench_ceilings(["cuda"])),
        ("attention", lambda: bench_attention("cuda")),
        ("train", lambda: bench_train(["cuda"], steps=steps, compile=True, micro_batches=[16],
                                      matmul_tflops=matmul())),
        ("precision", lambda: bench_precision("cuda", steps=30)),
        ("memory 24 GiB", lambda: bench_memory(24.0)),
        ("memory 24 GiB, checkpointing", lambda: bench_memory(24.0, checkpointing=True)),
        ("eval", lambda: bench_eval(["cuda"], batch_tokens=[32768])),
        ("tokenize", lambda: bench_tokenize(devices=["cuda"], audio=audio)),
        ("tokenize long files", lambda: bench_long(["memory"], device="cuda", audio=audio)),
        ("unit precision", lambda: bench_unit_precision(device="cuda", audio=audio)),
        ("profile eager", lambda: bench_profile("cuda", steps=2)),
        ("profile compiled", lambda: bench_profile("cuda", steps=2, compile=True)),
    ]
    if only:
        unknown = set(only) - {name for name, _ in sections}
        if unknown:
            raise SystemExit(f"no section(s) {sorted(unknown)}; the sections are {[name for name, _ in sections]}")
        sections = [(name, run) for name, run in sections if name in only]
    for name, run in sections:
        start = time.perf_counter()
        print(f"--- {name}", flush=True)
        try:
            result = run()
        except BaseException as error:  # noqa: BLE001: record it, go on with the next section
            if isinstance(error, KeyboardInterrupt):
                raise
            result = {"error": f"{type(error).__name__}: {error}"[:500], "traceback": traceback.format_exc()[-3000:]}
            print(f"{name} failed: {result['error']}", flush=True)
        result["section_seconds"] = round(time.perf_counter() - start, 1)
        report["sections"][name] = result
        if name == "ceilings" and result.get("results"):
            ceiling.update(result["results"][0])
        torch.cuda.empty_cache()
        if out:
            Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(gpu_summary(report), flush=True)
    return report


def gpu_summary(report: dict) -> str:
    """The numbers that matter from `bench_gpu`'s report, one line each."""
    sections = report["sections"]
    lines = [f"machine: {report['machine'].get('gpu')}, torch {report['machine']['torch']}"]
    for name, result in sections.items():
        if "error" in result:
            lines.append(f"{name}: FAILED {result['error'][:150]}")
    attention = sections.get("attention", {})
    if "checks" in attention:
        worst = max(max(c["out"], c["dq"], c["dk"], c["dv"]) for c in attention["checks"])
        lines.append(f"attention ({attention['kernel']}): worst relative error {worst:.2e}, within tolerance "
                     f"{attention['within_tolerance']}; fwd+bwd ms {attention['forward_backward_ms']}")
    ceilings = sections.get("ceilings", {}).get("results", [{}])[0]
    if ceilings:
        lines.append("ceilings: " + ", ".join(f"{k} {v}" for k, v in ceilings.items() if k.startswith(("matmul", "copy"))))
    for row in sections.get("train", {}).get("results", []):
        lines.append(f"train {row['variant']} ({row.get('attention')}): {row.get('tokens_per_second', row.get('error'))} "
                     f"tokens/s, MFU {row.get('mfu')}, of measured matmul {row.get('mfu_of_measured_matmul')}, "
                     f"peak {row.get('peak_memory_gib')} GiB"
                     + (f", ours/this {row['best_of_ours_over_this']}" if "best_of_ours_over_this" in row else ""))
    for key in ("profile eager", "profile compiled"):
        result = sections.get(key, {})
        if "by_category_seconds_per_step" in result:
            lines.append(f"{key}: {result['wall_seconds_per_step']} s/step, device busy {result.get('device_busy')}, "
                         + ", ".join(f"{k} {v}" for k, v in result["by_category_seconds_per_step"].items()))
    precision = sections.get("precision", {})
    if "max_relative_difference" in precision:
        lines.append(f"precision: bf16 vs fp32 max {precision['max_relative_difference']:.2%} apart over "
                     f"{precision['steps']} steps (loss {precision['fp32'][0]} -> {precision['fp32'][-1]})")
    for key in ("memory 24 GiB", "memory 24 GiB, checkpointing"):
        memory = sections.get(key, {})
        if "fits" in memory:
            lines.append(f"{key}: fits = {memory['fits']}, peak {memory['peak_allocated_gib']} GiB allocated, "
                         f"{memory['peak_reserved_gib']} reserved, {memory.get('tokens_per_second')} tokens/s")
    for row in sections.get("eval", {}).get("results", []):
        lines.append(f"eval {row['pairs']} pairs, {row['batch_tokens']} tokens a batch: {row['seconds']} s "
                     f"({row['pairs_per_second']} pairs/s)")
    for row in sections.get("tokenize", {}).get("results", []):
        lines.append(f"tokenize {row['tokenizer']}: {row['x_realtime_end_to_end']}x real time end to end, "
                     f"{row['x_realtime_compute']}x compute only")
    for row in sections.get("tokenize long files", {}).get("memory", {}).get("rows", []):
        lines.append(f"tokenize {row['tokenizer']} {row['minutes']} min {row['mode']}: {row.get('x_realtime')}x real"
                     f" time, peak {row.get('peak_cuda_mb')} MB on the card, {row.get('peak_rss_mb')} MB resident"
                     + (f" ({row['error']})" if "error" in row else ""))
    lines += [f"{name}: {result['section_seconds']} s" for name, result in sections.items()]
    return "\n".join(lines)
