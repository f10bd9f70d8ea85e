"""The whole tiny recipe, as a new user runs it, must learn.

`python -m slamlib run --profile tiny` executes notebooks 01-06 (synthesis, tokenization, text-LM
and speech-LM training, DPO, evaluation) once per test session (the `tiny_run` fixture, shared
with the notebook tests), and the floors the tiny profile is built to meet are checked on the
metrics.json it writes, on held-out sets of at least 1000 pairs each (the 95% interval at 1000
pairs is about 3 points; chance is 50):

- local grammar: sBLIMP-style at least 72 after DPO;
- story coherence: tStoryCloze-style at least 60 before DPO;
- DPO: held-out preference pairs (like the training pairs, never trained on) at least 10 points
  higher after DPO than before, and sBLIMP-style at most 3 points lower.

The tiny profile trains for fixed numbers of steps, so these hold on a slow machine as on a fast
one; only the time differs. README ("What the tiny run shows") reports what three seeds reach."""

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.notebook]


def test_the_tiny_recipe_learns(tiny_run):
    assert "[6/6] 06_evaluation.ipynb done" in tiny_run.result.stdout
    metrics = tiny_run.metrics()
    print(json.dumps({k: metrics[k] for k in ("benchmarks", "benchmarks_before_dpo", "preference_heldout",
                                              "total_seconds")}, indent=1))
    assert metrics["profile"] == "tiny"
    assert all(n >= 1000 for n in metrics["pairs"].values()) and metrics["preference_heldout"]["pairs"] >= 1000
    after, before = metrics["benchmarks"], metrics["benchmarks_before_dpo"]
    preference = metrics["preference_heldout"]
    assert after["sblimp"] >= 72, "sBLIMP-style: local grammar learned"
    assert before["tsc"] >= 60, "tStoryCloze-style: endings related to their stories"
    assert preference["after_dpo"] - preference["before_dpo"] >= 10, "DPO lifts held-out preference pairs"
    assert before["sblimp"] - after["sblimp"] <= 3, "DPO must not cost more than 3 points of sBLIMP-style"
    assert all(0 <= v <= 100 for v in [*after.values(), *before.values()])


def test_the_run_leaves_usable_models_and_a_results_table(tiny_run):
    metrics = tiny_run.metrics()
    for name in ("pretrained", "dpo"):
        assert (Path(metrics["models"][name]) / "config.json").exists()
    assert (tiny_run.root / "results.md").read_text().startswith("# Results: tiny profile")
    executed = sorted(p.name for p in (tiny_run.root / "notebooks").glob("*.ipynb"))
    assert len(executed) == 6 and len(metrics["seconds"]) == 6
    assert abs(sum(metrics["seconds"].values()) - metrics["total_seconds"]) < 1
