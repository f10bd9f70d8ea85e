"""What made a run, recorded in its metrics.json: package versions, the machine, the commits of
what it fetched from the hub (`slamlib.hub.resolved`), and short content hashes of the speech
tokenizer, each units folder and each model, so that two runs that differ can be told apart at a
glance (and two that agree, byte for byte, have the same hashes).

    >>> import tempfile
    >>> a, b = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> for root in (a, b):
    ...     _ = (root / "config.json").write_text("{}")
    >>> content_hash(a) == content_hash(b), len(content_hash(a))
    (True, 12)

Not here: what decides whether a stage's product is reused (`slamlib.reuse`, which keys large
files by size and time instead of reading them).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

PACKAGES = ("slamlib", "torch", "transformers", "trl", "datasets", "accelerate", "numpy")
# per kind of folder, the files that are its content (logs, timings and records are not)
CONTENT = {"model": ("config.json", "*.safetensors", "speech_tokenizer/*"), "units": ("shard-*.parquet",)}


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    import torch

    from slamlib.device import cpu_name

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_name(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "platform": platform.platform()}


def content_hash(folder: str | os.PathLike, patterns: tuple[str, ...] | None = None) -> str | None:
    """The first 12 hex digits of a SHA-256 over the files of `folder` that match `patterns`
    (default: every file that is not hidden), by relative path and content; None when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if patterns is None:
        files = [p for p in folder.rglob("*") if p.is_file()]
    else:
        files = [p for pattern in patterns for p in folder.glob(pattern) if p.is_file()]
    files = sorted({p for p in files if not any(part.startswith(".") for part in p.relative_to(folder).parts)})
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:12]


def run_hashes(run_root: str | os.PathLike) -> dict[str, str]:
    """Content hashes of a run folder's speech tokenizer, units folders and models."""
    root = Path(run_root)
    found = {"speech_tokenizer": content_hash(root / "speech_tokenizer")}
    units = root / "units"
    for folder in sorted({p.parent for p in units.rglob("shard-*.parquet")}) if units.is_dir() else []:
        found[folder.relative_to(root).as_posix()] = content_hash(folder, CONTENT["units"])
    for folder in sorted(p for p in (root / "models").glob("*") if p.is_dir()) if (root / "models").is_dir() else []:
        found[folder.relative_to(root).as_posix()] = content_hash(folder, CONTENT["model"])
    return {name: h for name, h in found.items() if h is not None}


def hub_revisions(run_root: str | os.PathLike) -> dict[str, str]:
    """{hub id: commit} of what the run's notebooks fetched from the hub (their metrics files say)."""
    import json

    found: dict[str, str] = {}
    for path in sorted((Path(run_root) / "metrics").glob("*.json")):
        found.update(json.loads(path.read_text()).get("hub_revisions", {}))
    return found


def provenance(run_root: str | os.PathLike) -> dict:
    """Versions, machine, content hashes and hub revisions, for a run's metrics.json."""
    return {"versions": versions(), "machine": machine(), "hashes": run_hashes(run_root),
            "hub_revisions": hub_revisions(run_root)}
