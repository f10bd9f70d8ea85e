"""The one long test: the whole tiny recipe, as a new user runs it, must learn.

`python -m slamlib run --profile tiny` executes notebooks 01-06 (synthesis, tokenization, text-LM
and speech-LM training, DPO, evaluation), and the floors the tiny profile is built to meet are
checked on the metrics.json it writes, on held-out sets of at least 1000 pairs each (the 95%
interval at 1000 pairs is about 3 points; chance is 50):

- local grammar: sBLIMP-style at least 70;
- story coherence: tStoryCloze-style at least 55;
- DPO: held-out preference pairs (like the training pairs, never trained on) at least 5 points
  higher after DPO than before, and sBLIMP-style at most 5 points lower.

The tiny profile trains for fixed numbers of steps, so these hold on a slow machine as on a fast
one; only the time differs (about 20 minutes on the slower of our 2-core machines), and the whole
run must stay under 25 minutes.

README ("What the tiny run shows") reports what three seeds reach on 2 CPU cores."""

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
    preference = metrics["preference_heldout"]
    assert after["sblimp"] >= 70, "sBLIMP-style: local grammar learned"
    assert after["tsc"] >= 55, "tStoryCloze-style: endings related to their stories"
    assert preference["after_dpo"] - preference["before_dpo"] >= 5, "DPO lifts held-out preference pairs"
    assert before["sblimp"] - after["sblimp"] <= 5, "DPO must not cost more than 5 points of sBLIMP-style"
    assert all(0 <= v <= 100 for v in [*after.values(), *before.values()])
    assert metrics["total_seconds"] < 25 * 60
    # what the run leaves behind is usable: the models evaluate through the command line
    for name in ("pretrained", "dpo"):
        assert (Path(metrics["models"][name]) / "config.json").exists()
    assert (run_dir / "results.md").read_text().startswith("# Results: tiny profile")
    executed = sorted(p.name for p in (run_dir / "notebooks").glob("*.ipynb"))
    assert len(executed) == 6 and len(metrics["seconds"]) == 6
