"""The run folder: where every notebook reads its inputs and writes its products.

    RUN_DIR/
      metrics/NN_step.json     each notebook's metrics (the tests and later notebooks read these)
      figures/NN_*.png         every figure a notebook shows
      notebooks/               executed copies (written by `python -m slamlib run`)
      speech_tokenizer/, audio/, units/, ...   the products of each step

A relative RUN_DIR is taken relative to the repository root, so a notebook means the same folder
whether JupyterLab, papermill or a script runs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class MissingStepError(FileNotFoundError):
    """An earlier step's output is missing from the run folder."""


class RunDir:
    def __init__(self, path: str | os.PathLike):
        path = Path(path).expanduser()
        self.root = (path if path.is_absolute() else REPO_ROOT / path).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (its parent folder is created)."""
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def folder(self, *parts: str) -> Path:
        """A folder inside the run folder, created if missing."""
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, relative: str, notebook: str) -> Path:
        """The path of an earlier step's output, or a clear error naming the notebook to run first."""
        path = self.root / relative
        if not path.exists():
            raise MissingStepError(
                f"{path} is missing: run notebooks/{notebook} first with RUN_DIR={self.root}"
            )
        return path

    def write_metrics(self, step: str, metrics: dict) -> Path:
        """RUN_DIR/metrics/STEP.json, whole or not at all; with the commits of the hub models and
        datasets this process fetched (`hub_revisions`), when it fetched any."""
        from slamlib.hub import resolved

        if resolved():
            metrics = {**metrics, "hub_revisions": {**metrics.get("hub_revisions", {}), **resolved()}}
        path = self.path("metrics", f"{step}.json")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(metrics, indent=2, default=_jsonable) + "\n")
        os.replace(tmp, path)
        return path

    def read_metrics(self, step: str) -> dict:
        return json.loads(self.require(f"metrics/{step}.json", f"{step}.ipynb").read_text())

    def save_figure(self, fig, name: str) -> Path:
        path = self.path("figures", f"{name}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return path


def _jsonable(value):
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
