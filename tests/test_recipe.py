"""The one long test: the whole tiny recipe, as a new user runs it, must learn.

`python -m slamlib run --profile tiny` executes notebooks 01-06 (synthesis, tokenization, text-LM
and speech-LM training, DPO, evaluation) and what the tiny profile achieves is checked on the
metrics.json it writes, on held-out sets of at least 1000 pairs each: local grammar well above
chance and DPO costing it no more than 5 points. The profile's floor for sBLIMP-style is 70 (50 is
chance); it reaches 73 on 2 cores, and pretraining is a wall-clock budget, so a slower machine
trains fewer steps: the test asks for 65, well outside chance (the 95% interval at 1000 pairs is
about 3 points). Story coherence (tStoryCloze-style) and DPO's effect on held-out preference pairs are
reported by the run but not yet at the level the recipe aims for (README: "What the tiny run
shows"), so they are not asserted here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.notebook
def test_the_tiny_recipe_learns(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "SLAMLIB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "slamlib", "run", "--profile", "tiny", "--out", str(run_dir)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=40 * 60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[6/6] 06_evaluation.ipynb done" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(json.dumps({k: metrics[k] for k in ("benchmarks", "benchmarks_before_dpo", "preference_heldout",
                                              "total_seconds")}, indent=1))
    assert metrics["profile"] == "tiny"
    assert all(n >= 1000 for n in metrics["pairs"].values()) and metrics["preference_heldout"]["pairs"] >= 1000
    after, before = metrics["benchmarks"], metrics["benchmarks_before_dpo"]
    assert after["sblimp"] >= 65, "sBLIMP-style: local grammar learned"
    assert before["sblimp"] - after["sblimp"] <= 5, "DPO must not cost more than 5 points of sBLIMP-style"
    assert all(0 <= v <= 100 for v in [*after.values(), *before.values()])
    assert metrics["total_seconds"] < 20 * 60
    # what the run leaves behind is usable: the models evaluate through the command line
    for name in ("pretrained", "dpo"):
        assert (Path(metrics["models"][name]) / "config.json").exists()
    assert (run_dir / "results.md").read_text().startswith("# Results: tiny profile")
    executed = sorted(p.name for p in (run_dir / "notebooks").glob("*.ipynb"))
    assert len(executed) == 6 and len(metrics["seconds"]) == 6
