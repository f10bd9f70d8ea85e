"""The benchmark commands' CPU paths (their GPU paths run the same code with CUDA devices)."""

import numpy as np
import pytest
import torch

from slamlib.audio import audio_duration, list_audio_files, write_audio
from slamlib.bench import attention, ceilings, gpu, memory, precision, setup, tokenize
from slamlib.bench import profile as step_profile
from slamlib.train.attention import VARLEN


def test_ceilings_measure_a_matrix_product_and_a_copy():
    row = ceilings.bench_ceilings(["cpu"])["results"][0]
    assert row["dtype"] == "float32" and row["matmul_tflops square"] > 0 and row["copy_tb_per_s"] > 0


def test_profile_splits_a_step_by_kind_of_operation():
    result = step_profile.bench_profile("cpu", steps=1)
    categories = result["by_category_seconds_per_step"]
    assert {"matrix products", "attention", "cross-entropy"} <= set(categories)
    assert sum(categories.values()) == pytest.approx(result["cpu_seconds_per_step"], rel=0.01)
    assert result["top"] and result["top"][0]["seconds_per_step"] >= result["top"][-1]["seconds_per_step"]
    assert result["config"] == "tiny" and result["attention"] == VARLEN  # grouped by document length on a CPU


def test_attention_bench_checks_against_float64_and_times_three_paths():
    result = attention.bench_attention("cpu", repeats=1)
    assert result["within_tolerance"] and len(result["checks"]) == 3
    assert all(0 < c["out"] < 1e-5 and 0 < c["dq"] < 1e-5 for c in result["checks"])  # float32 against float64
    assert set(result["forward_backward_ms"]) == {"varlen (training's path)", "sdpa, block-diagonal mask",
                                                  "sdpa, causal rows (no documents)"}
    assert all(t > 0 for t in result["forward_backward_ms"].values()) and result["shape"]["documents"] >= 2


@pytest.mark.parametrize("name,category", [("aten::mm", "matrix products"), ("aten::addmm", "matrix products"),
                                           ("flash_fwd_kernel", "attention"), ("aten::_fused_adamw_", "optimizer and clipping"),
                                           ("aten::nll_loss_forward", "cross-entropy"),
                                           ("Memcpy HtoD (Pinned -> Device)", "copies to the device"),
                                           ("triton_poi_fused_add_mul_0", "compiled kernels"),
                                           ("aten::rsqrt", "elementwise, norms, other")])
def test_profile_categories(name, category):
    assert step_profile._category(name) == category


def test_bf16_follows_fp32_on_a_short_run():
    import dataclasses

    from slamlib.profiles import get_profile

    profile, n_units, model_cfg = setup.profile_for("cpu")
    cfg = dataclasses.replace(get_profile("tiny").train, context=256, batch_size=4)  # a quarter of the tokens
    docs = setup.bench_docs(n_units, 40, 256, tokens=cfg.context * cfg.batch_size * 30, learnable=True)
    curves = precision.precision_curves(model_cfg, n_units, docs, cfg, "cpu", steps=12)
    assert len(curves["fp32"]) == len(curves["bf16"]) == 12
    assert curves["fp32"] != curves["bf16"]  # bf16 really ran
    assert curves["loss_drop_fp32"] > 0.1 and curves["max_relative_difference"] < 0.02


def test_learnable_bench_documents_follow_a_sparse_chain():
    docs = setup.bench_docs(500, 20, 40, tokens=4000, learnable=True)
    pairs = {}
    for i in range(len(docs)):
        doc = docs[i][1:-1]
        for a, b in zip(doc[:-1], doc[1:]):
            pairs.setdefault(int(a), set()).add(int(b))
    assert max(len(v) for v in pairs.values()) <= 4 and docs[0][0] == docs[0][-1] == 1


def test_a_folder_of_audio_stands_in_for_speech(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.wav", "b.flac"):
        write_audio(tmp_path / "src" / name, (0.1 * rng.standard_normal(16000)).astype(np.float32))
    folder = tokenize.speech_folder(tmp_path / "bench", 3.5, source=tmp_path / "src")
    files = list_audio_files(folder)
    assert len(files) == 4 and sum(audio_duration(f) for f in files) == pytest.approx(4.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio"):
        tokenize.speech_folder(tmp_path / "x", 1, source=tmp_path / "empty")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_the_gpu_benchmarks_say_they_need_a_gpu():
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        gpu.bench_gpu()
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        memory.bench_memory()


def test_gpu_summary_names_failed_sections_and_the_numbers():
    report = {"machine": {"gpu": "NVIDIA H200", "torch": "2.11"}, "sections": {
        "ceilings": {"results": [{"matmul_tflops square": 790.0, "copy_tb_per_s": 4.3}], "section_seconds": 9.0},
        "train": {"results": [{"variant": "eager", "attention": "slamlib_varlen", "tokens_per_second": 150000,
                               "mfu": 0.34, "mfu_of_measured_matmul": 0.42, "peak_memory_gib": 17.2}],
                  "section_seconds": 60.0},
        "memory 24 GiB": {"fits": True, "peak_allocated_gib": 17.0, "peak_reserved_gib": 18.0, "section_seconds": 20.0},
        "tokenize": {"error": "ModuleNotFoundError: No module named 'soundfile'", "section_seconds": 0.1}}}
    text = gpu.gpu_summary(report)
    assert "tokenize: FAILED ModuleNotFoundError" in text and "150000 tokens/s, MFU 0.34" in text
    assert "memory 24 GiB: fits = True" in text and "matmul_tflops square 790.0" in text


def test_unit_changes_are_changed_frames_over_frames_and_edits_over_dedup_units():
    from slamlib.bench.unit_precision import edit_distance, unit_changes

    fp32 = [[4, 4, 7, 7, 7, 9], [1, 1, 1, 2]]
    bf16 = [[4, 7, 7, 7, 7, 9], [1, 3, 1, 2]]  # frame 2 moves a boundary; frame 8 flickers to unit 3
    changes = unit_changes(fp32, bf16)
    assert changes["frames"] == 10 and changes["frames_changed"] == 2 and changes["frames_changed_fraction"] == 0.2
    # dedup: [4, 7, 9] vs [4, 7, 9] (no edit) and [1, 2] vs [1, 3, 1, 2] (two insertions)
    assert changes["dedup_units"] == 5 and changes["dedup_edits"] == 2 and changes["dedup_edit_fraction"] == 0.4
    assert unit_changes(fp32, fp32)["frames_changed_fraction"] == 0.0
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2 and edit_distance([1, 2, 3], []) == 3
    with pytest.raises(ValueError, match="the same frames"):
        unit_changes([[1, 2]], [[1, 2, 2]])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_unit_precision_bench_on_a_tiny_encoder(precision):
    """fp32 against fp32 must change nothing; bf16 autocast (CPU) must move the features."""
    from conftest import tiny_hubert_config
    from transformers import HubertModel

    from slamlib.bench.unit_precision import bench_unit_precision

    torch.manual_seed(0)
    model = HubertModel(tiny_hubert_config()).eval()
    result = bench_unit_precision(seconds=3.0, fit_seconds=3.0, device="cpu", precision=precision, n_units=8,
                                  layer=2, model=model)
    assert {"device", "dtype", "audio_seconds", "frames", "frames_changed_fraction", "dedup_edit_fraction",
            "features_max_abs_diff", "encoder", "kmeans"} <= set(result)
    assert result["device"] == "cpu"
    assert result["frames"] == pytest.approx(25 * result["audio_seconds"], abs=2 * result["utterances"])
    assert result["frames_changed_fraction"] == result["frames_changed"] / result["frames"]
    if precision == "fp32":
        assert result["dtype"] == "float32"
        assert result["frames_changed_fraction"] == 0.0 == result["dedup_edit_fraction"]
        assert result["features_max_abs_diff"] == 0.0
    else:
        assert result["dtype"] == "bfloat16" and "CPU bf16 autocast" in result["compared"]
        assert 0 < result["features_max_abs_diff"] < result["features_max_abs_fp32"]
        assert 0.0 <= result["frames_changed_fraction"] <= 1.0 and 0.0 <= result["dedup_edit_fraction"]


def test_long_file_memory_processes_and_agreement_benches():
    """Small sizes of `bench tokenize --part memory|processes|agreement`: each part measures what it says."""
    from slamlib.bench import long_audio

    memory = long_audio.bench_memory("cpu", logmel_minutes=(0.25, 1.5), hubert_minutes=(), whole_up_to={"logmel": 0.25})
    rows = {(r["minutes"], r["mode"]): r for r in memory["rows"]}
    assert set(rows) == {(0.25, "windowed"), (0.25, "whole"), (1.5, "windowed")}
    assert all(r["peak_rss_mb"] >= r["rss_before_mb"] > 0 and r["units"] > 0 for r in rows.values())
    # 1.5 minutes is above the 60 s window: encoded window by window, the same units a second as whole
    assert rows[(1.5, "windowed")]["units"] / 90 == pytest.approx(rows[(0.25, "whole")]["units"] / 15, rel=0.1)
    assert set(memory["growth_windowed"]) == {"logmel"}

    processes = long_audio.bench_processes(minutes=2)
    assert processes["same_rows"] and processes["1_process_seconds"] > 0 and processes["2_process_seconds"] > 0

    agreement = long_audio.bench_agreement(seconds=25.0, windows=(10.0,), overlaps=(0.0, 4.0),
                                           encoders=("logmel", "standin"))  # the full-size HuBERT: the same code
    by = {(r["encoder"], r["overlap_seconds"]): r for r in agreement["rows"]}
    assert len(by) == 4 and all(r["frames"] > 0 for r in by.values())
    assert by[("logmel (tiny)", 0.0)]["agreement"] == 1.0  # log-mel windows are exact, with or without overlap
    assert by[("logmel (tiny)", 4.0)]["agreement"] == 1.0
