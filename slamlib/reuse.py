"""Reuse by content: a stage's product is reused only when the settings and inputs that made it
are the ones asked for now.

Every stage (speech tokenizer, text LM, initial models, pretraining, DPO) writes `made_with.json`
beside its product: a flat record of the settings it used and a key for each input (another
stage's record, a units folder's shards, a hub id). Running the stage again compares the record
with what is asked for; when they differ it says which settings changed, in one line, and makes
the product again. Scores are kept by the same idea under RUN/scores/ (`slamlib.evaluate`).

    >>> differences({"train.lr": 0.005, "seed": 0}, {"train.lr": 0.001, "seed": 0})
    ['train.lr 0.005 -> 0.001']

Not here: what each stage records (each stage's module says).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

RECORD = "made_with.json"
# training settings that change how a run is watched or saved, not the model it makes
SMALL_FILE = 1 << 16
TRAIN_NOT_IN_RESULT = ("trackers", "prefetch", "log_every", "save_every")


def settings(obj, prefix: str = "", *, leave_out: Iterable[str] = ()) -> dict:
    """A settings dataclass as flat dotted keys and JSON values (`leave_out`: keys that do not
    change the product, such as how often progress is logged).

    >>> from slamlib.profiles import get_profile
    >>> settings(get_profile("tiny").dpo, "dpo.")["dpo.beta"]
    0.1
    """
    from slamlib.profiles import flat_settings

    leave_out = set(leave_out)
    flat = flat_settings(obj, prefix) if dataclasses.is_dataclass(obj) else dict(obj)
    return {k: _json(v) for k, v in flat.items() if k[len(prefix):] not in leave_out}


def _json(value):
    return json.loads(json.dumps(value, default=str))


def digest(record: dict) -> str:
    """A short SHA-256 of a record, the same for equal records whatever their key order."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def content_key(path: str | os.PathLike | None) -> str | None:
    """What an input's content is, for another stage's record: the digest of the record of the
    stage that made it; for a units or audio folder, its shards' names and sizes; for a hub id,
    the id. Cheap: nothing large is read."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        return str(path)  # a hub id (or a path the stage will report missing)
    if (path / RECORD).exists():
        return digest(json.loads((path / RECORD).read_text()))
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    h = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        h.update(f"{file.relative_to(path) if path.is_dir() else file.name}:{size}:".encode())
        # small files (configs, manifests: the speech tokenizer's fingerprint) by content; large ones
        # (weights, shards) by size and time written: a copied folder counts as changed, never the reverse
        h.update(file.read_bytes() if size <= SMALL_FILE else str(file.stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


def differences(old: dict, new: dict) -> list[str]:
    """`key old -> new` for every key whose value differs (a key one side lacks shows as None)."""
    return [f"{key} {_show(old.get(key))} -> {_show(new.get(key))}"
            for key in sorted(set(old) | set(new), key=lambda k: (k not in new, k)) if old.get(key) != new.get(key)]


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def recorded(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / RECORD
    return json.loads(path.read_text()) if path.exists() else None


class SettingsChanged(ValueError):
    """A long stage's folder holds a product made with other settings, and restarting was not asked for."""


def _has_products(folder: Path) -> bool:
    """Whether `folder` holds anything besides its record and hidden files (locks)."""
    return folder.is_dir() and any(p.name != RECORD and not p.name.startswith(".") for p in folder.iterdir())


def _changed(folder: Path, wanted: dict) -> str | None:
    """What differs from `folder`'s record, in words; None when nothing does or nothing is there."""
    old = recorded(folder)
    if old == wanted:
        return None
    if old is not None:
        changed = differences(old, wanted)
        return "settings changed: " + "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
    return "no record of the settings it was made with" if _has_products(folder) else None


def matches(folder: str | os.PathLike, wanted: dict, *, what: str, redo: str) -> bool:
    """True when `folder`'s record holds exactly `wanted`. Otherwise, when the folder holds an
    earlier product, print one line saying what changed and what happens now (`redo`, e.g.
    "retraining"), and return False."""
    if recorded(folder) == wanted:
        return True
    if (changed := _changed(Path(folder), wanted)) is not None:
        print(f"{what}: {changed}; {redo}", flush=True)
    return False


def reuse_or_refuse(folder: str | os.PathLike, wanted: dict, *, what: str, on_change: str, flag: str) -> bool:
    """For stages that take long (pretraining, DPO): True when `folder`'s record holds `wanted`
    (reuse, or resume). When the folder holds a product made otherwise, `on_change="restart"`
    says what changed and returns False (the caller starts again), and `on_change="refuse"`
    raises `SettingsChanged`, which names the changes and `flag`, the way to start again."""
    if on_change not in ("refuse", "restart"):
        raise ValueError(f"on_change={on_change!r}: expected 'refuse' or 'restart'")
    if recorded(folder) == wanted:
        return True
    changed = _changed(Path(folder), wanted)
    if changed is None:
        return False
    if on_change == "refuse":
        raise SettingsChanged(f"{what} holds a run made otherwise ({changed}); {flag} trains again from the start, "
                              "replacing it, or write to another folder")
    print(f"{what}: {changed}; training again from the start", flush=True)
    return False


def record(folder: str | os.PathLike, made_with: dict) -> Path:
    """Write `folder`'s record (whole or not at all)."""
    path = Path(folder) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(made_with, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def forget(folder: str | os.PathLike, *products: str) -> None:
    """Remove a stale product's files (named relative to `folder`) and its record, so that a stage
    that stops half way is never taken for done with the new settings."""
    import shutil

    folder = Path(folder)
    for name in (RECORD, *products):
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
