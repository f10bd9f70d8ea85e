"""How many units change when HuBERT runs under bf16 autocast (`python -m slamlib bench unit-precision`).

SlamKit computes mHuBERT-25Hz features in fp32, and the published Slam models were trained on
those units, so slamlib tokenizes in fp32 by default (`HubertConfig.precision`). This measures
what `precision="bf16"` would cost: the same speech through the same encoder in fp32 and under
bf16 autocast, both assigned with the same k-means, and

- `frames_changed_fraction`: frames whose unit differs (before deduplication), changed / frames;
- `dedup_edit_fraction`: Levenshtein distance between the deduplicated unit sequences, summed over
  utterances, over the length of the fp32 ones (the share of the LM's tokens that change);
- `features_max_abs_diff` (and the mean, and the largest fp32 feature for scale).

By default the encoder is a random-weight HubertModel at mHuBERT-25Hz's size (HuBERT-base: 768
wide, 12 layers, total conv stride 640), layer 11, and the k-means has 500 centroids fitted on
fp32 features of other speech (espeak voices, or the files of `audio`). Random weights are not
the real model: the output says so. `model` / `kmeans` take a real HubertModel directory and
k-means file instead (Python only: `bench_unit_precision(model=..., kmeans=...)`).
On a CPU this is torch's CPU bf16 autocast; on a GPU (`--device cuda`) the card's own, which is
the number that matters for `precision="bf16"`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from slamlib.bench.timing import machine, sync

RANDOM_ENCODER = "random-weight encoder at mHuBERT-25Hz's size (HuBERT-base, conv stride 640); not the real model"


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1).

    >>> edit_distance([1, 2, 3, 4], [1, 3, 4, 5]), edit_distance([], [7, 7]), edit_distance([5], [5])
    (2, 2, 0)
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    row = np.arange(len(b) + 1)
    for i, x in enumerate(a, start=1):
        substituted = row[:-1] + (b != x)  # from the diagonal
        deleted = row[1:] + 1  # from above
        best = np.minimum(substituted, deleted)
        new = np.empty_like(row)
        new[0] = i
        # inserting runs along the row: new[j] = min(best[j-1], new[j-1] + 1), i.e. a running
        # minimum of best[k] + (j - 1 - k) for k < j, plus new[0] + j
        offsets = np.arange(1, len(b) + 1)
        new[1:] = np.minimum(np.minimum.accumulate(best - offsets) + offsets, i + offsets)
        row = new
    return int(row[-1])


def unit_changes(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]]) -> dict:
    """Compare per-frame unit sequences (one per utterance, the same lengths): changed frames over
    all frames, and edits between the deduplicated sequences over the reference's deduplicated
    length.

    >>> unit_changes([[1, 1, 2, 2], [3, 3]], [[1, 2, 2, 2], [3, 3]])["frames_changed_fraction"]
    0.16666666666666666
    """
    from slamlib.tokenization.units import dedup

    frames = changed = units = edits = 0
    for ref, oth in zip(reference, other, strict=True):
        ref, oth = np.asarray(ref), np.asarray(oth)
        if ref.shape != oth.shape:
            raise ValueError(f"unit sequences of {len(ref)} and {len(oth)} frames: compare the same frames")
        frames += ref.size
        changed += int((ref != oth).sum())
        ref_dedup, oth_dedup = dedup(ref)[0], dedup(oth)[0]
        units += ref_dedup.size
        edits += edit_distance(ref_dedup, oth_dedup)
    return {"frames": frames, "frames_changed": changed, "frames_changed_fraction": changed / max(frames, 1),
            "dedup_units": units, "dedup_edits": edits, "dedup_edit_fraction": edits / max(units, 1)}


def _speech(folder: Path, seconds: float, fit_seconds: float, audio: Path | None) -> tuple[list, list]:
    """Waveforms to measure on (`seconds` of them) and others to fit the k-means on."""
    from slamlib.audio import SAMPLE_RATE, list_audio_files, load_audio
    from slamlib.bench.tokenize import speech_folder

    speech_folder(folder, seconds + fit_seconds, source=audio)
    measure, fit, total = [], [], 0.0
    for path in list_audio_files(folder):
        wav = load_audio(path)
        (measure if total < seconds else fit).append(wav)
        total += len(wav) / SAMPLE_RATE
    if not fit:  # one long file: measure on its first part, fit on the rest
        wav = np.concatenate(measure)
        cut = int(seconds * SAMPLE_RATE)
        measure, fit = [wav[:cut]], [wav[cut:]]
    return measure, fit


def _features(extractor, wavs: list[np.ndarray]) -> tuple[list[torch.Tensor], float]:
    sync(extractor.device)
    start = time.perf_counter()
    feats = [extractor([w])[0].cpu() for w in wavs]  # one at a time: nothing depends on batching
    sync(extractor.device)
    return feats, time.perf_counter() - start


def bench_unit_precision(seconds: float = 60.0, fit_seconds: float = 120.0, device: str | None = None,
                         precision: str = "bf16", n_units: int = 500, layer: int = 11, model=None,
                         kmeans=None, audio: Path | None = None, seed: int = 0) -> dict:
    """See the module docstring. `precision`: what to compare with fp32 ("fp32" gives exactly 0,
    a check of the measurement); `model`: a HubertModel or a HubertModel directory (default: random
    weights at mHuBERT-25Hz's size); `kmeans`: a `KMeans`, a `.npy` file, or the official k-means URL (default: fitted
    on `fit_seconds` of other speech; another pickled file: `load_kmeans(path, sha256=...)`, then the KMeans); `audio`: a folder of audio to use instead of espeak."""
    from transformers import HubertModel

    from slamlib.audio import SAMPLE_RATE
    from slamlib.bench.tokenize import random_mhubert_25hz
    from slamlib.profiles import HubertConfig
    from slamlib.tokenization.features import HubertExtractor, resolve_device
    from slamlib.tokenization.kmeans import KMeans, fit_kmeans, load_kmeans

    device = resolve_device(device or "cpu")
    if model is None:
        encoder, model = RANDOM_ENCODER, random_mhubert_25hz(seed)
    elif isinstance(model, (str, Path)):
        encoder, model = str(model), HubertModel.from_pretrained(model)
    else:
        width, depth = model.config.hidden_size, model.config.num_hidden_layers
        encoder = f"a given {type(model).__name__} ({width} wide, {depth} layers)"
    reference = HubertExtractor(HubertConfig(model=encoder, layer=layer, precision="fp32"), device=device, model=model)
    other = HubertExtractor(HubertConfig(model=encoder, layer=layer, precision=precision), device=device, model=model)
    if precision != "fp32" and not other.bf16:
        raise RuntimeError(f"{device} runs no bf16 autocast here (a card without native bf16): nothing to measure")

    with tempfile.TemporaryDirectory() as tmp:
        measure, fit = _speech(Path(tmp) / "speech", seconds, 0.0 if kmeans else fit_seconds, audio)
    if kmeans is not None:
        km = kmeans if isinstance(kmeans, KMeans) else load_kmeans(str(kmeans))  # a pickle: load it vouched for
        km_label = str(kmeans) if not isinstance(kmeans, KMeans) else f"a given KMeans ({kmeans.n_units} units)"
    else:
        fit_feats = torch.cat(_features(reference, fit)[0])
        # a few thousand frames: every mini-batch step sees them all, so 60 steps (and 3 Lloyd steps)
        # converge, at a quarter of the default's time
        km = fit_kmeans(fit_feats, n_units, seed=seed, device=device, steps=60)
        km_label = (f"{n_units} centroids fitted (slamlib.tokenization.kmeans) on fp32 features of "
                    f"{sum(map(len, fit)) / SAMPLE_RATE:.1f} s of other speech")

    other(measure[:1])  # warm-up: kernels, thread pools
    ref_feats, ref_seconds = _features(reference, measure)
    oth_feats, oth_seconds = _features(other, measure)
    diffs = [(a - b).abs() for a, b in zip(ref_feats, oth_feats)]
    changes = unit_changes([km.assign(f).numpy() for f in ref_feats], [km.assign(f).numpy() for f in oth_feats])
    audio_seconds = sum(map(len, measure)) / SAMPLE_RATE
    autocast = {"cpu": "CPU bf16 autocast (torch)", "cuda": "CUDA bf16 autocast"}.get(device.type, device.type)
    return {
        "benchmark": "unit-precision",
        "machine": machine(),
        "device": str(device),
        "dtype": "bfloat16" if precision != "fp32" else "float32",
        "compared": f"fp32 against {autocast if precision != 'fp32' else 'fp32 (a check: must be 0)'}",
        "encoder": encoder,
        "layer": layer,
        "kmeans": km_label,
        "speech": str(audio) if audio else "espeak, the tiny profile's voices and texts",
        "audio_seconds": round(audio_seconds, 1),
        "utterances": len(measure),
        **changes,
        "features_max_abs_diff": float(max(d.max() for d in diffs)),
        "features_mean_abs_diff": float(torch.cat(diffs).mean()),
        "features_max_abs_fp32": float(max(f.abs().max() for f in ref_feats)),
        "seconds_fp32": round(ref_seconds, 2),
        "seconds_compared": round(oth_seconds, 2),
    }
