"""What the hardware does at best: matrix products and a device-to-device copy, and the datasheet peaks."""

from __future__ import annotations

import torch

from slamlib.bench.timing import machine, timed

# Dense bf16 tensor-core peaks (datasheets), for model FLOPs utilisation.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "A6000": 154.8, "A5000": 111.1, "L40S": 362.0}


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None


def _copy_tb_per_s(device: torch.device, gen: torch.Generator) -> float:
    """Terabytes a second read plus written by a large device-to-device copy (its buffers are
    freed on return, before the next measurement)."""
    gpu = device.type == "cuda"
    size = (2 << 30) if gpu else (256 << 20)
    source = torch.empty(size // 4, dtype=torch.float32, device=device).uniform_(generator=gen)
    target = torch.empty_like(source)
    seconds = timed(lambda: target.copy_(source), device, 20 if gpu else 5)
    return round(2 * size / seconds / 1e12, 3)


def bench_ceilings(devices: list[str] | None = None) -> dict:
    """What the hardware does at best, measured once: a large matrix product (bf16 on a GPU,
    fp32 on a CPU), the paper model's own matrix shapes (8192 tokens x hidden 896 against its
    projections), and a large device-to-device copy (bytes read plus bytes written). Random
    inputs, several sets in turn so that repeats do not run from cache."""
    devices = devices or (["cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for name in devices:
        device = torch.device(name)
        gpu = device.type == "cuda"
        dtype = torch.bfloat16 if gpu else torch.float32
        gen = torch.Generator(device=device).manual_seed(0)
        row = {"device": name, "dtype": str(dtype).replace("torch.", "")}
        big = 8192 if gpu else 1024
        shapes = {"square": (big, big, big)}
        if gpu:  # (tokens, in, out) of the paper model's projections, forward
            shapes.update({"qkv/o 8192x896x896": (8192, 896, 896), "mlp up 8192x896x4864": (8192, 896, 4864),
                           "mlp down 8192x4864x896": (8192, 4864, 896)})
        for label, (m, k, n) in shapes.items():
            sets = [(torch.randn(m, k, generator=gen, device=device, dtype=dtype),
                     torch.randn(k, n, generator=gen, device=device, dtype=dtype)) for _ in range(3)]
            turn = iter(range(10**9))

            def product(sets=sets, turn=turn):
                a, b = sets[next(turn) % len(sets)]
                return a @ b

            seconds = timed(product, device, 20 if gpu else 5)
            row[f"matmul_tflops {label}"] = round(2 * m * k * n / seconds / 1e12, 1 if gpu else 3)
            del sets
        row["copy_tb_per_s"] = _copy_tb_per_s(device, gen)
        if gpu:
            row["gpu"] = torch.cuda.get_device_name(device)
            row["datasheet_bf16_tflops"] = peak_tflops(row["gpu"])
            torch.cuda.empty_cache()
        print(f"ceilings on {name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "device"), flush=True)
        results.append(row)
    return {"benchmark": "ceilings", "machine": machine(), "results": results}
