import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from slamlib.audio import load_audio
from slamlib.data.benchmarks import read_pairs
from slamlib.data.lexical import OOV_WORDS
from slamlib.data.corpora import SCHEMAS, _describe, read_preference_units, units_tables
from slamlib.data.synth import prepare_data, written_sentences
from slamlib.profiles import get_profile
from slamlib.runs import RunDir
from slamlib.tokenization.corpus import read_units
from slamlib.tokenization.speech_tokenizer import build_speech_tokenizer

SMALL = {"data.synthetic.n_stories": 30, "data.synthetic.n_read": 20, "data.synthetic.n_preference": 20,
         "data.synthetic.n_heldout_preference": 20, "data.synthetic.n_test_stories": 20,
         "data.synthetic.n_sblimp": 20, "data.synthetic.n_swuggy": 20, "data.synthetic.shard_size": 8,
         "tokenizer.n_units": 32}


def small_profile(seed=0, **extra):
    return get_profile("tiny", {**SMALL, "seed": seed, **extra})


@pytest.fixture(scope="module")
def tokenizer(speech):
    return build_speech_tokenizer(small_profile().tokenizer, fit_audio=[w for _, _, w in speech], device="cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer):
    run = RunDir(tmp_path_factory.mktemp("synth"))
    summary = prepare_data(small_profile(), run, tokenizer, progress=False)
    run.summary = summary
    return run


def digest(folder):
    """A hash of every file's content under a folder (names included)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".parquet", ".wav", ".csv")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_counts_and_units(run):
    counts = run.summary["synthetic"]["counts"]
    lexical = counts.pop("swuggy")  # 20 words of the texts and the OOV words they never use
    assert counts == {"read_speech": 20, "spoken_stories": 30, "preference/train": 20, "preference/heldout": 20,
                      "tsc": 20, "ssc": 20, "sblimp": 20}
    gold = pd.read_csv(run.root / "benchmarks" / "swuggy" / "gold.csv")
    assert gold.id.nunique() == lexical >= 20 + 10 and len(gold) == 4 * lexical  # 2 voices x (word, non-word)
    assert set(gold[(gold.frequency == 0) & (gold.correct == 1)].word) <= set(OOV_WORDS)  # count 0: never in the texts
    pairs = read_pairs(run.root / "benchmarks" / "swuggy")
    assert len(pairs) == 2 * lexical and all(p.info["positive_text"] != p.info["negative_text"] for p in pairs)
    assert run.summary["units"]["preference/train"]["tokenized"] == 60  # prompt, chosen, rejected
    tables = units_tables(run.root / "units")
    assert set(tables) == {"read_speech", "spoken_stories", "preference/train", "preference/heldout"}
    stories = read_units(run.root / "units" / "spoken_stories")
    assert len(stories) == 30 and stories.text.str.len().min() > 50 and stories.units.map(len).min() > 100
    pairs = read_preference_units(run.root / "units" / "preference" / "train")
    assert len(pairs) == 20 and {"prompt_units", "chosen_units", "rejected_units", "chosen_text"} <= set(pairs.columns)
    assert all(len(u) > 5 for u in pairs.chosen_units)


def test_same_seed_same_bytes_under_load_other_seed_differs(run, tokenizer, tmp_path):
    """The same seed gives the same audio, units and benchmark files, and a model trained on them the
    same weights and scores, whether the machine is idle or busy and however many espeak processes."""
    from conftest import competing_load

    again = RunDir(tmp_path / "again")
    with competing_load(2):
        prepare_data(small_profile(**{"data.synthetic.workers": 1}), again, tokenizer, progress=False)
        loaded = _short_training(again, tmp_path / "model-loaded")
    for part in ("audio", "benchmarks", "units"):
        assert digest(again.root / part) == digest(run.root / part), part
    idle = _short_training(run, tmp_path / "model-idle")
    assert (tmp_path / "model-idle" / "model.safetensors").read_bytes() == \
        (tmp_path / "model-loaded" / "model.safetensors").read_bytes()
    assert np.array_equal(idle, loaded)
    other = RunDir(tmp_path / "other")
    prepare_data(small_profile(seed=1), other, tokenizer, progress=False)
    assert digest(other.root / "audio") != digest(run.root / "audio")
    assert digest(other.root / "benchmarks") != digest(run.root / "benchmarks")


def _short_training(run, out):
    """Ten steps of a small LM on the run's units, saved in out; its mean scores of the stories."""
    import dataclasses

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from slamlib.evaluate import sequence_scores
    from slamlib.train.packing import unit_documents
    from slamlib.train.trainer import Trainer

    docs = unit_documents([run.root / "units" / "spoken_stories", run.root / "units" / "read_speech"])
    vocab = 1 + max(int(np.max(docs[i])) for i in range(len(docs)))
    torch.manual_seed(0)
    config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=1024, use_cache=False)
    cfg = dataclasses.replace(small_profile().train, context=256, batch_size=4, log_every=1, eval_every=100,
                              save_every=100, budget=None, max_steps=10)
    trainer = Trainer(Qwen2ForCausalLM(config), docs, cfg, out, seed=0,
                      save_model=lambda model, folder: model.save_pretrained(folder))
    trainer.fit(max_steps=10, progress=False)
    return sequence_scores(trainer.model, [docs[i] for i in range(len(docs))])


def test_schemas_match_the_published_datasets(run):
    import datasets

    for dataset, folder in (("slprl/sTinyStories", "spoken_stories"), ("slprl/SpokenSwag", "preference/train"),
                            ("openslr/librispeech_asr", "read_speech")):
        shard = sorted((run.root / "audio" / folder).glob("shard-*.parquet"))[0]
        features = datasets.Features.from_arrow_schema(pq.read_schema(shard))
        for field, published in SCHEMAS[dataset].items():
            assert field in features, f"{folder} lacks {dataset}'s field {field}"
            ours = _describe(features[field])
            assert ours.split(" ")[0] == published.split(" ")[0] or ours == published, (field, ours, published)
        # and `datasets` reads our shards with those features (audio left encoded)
        loaded = datasets.load_dataset("parquet", data_files=str(shard), split="train")
        assert isinstance(loaded.features["audio" if "audio" in SCHEMAS[dataset] else "prompt"], datasets.Audio)


def test_benchmarks_round_trip_through_the_reader(run):
    for name in ("tsc", "ssc", "sblimp"):
        pairs = read_pairs(run.root / "benchmarks" / name)
        assert len(pairs) == 20
        for pair in pairs:
            assert pair.positive.exists() and pair.negative.exists() and pair.info["positive_text"]
    # the two sides of a story pair share the set-up audio exactly, and differ in the ending
    for pair in read_pairs(run.root / "benchmarks" / "tsc")[:5]:
        pos, neg = load_audio(pair.positive), load_audio(pair.negative)
        n = min(len(pos), len(neg))
        first_difference = int(np.argmax(pos[:n] != neg[:n]))
        assert first_difference > 16_000  # more than a second of identical set-up
    categories = {p.info["category"] for p in read_pairs(run.root / "benchmarks" / "sblimp")}
    assert len(categories) >= 3


def test_no_heldout_sentence_in_any_training_corpus(run):
    training, heldout = written_sentences(run)
    assert len(training) > 100 and len(heldout) > 100
    assert not training & heldout


def test_rerun_is_idempotent_and_resumes_a_lost_shard(run, tokenizer):
    before = digest(run.root)
    again = prepare_data(small_profile(), run, tokenizer, progress=False)
    assert all(n == 0 for n in again["synthetic"]["shards_written"].values())
    assert all(s["tokenized"] == 0 for s in again["units"].values())
    assert digest(run.root) == before
    lost = run.root / "audio" / "spoken_stories" / "shard-00002.parquet"
    content = lost.read_bytes()
    lost.unlink()
    resumed = prepare_data(small_profile(), run, tokenizer, progress=False)
    assert resumed["synthetic"]["shards_written"]["spoken_stories"] == 1
    assert lost.read_bytes() == content


def test_other_settings_make_the_data_again_and_say_which(run, tokenizer, tmp_path, capsys):
    copy = RunDir(tmp_path / "run")
    shutil.copytree(run.root, copy.root, dirs_exist_ok=True)
    old = small_profile().data.synthetic.n_stories
    again = prepare_data(small_profile(**{"data.synthetic.n_stories": old + 1}), copy, tokenizer, progress=False)
    out = capsys.readouterr().out
    assert f"{copy.root / 'audio' / 'spoken_stories'}: settings changed: data.synthetic.n_stories {old} -> {old + 1}; " \
        "synthesizing it again" in out
    synthetic = again["synthetic"]
    assert synthetic["counts"]["spoken_stories"] == old + 1 and all(n > 0 for n in synthetic["shards_written"].values())
    assert len(read_units(copy.root / "units" / "spoken_stories")) == old + 1  # stale units replaced, not mixed
    assert "tokenizing again" in out


def test_read_speech_is_multi_voice_and_stories_and_pairs_single_voice(run):
    voices = {r["voice"] for r in pq.read_table(run.root / "audio" / "read_speech" / "shard-00000.parquet",
                                                columns=["voice"]).to_pylist()}
    assert len(voices) >= 3
    words = pq.read_table(run.root / "audio" / "spoken_stories" / "shard-00000.parquet",
                          columns=["aligned_text"]).column("aligned_text").to_pylist()[0]
    assert words[0]["start_time"] == 0 and all(w["end_time"] >= w["start_time"] for w in words)
    speakers = {r["speaker"] for r in pq.read_table(sorted((run.root / "audio" / "preference" / "train")
                                                           .glob("*.parquet"))[0]).to_pylist()}
    assert speakers == {str(small_profile().data.synthetic.story_voice)}  # the pairs are read by the stories' voice


def test_synth_cli_fits_a_tokenizer_when_the_run_has_none(tmp_path):
    from test_cli import slamlib_cli

    result, summary = slamlib_cli("synth", "--profile", "tiny", "--out", str(tmp_path / "run"), "--scale", "0.001",
                                  "--set", "tokenizer.n_units=32", "--quiet")
    assert result.returncode == 0, result.stderr
    assert summary["command"] == "synth" and summary["counts"]["spoken_stories"] == 20
    assert summary["units"]["spoken_stories"]["tokenized"] == 20 and not summary["bad"]
    assert json.loads((tmp_path / "run" / "speech_tokenizer" / "speech_tokenizer.json").read_text())["n_units"] == 32
