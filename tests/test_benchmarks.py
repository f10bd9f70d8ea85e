import random

import numpy as np
import pandas as pd
import pytest

from slamlib.audio import write_audio
from slamlib.data.benchmarks import BenchmarkFormatError, Pair, read_pairs, write_pairs


def wav(path, seed=0):
    return write_audio(path, np.random.default_rng(seed).normal(0, 0.05, 1600).astype(np.float32))


def test_manifest_round_trip(tmp_path):
    rows = []
    for i in range(3):
        wav(tmp_path / "wavs" / f"p{i}_pos.wav", i)
        wav(tmp_path / "wavs" / f"p{i}_neg.wav", i + 10)
        rows.append({"id": f"p{i}", "positive": f"wavs/p{i}_pos.wav", "negative": f"wavs/p{i}_neg.wav",
                     "positive_text": f"good {i}", "negative_text": f"bad {i}", "category": "x"})
    write_pairs(tmp_path, rows)
    pairs = read_pairs(tmp_path)
    assert pairs == read_pairs(tmp_path / "pairs.csv")
    assert [p.id for p in pairs] == ["p0", "p1", "p2"]
    assert pairs[1].positive == (tmp_path / "wavs" / "p1_pos.wav").resolve()
    assert pairs[1].info == {"positive_text": "good 1", "negative_text": "bad 1", "category": "x"}
    assert list(pd.read_csv(tmp_path / "pairs.csv").columns[:3]) == ["id", "positive", "negative"]


def test_manifest_errors_name_the_file_and_row(tmp_path):
    wav(tmp_path / "a.wav")
    pd.DataFrame({"id": ["x"], "positive": ["a.wav"], "negative": ["missing.wav"]}).to_csv(tmp_path / "pairs.csv", index=False)
    with pytest.raises(BenchmarkFormatError, match=r"pairs.csv row 2 \(id x\): missing.wav does not exist"):
        read_pairs(tmp_path)
    pd.DataFrame({"id": ["x", "x"], "positive": ["a.wav"] * 2, "negative": ["a.wav"] * 2}).to_csv(tmp_path / "pairs.csv", index=False)
    with pytest.raises(BenchmarkFormatError, match="duplicate pair id"):
        read_pairs(tmp_path)
    pd.DataFrame({"id": ["x"], "good": ["a.wav"]}).to_csv(tmp_path / "pairs.csv", index=False)
    with pytest.raises(BenchmarkFormatError, match="missing column"):
        read_pairs(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkFormatError, match="not a benchmark folder"):
        read_pairs(tmp_path / "empty")


def test_spoken_storycloze_layout_pairs_by_story_not_by_order(tmp_path):
    """SpokenStoryCloze files: a running index, the story id, and the role."""
    names = []
    for i, story in enumerate(["a1b2", "c3d4", "e5f6"]):
        names += [(f"{2 * i}_{story}_correct.wav", story, "correct"), (f"{2 * i + 1}_{story}_incorrect.wav", story, "incorrect")]
    random.Random(0).shuffle(names)  # creation order must not matter
    for j, (name, _, _) in enumerate(names):
        wav(tmp_path / name, j)
    pairs = read_pairs(tmp_path)
    assert [p.id for p in pairs] == ["a1b2", "c3d4", "e5f6"]
    for pair in pairs:
        assert pair.positive.name.endswith(f"{pair.id}_correct.wav")
        assert pair.negative.name.endswith(f"{pair.id}_incorrect.wav")
    (tmp_path / "9_zzzz_correct.wav").write_bytes((tmp_path / names[0][0]).read_bytes())
    with pytest.raises(BenchmarkFormatError, match="zzzz"):
        read_pairs(tmp_path)


def test_zerospeech_sblimp_pairs_by_type_subtype_id_and_voice(tmp_path):
    """Ids repeat across subtypes, as they may in the release: a pair is (type, subtype, id, voice)."""
    rows = []
    for subtype in ("agreement", "plural"):
        for pair_id in ("1", "2"):
            for voice in ("V1", "V2"):
                for correct in (1, 0):
                    name = f"f{subtype[0]}{pair_id}{voice}{correct}"
                    wav(tmp_path / f"{name}.wav", len(rows))
                    rows.append({"filename": name, "voice": voice, "id": pair_id, "type": "morphology",
                                 "subtype": subtype, "correct": correct,
                                 "transcription": f"{subtype} {pair_id} {correct}"})
    gold = pd.DataFrame(rows).sample(frac=1, random_state=0)  # rows in any order
    gold.to_csv(tmp_path / "gold.csv", index=False)
    pairs = read_pairs(tmp_path)
    assert [p.id for p in pairs] == [f"morphology/{s}/{i}/{v}" for s in ("agreement", "plural") for i in "12"
                                     for v in ("V1", "V2")]
    for pair in pairs:
        _, subtype, pair_id, voice = pair.id.split("/")
        assert pair.positive.stem == f"f{subtype[0]}{pair_id}{voice}1" and pair.negative.stem == f"f{subtype[0]}{pair_id}{voice}0"
        assert pair.info["subtype"] == subtype and pair.info["positive_text"] == f"{subtype} {pair_id} 1"
    missing = gold[~((gold.id == "2") & (gold.voice == "V2") & (gold.subtype == "plural") & (gold.correct == 0))]
    missing.to_csv(tmp_path / "gold.csv", index=False)
    row = missing.index.get_loc(missing[(missing.id == "2") & (missing.voice == "V2") & (missing.subtype == "plural")].index[0]) + 2
    with pytest.raises(BenchmarkFormatError, match=rf"gold.csv rows {row} \(type morphology, subtype plural, id 2,"
                                                   r" voice V2\): 1 correct and 0 incorrect files"):
        read_pairs(tmp_path / "gold.csv")
    gold.assign(correct=gold.correct.astype(str).replace({"1": "yes"})).to_csv(tmp_path / "gold.csv", index=False)
    with pytest.raises(BenchmarkFormatError, match="correct is 'yes', not 1 or 0"):
        read_pairs(tmp_path / "gold.csv")


def test_zerospeech_swuggy_pairs_by_id_and_voice_with_words_and_counts(tmp_path):
    rows = []
    for pair_id, (word, nonword, frequency) in enumerate([("boat", "boak", "12"), ("kite", "kipe", "0"),
                                                          ("garden", "garlen", "")]):
        for voice in ("V1", "V2"):
            for correct, text in ((1, word), (0, nonword)):
                name = f"w{pair_id}{voice}{correct}"
                wav(tmp_path / f"{name}.wav", len(rows))
                rows.append({"filename": name, "id": pair_id, "voice": voice, "frequency": frequency, "word": text,
                             "phones": " ".join(text), "length": len(text), "correct": correct})
    pd.DataFrame(rows).to_csv(tmp_path / "gold.csv", index=False)
    pairs = {p.id: p for p in read_pairs(tmp_path)}
    assert sorted(pairs) == ["0/V1", "0/V2", "1/V1", "1/V2", "2/V1", "2/V2"]
    assert pairs["0/V2"].positive.stem == "w0V21" and pairs["0/V2"].negative.stem == "w0V20"
    assert pairs["0/V1"].info == {"item": "0", "voice": "V1", "frequency": 12, "length": 4, "positive_text": "boat",
                                  "negative_text": "boak"}
    assert pairs["2/V1"].info["frequency"] is None  # the release may leave a count empty


def test_pair_equality_ignores_info(tmp_path):
    a = Pair("x", tmp_path / "p", tmp_path / "n", {"k": 1})
    assert a == Pair("x", tmp_path / "p", tmp_path / "n", {})


def test_genppl_prompts_are_the_first_correct_files_by_their_number(tmp_path):
    """SlamKit's order: 1, 2, 10 by the number starting the name; neither by story id (a, b, z)
    nor by name as text (10 before 2)."""
    from slamlib.data.benchmarks import genppl_prompts

    for number, story in ((10, "b"), (2, "a"), (1, "z"), (3, "c")):
        for role in ("correct", "incorrect"):
            (tmp_path / f"{number}_{story}_{role}.wav").write_bytes(b"")
    assert [p.name for p in genppl_prompts(tmp_path, 3)] == ["1_z_correct.wav", "2_a_correct.wav", "3_c_correct.wav"]
    assert len(genppl_prompts(tmp_path, 1000)) == 4 and genppl_prompts(tmp_path, 0) == []
    with pytest.raises(ValueError, match="n_generations"):
        genppl_prompts(tmp_path, -1)
