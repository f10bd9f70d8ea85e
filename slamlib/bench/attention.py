"""The varlen attention kernel over packed documents: checked against a float64 reference, and timed."""

from __future__ import annotations

import numpy as np
import torch

from slamlib.bench.timing import machine, timed


def _packed_attention_inputs(device: str, dtype, seed: int, batch: int = 8, length: int = 1024, heads: int = 14,
                             kv_heads: int = 2, dim: int = 64):
    """Random q, k, v (the paper model's attention shape) and the boundaries of documents of
    100-1,024 tokens packed into `batch` rows of `length`."""
    from slamlib.train.packing import Documents, collate, pack

    rng = np.random.default_rng(seed)
    docs = Documents.from_lists([[1] * int(rng.integers(100, length)) for _ in range(4 * batch)])
    rows = pack(docs.lengths, rng.permutation(len(docs)), length)[:batch]
    cu = collate(docs, rows, length)["cu_seq_lens"].to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    make = lambda h: torch.randn(len(rows), h, length, dim, generator=gen, device=device, dtype=dtype)  # noqa: E731
    return make(heads), make(kv_heads), make(kv_heads), cu


def _check(device: str, dtype, seed: int, batch: int, scale: float) -> dict:
    """The varlen kernel's output and gradients on fresh random inputs against the exact
    reference in float64: ‖out − ref‖ / ‖ref‖ for each, and whether the output is finite."""
    from slamlib.train.attention import document_ids, reference_attention, varlen_attention_forward

    q, k, v, cu = _packed_attention_inputs(device, dtype, seed, batch=batch)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out, _ = varlen_attention_forward(None, q, k, v, None, scaling=scale, cu_seq_lens_q=cu,
                                      max_length_q=q.shape[2])
    grad = torch.randn_like(out)
    out.backward(grad)
    ref_in = [t.detach().double().cpu().requires_grad_() for t in (q, k, v)]
    docs = document_ids(q.shape[0], q.shape[2], "cpu", cu.cpu())
    ref = reference_attention(*ref_in, docs, scale)
    ref.backward(grad.double().cpu())
    rel = lambda a, b: float((a.double().cpu() - b).norm() / b.norm())  # noqa: E731
    check = {"out": rel(out.detach(), ref.detach()), "dq": rel(q.grad, ref_in[0].grad),
             "dk": rel(k.grad, ref_in[1].grad), "dv": rel(v.grad, ref_in[2].grad)}
    check["finite"] = bool(torch.isfinite(out).all())
    return {k2: (float(f"{v2:.3g}") if isinstance(v2, float) else v2) for k2, v2 in check.items()}


def _time_paths(device: str, dtype, batch: int, scale: float, repeats: int) -> tuple[dict, dict]:
    """Forward + backward milliseconds of varlen, sdpa with the block-diagonal mask and sdpa over
    whole causal rows, on the same inputs; and the shape of those inputs."""
    from slamlib.train.attention import document_ids, varlen_attention_forward

    q, k, v, cu = _packed_attention_inputs(device, dtype, 4, batch=batch)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    batch, heads, length, _ = q.shape
    docs = document_ids(batch, length, device, cu)
    mask = ((docs[:, :, None] == docs[:, None, :]) & torch.ones(length, length, dtype=torch.bool, device=device).tril())[:, None]
    kr, vr = (t.repeat_interleave(heads // t.shape[1], 1) for t in (k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    variants = {
        "varlen (training's path)": lambda: varlen_attention_forward(None, q, k, v, None, scaling=scale, cu_seq_lens_q=cu,
                                                                     max_length_q=length)[0],
        "sdpa, block-diagonal mask": lambda: sdpa(q, kr, vr, attn_mask=mask, scale=scale),
        "sdpa, causal rows (no documents)": lambda: sdpa(q, kr, vr, is_causal=True, scale=scale),
    }
    timings = {}
    for label, forward in variants.items():
        def step(forward=forward):
            out = forward()
            out.backward(torch.ones_like(out))
            q.grad = k.grad = v.grad = None
        timings[label] = round(timed(step, torch.device(device), repeats) * 1e3, 3)
    shape = {"batch": batch, "length": length, "heads": heads, "kv_heads": k.shape[1], "head_dim": q.shape[-1],
             "documents": len(cu) - 1}
    return timings, shape


def bench_attention(device: str | None = None, repeats: int = 20) -> dict:
    """The varlen kernel that training uses on this device, checked and timed: its output and
    gradients against the exact reference computed in float64 on fresh random inputs
    (‖out − ref‖ / ‖ref‖; bf16 inputs land between 1e-3 and 1e-2), and forward + backward time
    beside sdpa with the block-diagonal mask (transformers' path for packed rows) and sdpa over
    whole rows with no documents at all (a lower bound)."""
    from slamlib.train.attention import _kernel, cuda_kernel_name

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device != "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    scale = 64 ** -0.5
    result = {"benchmark": "attention", "machine": machine(), "device": device, "dtype": str(dtype).replace("torch.", ""),
              "kernel": cuda_kernel_name() if gpu else "grouped (CPU)", "checks": []}
    q0 = _packed_attention_inputs(device, dtype, 0)[0]
    if gpu and _kernel(q0) is None:
        result["error"] = "no varlen kernel for these inputs here (needs torch >= 2.10 or flash-attn, and sm80+)"
    result["checks"] += [_check(device, dtype, seed, 8 if gpu else 2, scale) for seed in (1, 2, 3)]
    limit = 2e-2 if dtype == torch.bfloat16 else 1e-4
    result["within_tolerance"] = all(c["finite"] and max(c["out"], c["dq"], c["dk"], c["dv"]) < limit
                                     for c in result["checks"])
    timings, shape = _time_paths(device, dtype, 8 if gpu else 2, scale, repeats if gpu else 3)
    result["forward_backward_ms"] = timings
    result["shape"] = shape
    print(f"attention ({device}, {result['kernel']}): within tolerance {result['within_tolerance']}; "
          + ", ".join(f"{k2} {v2} ms" for k2, v2 in timings.items()), flush=True)
    return result
