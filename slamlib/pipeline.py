"""Run the tutorial notebooks in order with papermill, sharing one profile and run folder.

Each notebook is executed in a fresh kernel of the running Python (a kernel spec written for
this interpreter, so a `python3` kernel installed elsewhere can never be picked up by mistake)
and its executed copy is kept in `RUN_DIR/notebooks/`, also when it fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from slamlib.locks import folder_lock, owner_env
from slamlib.runs import REPO_ROOT, RunDir

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_tokenization.ipynb", "02_model_initialization.ipynb", "03_synthetic_data.ipynb",
             "04_packed_pretraining.ipynb", "05_dpo.ipynb", "06_evaluation.ipynb")
KERNEL_NAME = "slamlib-python"


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the cell (its `In [n]` number and first line) and
    where the executed copy, with the traceback in it, was kept."""

    def __init__(self, notebook: str, cell: int | None, source: str, detail: str, executed: Path):
        first_line = next((line for line in source.splitlines() if line.strip()), "")
        super().__init__(
            f"{notebook} failed in cell In [{cell}] ({first_line.strip()[:80]}): {detail}\n"
            f"executed copy kept at {executed}"
        )
        self.notebook, self.cell, self.executed = notebook, cell, executed


@contextmanager
def _kernel_for_this_python(run: RunDir):
    """Make a kernel spec named KERNEL_NAME that starts this interpreter, visible to papermill."""
    spec_dir = run.path(".jupyter", "kernels", KERNEL_NAME, "kernel.json").parent
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.log_level=ERROR"],  # not the TCP-transport notice on every start
        "display_name": "Python (slamlib)",
        "language": "python",
        # progress bars are for people watching, not for batch runs; no browser shows the widgets
        # either, so each explorer also renders its first selection as plain output (slamlib.explore)
        # and the kernel works inside the run folder that this process holds (slamlib.locks)
        "env": {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                "SLAMLIB_STATIC": "1", **owner_env()},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(run.root / ".jupyter"), old]))
    try:
        yield KERNEL_NAME
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def run_notebook(name: str, run_dir: str | os.PathLike, parameters: dict | None = None,
                 timeout: int | None = None) -> Path:
    """Execute notebooks/<name> into RUN_DIR/notebooks/<name>; raise NotebookFailed on error."""
    import papermill

    run = RunDir(run_dir)
    source = NOTEBOOK_DIR / name
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such notebook")
    executed = run.path("notebooks", name)
    params = {"RUN_DIR": str(run.root), **(parameters or {})}
    with _kernel_for_this_python(run) as kernel:
        try:
            papermill.execute_notebook(
                str(source), str(executed), parameters=params, kernel_name=kernel, cwd=str(NOTEBOOK_DIR),
                progress_bar=False, execution_timeout=timeout,
            )
        except papermill.PapermillExecutionError as err:
            raise NotebookFailed(name, err.exec_count, err.source, f"{err.ename}: {err.evalue}", executed) from None
    return executed


def _declared_parameters(name: str) -> set[str]:
    """The names a notebook's `parameters` cell assigns."""
    import papermill

    return set(papermill.inspect_notebook(str(NOTEBOOK_DIR / name)))


def run_tutorial(profile: str, run_dir: str | os.PathLike, notebooks: Sequence[str] = NOTEBOOKS,
                 parameters: dict | None = None, overrides: dict[str, str] | None = None) -> dict:
    """Run notebooks in order, one line per notebook, then write RUN_DIR/metrics.json and
    results.md (when the evaluation notebook ran). Returns the run's metrics.

    `overrides` (dotted profile keys, as `--set` gives them) reach every notebook as its
    `OVERRIDES` parameter and are recorded in metrics.json."""
    with folder_lock(run_dir, f"slamlib run --profile {profile}"):
        return _run_tutorial(profile, RunDir(run_dir), notebooks, parameters, overrides)


def _run_tutorial(profile: str, run: RunDir, notebooks: Sequence[str], parameters: dict | None,
                  overrides: dict[str, str] | None) -> dict:
    overrides = dict(overrides or {})
    seconds = {}
    for i, name in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {name} ...", flush=True)
        start = time.perf_counter()
        given = {"PROFILE": profile, "OVERRIDES": overrides, **(parameters or {})}
        declared = _declared_parameters(name)  # INIT is notebook 04's alone: the others are not given it
        run_notebook(name, run.root, {k: v for k, v in given.items() if k in declared})
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"[{i}/{len(notebooks)}] {name} done in {seconds[name]} s", flush=True)
    from slamlib.provenance import provenance

    metrics = run_metrics(run, profile, seconds, overrides)
    metrics["parameters"] = dict(parameters or {})
    metrics["provenance"] = provenance(run.root)  # versions, machine, content hashes of what the run made
    results_md = metrics.pop("results_md", None)
    (run.root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if results_md is not None:
        (run.root / "results.md").write_text(results_md)
    return metrics


def run_metrics(run: RunDir, profile: str, seconds: dict, overrides: dict | None = None) -> dict:
    """The run's headline numbers, gathered from the notebooks' metrics files."""
    metrics: dict = {"profile": profile, "overrides": dict(overrides or {}), "run_dir": str(run.root),
                     "seconds": seconds, "total_seconds": round(sum(seconds.values()), 1)}
    evaluation = run.root / "metrics" / "06_evaluation.json"
    if not evaluation.exists():
        return metrics
    evaluated = json.loads(evaluation.read_text())
    results = evaluated["results"]
    if not {"DPO", "pretrained"} <= set(results):  # notebook 06 evaluated another model (MODEL)
        raise ValueError(f"{evaluation} holds the results of {sorted(results)}, not this run's pretrained and "
                         "DPO models: run notebooks/06_evaluation.ipynb again without MODEL")
    dpo, pretrained = results["DPO"], results["pretrained"]

    def accuracies(result):
        return {name: round(r["accuracy"], 2) for name, r in result["benchmarks"].items()}

    metrics.update(
        benchmarks=accuracies(dpo), benchmarks_before_dpo=accuracies(pretrained),
        intervals95={name: round(r["interval95"], 2) for name, r in dpo["benchmarks"].items()},
        pairs={name: r["pairs"] for name, r in dpo["benchmarks"].items()},
        models={"pretrained": evaluated["models"]["pretrained"], "dpo": evaluated["models"]["DPO"]},
    )
    if "preference_heldout" in dpo:
        metrics["preference_heldout"] = {"before_dpo": round(pretrained["preference_heldout"]["accuracy"], 2),
                                         "after_dpo": round(dpo["preference_heldout"]["accuracy"], 2),
                                         "pairs": dpo["preference_heldout"]["pairs"]}
    from slamlib.evaluate import changes

    table = changes(pretrained, dpo)  # paired: the same pairs before and after DPO
    metrics["dpo_change"] = {("preference_heldout" if name == "held-out preference pairs" else name):
                             {"change": float(row.change), "interval95": float(row.interval95)}
                             for name, row in table.iterrows()}
    if "generation" in evaluated:  # GenPPL and both Auto-BLEUs of the DPO model's continuations
        metrics["generation"] = {k: v for k, v in evaluated["generation"].items() if not isinstance(v, (list, dict))}
    for step in ("02_model_initialization", "04_packed_pretraining", "05_dpo"):
        path = run.root / "metrics" / f"{step}.json"
        if path.exists():
            metrics.setdefault("steps", {})[step] = {k: v for k, v in json.loads(path.read_text()).items()
                                                     if isinstance(v, (int, float, str))}
    metrics["results_md"] = results_markdown(metrics, results)
    return metrics


def results_markdown(metrics: dict, results: dict) -> str:
    """results.md: this run's models beside the paper's rows, with intervals and timings."""
    from slamlib.report import results_table, to_markdown

    minutes = metrics["total_seconds"] / 60
    table = results_table({"pretrained (this run)": results["pretrained"], "DPO (this run)": results["DPO"]},
                          hardware=f"{metrics['profile']} profile, {minutes:.1f} min")
    lines = [f"# Results: {metrics['profile']} profile", "", to_markdown(table),
             "Accuracies in percent; this run's rows use the profile's own held-out sets "
             f"({', '.join(f'{k}: {v} pairs' for k, v in metrics['pairs'].items())}), "
             "so they are not the paper's benchmarks.", "",
             "| benchmark | before DPO | after DPO | 95% interval | change with DPO (paired 95% interval) |",
             "|---|---|---|---|---|"]
    change = {name: f"{c['change']:+.1f} ± {c['interval95']:.1f}" for name, c in metrics["dpo_change"].items()}
    for name, after in metrics["benchmarks"].items():
        lines.append(f"| {name} | {metrics['benchmarks_before_dpo'][name]} | {after} | ±{metrics['intervals95'][name]} "
                     f"| {change.get(name, '')} |")
    if "preference_heldout" in metrics:
        p = metrics["preference_heldout"]
        lines.append(f"| held-out preference pairs | {p['before_dpo']} | {p['after_dpo']} | ({p['pairs']} pairs) "
                     f"| {change.get('preference_heldout', '')} |")
    lines += ["", "| notebook | seconds |", "|---|---|"]
    lines += [f"| {name} | {sec} |" for name, sec in metrics["seconds"].items()]
    lines.append(f"| total | {metrics['total_seconds']} |")
    return "\n".join(lines) + "\n"
