import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from slamlib.audio import SAMPLE_RATE, load_audio, write_audio
from slamlib.profiles import HubertConfig, LogMelConfig, TokenizerConfig
from slamlib.tokenization.corpus import done_ids, read_units, tokenize_corpus
from slamlib.tokenization.speech_tokenizer import (
    SpeechTokenizer,
    build_speech_tokenizer,
    length_batches,
    load_or_build_speech_tokenizer,
)

SMALL = TokenizerConfig(features=LogMelConfig(), n_units=16, fit_seconds=60)


@pytest.fixture(scope="module")
def logmel_tokenizer(speech):
    return build_speech_tokenizer(SMALL, fit_audio=[w for _, _, w in speech], device="cpu")


@pytest.fixture
def audio_folder(tmp_path, speech):
    folder = tmp_path / "audio"
    for i, (_, _, wav) in enumerate(speech * 3):
        write_audio(folder / f"utt-{i:02d}.wav", wav)
    return folder


def test_tokenize_gives_deduplicated_units(logmel_tokenizer, speech):
    wav = speech[0][2]
    out = logmel_tokenizer.tokenize(wav)
    assert out.frame_rate == 50.0
    assert out.durations.sum() == logmel_tokenizer.extractor.n_frames(len(wav))
    assert (out.units[1:] != out.units[:-1]).all()
    assert out.units.min() >= 0 and out.units.max() < 16
    ids = logmel_tokenizer.encode(wav)
    assert ids[0] == ids[-1] == 1 and ids[1:-1] == (out.units + 2).tolist()
    batch = logmel_tokenizer.tokenize([w for _, _, w in speech])
    assert np.array_equal(batch[0].units, out.units)


def test_length_batches_respect_the_padded_budget():
    lengths = [5, 1, 4, 2, 9, 3]
    batches = length_batches(lengths, max_padded=9)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 9 or len(batch) == 1


def test_logmel_tokenizer_save_load_round_trip(logmel_tokenizer, speech, tmp_path):
    logmel_tokenizer.save(tmp_path / "tok")
    loaded = SpeechTokenizer.load(tmp_path / "tok", device="cpu")
    assert loaded.fingerprint() == logmel_tokenizer.fingerprint()
    for _, _, wav in speech:
        assert np.array_equal(loaded.tokenize(wav).units, logmel_tokenizer.tokenize(wav).units)
    from transformers import PreTrainedTokenizerFast

    assert len(PreTrainedTokenizerFast.from_pretrained(tmp_path / "tok")) == 18


def test_hubert_tokenizer_carries_its_local_encoder(tiny_hubert_dir, speech, tmp_path):
    """A tokenizer built from a local HubertModel directory stands alone once saved."""
    config = TokenizerConfig(features=HubertConfig(model=str(tiny_hubert_dir), layer=2), n_units=8)
    tok = build_speech_tokenizer(config, fit_audio=[w for _, _, w in speech], device="cpu")
    tok.save(tmp_path / "tok")
    saved = json.loads((tmp_path / "tok" / "speech_tokenizer.json").read_text())
    assert saved["features"]["model"] == "encoder" and (tmp_path / "tok" / "encoder" / "config.json").exists()
    loaded = SpeechTokenizer.load(tmp_path / "tok", device="cpu")
    assert loaded.frame_rate == 25.0
    for _, _, wav in speech:
        assert np.array_equal(loaded.tokenize(wav).units, tok.tokenize(wav).units)
    # the encoder's path changed (copied into the folder); what it computes did not: the units
    # already written with `tok` stay valid for `loaded`
    assert loaded.fingerprint() == tok.fingerprint()


def test_load_detects_tampered_centroids(logmel_tokenizer, tmp_path):
    logmel_tokenizer.save(tmp_path / "tok")
    np.save(tmp_path / "tok" / "kmeans.npy", np.zeros((16, 160), dtype=np.float32))
    with pytest.raises(ValueError, match="centroids differ"):
        SpeechTokenizer.load(tmp_path / "tok")
    with pytest.raises(FileNotFoundError, match="no speech tokenizer"):
        SpeechTokenizer.load(tmp_path / "nothing")


def test_load_or_build_reuses_a_matching_tokenizer(speech, tmp_path):
    wavs = [w for _, _, w in speech]
    first = load_or_build_speech_tokenizer(SMALL, tmp_path / "tok", fit_audio=wavs, device="cpu")
    second = load_or_build_speech_tokenizer(SMALL, tmp_path / "tok", fit_audio=None, device="cpu")
    assert second.fingerprint() == first.fingerprint()  # loaded, not refitted (no audio was given)
    other = TokenizerConfig(features=LogMelConfig(), n_units=12, fit_seconds=60)
    assert load_or_build_speech_tokenizer(other, tmp_path / "tok", fit_audio=wavs, device="cpu").n_units == 12
    smoothed = dataclasses.replace(other, min_run=2)  # another dedup: built anew, and it survives a reload
    built = load_or_build_speech_tokenizer(smoothed, tmp_path / "tok", fit_audio=wavs, device="cpu")
    assert built.min_run == 2 and SpeechTokenizer.load(tmp_path / "tok", device="cpu").min_run == 2
    assert (built.tokenize(wavs[0]).durations >= 2).all()


def test_a_tokenizer_fitted_on_other_audio_is_fitted_again(speech, tmp_path, capsys):
    wavs = [w for _, _, w in speech]
    first = load_or_build_speech_tokenizer(SMALL, tmp_path / "tok", fit_audio=wavs, fit_from={"n": 3}, device="cpu")
    assert load_or_build_speech_tokenizer(SMALL, tmp_path / "tok", fit_from={"n": 3}, device="cpu").fingerprint() \
        == first.fingerprint() and capsys.readouterr().out == ""
    fewer = load_or_build_speech_tokenizer(SMALL, tmp_path / "tok", fit_audio=wavs[:1], fit_from={"n": 1}, device="cpu")
    assert "settings changed: fit on n 3 -> 1; building it again" in capsys.readouterr().out
    assert fewer.fingerprint() != first.fingerprint()


def test_corpus_skips_and_lists_bad_files_and_keeps_the_rest(logmel_tokenizer, audio_folder, tmp_path):
    (audio_folder / "broken.wav").write_bytes(b"RIFF....garbage")
    (audio_folder / "empty.flac").write_bytes(b"")
    write_audio(audio_folder / "short-silence.wav", np.zeros(100, dtype=np.float32))

    sf.write(audio_folder / "nan.wav", np.full(1600, np.nan, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    summary = tokenize_corpus(audio_folder, tmp_path / "units", logmel_tokenizer, progress=False)
    bad = {b["id"]: b["reason"] for b in summary["bad"]}
    assert set(bad) == {"broken", "empty", "nan"}
    assert "NaN" in bad["nan"] and "empty" in bad["empty"]
    table = read_units(tmp_path / "units")
    assert len(table) == 13 and summary["tokenized"] == 13  # 12 speech files + the short silent one
    assert json.loads((tmp_path / "units" / "bad_audio.json").read_text()) == summary["bad"]
    row = table.set_index("id").loc["utt-00"]
    assert np.array_equal(row.units, logmel_tokenizer.tokenize(load_audio(audio_folder / "utt-00.wav")).units)
    assert row.durations.sum() * 0.02 == pytest.approx(row.seconds, abs=0.03)


def test_corpus_rerun_is_idempotent_and_resumes(logmel_tokenizer, audio_folder, tmp_path):
    out = tmp_path / "units"
    partial = tokenize_corpus(audio_folder, out, logmel_tokenizer, shard_size=4, max_items=5, progress=False)
    assert partial["tokenized"] == 5 and partial["shards_written"] == 2
    # an interrupted shard leaves only a temporary file, which never counts
    (out / ".shard-00009.parquet.tmp").write_bytes(b"half written")
    rest = tokenize_corpus(audio_folder, out, logmel_tokenizer, shard_size=4, progress=False)
    assert rest["already_done"] == 5 and rest["tokenized"] == 7
    again = tokenize_corpus(audio_folder, out, logmel_tokenizer, shard_size=4, progress=False)
    assert again["tokenized"] == 0 and again["shards_written"] == 0
    table = read_units(out)
    assert len(table) == 12 and table.id.is_unique
    assert done_ids(out) == {f"utt-{i:02d}" for i in range(12)}
    # new files appear: only they are tokenized, into a new shard
    write_audio(audio_folder / "utt-99.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32))
    more = tokenize_corpus(audio_folder, out, logmel_tokenizer, shard_size=4, progress=False)
    assert more["tokenized"] == 1 and len(read_units(out)) == 13


def test_corpus_refuses_units_from_another_tokenizer(logmel_tokenizer, audio_folder, speech, tmp_path):
    tokenize_corpus(audio_folder, tmp_path / "units", logmel_tokenizer, max_items=2, progress=False)
    other = build_speech_tokenizer(TokenizerConfig(features=LogMelConfig(), n_units=8),
                                   fit_audio=[w for _, _, w in speech], device="cpu")
    with pytest.raises(ValueError, match="units from another speech tokenizer"):
        tokenize_corpus(audio_folder, tmp_path / "units", other, progress=False)


def test_stale_units_are_replaced_when_asked(logmel_tokenizer, audio_folder, speech, tmp_path, capsys):
    tokenize_corpus(audio_folder, tmp_path / "units", logmel_tokenizer, max_items=2, progress=False)
    other = build_speech_tokenizer(TokenizerConfig(features=LogMelConfig(), n_units=8),
                                   fit_audio=[w for _, _, w in speech], device="cpu")
    again = tokenize_corpus(audio_folder, tmp_path / "units", other, progress=False, replace_stale=True)
    assert f"{tmp_path / 'units'}: made from another speech tokenizer or other audio (tokenizer " \
        f"{logmel_tokenizer.fingerprint()} -> {other.fingerprint()}); tokenizing again" in capsys.readouterr().out
    assert again["already_done"] == 0 and again["tokenized"] == 12
    assert read_units(tmp_path / "units").units.map(max).max() < 8  # every shard from the 8-unit tokenizer


def test_corpus_keeps_metadata_columns(logmel_tokenizer, audio_folder, tmp_path):
    pd.DataFrame({"file": ["utt-00.wav", "utt-01.wav"], "text": ["first", "second"]}).to_csv(
        audio_folder / "metadata.csv", index=False)
    tokenize_corpus(audio_folder, tmp_path / "units", logmel_tokenizer, keep_columns=["text"], progress=False)
    texts = read_units(tmp_path / "units").set_index("id").text
    assert texts["utt-00"] == "first" and texts["utt-01"] == "second" and pd.isna(texts["utt-05"])


def test_corpus_from_a_dataset_with_encoded_audio(logmel_tokenizer, speech, tmp_path):
    """Rows of a `datasets` dataset whose audio column holds encoded bytes, LibriSpeech-style."""
    import io

    from datasets import Audio, Dataset

    def encoded(wav):
        buf = io.BytesIO()
        sf.write(buf, wav, SAMPLE_RATE, format="FLAC")
        return {"bytes": buf.getvalue(), "path": None}

    rows = {"id": [f"spk-{i}" for i in range(4)] + ["spk-bad"],
            "audio": [encoded(w) for _, _, w in speech] + [{"bytes": b"junk", "path": None}],
            "text": [t for t, _, _ in speech] + ["?"]}
    dataset = Dataset.from_dict(rows).cast_column("audio", Audio(decode=False))
    summary = tokenize_corpus(dataset, tmp_path / "units", logmel_tokenizer, id_column="id",
                              keep_columns=["text"], progress=False)
    assert summary["tokenized"] == 4 and [b["id"] for b in summary["bad"]] == ["spk-bad"]
    table = read_units(tmp_path / "units").set_index("id")
    assert np.array_equal(table.loc["spk-2"].units, logmel_tokenizer.tokenize(speech[2][2]).units)
    assert table.loc["spk-0"].text == speech[0][0]


def test_corpus_input_errors(logmel_tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder of audio"):
        tokenize_corpus(tmp_path / "nope", tmp_path / "units", logmel_tokenizer)
    from datasets import Dataset

    with pytest.raises(ValueError, match="no audio column 'audio'"):
        tokenize_corpus(Dataset.from_dict({"x": [1]}), tmp_path / "units2", logmel_tokenizer)


def test_dimension_mismatch_is_caught():
    from slamlib.tokenization.features import LogMelExtractor
    from slamlib.tokenization.kmeans import KMeans

    with pytest.raises(ValueError, match="768-dim centroids but the features are 160-dim"):
        SpeechTokenizer(LogMelExtractor(device="cpu"), KMeans(torch.zeros(5, 768)))
