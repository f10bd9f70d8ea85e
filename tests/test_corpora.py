"""The real corpora's loading path, on small local copies in the published schemas and layouts."""

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Audio, Features, List, Value

from slamlib.data.corpora import load_hub_corpus, read_preference_units, tokenize_audio_corpus
from slamlib.data.synth import flac, prepare_data
from slamlib.hub import AssetUnavailableError
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
