"""The notebooks' explorers (`slamlib.explore`), driven through their widgets without a browser:
set a control's value or click a button, then check what the explorer shows against slamlib's
own tokenizer, scoring and vocoder."""

import dataclasses
import datetime
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import tiny_arch
from IPython.display import Audio, Image

from slamlib import explore
from slamlib.audio import SAMPLE_RATE, load_audio, write_audio
from slamlib.data.benchmarks import read_pairs, write_pairs
from slamlib.data.corpora import read_preference_units, tokenize_audio_corpus
from slamlib.data.synth import flac
from slamlib.evaluate import evaluate_pairs, pair_accuracy, preference_accuracy, sequence_scores
from slamlib.model import init_speech_lm, load_speech_lm, save_speech_lm
from slamlib.profiles import GenerationConfig, ModelConfig, get_profile
from slamlib.tokenization.corpus import read_units, tokenize_corpus
from slamlib.tokenization.units import UnitTokenizer
from slamlib.vocoders.griffin_lim import GriffinLimVocoder

ARCH = tiny_arch(vocab_size=18, max_position_embeddings=1024)
TEXTS = ["Set-up one.", "Set-up two.", "Set-up three.", "Set-up four."]


def _audio_cell(wav):
    return {"bytes": flac(wav), "path": None}


@pytest.fixture(scope="module")
def run(tmp_path_factory, speech, speech_tokenizer):
    """A small run folder: a speech sample, a parquet speech corpus, held-out preference pairs
    (all tokenized), a benchmark (its negatives are the positives reversed in time), the speech
    tokenizer and two random speech LMs."""
    root = tmp_path_factory.mktemp("explore") / "run"
    sample = root / "audio" / "speech_sample"
    for i, (_, _, wav) in enumerate(speech):
        write_audio(sample / f"utt-{i}.wav", wav)
    pd.DataFrame({"file": [f"utt-{i}.wav" for i in range(len(speech))], "text": [t for t, _, _ in speech],
                  "voice": [str(v) for _, v, _ in speech],
                  "seconds": [len(w) / SAMPLE_RATE for _, _, w in speech]}).to_csv(sample / "metadata.csv", index=False)
    tokenize_corpus(sample, root / "units" / "speech_sample", speech_tokenizer, keep_columns=["text", "voice"],
                    progress=False)

    read = root / "audio" / "read_speech"
    read.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"id": f"read-{i}", "audio": _audio_cell(w), "text": t, "voice": str(v)}
                                         for i, (t, v, w) in enumerate(speech)]), read / "shard-00000.parquet")
    tokenize_audio_corpus(read, root / "units" / "read_speech", speech_tokenizer, id_column="id",
                          keep_columns=("text", "voice"), progress=False)

    held = root / "audio" / "preference" / "heldout"
    held.mkdir(parents=True)
    rows = []
    for i in range(3):
        prompt, chosen, rejected = speech[i][2], speech[(i + 1) % 4][2], speech[(i + 2) % 4][2][::-1].copy()
        rows.append({"id": f"pair-{i}", "speaker": "story voice", "prompt_text": f"prompt {i}",
                     "chosen_text": f"chosen {i}", "rejected_text": f"rejected {i}", "prompt": _audio_cell(prompt),
                     "chosen": _audio_cell(chosen), "rejected": _audio_cell(rejected), "kind": "skipped_step"})
    pq.write_table(pa.Table.from_pylist(rows), held / "shard-00000.parquet")
    tokenize_audio_corpus(held, root / "units" / "preference" / "heldout", speech_tokenizer, kind="preference",
                          id_column="id", progress=False,
                          keep_columns=("speaker", "prompt_text", "chosen_text", "rejected_text", "kind"))

    bench = root / "benchmarks" / "tsc"
    pairs = []
    for i, (text, _, wav) in enumerate(speech):
        write_audio(bench / "wavs" / f"tsc-{i}_positive.wav", wav)
        write_audio(bench / "wavs" / f"tsc-{i}_negative.wav", wav[::-1].copy())
        pairs.append({"id": f"tsc-{i}", "positive": f"wavs/tsc-{i}_positive.wav",
                      "negative": f"wavs/tsc-{i}_negative.wav", "prompt_text": TEXTS[i],
                      "positive_text": text, "negative_text": text[::-1]})
    write_pairs(bench, pairs)

    speech_tokenizer.save(root / "speech_tokenizer")
    for seed, name in enumerate(("before", "after")):
        model = init_speech_lm(ModelConfig(base=None, architecture=ARCH), 16, init="random", seed=seed)
        save_speech_lm(model, root / "models" / name, speech_tokenizer)
    return root


@pytest.fixture(scope="module")
def profile():
    tiny = get_profile("tiny", {"tokenizer.n_units": 16})
    return dataclasses.replace(tiny, eval=dataclasses.replace(
        tiny.eval, benchmarks=(("tsc", "benchmarks/tsc"), ("ssc", "benchmarks/ssc")),  # ssc is not in the run
        preference_heldout="preference/heldout"))


def audio_lengths(shown):
    """Samples in each audio player shown."""
    return [sf.info(io.BytesIO(item.data)).frames for item in shown if isinstance(item, Audio)]


def test_utterance_explorer_shows_the_tokenizers_units_and_rebuilds_their_length(run, speech, speech_tokenizer):
    explorer = explore.utterance_explorer(speech_tokenizer, run / "audio" / "speech_sample")
    first = explorer.current
    wav = load_audio(run / "audio" / "speech_sample" / "utt-0.wav")
    tokenized = speech_tokenizer.tokenize(wav)
    assert first["file"] == "utt-0.wav" and first["units"] == tokenized.units.tolist()
    assert first["durations"] == tokenized.durations.tolist()
    vocoder = explorer.vocoder()
    assert isinstance(vocoder, GriffinLimVocoder)
    assert len(first["rebuilt"]) == sum(first["durations"]) * vocoder.samples_per_frame
    assert sum(isinstance(item, Image) for item in explorer.shown) == 1 and len(audio_lengths(explorer.shown)) == 2

    explorer.controls["utterance"].value = "utt-2.wav"
    assert explorer.current["file"] == "utt-2.wav" and explorer.current["text"] == speech[2][0]
    deduped = explorer.current
    assert deduped["units"] == speech_tokenizer.tokenize(speech[2][2]).units.tolist()
    explorer.controls["dedup"].value = False
    frames = explorer.current
    assert not frames["dedup"] and len(frames["units"]) == frames["frames"] == sum(deduped["durations"])
    assert set(frames["durations"]) == {1} and len(frames["units"]) > 2 * len(deduped["units"])
    assert len(frames["rebuilt"]) == len(deduped["rebuilt"])  # the same frames, spelled out
    assert len(explorer.output.outputs) == len(explorer.shown)


def test_corpus_browser_shows_the_chosen_item_of_each_corpus_and_benchmark(run, speech, speech_tokenizer):
    browser = explore.corpus_browser(run)
    assert {"corpus · read_speech", "corpus · speech_sample", "corpus · preference/heldout",
            "benchmark · tsc"} <= set(browser.sources)
    controls = browser.controls
    controls["source"].value = "corpus · read_speech"
    assert [v for _, v in controls["id"].options] == [f"read-{i}" for i in range(4)]
    controls["id"].value = "read-2"
    table = read_units(run / "units" / "read_speech").set_index("id")
    assert browser.current["id"] == "read-2" and browser.current["text"] == speech[2][0]
    assert list(browser.current["units"]) == list(table.loc["read-2", "units"])
    assert audio_lengths(browser.shown) == [len(speech[2][2])]  # its FLAC, decoded

    controls["source"].value = "corpus · speech_sample"
    controls["id"].value = "utt-1"
    assert browser.current["text"] == speech[1][0] and audio_lengths(browser.shown) == [len(speech[1][2])]

    controls["source"].value = "corpus · preference/heldout"
    controls["id"].value = "pair-1"
    pair = read_preference_units(run / "units" / "preference" / "heldout").set_index("pair").loc["pair-1"]
    assert (browser.current["prompt_text"], browser.current["chosen_text"]) == ("prompt 1", "chosen 1")
    assert browser.current["rejected_units"] == list(pair.rejected_units)
    assert audio_lengths(browser.shown) == [len(speech[1][2]), len(speech[2][2]), len(speech[3][2])]

    controls["source"].value = "benchmark · tsc"
    controls["id"].value = "tsc-3"
    assert browser.current["id"] == "tsc-3" and browser.current["info"]["prompt_text"] == TEXTS[3]
    with pytest.raises(ValueError, match="tsc has no pair 'tsc-9'"):
        browser.select(id="tsc-9")
    assert browser.id == "tsc-3"  # a selection that cannot be shown is not made
    assert browser.current["units"]["positive"] == speech_tokenizer.tokenize(speech[3][2]).units.tolist()
    assert browser.current["units"]["negative"] == speech_tokenizer.tokenize(speech[3][2][::-1].copy()).units.tolist()


def test_likelihood_explorer_per_unit_means_are_slamlibs_scores(run, profile):
    explorer = explore.likelihood_explorer({"before": run / "models" / "before", "after": run / "models" / "after"},
                                           run, profile, device="cpu")
    assert list(explorer.sources) == ["tsc", "held-out preference"]  # ssc is not in this run
    explorer.controls["pair"].value = "tsc-2"
    assert explorer.current["pair"] == "tsc-2"
    table = explorer.current["table"]
    pairs = read_pairs(run / "benchmarks" / "tsc")
    for name in ("before", "after"):
        model, tokenizer = load_speech_lm(run / "models" / name)
        positive, negative = explorer.current["sequences"][name]
        assert positive == tokenizer.encode(load_audio(pairs[2].positive))
        curves = explorer.current["log_likelihoods"][name]
        assert len(curves["positive"]) == len(positive) - 1  # every unit and the closing <S>
        scores = sequence_scores(model, [positive, negative])
        assert [curves["positive"].mean(), curves["negative"].mean()] == pytest.approx(scores.tolist(), abs=1e-5)
        per_pair = evaluate_pairs(model, tokenizer, pairs).per_pair.set_index("id")
        assert table.loc[name, "positive mean"] == pytest.approx(per_pair.loc["tsc-2", "positive"], abs=1e-5)
        assert table.loc[name, "counts"] == per_pair.loc["tsc-2", "correct"]

    explorer.controls["source"].value = "held-out preference"
    explorer.controls["pair"].value = "pair-1"
    held = read_preference_units(run / "units" / "preference" / "heldout").set_index("pair").loc["pair-1"]
    model, _ = load_speech_lm(run / "models" / "after")
    tok = UnitTokenizer(16)
    chosen, rejected = (tok.encode([*held.prompt_units, *held[f"{r}_units"]]) for r in ("chosen", "rejected"))
    assert explorer.current["sequences"]["after"] == (chosen, rejected)
    curves = explorer.current["log_likelihoods"]["after"]
    assert curves["chosen"].mean() == pytest.approx(sequence_scores(model, [chosen])[0], abs=1e-5)
    correct = preference_accuracy(model, run / "units" / "preference" / "heldout")["correct"]
    assert explorer.current["table"].loc["after", "counts"] == correct[1]  # pairs are in read_preference_units order

    first = explore.likelihood_explorer({"after": run / "models" / "after"}, run, profile, source="held-out preference",
                                        device="cpu")
    assert (first.source, first.current["pair"], first.current["sides"]) == ("held-out preference", "pair-0",
                                                                             ("chosen", "rejected"))


def test_unit_log_likelihoods_sum_is_the_sum_score(run):
    model, _ = load_speech_lm(run / "models" / "before")
    ids = [1, 5, 9, 9, 3, 17, 1]
    logp = explore.unit_log_likelihoods(model, ids)
    assert logp.shape == (6,) and (logp < 0).all()
    assert logp.sum() == pytest.approx(sequence_scores(model, [ids], score="sum")[0], abs=1e-4)
    with pytest.raises(ValueError, match="at least two"):
        explore.unit_log_likelihoods(model, [1])


@pytest.fixture(scope="module")
def playground_parts(run, speech):
    model, tokenizer = load_speech_lm(run / "models" / "after")
    # measured unit durations, so that new units do not all last the default 2 frames
    vocoder = GriffinLimVocoder.from_tokenizer(tokenizer).fit_durations(tokenizer.tokenize([w for _, _, w in speech]))
    prompts = [p.positive for p in read_pairs(run / "benchmarks" / "tsc")]
    return model, tokenizer, vocoder, prompts


def test_playground_generates_what_its_controls_say(playground_parts):
    model, tokenizer, vocoder, prompts = playground_parts
    playground = explore.generation_playground(model, tokenizer, vocoder, prompts,
                                               GenerationConfig(max_new_tokens=12, prompt_seconds=1.0))
    assert playground.current["prompt"] == prompts[0].name and len(playground.current["new_units"]) <= 12
    controls = playground.controls
    assert "slamlib-generate" in controls["generate"]._dom_classes
    assert "slamlib-playground-output" in playground.output._dom_classes

    controls["prompt"].value = prompts[1].name
    controls["prompt_seconds"].value = 1.5
    controls["max_new_tokens"].value = 30
    controls["seed"].value = 4
    controls["generate"].click()
    result = playground.current
    assert result["prompt"] == prompts[1].name and result["settings"]["seed"] == 4
    wav = load_audio(prompts[1])[: int(1.5 * SAMPLE_RATE)]  # (or all of it, if shorter)
    prompt = tokenizer.tokenize(wav)
    assert result["prompt_units"] == prompt.units.tolist() and 0 < len(result["new_units"]) <= 30
    # prompt and continuation as the vocoder makes them: measured durations, then fitted ones
    expected = sum(prompt.durations) + sum(vocoder.expected_durations(result["new_units"]))
    assert len(result["audio"]) == expected * vocoder.samples_per_frame
    assert sum(prompt.durations) / tokenizer.frame_rate == pytest.approx(len(wav) / SAMPLE_RATE, abs=0.02)
    assert audio_lengths(playground.shown) == [len(wav), len(result["audio"])]
    assert len(playground.output.outputs) == len(playground.shown)

    controls["generate"].click()
    assert playground.current["new_units"] == result["new_units"]  # the same seed, the same units
    others = []
    for seed in (5, 6, 7):
        controls["seed"].value = seed
        controls["generate"].click()
        others.append(playground.current["new_units"])
    assert any(units != result["new_units"] for units in others)
    controls["seed"].value = 4
    controls["temperature"].value = 2.0
    controls["top_k"].value = 16
    controls["generate"].click()
    assert playground.current["settings"]["temperature"] == 2.0
    assert playground.current["new_units"] != result["new_units"]


def _upload(name, data):
    return ({"name": name, "type": "audio/wav", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime(2025, 1, 1)},)


def _wav_bytes(seconds):
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * SAMPLE_RATE), np.float32), SAMPLE_RATE, format="WAV")
    return buffer.getvalue()


def test_playground_says_what_is_wrong_with_an_upload_and_takes_a_good_one(playground_parts, speech):
    model, tokenizer, vocoder, prompts = playground_parts
    playground = explore.generation_playground(model, tokenizer, vocoder, prompts[:1],
                                               GenerationConfig(max_new_tokens=5))
    upload = playground.controls["upload"]
    for name, data, problem in (("notes.txt", b"this is not audio at all", "not an audio file"),
                                ("empty.wav", b"", "empty file"),
                                ("long.wav", _wav_bytes(61), "61.0 s of audio; prompts may be at most 60 s")):
        upload.value = _upload(name, data)  # no exception comes out of the callback
        assert playground.current["error"].startswith(f"{name}: ") and problem in playground.current["error"]
        assert "⚠" in playground.output.outputs[0]["data"]["text/html"]
        assert list(playground.prompts) == [prompts[0].name]

    good = io.BytesIO()
    sf.write(good, speech[2][2], SAMPLE_RATE, format="FLAC")
    upload.value = _upload("mine.flac", good.getvalue())
    assert playground.controls["prompt"].value == "uploaded: mine.flac" and "error" not in playground.current
    playground.controls["generate"].click()
    assert playground.current["prompt"] == "uploaded: mine.flac"
    mine = speech[2][2][: 3 * SAMPLE_RATE]  # the default 3 s of it (or all of it)
    assert len(playground.current["original_prompt"]) == len(mine)
    assert np.abs(playground.current["original_prompt"] - mine).max() < 1e-3  # 16-bit FLAC


def test_wrong_pairs_are_exactly_those_counted_0(run, profile):
    results = {"before": {"benchmarks": {"tsc": {"correct": [1.0, 0.0, 0.5, 0.0]}},
                          "preference_heldout": {"correct": [0.0, 1.0, 1.0]}},
               "after": {"benchmarks": {"tsc": {"correct": [0.0, 1.0, 1.0, 1.0]}}}}
    explorer = explore.wrong_pairs_explorer(results, run, profile)
    assert explorer.wrong == {("before", "tsc"): ["tsc-1", "tsc-3"], ("before", "held-out preference"): ["pair-0"],
                              ("after", "tsc"): ["tsc-0"]}  # a tie (0.5) is not wrong
    assert explorer.summary.wrong.tolist() == [2, 1, 1]
    controls = explorer.controls
    assert [v for _, v in controls["pair"].options] == ["tsc-1", "tsc-3"]
    controls["pair"].value = "tsc-3"
    assert explorer.current["pair"] == "tsc-3" and explorer.current["info"]["prompt_text"] == TEXTS[3]
    assert len(audio_lengths(explorer.shown)) == 2
    controls["benchmark"].value = "held-out preference"
    assert explorer.current["pair"] == "pair-0" and explorer.current["chosen_text"] == "chosen 0"
    controls["model"].value = "after"  # it has no held-out preference results: its first benchmark instead
    assert (explorer.benchmark, controls["benchmark"].value) == ("tsc", "tsc")
    assert [v for _, v in controls["pair"].options] == ["tsc-0"] and explorer.current["pair"] == "tsc-0"
    controls["benchmark"].value = "held-out preference"  # said, not raised
    assert "no results for after on held-out preference" in explorer.current["error"]
    assert controls["benchmark"].value == "tsc"  # the controls show what is selected

    with pytest.raises(ValueError, match="3 results for 4 pairs"):
        explore.wrong_pairs_explorer({"benchmarks": {"tsc": {"correct": [1, 0, 1]}}}, run, profile)


def test_wrong_pairs_of_a_real_evaluation(run, profile):
    from slamlib.evaluate import evaluate_model

    result = evaluate_model(run / "models" / "before", profile, run)
    explorer = explore.wrong_pairs_explorer(result, run, profile)
    ids = [p.id for p in read_pairs(run / "benchmarks" / "tsc")]
    correct = result["benchmarks"]["tsc"]["correct"]
    assert explorer.wrong[("model", "tsc")] == [i for i, c in zip(ids, correct) if c == 0]
    held = read_preference_units(run / "units" / "preference" / "heldout").pair.tolist()
    correct = result["preference_heldout"]["correct"]
    assert explorer.wrong[("model", "held-out preference")] == [p for p, c in zip(held, correct) if c == 0]


def test_static_mode_shows_plain_outputs_and_makes_no_widget(run, speech_tokenizer, playground_parts, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *items, **_: shown.extend(items))
    monkeypatch.setenv("SLAMLIB_STATIC", "1")
    model, tokenizer, vocoder, prompts = playground_parts
    explorers = [explore.utterance_explorer(speech_tokenizer, run / "audio" / "speech_sample"),
                 explore.corpus_browser(run),
                 explore.generation_playground(model, tokenizer, vocoder, prompts, GenerationConfig(max_new_tokens=5))]
    for explorer in explorers:
        shown.clear()
        explorer._ipython_display_()
        assert shown == explorer.shown and explorer._widget is None
        assert any(isinstance(item, Audio) for item in shown)
    assert any(isinstance(item, Image) for item in explorers[0].shown)

    monkeypatch.setenv("SLAMLIB_STATIC", "0")
    shown.clear()
    explorers[1]._ipython_display_()
    assert shown == [explorers[1].widget]
    assert len(explorers[1].output.outputs) == len(explorers[1].shown)  # the first selection, inside it
