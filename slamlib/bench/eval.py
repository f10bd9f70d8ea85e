"""Evaluation speed: benchmark pairs scored per second, with random weights."""

from __future__ import annotations

import time

import numpy as np
import torch

from slamlib.bench.setup import new_model, profile_for
from slamlib.bench.timing import machine, sync


def bench_eval(devices: list[str] | None = None, pairs: int | None = None,
               batch_tokens: list[int] | None = None) -> dict:
    """Pairs scored per second (two utterances each, tStoryCloze-length: 250-450 units), with
    random weights: the tiny model on CPU, the paper's architecture on a GPU (bf16), at the
    profile's batch size in tokens and any others given. Scoring only: the units are given
    (tokenizing speech is measured by `bench tokenize`)."""
    from slamlib.evaluate import sequence_scores

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        profile, n_units, model_cfg = profile_for(device)
        model = new_model(model_cfg, n_units, device).eval()
        if device != "cpu":
            model = model.to(torch.bfloat16)
        n = pairs or (200 if device == "cpu" else 1900)
        rng = np.random.default_rng(1)
        seqs = [[1, *rng.integers(2, n_units + 2, int(rng.integers(250, 450))).tolist(), 1] for _ in range(2 * n)]
        for size in dict.fromkeys([profile.eval.batch_tokens, *(batch_tokens or [])]):
            sequence_scores(model, seqs[:64], batch_tokens=size)  # warm-up
            sync(torch.device(device))
            start = time.perf_counter()
            sequence_scores(model, seqs, batch_tokens=size)
            sync(torch.device(device))
            seconds = time.perf_counter() - start
            row = {"config": profile.name, "device": device, "pairs": n, "batch_tokens": size,
                   "attention": model.config._attn_implementation, "seconds": round(seconds, 2),
                   "pairs_per_second": round(n / seconds, 1), "tokens_per_second": round(sum(map(len, seqs)) / seconds)}
            print(f"{profile.name} on {device}, {size} tokens a batch: {row['pairs_per_second']} pairs/s", flush=True)
            results.append(row)
        del model
    return {"benchmark": "eval", "machine": machine(), "results": results}
