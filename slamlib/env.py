"""Create the pinned environment if it is missing, then run the tutorial or the tests.

This module uses the standard library only, so a fresh machine with nothing but Python 3.11
and pip can run it straight from the repository root:

    python3 -m slamlib.env tutorial   # the tiny profile end to end, offline, on CPU
    python3 -m slamlib.env test       # the test suite

It creates `.venv` (or `$SLAMLIB_VENV`), installs torch first with pip (so that no other package
pulls a different torch build), then everything else under `constraints.txt` with uv, and
records a stamp so that later calls skip installation until `constraints.txt` or
`pyproject.toml` change. Extra arguments are passed on: `python3 -m slamlib.env test -k units`,
`python3 -m slamlib.env tutorial --out DIR`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
STAMP_NAME = ".slamlib-installed"


def venv_dir() -> Path:
    return Path(os.environ.get("SLAMLIB_VENV", ROOT / ".venv")).resolve()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def pinned(name: str, constraints: Path = CONSTRAINTS) -> str:
    """The `name==version` line for one package in the constraints file."""
    for line in constraints.read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.strip()
    raise SystemExit(f"{constraints}: no pin for {name!r}")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (CONSTRAINTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(cmd: list[str]) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def ensure_environment() -> Path:
    """Return the environment's python, creating and installing the environment if needed."""
    if sys.version_info[:2] < (3, 11):
        raise SystemExit(f"slamlib needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    venv = venv_dir()
    python = venv_python(venv)
    stamp = venv / STAMP_NAME
    if python.exists() and stamp.exists() and stamp.read_text() == _fingerprint():
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", venv])
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    # torch first: installing anything that depends on torch into an empty environment would
    # otherwise pull the newest (CUDA) build instead of the pinned one. pip takes it, so that a
    # machine's own pip settings (a local copy of the wheel) apply.
    _run(pip + [pinned("torch"), pinned("uv")])
    # The rest with uv: the same pinned versions, installed in seconds instead of minutes; pip
    # where uv fails (no registry it can reach, say).
    rest = ["-c", CONSTRAINTS, "-e", f"{ROOT}[dev]"]
    try:
        _run([python, "-m", "uv", "pip", "install", "--python", python, *rest])
    except subprocess.CalledProcessError:
        print("uv failed; installing with pip instead", flush=True)
        _run(pip + rest)
    stamp.write_text(_fingerprint())
    return python


COMMANDS = {
    "tutorial": ["-m", "slamlib", "run", "--profile", "tiny"],
    "test": ["-m", "pytest"],
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"usage: python3 -m slamlib.env {{{'|'.join(COMMANDS)}}} [ARGS...]")
    python = ensure_environment()
    os.chdir(ROOT)
    cmd = [str(python), *COMMANDS[argv[0]], *argv[1:]]
    print("+", " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
