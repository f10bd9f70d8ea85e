"""The stand-ins for the slam profile's hub assets load through the same slamlib functions that
load the real ones, and say what the real ones say (formats, ids, rates, counts)."""

import json

import joblib
import numpy as np
import pytest
import torch

from slamlib.standins import N_STORYCLOZE, build_standins, slam_overrides


@pytest.fixture(scope="module")
def profile(standins):
    from slamlib.profiles import get_profile

    return get_profile("slam", slam_overrides(standins, steps=3))


@pytest.fixture(scope="module")
def speech_tokenizer(profile):
    from slamlib.tokenization.speech_tokenizer import build_speech_tokenizer

    return build_speech_tokenizer(profile.tokenizer, device="cpu")


def corpus(profile, name, **changes):
    import dataclasses

    hub_corpus = next(c for c in profile.data.hub if c.name == name)
    return dataclasses.replace(hub_corpus, **changes)


def is_speech(wav, seconds=0.5):
    return wav.dtype == np.float32 and len(wav) > seconds * 16_000 and 0.01 < float(np.sqrt(np.mean(wav**2))) < 0.9


# --- overrides --------------------------------------------------------------------------------------

def test_overrides_apply_to_the_slam_profile(standins, profile):
    from slamlib.profiles import get_profile

    overrides = slam_overrides(standins, steps=3)
    assert all(isinstance(v, str) for v in overrides.values())  # what `--set key=value` gives
    assert profile.tokenizer.features.model == str(standins.hubert)
    assert profile.tokenizer.kmeans == str(standins.kmeans)
    assert profile.model.base == str(standins.text_lm)
    assert profile.train.max_steps == 3 and profile.train.budget is None and profile.train.context == 128
    assert dict(profile.eval.benchmarks)["ssc"] == str(standins.ssc)
    assert (profile.eval.asr_model, profile.eval.judge_model) == (str(standins.asr), str(standins.judge))
    hub = {c.name: c for c in profile.data.hub}
    assert hub["librispeech"].dataset == str(standins.librispeech) and hub["spokenswag"].rows == 8
    assert hub["stinystories"].dataset == str(standins.stinystories) and hub["stinystories"].rows == 8
    assert (profile.eval.hifigan_checkpoint, profile.eval.hifigan_config) == (
        str(standins.hifigan_checkpoint), str(standins.hifigan_config))
    assert get_profile("slam", overrides) == profile  # every key is a setting of the profile


def test_layout_and_determinism(standins, tmp_path):
    assert standins.kmeans.parent == standins.hifigan_checkpoint.parent  # as on the TWIST server
    assert sorted(p.name for p in standins.speech_lm.iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors"]
    again = build_standins(tmp_path, seed=0)
    for name in ("hifigan_config", "hifigan_checkpoint"):
        assert getattr(again, name).read_bytes() == getattr(standins, name).read_bytes()
    for folder in ("sblimp", "librispeech", "text_lm"):
        mine = sorted(p for p in getattr(standins, folder).rglob("*") if p.is_file())
        theirs = sorted(p for p in getattr(again, folder).rglob("*") if p.is_file())
        assert [p.name for p in mine] == [p.name for p in theirs]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(mine, theirs)), folder
    km_a, km_b = joblib.load(standins.kmeans), joblib.load(again.kmeans)
    assert np.array_equal(km_a.cluster_centers_, km_b.cluster_centers_)


# --- speech tokenizer -------------------------------------------------------------------------------

def test_hubert_gives_25hz_layer_11_features(standins, profile):
    from transformers import HubertModel

    from slamlib.audio import load_audio
    from slamlib.tokenization.features import make_extractor

    extractor = make_extractor(profile.tokenizer.features, device="cpu")
    assert extractor.frame_rate == 25.0 and extractor.dim == 32
    wav = load_audio(next(standins.sblimp.glob("*.wav")))
    feats = extractor([wav])[0]
    assert abs(feats.shape[0] - len(wav) / 640) <= 1 and feats.shape[1] == 32
    # what SlamKit computes: 40 zero samples each side, hidden_states[11] of the whole model
    model = HubertModel.from_pretrained(standins.hubert).eval()
    with torch.inference_mode():
        ref = model(torch.from_numpy(np.pad(wav, 40))[None], output_hidden_states=True).hidden_states[11][0]
    torch.testing.assert_close(feats, ref, atol=1e-4, rtol=1e-4)


def test_kmeans_loads_and_assigns_as_sklearn_does(standins, speech_tokenizer, tmp_path):
    from sklearn.cluster import KMeans as SkKMeans

    from slamlib.audio import load_audio
    from slamlib.tokenization.kmeans import load_sklearn_kmeans

    pickled = joblib.load(standins.kmeans)
    assert isinstance(pickled, SkKMeans) and pickled.cluster_centers_.shape == (500, 32)
    km = load_sklearn_kmeans(str(standins.kmeans), cache_dir=tmp_path, trust=True)
    assert km.n_units == 500 and speech_tokenizer.kmeans.n_units == 500
    feats = speech_tokenizer.extractor([load_audio(next(standins.ssc.glob("*.wav")))])[0]
    assert np.array_equal(km.assign(feats).numpy(), pickled.predict(feats.numpy().astype(np.float32)))
    assert len(np.unique(km.assign(feats).numpy())) > 5  # the speech is not all one unit
    units = speech_tokenizer.tokenize(load_audio(next(standins.ssc.glob("*.wav")))).units
    assert len(units) > 10 and units.max() < 500 and np.all(units[1:] != units[:-1])  # deduplicated


# --- corpora ----------------------------------------------------------------------------------------

def test_parquet_schemas_are_the_published_ones(standins):
    import datasets

    from slamlib.data.corpora import SCHEMAS

    published = {"openslr/librispeech_asr": standins.librispeech, "slprl/sTinyStories": standins.stinystories,
                 "slprl/SpokenSwag": standins.spokenswag}
    for ref, folder in published.items():
        files = sorted(str(p) for p in folder.rglob("*.parquet"))
        dataset = datasets.load_dataset("parquet", data_files=files[:1], split="train")
        assert list(dataset.features) == list(SCHEMAS[ref]), ref
        for column, feature in dataset.features.items():
            assert isinstance(feature, datasets.Audio) == ("Audio" in SCHEMAS[ref][column]), (ref, column)
    assert sorted(p.parent.name for p in (standins.librispeech / "all").rglob("*.parquet")) == [
        "train.clean.100", "train.clean.360", "train.other.500", "validation.clean"]


def test_librilight_layout_cut_by_voice_activity_and_windowed(standins, profile, speech_tokenizer, tmp_path):
    """SUBSET/SPEAKER/BOOK/FILE.flac with FILE.json; its utterances pass the window, so the slam
    tokenizer encodes them window by window, and the units equal reading each span whole."""
    from slamlib.data.librilight import librilight_items
    from slamlib.standins import LIBRILIGHT_FILES
    from slamlib.tokenization.corpus import read_units, tokenize_corpus

    subset, speaker, book, name, _ = LIBRILIGHT_FILES[0]
    flac = standins.librilight / subset / speaker / book / f"{name}.flac"
    meta = json.loads(flac.with_suffix(".json").read_text())
    assert set(meta) == {"speaker", "book_meta", "snr", "voice_activity"} and meta["speaker"] == speaker
    assert profile.data.librilight == str(standins.librilight) and profile.tokenizer.window_seconds == 20
    items, notes = librilight_items(standins.librilight, profile.data.librilight_target_seconds)
    assert notes == [] and all(i.id.startswith(f"{subset}/") for i in items)
    long = [i for i in items if speech_tokenizer.is_long(int(i.seconds * 16_000))]
    assert long and max(i.seconds for i in items) <= profile.data.librilight_target_seconds
    speech_tokenizer.window_seconds, speech_tokenizer.window_overlap_seconds = 20.0, 4.0
    summary = tokenize_corpus(standins.librilight, tmp_path / "ll", speech_tokenizer, progress=False)
    assert summary["tokenized"] == len(items)
    table = read_units(tmp_path / "ll").set_index("id")
    frames = speech_tokenizer.frame_units([long[0].load()])[0]
    windowed = np.repeat(table.loc[long[0].id, "units"], table.loc[long[0].id, "durations"])
    assert len(windowed) == len(frames) and (windowed == frames).mean() >= 0.99


def test_librispeech_through_the_corpus_reader(standins, profile):
    from slamlib.audio import decode_audio
    from slamlib.data.corpora import load_hub_corpus

    libri = corpus(profile, "librispeech")
    rows = load_hub_corpus(libri)
    assert len(rows) == 4 + 2 + 2  # the three training splits the profile joins
    row = rows[0]
    assert row["id"] == f"{row['speaker_id']}-{row['chapter_id']}-0000" and row["text"].isupper()
    assert row["audio"]["bytes"][:4] == b"fLaC"
    assert is_speech(decode_audio(row["audio"]["bytes"], "librispeech"))
    streamed = list(load_hub_corpus(corpus(profile, "librispeech", streaming=True), max_rows=3))
    assert [r["id"] for r in streamed] == [r["id"] for r in rows.select(range(3))]


def test_speech_sample_streams_librispeech_clean_validation(profile, tmp_path):
    from slamlib.audio import load_audio
    from slamlib.data.speech_sample import prepare_speech_sample

    out = prepare_speech_sample(profile, tmp_path / "sample", progress=False)
    flacs = sorted(out.glob("*.flac"))
    assert len(flacs) == profile.speech_sample.n_utterances == 4
    assert all(is_speech(load_audio(f)) for f in flacs)


def test_stories_and_preference_pairs_tokenize(standins, profile, speech_tokenizer, tmp_path):
    from slamlib.data.corpora import load_hub_corpus, read_preference_units, tokenize_audio_corpus
    from slamlib.tokenization.corpus import read_units

    stories = load_hub_corpus(corpus(profile, "stinystories"), max_rows=2)
    assert set(stories[0]["aligned_text"][0]) == {"word", "start_time", "end_time"}
    tokenize_audio_corpus(stories, tmp_path / "stories", speech_tokenizer, progress=False)
    units = read_units(tmp_path / "stories")
    assert len(units) == 2 and all(len(u) > 50 for u in units.units)

    swag_corpus = corpus(profile, "spokenswag")
    swag = load_hub_corpus(swag_corpus, max_rows=2)
    tokenize_audio_corpus(swag, tmp_path / "swag", speech_tokenizer, kind="preference",
                          keep_columns=swag_corpus.keep_columns, progress=False)
    pairs = read_preference_units(tmp_path / "swag")
    assert len(pairs) == 2 and {"prompt_text", "chosen_text", "speaker"} <= set(pairs.columns)
    assert all(len(u) > 5 for u in pairs.chosen_units)
    valid = load_hub_corpus(corpus(profile, "spokenswag", split="validation"))
    assert len(valid) == 3


# --- benchmarks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, pairs", [("ssc", N_STORYCLOZE), ("tsc", N_STORYCLOZE), ("sblimp", 20), ("salmon", 24),
                                         ("swuggy", 16)])
def test_benchmark_folders_read(standins, profile, name, pairs):
    from slamlib.audio import load_audio
    from slamlib.data.benchmarks import read_pairs

    read = read_pairs(dict(profile.eval.benchmarks)[name])
    assert len(read) == pairs and len({p.id for p in read}) == pairs
    first = read[0]
    assert first.positive != first.negative and is_speech(load_audio(first.positive), 0.2 if name == "swuggy" else 0.5)
    if name in ("sblimp", "swuggy"):
        assert first.info["voice"] in ("Alex", "Victoria")
        assert first.info["positive_text"] != first.info["negative_text"]
    if name == "sblimp":  # ids restart in each subtype, as the release's may: the pair key is (type, subtype, id, voice)
        import pandas as pd

        gold = pd.read_csv(dict(profile.eval.benchmarks)[name] + "/gold.csv")
        assert gold.groupby(["id", "voice", "correct"]).size().max() == 2  # (id, voice) alone would pair wrongly
        assert {p.id.rsplit("/", 2)[0] for p in read} == {f"subject_verb_agreement/{s}" for s in gold.subtype.unique()}
    if name == "swuggy":
        assert first.info["frequency"] == 412 and first.info["positive_text"] == "boat"


def test_published_checkpoint_scores_sblimp(standins, profile, tmp_path):
    """evaluate_model on a SlamKit checkpoint: it has no speech tokenizer of its own, so the
    profile's (the stand-in HuBERT and k-means) is used."""
    from slamlib.evaluate import evaluate_model

    out = evaluate_model(standins.speech_lm, profile, tmp_path, benchmarks=["sblimp"])
    result = out["benchmarks"]["sblimp"]
    # ZeroSpeech's convention: the 2 voices of each of the 10 ids are averaged first
    assert 0.0 <= result["accuracy"] <= 100.0 and result["pairs"] == 10, result
    assert out["missing"] == {}


# --- models -----------------------------------------------------------------------------------------

def test_text_lm_is_qwen2_shaped_and_twist_inits(standins, profile):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slamlib.model import init_speech_lm

    tok = AutoTokenizer.from_pretrained(standins.text_lm)
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    ids = tok("Once upon a time, Lily lived near the park.").input_ids
    assert tok.eos_token_id not in ids and tok.decode(ids) == "Once upon a time, Lily lived near the park."
    text = AutoModelForCausalLM.from_pretrained(standins.text_lm)
    assert type(text).__name__ == "Qwen2ForCausalLM" and text.config.vocab_size >= len(tok)
    assert text.config.eos_token_id == tok.eos_token_id and text.dtype == torch.bfloat16

    speech = init_speech_lm(profile.model, 500, init="twist")
    assert speech.config.vocab_size == 502 and speech.config.pad_token_id == 0 and speech.config.bos_token_id == 1
    layer = "model.layers.1.mlp.down_proj.weight"
    torch.testing.assert_close(speech.state_dict()[layer], text.state_dict()[layer].float())


def test_published_checkpoint_format(standins, speech_tokenizer):
    from slamlib.model import load_speech_lm
    from slamlib.tokenization.units import UnitTokenizer

    config = json.loads((standins.speech_lm / "config.json").read_text())
    assert config["architectures"] == ["UnitLM"] and config["vocab_size"] == 502
    base = config["base_config"]
    assert (base["pad_token_id"], base["bos_token_id"], base["eos_token_id"], base["rope_theta"]) == (0, 1, 1, 10000)
    plain = json.loads((standins.speech_lm_plain / "config.json").read_text())
    assert plain["architectures"] == ["Qwen2ForCausalLM"] and plain["vocab_size"] == 502
    ids = torch.tensor([UnitTokenizer(500).encode([0, 7, 499])])
    assert ids.tolist() == [[1, 2, 9, 501, 1]]
    for folder in (standins.speech_lm, standins.speech_lm_plain):
        model, tokenizer = load_speech_lm(folder, speech_tokenizer=speech_tokenizer)
        assert tokenizer is speech_tokenizer and model.config.rope_parameters["rope_theta"] == 10_000
        assert model(ids).logits.shape == (1, 5, 502)


def test_unit_hifigan_loads_and_vocodes(standins, speech_tokenizer):
    from slamlib.vocoders.load import load_vocoder
    from slamlib.vocoders.hifigan import UnitHiFiGAN

    vocoder = UnitHiFiGAN.from_pretrained(str(standins.hifigan_checkpoint), str(standins.hifigan_config))
    assert vocoder.n_units == 500 and vocoder.samples_per_frame == 640 and vocoder.has_duration_predictor
    wav = vocoder([3, 17, 499, 0], durations=[2, 1, 3, 1])
    assert wav.shape == (7 * 640,) and np.isfinite(wav).all() and np.abs(wav).max() > 0
    chosen = load_vocoder(speech_tokenizer, hifigan_checkpoint=str(standins.hifigan_checkpoint),
                          hifigan_config=str(standins.hifigan_config))
    assert len(chosen([5, 6, 7])) % 640 == 0 and len(chosen([5, 6, 7])) >= 3 * 640


def test_whisper_and_judge_through_genppl(standins):
    from slamlib.audio import load_audio
    from slamlib.genppl import JudgeLM, Transcriber, evaluate_continuations

    asr = Transcriber(standins.asr, max_new_tokens=8)
    assert asr.max_samples == 30 * 16_000 and asr._language_kwargs() == {"task": "transcribe", "language": "en"}
    judge = JudgeLM(standins.judge)
    assert judge.tokenizer.bos_token == "<|begin_of_text|>"
    assert judge.token_ids("the cat")[0] == judge.tokenizer.bos_token_id
    nlls = judge.mean_nll(["The old fox found a box.", ""])
    assert np.isfinite(nlls[0]) and np.isnan(nlls[1])
    wavs = [load_audio(p) for p in sorted(standins.sblimp.glob("*.wav"))[:2]]
    result = evaluate_continuations(wavs, asr, judge)
    assert result["samples"] == 2 and len(result["transcripts"]) == 2
