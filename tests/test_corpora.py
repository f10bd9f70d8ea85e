"""The real corpora's loading path, on small local copies in the published schemas and layouts."""

import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Audio, Features, List, Value

from slamlib.data.corpora import FILTER_INFO, load_hub_corpus, read_preference_units, tokenize_audio_corpus
from slamlib.data.synth import flac, prepare_data
from slamlib.hub import AssetUnavailableError
from slamlib.metrics import auto_bleu_slamkit
from slamlib.profiles import DataConfig, HubCorpus, get_profile
from slamlib.runs import RunDir
from slamlib.tokenization.corpus import read_units

AUDIO = Audio(sampling_rate=16_000)
SCHEMAS = {
    "stinystories": Features({"audio": AUDIO, "text": Value("string"), "aligned_text": List(
        {"end_time": Value("float64"), "start_time": Value("float64"), "word": Value("string")}),
        "split_sentence": Value("bool")}),
    "spokenswag": Features({"speaker": Value("string"), "prompt_text": Value("string"), "chosen_text": Value("string"),
                            "rejected_text": Value("string"), "prompt": AUDIO, "chosen": AUDIO, "rejected": AUDIO,
                            "auto_bleu2": Value("float64")}),
    "librispeech": Features({"file": Value("string"), "audio": AUDIO, "text": Value("string"),
                             "speaker_id": Value("int64"), "chapter_id": Value("int64"), "id": Value("string")}),
}


def write(path, rows, features):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=features.arrow_schema), path)


@pytest.fixture(scope="module")
def hub_copies(tmp_path_factory, speech):
    """Local copies laid out as the hub snapshots are."""
    root = tmp_path_factory.mktemp("hub")
    audio = [{"bytes": flac(w), "path": f"{i}.flac"} for i, (_, _, w) in enumerate(speech)]
    texts = [t for t, _, _ in speech]
    stories = [{"audio": a, "text": t, "aligned_text": [{"end_time": 0.5, "start_time": 0.0, "word": t.split()[0]}],
                "split_sentence": False} for a, t in zip(audio, texts)]
    write(root / "sTinyStories" / "data" / "data-00000-of-00002.parquet", stories[:2], SCHEMAS["stinystories"])
    write(root / "sTinyStories" / "data" / "data-00001-of-00002.parquet", stories[2:], SCHEMAS["stinystories"])
    swag = [{"speaker": "af_bella", "prompt_text": texts[i], "chosen_text": texts[i + 1], "rejected_text": texts[i + 2],
             "prompt": audio[i], "chosen": audio[i + 1], "rejected": audio[i + 2], "auto_bleu2": 0.1} for i in range(2)]
    write(root / "SpokenSwag" / "data" / "train-00000-of-00001.parquet", swag, SCHEMAS["spokenswag"])
    write(root / "SpokenSwag" / "data" / "validation-00000-of-00001.parquet", swag[:1], SCHEMAS["spokenswag"])
    libri = [{"file": f"{i}.flac", "audio": a, "text": t.upper(), "speaker_id": 100 + i, "chapter_id": 7,
              "id": f"100-7-{i:04d}"} for i, (a, t) in enumerate(zip(audio, texts))]
    write(root / "librispeech" / "all" / "train.clean.100" / "0000.parquet", libri[:2], SCHEMAS["librispeech"])
    write(root / "librispeech" / "all" / "train.clean.360" / "0000.parquet", libri[2:3], SCHEMAS["librispeech"])
    write(root / "librispeech" / "all" / "validation.clean" / "0000.parquet", libri[3:], SCHEMAS["librispeech"])
    return root


def test_shards_rows_and_splits(hub_copies):
    stories = HubCorpus("stinystories", str(hub_copies / "sTinyStories"))
    assert len(load_hub_corpus(stories)) == 4
    assert len(load_hub_corpus(dataclasses.replace(stories, shards=1))) == 2
    assert len(load_hub_corpus(dataclasses.replace(stories, rows=3))) == 3
    assert len(load_hub_corpus(stories, max_rows=1)) == 1
    streamed = load_hub_corpus(dataclasses.replace(stories, streaming=True, rows=3))
    assert len(list(streamed)) == 3
    libri = HubCorpus("librispeech", str(hub_copies / "librispeech"), config="all",
                      split="train.clean.100+train.clean.360", id_column="id")
    assert sorted(load_hub_corpus(libri)["id"]) == ["100-7-0000", "100-7-0001", "100-7-0002"]
    swag = HubCorpus("spokenswag", str(hub_copies / "SpokenSwag"), kind="preference", split="validation")
    assert len(load_hub_corpus(swag)) == 1
    with pytest.raises(AssetUnavailableError, match="no parquet files for split 'test'"):
        load_hub_corpus(dataclasses.replace(swag, split="test"))


def test_tokenize_real_schemas(hub_copies, speech_tokenizer, tmp_path, speech):
    libri = HubCorpus("librispeech", str(hub_copies / "librispeech"), config="all", split="validation.clean",
                      id_column="id")
    summary = tokenize_audio_corpus(load_hub_corpus(libri), tmp_path / "libri", speech_tokenizer, id_column="id",
                                    keep_columns=("text", "speaker_id"))
    units = read_units(tmp_path / "libri")
    assert summary["tokenized"] == 1 and units.id.tolist() == ["100-7-0003"] and units.speaker_id.tolist() == [103]
    assert units.units[0].tolist() == speech_tokenizer.tokenize(speech[3][2]).units.tolist()
    swag = HubCorpus("spokenswag", str(hub_copies / "SpokenSwag"), kind="preference",
                     keep_columns=("speaker", "prompt_text", "chosen_text", "rejected_text"))
    tokenize_audio_corpus(load_hub_corpus(swag), tmp_path / "swag", speech_tokenizer, kind="preference",
                          keep_columns=swag.keep_columns)
    pairs = read_preference_units(tmp_path / "swag")
    assert pairs.pair.tolist() == ["row-000000000", "row-000000001"]
    assert pairs.chosen_units[0].tolist() == speech_tokenizer.tokenize(speech[1][2]).units.tolist()
    assert pairs.rejected_text[1] == speech[3][0] and pairs.speaker[0] == "af_bella"


def test_prepare_data_with_hub_corpora(hub_copies, speech_tokenizer, tmp_path):
    corpora = (HubCorpus("stinystories", str(hub_copies / "sTinyStories")),
               HubCorpus("spokenswag", str(hub_copies / "SpokenSwag"), kind="preference",
                         keep_columns=("prompt_text", "chosen_text", "rejected_text")))
    profile = dataclasses.replace(get_profile("slam"), data=DataConfig(hub=corpora))
    run = RunDir(tmp_path / "run")
    summary = prepare_data(profile, run, speech_tokenizer, max_rows=3, progress=False)
    assert summary["units"]["stinystories"]["tokenized"] == 3
    assert summary["units"]["spokenswag"]["tokenized"] == 6
    assert len(read_units(run.root / "units" / "stinystories")) == 3


def test_real_ids_fail_offline_with_the_asset_named():
    slam = get_profile("slam")
    for corpus in slam.data.hub:
        with pytest.raises(AssetUnavailableError, match=corpus.dataset):
            load_hub_corpus(corpus, max_rows=1)


# --- SpokenSwag's repetition filter (SlamKit's DPO data: Auto-BLEU of prompt + chosen < 0.3) ---------

# prompt, chosen, and the Auto-BLEU of "prompt chosen" on NLTK word tokens, worked out by hand.
# The stored auto_bleu2 is 0.0 everywhere: the filter must compute the score from the texts.
FILTER_ROWS = [
    ("The small boat drifted.", "It reached the shore.", 0.0),  # no bigram twice: kept
    # yes yes yes yes she said to all of them . -> 10 bigrams, (yes yes) x3: 3/10 = 0.3, not below 0.3: dropped
    ("yes yes yes yes", "she said to all of them.", 0.3),
    # ... of them again . -> 11 bigrams, 3 repeat: 3/11 < 0.3: kept
    ("yes yes yes yes", "she said to all of them again.", 3 / 11),
    # I do n't know. I do n't know . -> 8 bigrams, (I do) x2 and (do n't) x2: 4/8: dropped
    ("I don't know.", "I don't know.", 0.5),
]
TEXT_COLUMNS = ("prompt_text", "chosen_text", "rejected_text")


@pytest.fixture(scope="module")
def swag_copies(tmp_path_factory, speech):
    """SpokenSwag-format copies of FILTER_ROWS: with texts, with only auto_bleu2, with neither."""
    root = tmp_path_factory.mktemp("swag")
    audio = [{"bytes": flac(w), "path": f"{i}.flac"} for i, (_, _, w) in enumerate(speech)]
    rows = [{"speaker": "af_bella", "prompt_text": p, "chosen_text": c, "rejected_text": "Nothing happened.",
             "prompt": audio[0], "chosen": audio[1], "rejected": audio[2], "auto_bleu2": 0.0}
            for p, c, _ in FILTER_ROWS]
    write(root / "texts" / "data" / "train-00000-of-00001.parquet", rows, SCHEMAS["spokenswag"])
    scores_only = Features({k: v for k, v in SCHEMAS["spokenswag"].items() if k not in TEXT_COLUMNS})
    scored = [{**{k: v for k, v in r.items() if k not in TEXT_COLUMNS}, "auto_bleu2": s}
              for r, s in zip(rows, (0.1, 0.3, 0.29, 0.5))]
    write(root / "scores" / "data" / "train-00000-of-00001.parquet", scored, scores_only)
    bare = Features({k: v for k, v in scores_only.items() if k != "auto_bleu2"})
    write(root / "bare" / "data" / "train-00000-of-00001.parquet",
          [{k: v for k, v in r.items() if k != "auto_bleu2"} for r in scored], bare)
    return root


def swag_corpus(root, max_auto_bleu=0.3):
    return HubCorpus("spokenswag", str(root), kind="preference", keep_columns=TEXT_COLUMNS,
                     max_auto_bleu=max_auto_bleu)


def test_hand_worked_auto_bleu_of_the_filter_rows():
    for prompt, chosen, expected in FILTER_ROWS:
        assert auto_bleu_slamkit(f"{prompt} {chosen}") == pytest.approx(expected), (prompt, chosen)
    assert auto_bleu_slamkit("yes yes yes yes she said to all of them.") == 0.3  # exactly: 0.3 is dropped


def test_repetitive_pairs_are_dropped_and_counted(swag_copies, speech_tokenizer, tmp_path):
    corpus = swag_corpus(swag_copies / "texts")
    summary = tokenize_audio_corpus(load_hub_corpus(corpus), tmp_path / "swag", speech_tokenizer, kind="preference",
                                    max_auto_bleu=corpus.max_auto_bleu, keep_columns=corpus.keep_columns, progress=False)
    counts = {"max_auto_bleu": 0.3, "scored_by": "text", "kept": 2, "dropped": 2}
    assert summary["repetition_filter"] == counts and summary["tokenized"] == 6
    assert json.loads((tmp_path / "swag" / FILTER_INFO).read_text()) == counts
    pairs = read_preference_units(tmp_path / "swag")
    assert pairs.pair.tolist() == ["row-000000000", "row-000000002"]  # the rows keep their numbers
    assert pairs.chosen_text.tolist() == [FILTER_ROWS[0][1], FILTER_ROWS[2][1]]
    # a rerun reuses the shards and still reports what the filter kept and dropped
    again = tokenize_audio_corpus(load_hub_corpus(corpus), tmp_path / "swag", speech_tokenizer, kind="preference",
                                  max_auto_bleu=corpus.max_auto_bleu, keep_columns=corpus.keep_columns, progress=False)
    assert again["tokenized"] == 0 and again["already_done"] == 6 and again["repetition_filter"] == counts
    # no filter: the two dropped pairs are added; then the folder holds pairs a 0.3 filter drops
    unfiltered = tokenize_audio_corpus(load_hub_corpus(swag_corpus(swag_copies / "texts", None)), tmp_path / "swag",
                                       speech_tokenizer, kind="preference", keep_columns=TEXT_COLUMNS, progress=False)
    assert unfiltered["tokenized"] == 6 and unfiltered["repetition_filter"]["kept"] == 4
    assert len(read_preference_units(tmp_path / "swag")) == 4
    with pytest.raises(ValueError, match=r"holds pairs tokenized with max_auto_bleu=None.*delete the old shards"):
        tokenize_audio_corpus(load_hub_corpus(corpus), tmp_path / "swag", speech_tokenizer, kind="preference",
                              max_auto_bleu=corpus.max_auto_bleu, progress=False)


def test_no_threshold_keeps_every_pair(swag_copies, speech_tokenizer, tmp_path):
    profile = dataclasses.replace(get_profile("slam"), data=DataConfig(hub=(swag_corpus(swag_copies / "texts"),)))
    assert get_profile(profile, {"data.hub.spokenswag.max_auto_bleu": "0.5"}).data.hub[0].max_auto_bleu == 0.5
    off = get_profile(profile, {"data.hub.spokenswag.max_auto_bleu": "none"})
    assert off.data.hub[0].max_auto_bleu is None
    summary = prepare_data(off, RunDir(tmp_path / "run"), speech_tokenizer, max_rows=2, progress=False)
    swag = summary["units"]["spokenswag"]
    assert swag["repetition_filter"] == {"max_auto_bleu": None, "scored_by": None, "kept": 2, "dropped": 0}
    assert swag["tokenized"] == 6


def test_prepare_data_reports_the_counts(swag_copies, speech_tokenizer, tmp_path):
    profile = dataclasses.replace(get_profile("slam"), data=DataConfig(hub=(swag_corpus(swag_copies / "texts"),)))
    summary = prepare_data(profile, RunDir(tmp_path / "run"), speech_tokenizer, max_rows=2, progress=False)
    assert summary["units"]["spokenswag"]["repetition_filter"]["kept"] == 1
    assert summary["units"]["spokenswag"]["repetition_filter"]["dropped"] == 1


def test_the_slam_profile_filters_spokenswag_as_slamkit():
    hub = {c.name: c for c in get_profile("slam").data.hub}
    assert hub["spokenswag"].max_auto_bleu == 0.3
    assert hub["librispeech"].max_auto_bleu is None and hub["stinystories"].max_auto_bleu is None


def test_without_texts_the_auto_bleu2_column_is_used(swag_copies, speech_tokenizer, tmp_path):
    corpus = swag_corpus(swag_copies / "scores")
    summary = tokenize_audio_corpus(load_hub_corpus(corpus, max_rows=3), tmp_path / "swag", speech_tokenizer,
                                    kind="preference", max_auto_bleu=corpus.max_auto_bleu, progress=False)
    # auto_bleu2 0.1, 0.3, 0.29: 0.3 is not below 0.3
    assert summary["repetition_filter"] == {"max_auto_bleu": 0.3, "scored_by": "auto_bleu2", "kept": 2, "dropped": 1}
    assert read_preference_units(tmp_path / "swag").pair.tolist() == ["row-000000000", "row-000000002"]


def test_without_texts_or_scores_the_filter_names_what_it_needs(swag_copies, speech_tokenizer, tmp_path):
    corpus = swag_corpus(swag_copies / "bare")
    with pytest.raises(ValueError, match=r"spokenswag \(.*bare\).*\['prompt_text', 'chosen_text'\].*'auto_bleu2'"):
        tokenize_audio_corpus(load_hub_corpus(corpus), tmp_path / "swag", speech_tokenizer, kind="preference",
                              max_auto_bleu=corpus.max_auto_bleu, name=f"{corpus.name} ({corpus.dataset})",
                              progress=False)
    speech_corpus = HubCorpus("stinystories", str(swag_copies / "bare"), max_auto_bleu=0.3)
    with pytest.raises(ValueError, match="filters preference pairs"):
        load_hub_corpus(speech_corpus)


def test_a_streamed_corpus_is_filtered_and_counted_too(swag_copies, speech_tokenizer, tmp_path):
    corpus = dataclasses.replace(swag_corpus(swag_copies / "texts"), streaming=True)
    summary = tokenize_audio_corpus(load_hub_corpus(corpus), tmp_path / "swag", speech_tokenizer, kind="preference",
                                    max_auto_bleu=corpus.max_auto_bleu, progress=False)
    assert summary["repetition_filter"] == {"max_auto_bleu": 0.3, "scored_by": "text", "kept": 2, "dropped": 2}
    assert read_preference_units(tmp_path / "swag").pair.tolist() == ["row-000000000", "row-000000002"]
