"""The `slam` profile end to end, offline: `python -m slamlib run --profile slam` over the stand-ins
of its hub assets (`slamlib.standins`), sizes turned down by `--set` only, through every slam-only
branch of notebooks 01-06; and a published SlamKit checkpoint through `eval`, `generate` and
notebook 06's `MODEL`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slamlib.standins import N_SALMON, N_SBLIMP_IDS, N_STORYCLOZE, SALMON_PARTS, slam_overrides
from slamlib.standins.speech import _SWUGGY_WORDS

N_SWUGGY_WORDS = len(_SWUGGY_WORDS)

ROOT = Path(__file__).resolve().parent.parent  # the repository: also a fresh clone, not installed
STEPS = 2  # pretraining and DPO steps: enough to write every file, not to learn anything


def slamlib_cli(*args, timeout=300) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "SLAMLIB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "agg"}
    result = subprocess.run([sys.executable, "-m", "slamlib", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
    return result, json.loads(last)


def set_args(overrides: dict[str, str]) -> list[str]:
    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]


def tokenizer_args(standins) -> list[str]:
    """What a published checkpoint needs from the profile: the speech tokenizer and the vocoder."""
    pinned = slam_overrides(standins)["tokenizer.kmeans_sha256"]  # the stand-in k-means is a pickle
    return set_args({"tokenizer.features.model": str(standins.hubert), "tokenizer.kmeans": str(standins.kmeans),
                     "tokenizer.kmeans_sha256": pinned, "eval.hifigan_checkpoint": str(standins.hifigan_checkpoint),
                     "eval.hifigan_config": str(standins.hifigan_config)})


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# --- the tutorial, end to end --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slam_run(standins, tmp_path_factory):
    out = tmp_path_factory.mktemp("slam") / "run"
    overrides = slam_overrides(standins, steps=STEPS)
    result, summary = slamlib_cli("run", "--profile", "slam", "--out", str(out), *set_args(overrides),
                                  timeout=30 * 60)
    if result.returncode != 0:
        pytest.fail("the slam tutorial failed on the stand-ins:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    return out, overrides, json.loads((out / "metrics.json").read_text())


def test_librilight_is_cut_tokenized_and_pretrained_on(slam_run, standins):
    """The stand-in's Libri-Light layout goes through notebook 03 into units/librilight (utterances
    named by file and span), notebook 04 pretrains on it with the other corpora, and notebook 01
    shows its first file encoded window by window (20 s windows here)."""
    from slamlib.data.librilight import librilight_items
    from slamlib.standins import LIBRILIGHT_FILES
    from slamlib.tokenization.corpus import read_units

    out, _, _ = slam_run
    items, _ = librilight_items(standins.librilight)
    ids = sorted(read_units(out / "units" / "librilight", columns=["id"])["id"])
    assert ids == sorted(i.id for i in items) and len(ids) >= len(LIBRILIGHT_FILES)
    pretraining = json.loads((out / "metrics" / "04_packed_pretraining.json").read_text())
    assert pretraining["corpora"] == ["librispeech", "stinystories", "librilight"]
    tokenization = json.loads((out / "metrics" / "01_tokenization.json").read_text())
    assert tokenization["long_file_agreement"] >= 0.99
    assert (out / "figures" / "01_long_file.png").exists()


@pytest.mark.slow
def test_every_benchmark_scored_on_its_official_layout(slam_run, standins):
    out, overrides, metrics = slam_run
    assert metrics["profile"] == "slam" and metrics["overrides"] == overrides
    # no pairs.csv anywhere: the official folders were read (sBLIMP averages its 2 voices per id)
    assert not any((getattr(standins, b) / "pairs.csv").exists() for b in ("sblimp", "swuggy", "ssc", "tsc", "salmon"))
    expected = {"sblimp": N_SBLIMP_IDS, "swuggy": N_SWUGGY_WORDS, "ssc": N_STORYCLOZE, "tsc": N_STORYCLOZE,
                "salmon": len(SALMON_PARTS) * N_SALMON}
    assert metrics["pairs"] == expected
    for results in (metrics["benchmarks"], metrics["benchmarks_before_dpo"]):
        assert set(results) == set(expected) and all(0 <= v <= 100 for v in results.values())
    evaluated = json.loads((out / "metrics" / "06_evaluation.json").read_text())
    dpo = evaluated["results"]["DPO"]["benchmarks"]
    assert set(dpo["salmon"]["breakdown"]) == set(SALMON_PARTS)
    assert dpo["salmon"]["breakdown_pairs"] == {part: N_SALMON for part in SALMON_PARTS}
    # sWUGGY as ZeroSpeech's lexical scorer reports it: one word "sailor" is out of LibriSpeech's vocabulary
    assert dpo["swuggy"]["breakdown_pairs"]["in-vocabulary"] == N_SWUGGY_WORDS - 1
    assert dpo["swuggy"]["breakdown_pairs"]["OOV"] == dpo["swuggy"]["breakdown_pairs"]["frequency oov"] == 1
    assert evaluated["results"]["DPO"]["missing"] == {}
    # the results table: SALMon's parts and sWUGGY's in-vocabulary and OOV halves beside their pooled numbers
    header = evaluated["paper_table"].splitlines()[0]
    assert all(f"salmon {part}" in header for part in SALMON_PARTS) and "swuggy in-vocabulary" in header


@pytest.mark.slow
def test_genppl_and_both_auto_bleus_are_numbers(slam_run):
    _, _, metrics = slam_run
    generation = metrics["generation"]
    assert generation["computed"] is True and generation["samples"] == 2, generation
    assert finite(generation["auto_bleu"]) and finite(generation["auto_bleu_gslm"]), generation
    assert generation["scored"] >= 1 and finite(generation["genppl"]) and generation["genppl"] > 0, generation


@pytest.mark.slow
def test_models_load_with_transformers_and_dpo_used_the_papers_settings(slam_run):
    from transformers import AutoModelForCausalLM

    out, _, metrics = slam_run
    for folder in ("pretrained", "dpo"):
        model = AutoModelForCausalLM.from_pretrained(out / "models" / folder)
        assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.vocab_size == 502
        assert (out / "models" / folder / "speech_tokenizer" / "speech_tokenizer.json").exists()
    pretraining, dpo = metrics["steps"]["04_packed_pretraining"], metrics["steps"]["05_dpo"]
    assert pretraining["steps"] == STEPS and dpo["steps"] == STEPS
    # what TRL trained with (paper Table 5, SlamKit's schedule): beta 0.1, lr 5e-5, constant after warmup
    assert (dpo["beta"], dpo["learning_rate"], dpo["lr_scheduler"]) == (0.1, 5e-5, "constant_with_warmup")
    assert finite(dpo["first_loss"]) and finite(dpo["final_loss"])


# --- a published checkpoint ---------------------------------------------------------------------------

def test_published_checkpoint_evaluates_through_the_cli(standins, tmp_path):
    """A SlamKit UnitLM folder (and the same network as a plain transformers folder) has no speech
    tokenizer of its own: `eval` builds the profile's (slam by default). Both score every file alike."""
    scores = {}
    for model in (standins.speech_lm, standins.speech_lm_plain):
        assert not (model / "speech_tokenizer").exists()
        pairs = tmp_path / f"{model.name}.csv"
        result, summary = slamlib_cli("eval", "--model", str(model), "--benchmark", "sblimp", "--pairs-out", str(pairs),
                                      "--data", str(standins.sblimp), "--quiet", *tokenizer_args(standins))
        assert result.returncode == 0, result.stderr[-3000:]
        assert summary["pairs"] == N_SBLIMP_IDS and 0 <= summary["accuracy"] <= 100
        scores[model.name] = pairs.read_text()
    assert scores[standins.speech_lm.name] == scores[standins.speech_lm_plain.name]
    result, summary = slamlib_cli("eval", "--model", str(standins.speech_lm), "--benchmark", "swuggy", "--data",
                                  str(standins.swuggy), "--quiet", *tokenizer_args(standins))
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["pairs"] == N_SWUGGY_WORDS and summary["breakdown_pairs"]["OOV"] == 1


def test_export_writes_a_unitlm_folder_that_evaluates_alike(standins, tmp_path):
    out = tmp_path / "exported"
    result, summary = slamlib_cli("export", "--format", "slamkit", str(standins.speech_lm_plain), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["model_type"] == "speech_language_model" and summary["files"] == [
        "config.json", "generation_config.json", "model.safetensors"]
    result, again = slamlib_cli("export", "--format", "slamkit", str(standins.speech_lm_plain), str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr and str(out) in again["error"]


def test_published_checkpoint_generates_through_the_cli(standins, tmp_path):
    prompt = sorted(standins.ssc.glob("*_correct.wav"))[0]
    out = tmp_path / "continued.wav"
    result, summary = slamlib_cli("generate", "--model", str(standins.speech_lm), "--prompt", str(prompt),
                                  "--out", str(out), "--seconds", "1", "--max-new-tokens", "8",
                                  *tokenizer_args(standins))
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.exists() and summary["prompt_units"] > 0 and 0 < summary["new_units"] <= 8
    assert summary["continuation_seconds"] > 0 and not summary["silent"]


def test_a_checkpoint_without_a_speech_tokenizer_needs_a_pretrained_kmeans(standins):
    """The tiny profile fits its k-means on speech, so it cannot give a published checkpoint units: say so."""
    result, summary = slamlib_cli("eval", "--model", str(standins.speech_lm), "--benchmark", "sblimp",
                                  "--data", str(standins.sblimp), "--profile", "tiny", "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(standins.speech_lm) in summary["error"] and "tokenizer.kmeans" in summary["error"], summary


@pytest.mark.slow
def test_notebook_06_evaluates_a_published_checkpoint(standins, tmp_path):
    from slamlib.pipeline import run_notebook

    overrides = slam_overrides(standins, steps=STEPS)
    run_notebook("06_evaluation.ipynb", tmp_path / "run",
                 {"PROFILE": "slam", "MODEL": str(standins.speech_lm), "OVERRIDES": overrides})
    evaluated = json.loads((tmp_path / "run" / "metrics" / "06_evaluation.json").read_text())
    assert list(evaluated["results"]) == [str(standins.speech_lm)]
    assert evaluated["generated_by"] == str(standins.speech_lm)
    benchmarks = evaluated["results"][str(standins.speech_lm)]["benchmarks"]
    assert set(benchmarks) == {"sblimp", "swuggy", "ssc", "tsc", "salmon"}
    assert evaluated["generation"]["computed"] and finite(evaluated["generation"]["auto_bleu"])
