import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_arch

from slamlib.audio import load_audio, write_audio
from slamlib.data.benchmarks import BenchmarkFormatError, read_pairs, write_pairs
from slamlib.evaluate import (
    continue_units,
    evaluate_benchmark,
    generate_continuation,
    generative_metrics,
    interval95,
    pair_accuracy,
    preference_accuracy,
    sequence_scores,
    summarize_pairs,
    unit_repetition,
)
from slamlib.model import init_speech_lm, save_speech_lm
from slamlib.profiles import GenerationConfig, ModelConfig, get_profile
from slamlib.report import PAPER_ROWS, results_table, to_markdown
from slamlib.vocoders.load import load_vocoder

ARCH = tiny_arch(vocab_size=40, max_position_embeddings=512)


@pytest.fixture(scope="module")
def model():
    return init_speech_lm(ModelConfig(base=None, architecture=ARCH), 16, init="random", seed=0).eval()


def manual_scores(model, seq):
    ids = torch.tensor([seq])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    return float(logp.mean()), float(logp.sum())


def test_scores_mean_and_sum_by_hand_and_batch_invariant(model):
    rng = np.random.default_rng(0)
    seqs = [[1, *rng.integers(2, 18, n).tolist(), 1] for n in (3, 17, 8, 30, 1)]
    means = sequence_scores(model, seqs, score="mean", batch_tokens=10**6)
    sums = sequence_scores(model, seqs, score="sum", batch_tokens=10**6)
    one_by_one = sequence_scores(model, seqs, score="mean", batch_tokens=1)
    for i, seq in enumerate(seqs):
        mean, total = manual_scores(model, seq)
        assert means[i] == pytest.approx(mean, abs=1e-5) and sums[i] == pytest.approx(total, abs=1e-4)
        assert one_by_one[i] == pytest.approx(means[i], abs=1e-5)  # padding never changes a score
    with pytest.raises(ValueError, match="mean' or 'sum"):
        sequence_scores(model, seqs, score="max")


def test_pair_accuracy_ties_count_half_and_intervals():
    assert pair_accuracy(np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0])).tolist() == [1.0, 0.5, 0.0]
    assert interval95(50.0, 1000) == pytest.approx(3.099, abs=1e-3)  # about ±3 points at n = 1000


def test_mean_is_the_sum_over_predicted_tokens(model):
    seqs = [[1, 5, 6, 1], [1, 5, 6, 7, 8, 9, 10, 11, 12, 1]]
    mean = sequence_scores(model, seqs, score="mean")
    total = sequence_scores(model, seqs, score="sum")
    for seq, m, t in zip(seqs, mean, total):
        assert m == pytest.approx(t / (len(seq) - 1))  # every token after the first <S>, the closing <S> included


def test_zerospeech_aggregation_and_breakdowns():
    table = pd.DataFrame({"id": ["1/A", "1/B", "2/A", "2/B", "3/A", "3/B"],
                          "type": ["syntax", "syntax", "syntax", "syntax", "morph", "morph"],
                          "subtype": ["s", "s", "s", "s", "m", "m"], "voice": ["A", "B"] * 3,
                          "correct": [1.0, 0.0, 1.0, 1.0, 0.5, 0.0]})
    accuracy, n, breakdown, counts = summarize_pairs(table)
    assert n == 3 and accuracy == pytest.approx(100 * (0.5 + 1.0 + 0.25) / 3)
    assert breakdown == {"morph": 25.0, "syntax": 75.0} and counts == {"morph": 1, "syntax": 2}
    plain = pd.DataFrame({"id": ["a", "b", "c", "d"], "category": ["x", "x", "y", "y"], "correct": [1, 0, 1, 1.0]})
    assert summarize_pairs(plain) == (75.0, 4, {"x": 50.0, "y": 100.0}, {"x": 2, "y": 2})


def test_sblimp_ids_repeated_across_subtypes_are_different_pairs():
    table = pd.DataFrame({"id": ["t/a/1/A", "t/a/1/B", "t/b/1/A", "t/b/1/B"], "type": ["t"] * 4,
                          "subtype": ["a", "a", "b", "b"], "voice": ["A", "B"] * 2, "correct": [1.0, 1.0, 0.0, 0.5]})
    accuracy, n, breakdown, _ = summarize_pairs(table)
    assert n == 2 and accuracy == pytest.approx(100 * (1.0 + 0.25) / 2) and breakdown == {"t": 62.5}


def test_swuggy_is_averaged_over_voices_by_id_and_reported_by_band_and_length():
    """Hand-computed: five words, two voices each. Per word (mean over voices): w0 (count 0, 4 phones)
    1.0; w1 (count 3, 4 phones) 0.5; w2 (count 5, 5 phones) 0.0; w3 (count 150, 5 phones) 0.75;
    w4 (no count, 6 phones) 1.0."""
    per_voice = {0: (1, 1), 1: (1, 0), 2: (0, 0), 3: (1, 0.5), 4: (1, 1)}
    counts, lengths = {0: 0, 1: 3, 2: 5, 3: 150, 4: None}, {0: 4, 1: 4, 2: 5, 3: 5, 4: 6}
    table = pd.DataFrame([{"id": f"{w}/{v}", "voice": v, "frequency": counts[w], "length": lengths[w], "correct": c}
                          for w, scores in per_voice.items() for v, c in zip("AB", scores)])
    accuracy, n, breakdown, pairs = summarize_pairs(table)
    assert n == 5 and accuracy == pytest.approx(100 * (1 + 0.5 + 0 + 0.75 + 1) / 5)
    # voices whose names hold a "/" (the tiny world's, "en-us@170wpm/p50"): the reader's `item` says the word
    named = table.assign(item=table.id.str.split("/").str[0], id=table.id.str.replace("/", "/en@160wpm/p"))
    assert summarize_pairs(named)[:3] == (accuracy, n, breakdown)
    assert breakdown == {"in-vocabulary": 41.67, "OOV": 100.0,  # (0.5 + 0 + 0.75) / 3, rounded to 2 places
                         "frequency oov": 100.0, "frequency 1-5": 50.0, "frequency 6-20": 0.0, "frequency >100": 75.0,
                         "length 4": 75.0, "length 5": 37.5, "length 6": 100.0}
    assert pairs["in-vocabulary"] == 3 and pairs["OOV"] == 2 and "frequency 21-100" not in pairs


@pytest.fixture
def pair_folder(tmp_path, speech):
    """Pairs whose negative is the positive reversed in time, plus two tie pairs (same audio)."""
    rows = []
    for i, (_, _, wav) in enumerate(speech):
        write_audio(tmp_path / "wavs" / f"p{i}_pos.wav", wav)
        write_audio(tmp_path / "wavs" / f"p{i}_neg.wav", wav[::-1].copy())
        rows.append({"id": f"p{i}", "positive": f"wavs/p{i}_pos.wav", "negative": f"wavs/p{i}_neg.wav", "category": "rev"})
    for i in range(2):
        rows.append({"id": f"tie{i}", "positive": f"wavs/p{i}_pos.wav", "negative": f"wavs/p{i}_pos.wav",
                     "category": "tie"})
    write_pairs(tmp_path, rows)
    return tmp_path


def test_evaluate_pairs_matches_by_id_whatever_the_order(model, speech_tokenizer, pair_folder):
    result = evaluate_benchmark(model, speech_tokenizer, "tsc", pair_folder)
    assert result.pairs == 6 and result.breakdown["tie"] == 50.0  # identical files: ties, worth 0.5 each
    table = pd.read_csv(pair_folder / "pairs.csv")
    shuffled = table.sample(frac=1, random_state=1)
    shuffled.to_csv(pair_folder / "pairs.csv", index=False)
    again = evaluate_benchmark(model, speech_tokenizer, "tsc", pair_folder)
    merged = result.per_pair.merge(again.per_pair, on="id")
    assert np.allclose(merged.positive_x, merged.positive_y) and np.allclose(merged.negative_x, merged.negative_y)
    assert again.accuracy == result.accuracy
    with pytest.raises(ValueError, match="unknown benchmark"):
        evaluate_benchmark(model, speech_tokenizer, "swug", pair_folder)


def test_units_kept_on_disk_are_reused_and_redone_when_the_audio_changes(model, speech_tokenizer, pair_folder,
                                                                          tmp_path, monkeypatch):
    from slamlib import evaluate

    cache = tmp_path / "units-cache"
    first = evaluate_benchmark(model, speech_tokenizer, "tsc", pair_folder, units_cache=cache)
    assert len(list(cache.glob("units-*.json"))) == 1
    evaluate._UNITS.clear()  # as in a new process
    calls = []
    real = speech_tokenizer.tokenize
    monkeypatch.setattr(speech_tokenizer, "tokenize", lambda wavs: calls.append(len(wavs)) or real(wavs))
    again = evaluate_benchmark(model, speech_tokenizer, "tsc", pair_folder, units_cache=cache)
    assert calls == [] and again.accuracy == first.accuracy
    assert np.allclose(again.per_pair.positive, first.per_pair.positive)
    # a file written again (new modification time) is tokenized again, and only that one
    wav = load_audio(pair_folder / "wavs" / "p0_neg.wav")
    write_audio(pair_folder / "wavs" / "p0_neg.wav", wav[: len(wav) // 2])
    evaluate_benchmark(model, speech_tokenizer, "tsc", pair_folder, units_cache=cache)
    assert calls == [1]


def test_salmon_layout(tmp_path, speech, model, speech_tokenizer):
    for part in ("speaker_consistency", "bg_alignment"):
        for i in range(2):
            write_audio(tmp_path / part / f"sample_{i}_0.wav", speech[i][2])
            write_audio(tmp_path / part / f"sample_{i}_1.wav", speech[i + 1][2])
    pairs = read_pairs(tmp_path)
    assert [p.id for p in pairs] == ["bg_alignment/0", "bg_alignment/1", "speaker_consistency/0",
                                     "speaker_consistency/1"]
    assert all(p.positive.stem.endswith("_0") and p.negative.stem.endswith("_1") for p in pairs)
    assert read_pairs(tmp_path / "bg_alignment")[0].info == {"part": "bg_alignment"}
    result = evaluate_benchmark(model, speech_tokenizer, "salmon", tmp_path)
    assert set(result.breakdown) == {"bg_alignment", "speaker_consistency"}
    assert result.breakdown_pairs == {"bg_alignment": 2, "speaker_consistency": 2}
    assert result.accuracy == pytest.approx(sum(result.breakdown.values()) / 2)  # equal parts: the pooled mean
    (tmp_path / "bg_alignment" / "sample_1_1.wav").unlink()
    with pytest.raises(BenchmarkFormatError, match=r"bg_alignment: samples without exactly two files .*\['sample_1_0.wav'\]"):
        read_pairs(tmp_path)


def test_preference_accuracy_counts_chosen_above_rejected(tmp_path, model):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    rows = []
    for pair in range(3):
        prompt = rng.integers(0, 16, 10).tolist()
        for role, units in (("prompt", prompt), ("chosen", [1, 2, 3]), ("rejected", [1, 2, 3] if pair == 0 else [4, 5])):
            rows.append({"id": f"{pair}/{role}", "units": units, "pair": str(pair), "role": role})
    tmp_path.joinpath("u").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "u" / "shard-00000.parquet")
    result = preference_accuracy(model, tmp_path / "u")
    assert result["pairs"] == 3
    by_pair = {}
    for r in rows:
        by_pair.setdefault(r["pair"], {})[r["role"]] = r["units"]
    expected = []
    for roles in by_pair.values():  # <S> prompt continuation <S>, as ids, scored by hand
        chosen, rejected = ([1, *(np.array(roles["prompt"] + roles[k]) + 2).tolist(), 1] for k in ("chosen", "rejected"))
        expected.append(pair_accuracy(np.array([manual_scores(model, chosen)[0]]),
                                      np.array([manual_scores(model, rejected)[0]]))[0])
    assert expected[0] == 0.5  # identical continuations: a tie
    assert result["accuracy"] == pytest.approx(100 * np.mean(expected))


def test_generation_respects_its_settings(model):
    prompt = [3, 4, 5, 6]
    greedy = continue_units(model, prompt, GenerationConfig(max_new_tokens=12), do_sample=False)
    top1 = continue_units(model, prompt, GenerationConfig(max_new_tokens=12, top_k=1, temperature=0.8), seed=3)
    assert top1 == greedy  # top-k 1 sampling is greedy
    for n in (1, 7):
        assert len(continue_units(model, prompt, GenerationConfig(max_new_tokens=n), seed=0)) <= n
    first = continue_units(model, prompt, GenerationConfig(max_new_tokens=30), seed=5)
    assert continue_units(model, prompt, GenerationConfig(max_new_tokens=30), seed=5) == first  # seeded
    assert all(0 <= u < 16 for u in first)  # units, not ids
    assert any(continue_units(model, prompt, GenerationConfig(max_new_tokens=30), seed=s) != first for s in range(6, 9))
    # the repetition penalty really is applied: with a huge one, no unit comes back in a greedy run
    no_repeat = continue_units(model, prompt, GenerationConfig(max_new_tokens=10, repetition_penalty=1e6),
                               do_sample=False)
    assert len(set(no_repeat)) == len(no_repeat) and not set(no_repeat) & set(prompt)


def test_generate_continuation_and_cli(model, speech_tokenizer, speech, tmp_path):
    vocoder = load_vocoder(speech_tokenizer)
    result = generate_continuation(model, speech_tokenizer, vocoder, speech[0][2], GenerationConfig(max_new_tokens=20),
                                   seed=0)
    assert len(result["original_prompt"]) == min(len(speech[0][2]), 3 * 16_000)
    assert len(result["new_units"]) <= 20 and np.abs(result["audio"]).max() > 0
    assert len(result["audio"]) == len(result["prompt_audio"]) + len(result["continuation_audio"])
    save_speech_lm(model, tmp_path / "lm", speech_tokenizer)
    write_audio(tmp_path / "prompt.wav", speech[1][2])
    from test_cli import slamlib_cli

    proc, out = slamlib_cli("generate", "--model", str(tmp_path / "lm"), "--prompt", str(tmp_path / "prompt.wav"),
                            "--out", str(tmp_path / "out.wav"), "--set", "eval.generation.max_new_tokens=99",
                            "--set", "eval.generation.top_k=7", "--max-new-tokens", "15", "--seconds", "1")
    assert proc.returncode == 0, proc.stderr
    assert out["new_units"] <= 15 and not out["silent"]
    # profile < --set < the command's own flag
    assert out["settings"] == {**dataclasses.asdict(get_profile("slam").eval.generation), "top_k": 7,
                               "max_new_tokens": 15, "prompt_seconds": 1.0}
    assert len(load_audio(tmp_path / "out.wav")) > 0


def test_eval_cli(model, speech_tokenizer, pair_folder, tmp_path):
    from test_cli import slamlib_cli

    save_speech_lm(model, tmp_path / "lm", speech_tokenizer)
    proc, out = slamlib_cli("eval", "--model", str(tmp_path / "lm"), "--benchmark", "ssc", "--data",
                            str(pair_folder / "pairs.csv"), "--set", "eval.score=sum", "--quiet",
                            "--pairs-out", str(tmp_path / "pairs.csv"))
    assert proc.returncode == 0, proc.stderr
    assert out["benchmark"] == "ssc" and out["pairs"] == 6 and 0 <= out["accuracy"] <= 100 and out["score"] == "sum"
    assert len(pd.read_csv(tmp_path / "pairs.csv")) == 6


def test_unit_repetition_and_offline_generative_metrics():
    assert unit_repetition([[1, 2, 1, 2, 3], [7]]) == pytest.approx(0.5)  # bigrams 12,21,12,23: two repeat
    result = generative_metrics([np.zeros(100, dtype=np.float32)], get_profile("tiny"))
    assert not result["computed"] and "whisper" in result["reason"]
    offline = generative_metrics([np.zeros(100, dtype=np.float32)], get_profile("slam"))
    assert not offline["computed"] and "openai/whisper-large-v3-turbo" in offline["reason"]


def test_generative_metrics_with_local_models(tmp_path):
    from test_genppl import save_tiny_llama, save_tiny_whisper

    save_tiny_whisper(tmp_path / "asr")
    save_tiny_llama(tmp_path / "judge")
    profile = get_profile("slam", {"eval.asr_model": str(tmp_path / "asr"), "eval.judge_model": str(tmp_path / "judge")})
    wavs = [np.random.default_rng(i).normal(0, 0.1, 16_000).astype(np.float32) for i in range(2)]
    result = generative_metrics(wavs, profile)
    assert result["computed"] and result["samples"] == 2 and len(result["transcripts"]) == 2


def test_results_table_sits_beside_the_paper():
    run = {"benchmarks": {"sblimp": {"accuracy": 71.234}, "tsc": {"accuracy": 60.0}}}
    table = results_table({"DPO": run}, hardware="2 CPU cores")
    assert len(table) == len(PAPER_ROWS) + 1
    assert table.iloc[-1].sblimp == 71.23 and table.iloc[1].tsc == 82.04
    markdown = to_markdown(table)
    assert "| Slam, paper | 1×A5000, 24 h | 58.86 | 58.04 | 82.04 | 62.8 | 3.88 |" in markdown
    assert "| DPO | 2 CPU cores | 71.23 |" in markdown


def test_evaluate_model_keeps_scores_by_model_and_data(model, speech_tokenizer, pair_folder, tmp_path, monkeypatch):
    """A second evaluation of the same model folder on the same files reads RUN/scores/ (notebook 06
    after notebook 05); new weights, a rewritten file or another `eval.score` are scored again."""
    import dataclasses

    from slamlib import evaluate

    profile = get_profile("tiny", {"tokenizer.n_units": 16})
    profile = dataclasses.replace(profile, eval=dataclasses.replace(
        profile.eval, benchmarks=(("tsc", str(pair_folder)),), preference_heldout=None))
    folder = save_speech_lm(model, tmp_path / "model", speech_tokenizer)
    calls = []
    real = evaluate.sequence_scores
    monkeypatch.setattr(evaluate, "sequence_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = evaluate.evaluate_model(folder, profile, tmp_path / "run")
    again = evaluate.evaluate_model(folder, profile, tmp_path / "run")
    assert len(calls) == 1 and again["benchmarks"] == first["benchmarks"]
    assert len(list((tmp_path / "run" / "scores").glob("tsc-*.json"))) == 1
    other = init_speech_lm(ModelConfig(base=None, architecture=ARCH), 16, init="random", seed=1)
    save_speech_lm(other, folder, speech_tokenizer)  # new weights in the same folder
    evaluate.evaluate_model(folder, profile, tmp_path / "run")
    assert len(calls) == 2
    wav = load_audio(pair_folder / "wavs" / "p1_neg.wav")
    write_audio(pair_folder / "wavs" / "p1_neg.wav", wav[: len(wav) // 2])  # a rewritten file
    evaluate.evaluate_model(folder, profile, tmp_path / "run")
    assert len(calls) == 3
    by_sum = dataclasses.replace(profile, eval=dataclasses.replace(profile.eval, score="sum"))
    evaluate.evaluate_model(folder, by_sum, tmp_path / "run")  # another scoring setting: scored again
    evaluate.evaluate_model(folder, profile, tmp_path / "run")  # and the mean's scores are still there
    assert len(calls) == 4
    # scores kept before breakdowns were counted are read as they are, except sBLIMP's, whose pairs changed
    as_sblimp = dataclasses.replace(profile, eval=dataclasses.replace(profile.eval, benchmarks=(("sblimp", str(pair_folder)),)))
    evaluate.evaluate_model(folder, as_sblimp, tmp_path / "run")
    assert len(calls) == 5
    for kept in (tmp_path / "run" / "scores").glob("*.json"):
        kept.write_text(json.dumps({k: v for k, v in json.loads(kept.read_text()).items() if k != "breakdown_pairs"}))
    old = evaluate.evaluate_model(folder, profile, tmp_path / "run")
    assert len(calls) == 5 and old["benchmarks"]["tsc"]["breakdown_pairs"] == {}
    evaluate.evaluate_model(folder, as_sblimp, tmp_path / "run")
    assert len(calls) == 6


def test_changes_pair_the_same_pairs_before_and_after():
    from slamlib.evaluate import changes

    before = {"benchmarks": {"tsc": {"accuracy": 50.0, "pairs": 4, "correct": [1, 0, 1, 0]}},
              "preference_heldout": {"accuracy": 50.0, "pairs": 2, "correct": [0, 1]}}
    after = {"benchmarks": {"tsc": {"accuracy": 75.0, "pairs": 4, "correct": [1, 1, 1, 0]}},
             "preference_heldout": {"accuracy": 100.0, "pairs": 2, "correct": [1, 1]}}
    table = changes(before, after)
    assert list(table.index) == ["tsc", "held-out preference pairs"]
    # tsc: differences 0, 1, 0, 0: +25 points, sd 0.5, 1.96 * 0.5 / 2 = 0.49
    assert table.loc["tsc"].to_dict() == {"before": 50.0, "after": 75.0, "change": 25.0, "interval95": 49.0, "pairs": 4}
    # the held-out pairs: differences 1, 0: +50 points, sd 0.7071, 1.96 * 0.7071 / 1.414 = 0.98
    assert table.loc["held-out preference pairs", "change"] == 50.0
    assert table.loc["held-out preference pairs", "interval95"] == 98.0
    # results kept before the per-pair lists existed: the difference of the accuracies, no interval
    old = {"benchmarks": {"tsc": {"accuracy": 50.0, "pairs": 4}}}
    row = changes(old, after).loc["tsc"]
    assert row.change == 25.0 and row.interval95 != row.interval95  # NaN
