import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slamlib.audio import write_audio

ROOT = Path(__file__).resolve().parent.parent


def slamlib_cli(*args, cwd=ROOT):
    env = {**os.environ, "SLAMLIB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "slamlib", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
    return result, json.loads(last)


def test_tokenize_folder_prints_json_summary_and_resumes(tmp_path, speech):
    for i, (_, _, wav) in enumerate(speech * 2):
        write_audio(tmp_path / "audio" / f"u{i}.flac", wav)
    (tmp_path / "audio" / "bad.wav").write_bytes(b"garbage")
    (tmp_path / "audio" / "notes.txt").write_text("a transcript, not audio")
    out = tmp_path / "units"
    result, summary = slamlib_cli("tokenize", str(tmp_path / "audio"), "--out", str(out), "--quiet",
                                  "--set", "tokenizer.n_units=16")
    assert result.returncode == 0, result.stderr
    assert summary["command"] == "tokenize" and summary["tokenized"] == 8
    assert [b["id"] for b in summary["bad"]] == ["bad"] and "bad.wav" in result.stderr
    notes = str(tmp_path / "audio" / "notes.txt")
    assert summary["skipped"] == [{"source": notes, "reason": "not an audio file (.txt)"}]
    assert f"not audio, so not tokenized (1 files, listed in {out / 'bad_audio.json'}): {notes}" in result.stderr
    listed = json.loads((out / "bad_audio.json").read_text())
    assert [(b["source"].rsplit("/", 1)[1], b.get("skipped", False)) for b in listed] == [("bad.wav", False),
                                                                                           ("notes.txt", True)]
    assert (out / "speech_tokenizer" / "speech_tokenizer.json").exists()
    result, again = slamlib_cli("tokenize", str(tmp_path / "audio"), "--out", str(out), "--quiet",
                                "--set", "tokenizer.n_units=16")
    assert again["tokenized"] == 0 and again["already_done"] == 8


def test_tokenize_hub_dataset_offline_fails_clearly(tmp_path):
    result, summary = slamlib_cli("tokenize", "openslr/librispeech_asr", "--out", str(tmp_path / "u"),
                                  "--profile", "slam")
    assert result.returncode == 1
    assert "openslr/librispeech_asr" in summary["error"] and "hf download" in summary["error"]
    assert "Traceback" not in result.stderr


def test_profile_command():
    result, summary = slamlib_cli("profile", "slam", "--set", "tokenizer.n_units=100")
    assert result.returncode == 0 and summary == {"profile": "slam"}
    assert '"n_units": 100' in result.stdout and "mhubert-base-25hz" in result.stdout


def test_bench_tokenize_reports_speed():
    from slamlib.bench.tokenize import bench_tokenize

    report = bench_tokenize(seconds=3, devices=["cpu"])
    assert {r["tokenizer"] for r in report["results"]} == {"logmel+kmeans500 (tiny)", "hubert25hz+kmeans500"}
    for row in report["results"]:
        assert row["audio_seconds"] >= 3 and row["x_realtime_end_to_end"] > 0 and row["x_realtime_compute"] > 0
    assert "cpu" in report["machine"]


def test_hubert_speech_tokenizer_from_a_local_encoder(tiny_hubert_dir, tmp_path, speech):
    """The slam-style path (HuBERT + a k-means file in the official format) with local fixtures."""
    import joblib
    from sklearn.cluster import KMeans as SkKMeans

    for i, (_, _, wav) in enumerate(speech):
        write_audio(tmp_path / "audio" / f"u{i}.wav", wav)
    joblib.dump(SkKMeans(8, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(64, 32))),
                tmp_path / "km8.bin")
    result, summary = slamlib_cli(
        "tokenize", str(tmp_path / "audio"), "--out", str(tmp_path / "units"), "--profile", "slam", "--quiet",
        "--device", "cpu", "--set", f"tokenizer.features.model={tiny_hubert_dir}",
        "--set", "tokenizer.features.layer=2", "--set", "tokenizer.n_units=8",
        "--set", f"tokenizer.kmeans={tmp_path / 'km8.bin'}", "--trust-pickle",  # our own pickle: trusted
    )
    assert result.returncode == 0, result.stderr
    assert summary["tokenized"] == 4 and 15 < summary["units_per_second"] <= 25


def test_slam_console_script_is_the_same_cli():
    script = Path(sys.executable).parent / "slam"
    assert script.exists(), "the package's console script is not installed"
    result = subprocess.run([str(script), "profile", "tiny"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout.strip().splitlines()[-1]) == {"profile": "tiny"}


@pytest.mark.slow
def test_bench_train_reports_throughput_beside_transformers_trainer():
    from slamlib.bench.train import bench_train, train_flops_per_token

    # eager only: compiling costs tens of seconds here, and tests/test_train.py checks compiled training
    report = bench_train(devices=["cpu"], steps=1, compare=True, micro_batches=[4])
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"eager", "4 x 2", "transformers Trainer + DataCollatorWithFlattening"}
    assert rows["4 x 2"]["micro_batch"] == 4 and rows["4 x 2"]["grad_accum"] == 2
    assert all(r["tokens_per_second"] > 0 for r in rows.values())
    assert rows["eager"]["config"] == "tiny" and rows["eager"]["attention"] == "slamlib_varlen"
    baseline = rows["transformers Trainer + DataCollatorWithFlattening"]
    best = max(r["tokens_per_second"] for name, r in rows.items() if r is not baseline)
    assert baseline["best_of_ours_over_this"] == round(best / baseline["tokens_per_second"], 2)
    # the paper model: 6 N plus attention; at context 1024 attention adds about 0.13 GFLOP a token
    flops = train_flops_per_token(358_347_904, 24, 896, [1024])
    assert abs(flops - (6 * 358_347_904 + 6 * 24 * 896 * 1024)) < 1
    assert 2.2e9 < flops < 2.4e9


def test_figures_command_makes_small_copies_of_a_runs_figures(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from slamlib.plots import README_FIGURES

    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    for name in README_FIGURES:
        fig, ax = plt.subplots(figsize=(12, 4), dpi=120)
        ax.plot(np.arange(100) ** 0.5)
        fig.savefig(run / "figures" / f"{name}.png")
        plt.close(fig)
    result, summary = slamlib_cli("figures", str(run), "--out", str(tmp_path / "docs"))
    assert result.returncode == 0, result.stderr
    from PIL import Image

    for path in summary["figures"]:
        image = Image.open(path)
        assert image.width == 800 and Path(path).stat().st_size < (run / "figures" / Path(path).name).stat().st_size
    assert len(summary["figures"]) == len(README_FIGURES)
    result, _ = slamlib_cli("figures", str(tmp_path / "no-run"), "--out", str(tmp_path / "docs"))
    assert result.returncode != 0 and "run the tutorial into it first" in result.stderr


def test_run_checks_its_overrides_before_the_first_notebook(tmp_path):
    result, summary = slamlib_cli("run", "--profile", "slam", "--out", str(tmp_path / "run"),
                                  "--set", "data.hub.libri.rows=8")
    assert result.returncode == 1 and "no setting 'data.hub.libri.rows'" in summary["error"]
    assert "librispeech" in summary["error"] and not (tmp_path / "run" / "notebooks").exists()
    result, summary = slamlib_cli("run", "--profile", "tiny", "--out", str(tmp_path / "run"), "--set", "seed=3")
    assert result.returncode == 1 and "--seed" in summary["error"]
