"""K-means over speech features: fit, assign, and read the official TWIST k-means file.

Centroids are a plain (units, dim) float32 tensor. Assignment is a batched nearest-centroid
search on whatever device the features are on; it never needs scikit-learn. scikit-learn (through
joblib) is needed once, to read the official file, a pickled sklearn `KMeans`; its centroids are
then cached as `.npy` under a name that includes the file's SHA-256, so two different k-means files
can never be confused for one another (SlamKit caches every k-means under one name).

Fitting is mini-batch k-means (Sculley, 2010) seeded with k-means++, finished by a few full Lloyd
steps, in torch, on the GPU when there is one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch


class KMeans:
    """Centroids and nearest-centroid assignment.

    >>> km = KMeans(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    >>> km.assign(torch.tensor([[1.0, 1.0], [9.0, 8.0]])).tolist()
    [0, 1]
    """

    def __init__(self, centroids: torch.Tensor | np.ndarray):
        centroids = torch.as_tensor(np.asarray(centroids, dtype=np.float32))
        if centroids.ndim != 2 or centroids.shape[0] < 1:
            raise ValueError(f"centroids must be a (units, dim) matrix, got shape {tuple(centroids.shape)}")
        if not torch.isfinite(centroids).all():
            raise ValueError("centroids contain NaN or infinite values")
        self.centroids = centroids.contiguous()
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def n_units(self) -> int:
        return self.centroids.shape[0]

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    def fingerprint(self) -> str:
        """SHA-256 of the centroid values: identifies this k-means wherever it is stored."""
        return hashlib.sha256(self.centroids.numpy().tobytes()).hexdigest()

    def _device_copy(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            c = self.centroids.to(device)
            self._on_device[device] = (c, c.square().sum(dim=1))
        return self._on_device[device]

    @torch.inference_mode()
    def assign(self, x: torch.Tensor, chunk_size: int = 32_768) -> torch.Tensor:
        """Index of the nearest centroid (Euclidean) for each row of x, on x's device."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must be (frames, {self.dim}), got shape {tuple(x.shape)}")
        c, c_sq = self._device_copy(x.device)
        out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        for start in range(0, x.shape[0], chunk_size):
            xb = x[start : start + chunk_size].float()
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is the same for every centroid.
            dist = torch.addmm(c_sq, xb, c.T, beta=1.0, alpha=-2.0)
            out[start : start + chunk_size] = dist.argmin(dim=1)
        return out

    @torch.inference_mode()
    def inertia(self, x: torch.Tensor) -> float:
        """Mean squared distance of x's rows to their nearest centroid."""
        c, _ = self._device_copy(x.device)
        return float((x.float() - c[self.assign(x)]).square().sum(dim=1).mean())

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, self.centroids.numpy())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KMeans":
        path = Path(path)
        try:
            return cls(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a centroid matrix saved by KMeans.save ({err})") from err


def _kmeans_plus_plus(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to squared distance."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=gen, device="cpu").item()
    centres = [x[first]]
    d2 = (x - x[first]).square().sum(dim=1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: fall back to uniform picks
            idx = torch.randint(n, (1,), generator=gen, device="cpu").item()
        else:
            idx = torch.multinomial((d2 / total).cpu(), 1, generator=gen).item()
        centres.append(x[idx])
        d2 = torch.minimum(d2, (x - x[idx]).square().sum(dim=1))
    return torch.stack(centres)


@torch.inference_mode()
def fit_kmeans(
    x: torch.Tensor,
    n_units: int,
    *,
    seed: int = 0,
    batch_size: int = 8192,
    steps: int = 300,
    lloyd_steps: int = 3,
    init_size: int = 20_000,
    device: str | torch.device = "auto",
) -> KMeans:
    """Fit `n_units` centroids to the rows of x (frames, dim). Deterministic for a given seed.

    Mini-batch updates move each centroid towards the mean of its batch members with step
    1 / (points seen so far), so early batches move it far and later ones fine-tune it; centroids
    that attract almost nothing are re-seeded on badly-served points. A few full Lloyd steps on
    all of x finish the fit.
    """
    from slamlib.tokenization.features import resolve_device

    device = resolve_device(device)
    if x.ndim != 2:
        raise ValueError(f"features must be a (frames, dim) matrix, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < n_units:
        raise ValueError(f"cannot fit {n_units} units to only {n} frames: give more audio")
    x = x.to(device=device, dtype=torch.float32)
    gen = torch.Generator(device="cpu").manual_seed(seed)

    init_idx = torch.randperm(n, generator=gen)[: max(init_size, n_units)].to(device)
    centroids = _kmeans_plus_plus(x[init_idx], n_units, gen)
    counts = torch.zeros(n_units, device=device)
    for step in range(steps):
        idx = torch.randint(n, (min(batch_size, n),), generator=gen).to(device)
        batch = x[idx]
        dist = torch.cdist(batch, centroids)
        labels = dist.argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, batch)
        batch_counts = torch.bincount(labels, minlength=n_units).float()
        counts += batch_counts
        hit = batch_counts > 0
        centroids[hit] += (sums[hit] - batch_counts[hit, None] * centroids[hit]) / counts[hit, None]
        if step % 20 == 19:  # re-seed starved centroids on the points that are served worst
            starved = counts < 1e-3 * counts.max()
            if starved.any():
                worst = dist.min(dim=1).values.topk(int(starved.sum())).indices
                centroids[starved] = batch[worst]
                counts[starved] = counts[~starved].min()

    for _ in range(lloyd_steps):
        model = KMeans(centroids.cpu())
        labels = model.assign(x)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        label_counts = torch.bincount(labels, minlength=n_units).float()
        filled = label_counts > 0
        centroids[filled] = sums[filled] / label_counts[filled, None]
    return KMeans(centroids.cpu())


class UntrustedPickle(ValueError):
    """A pickled k-means whose origin or checksum does not vouch for it."""


def official_sha256() -> set[str]:
    """SHA-256 of the official k-means files (`slamlib.profiles.OFFICIAL_KMEANS`, as `slamlib.hub`
    knows them)."""
    from slamlib.hub import KNOWN_SHA256
    from slamlib.profiles import OFFICIAL_KMEANS

    return {KNOWN_SHA256[url] for url in OFFICIAL_KMEANS if url in KNOWN_SHA256}


def _vouch(path: Path, digest: str, sha256: str | None, trust: bool) -> None:
    """Loading a pickle runs whatever code it holds: only the official file (downloaded or a
    copy, known by its SHA-256), a file whose SHA-256 is the one given, or one trusted explicitly
    is loaded."""
    if sha256 is not None:
        if digest != sha256.lower():
            raise UntrustedPickle(f"{path}: its SHA-256 is {digest}, not the {sha256} the profile gives "
                                  "(tokenizer.kmeans_sha256); it is not loaded")
        return
    if digest in official_sha256() or trust:
        return
    raise UntrustedPickle(
        f"{path}: a pickled k-means runs whatever code it holds when loaded, and this one is not the official "
        f"file; its SHA-256 is {digest}. If you trust it, pin it (--set tokenizer.kmeans_sha256={digest}) "
        "or load it once with --trust-pickle (--set tokenizer.trust_pickle=true)")


def load_sklearn_kmeans(ref: str, cache_dir: str | os.PathLike | None = None, *, sha256: str | None = None,
                        trust: bool = False) -> KMeans:
    """Read a joblib-pickled sklearn KMeans (the format of the official TWIST k-means files),
    by URL or local path. Its centroids are cached as .npy (no pickle), keyed by the file's SHA-256.

    A pickle is loaded only when it is the official file (its SHA-256 is the one `slamlib.hub`
    knows, from the URL or a local copy), or its SHA-256 is `sha256`, or with `trust`; otherwise
    `UntrustedPickle` says how to vouch for it."""
    from slamlib import hub

    path = hub.resolve_file(ref, what="k-means model (joblib-pickled sklearn KMeans)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _vouch(path, digest, sha256, trust)
    cache = Path(cache_dir) if cache_dir else hub.cache_dir() / "kmeans"
    cached = cache / f"{path.stem}-{digest[:16]}.npy"
    if cached.exists():
        return KMeans.load(cached)
    try:
        import joblib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn version mismatch: we only read the centroids
            obj = joblib.load(path)
    except Exception as err:  # pickles fail in many ways; all mean the same thing here
        raise ValueError(f"{path}: cannot be read as a joblib-pickled sklearn KMeans ({err})") from err
    centers = getattr(obj, "cluster_centers_", None)
    if centers is None:
        raise ValueError(f"{path}: the pickled object ({type(obj).__name__}) has no cluster_centers_")
    model = KMeans(np.asarray(centers, dtype=np.float32))
    model.save(cached)
    return model


def load_kmeans(ref: str, *, sha256: str | None = None, trust: bool = False) -> KMeans:
    """A k-means from a `.npy` centroid file (ours: plain numbers, read without pickle) or a
    joblib/sklearn file or URL (a pickle: see `load_sklearn_kmeans` for which are loaded)."""
    if str(ref).endswith(".npy") and Path(ref).exists():
        return KMeans.load(ref)
    return load_sklearn_kmeans(ref, sha256=sha256, trust=trust)
