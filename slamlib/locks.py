"""One writer per folder: a lock that a command or stage holds on the folder it writes.

`folder_lock(folder, what)` takes an operating-system file lock (`filelock`, `flock` on Linux) on
`FOLDER/.slamlib.lock` and notes beside it who holds it (`.slamlib.owner.json`: process id, what,
since when). A second process that wants the folder, or a folder inside it, is refused at once
with `FolderInUse`, which names the folder and the holder. The lock dies with its process, so a
killed command leaves nothing that blocks the next one.

Within one process the locks are re-entrant: a stage that locks a folder inside one its command
already holds goes on. The processes that a holder starts on its behalf (`slamlib run`'s notebook
kernels) carry its process id in `SLAMLIB_LOCK_OWNER`, and locks held by it do not stop them. The
processes of one distributed job (`accelerate launch`: `RANK` 1 and up) work under the lock of
rank 0.

Not here: what a stage writes (atomic files, shard names that cannot collide: the stages).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".slamlib.lock"
OWNER_NAME = ".slamlib.owner.json"
OWNER_ENV = "SLAMLIB_LOCK_OWNER"  # a process id whose locks this process may work inside

_held: dict[Path, object] = {}  # folder -> its FileLock, for the locks this process holds
_held_shares: set[tuple[Path, str]] = set()  # (folder, share) this process holds (share_lock)


class FolderInUse(RuntimeError):
    """Another process holds the folder (or a folder around it)."""


def _owner(folder: Path, share: str | None = None) -> dict:
    try:
        return json.loads((folder / (OWNER_NAME if share is None else _share_name(share, "owner.json"))).read_text())
    except (OSError, ValueError):
        return {}


def _share_name(share: str, kind: str) -> str:
    return f".slamlib.{share}.{kind}"


def describe_owner(folder: Path, share: str | None = None) -> str:
    """Who holds `folder` (or one share of it), in words; the shares at work when the folder's
    own holder is not named.

    >>> import tempfile
    >>> describe_owner(Path(tempfile.mkdtemp()))
    'another process'
    """
    owners = [_owner(folder, share)]
    if share is None and not owners[0]:
        owners = [_owner(folder, p.name[len(".slamlib."):-len(".owner.json")])
                  for p in sorted(folder.glob(_share_name("*", "owner.json")))]
    described = []
    for owner in filter(None, owners):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
        described.append(f"process {owner.get('pid')} ({owner.get('what', '?')}, since {since})")
    return ", ".join(described) or "another process"


def _held_for_us(folder: Path) -> bool:
    """Whether `folder` is held by the process this one works for (`SLAMLIB_LOCK_OWNER`)."""
    owner = os.environ.get(OWNER_ENV)
    return bool(owner) and (folder / LOCK_NAME).exists() and str(_owner(folder).get("pid")) == owner


def _in_use(folder: Path) -> bool:
    """Whether another process holds the lock of `folder` (tried without waiting)."""
    import filelock

    if not (folder / LOCK_NAME).exists():
        return False
    probe = filelock.FileLock(folder / LOCK_NAME, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    probe.release()
    return False


def _refuse(folder: Path, held: Path) -> FolderInUse:
    where = f"{held}" if held == folder else f"{held} (around {folder})"
    return FolderInUse(f"{where} is in use by {describe_owner(held)}; wait for it to finish, or write to "
                       "another folder (a process that was killed holds nothing)")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold `folder` (made if missing) for the duration; `what` says who holds it (a command).
    Raises `FolderInUse` at once when another process holds it or a folder around it.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with folder_lock(root, "outer"), folder_lock(root / "inner", "inner") as inner:
    ...     inner.name, (root / OWNER_NAME).exists()
    ('inner', True)
    >>> (root / OWNER_NAME).exists()
    False
    """
    import filelock

    folder = Path(folder).resolve()
    if os.environ.get("RANK", "0") != "0" or any(f in _held or _held_for_us(f) for f in (folder, *folder.parents)):
        yield folder  # this process, or the one it works for, holds it already
        return
    for around in folder.parents:
        if _in_use(around):
            raise _refuse(folder, around)
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise _refuse(folder, folder) from None
    _held[folder] = lock
    (folder / OWNER_NAME).write_text(json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}))
    try:
        yield folder
    finally:
        _held.pop(folder, None)
        with contextlib.suppress(OSError):
            (folder / OWNER_NAME).unlink()
        lock.release()


@contextlib.contextmanager
def share_lock(folder: str | os.PathLike, what: str, share: str) -> Iterator[Path]:
    """Hold one share of `folder` (a sharded job's process: `share` such as "2-of-8"): the other
    shares work beside it, while a second process on the same share, or any command that holds
    the whole folder (`folder_lock`), is refused, and whole-folder commands are refused while any
    share works. The shares hold the folder's lock shared (`flock`), the whole-folder commands
    exclusively.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with share_lock(root, "tokenize", "0-of-2"), share_lock(root, "tokenize", "1-of-2"):
    ...     sorted(p.name for p in root.glob("*.owner.json"))
    ['.slamlib.0-of-2.owner.json', '.slamlib.1-of-2.owner.json']
    """
    import fcntl

    import filelock

    folder = Path(folder).resolve()
    if (folder, share) in _held_shares or any(f in _held or _held_for_us(f) for f in (folder, *folder.parents)):
        yield folder  # this process holds the share, or the whole folder, already
        return
    for around in folder.parents:
        if _in_use(around):
            raise _refuse(folder, around)
    folder.mkdir(parents=True, exist_ok=True)
    whole = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(whole, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(whole)
        raise _refuse(folder, folder) from None
    own = filelock.FileLock(folder / _share_name(share, "lock"), timeout=0)
    try:
        own.acquire()
    except filelock.Timeout:
        os.close(whole)
        raise FolderInUse(f"{folder}: share {share} is in use by {describe_owner(folder, share)}; wait for it"
                          " to finish (a process that was killed holds nothing)") from None
    owner = folder / _share_name(share, "owner.json")
    owner.write_text(json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}))
    _held_shares.add((folder, share))
    try:
        yield folder
    finally:
        _held_shares.discard((folder, share))
        with contextlib.suppress(OSError):
            owner.unlink()
        own.release()
        os.close(whole)  # drops the shared lock


def owner_env() -> dict[str, str]:
    """The environment entry that lets processes started on this one's behalf work in its folders."""
    return {OWNER_ENV: str(os.getpid())}
