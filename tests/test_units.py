import numpy as np
import pytest

from slamlib.tokenization.units import UnitTokenizer, dedup, undedup


def test_slamkit_ids_and_vocab_size():
    tok = UnitTokenizer(500)
    assert tok.vocab_size == 502
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 1)
    assert tok.encode([0, 1, 499]) == [1, 2, 3, 501, 1]
    assert tok.encode([5], bos=False, eos=False) == [7]
    assert tok.decode([1, 2, 3, 501, 1, 0, 0]) == [0, 1, 499]


def test_out_of_range_units_and_ids_raise():
    tok = UnitTokenizer(10)
    with pytest.raises(ValueError, match="unit 10"):
        tok.encode([3, 10])
    with pytest.raises(ValueError, match="unit -1"):
        tok.encode([-1])
    with pytest.raises(ValueError, match="vocabulary of 12"):
        tok.decode([12])


def test_dedup_keeps_run_lengths():
    units, durations = dedup([7, 7, 7, 2, 9, 9, 2, 2])
    assert units.tolist() == [7, 2, 9, 2]
    assert durations.tolist() == [3, 1, 2, 2]
    assert undedup(units, durations).tolist() == [7, 7, 7, 2, 9, 9, 2, 2]


def test_dedup_edge_cases(rng):
    empty_units, empty_durations = dedup([])
    assert empty_units.size == 0 and empty_durations.size == 0
    assert [a.tolist() for a in dedup([4])] == [[4], [1]]
    frames = rng.integers(0, 3, size=500)
    units, durations = dedup(frames)
    assert durations.sum() == 500 and (durations > 0).all()
    assert (units[1:] != units[:-1]).all()  # no two neighbours equal after dedup
    assert np.array_equal(undedup(units, durations), frames)


def test_dedup_drops_short_runs_and_keeps_every_frame(rng):
    # runs: 5x2, 7x1, 5x1, 3x3, 9x1 -> the one-frame runs go to the run before them, then merge
    units, durations = dedup([5, 5, 7, 5, 3, 3, 3, 9], min_run=2)
    assert units.tolist() == [5, 3] and durations.tolist() == [4, 4]
    # a short run at the very start joins the first long run
    assert [a.tolist() for a in dedup([1, 2, 2, 2], min_run=2)] == [[2], [4]]
    # nothing long enough: plain dedup
    assert [a.tolist() for a in dedup([1, 2, 3], min_run=2)] == [[1, 2, 3], [1, 1, 1]]
    frames = rng.integers(0, 4, size=2000)
    frames = np.repeat(frames, rng.integers(1, 5, size=2000))
    units, durations = dedup(frames, min_run=3)
    assert durations.sum() == frames.size and (units[1:] != units[:-1]).all()
    assert (durations >= 3).all()
    plain, _ = dedup(frames)
    assert len(units) < len(plain)


def test_hf_tokenizer_matches_unit_ids(rng):
    tok = UnitTokenizer(500)
    hf = tok.to_hf()
    assert len(hf) == 502
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 1)
    units = rng.integers(0, 500, size=40).tolist()
    text = tok.to_text(units)
    assert hf(text, add_special_tokens=False)["input_ids"] == tok.encode(units)
    # spacing does not matter; the decoded string round-trips
    assert hf(" ".join(text.replace("><", "> <").split()), add_special_tokens=False)["input_ids"] == tok.encode(units)
    assert hf.decode(tok.encode(units)).replace(" ", "") == text


def test_hf_tokenizer_refuses_non_units():
    """A string that is not a unit must fail loudly, never map to nothing."""
    hf = UnitTokenizer(20).to_hf()
    for bad in ["hello", "<u20>", "<S> 5 <S>"]:
        with pytest.raises(Exception, match="UNK|unk"):
            hf(bad, add_special_tokens=False)


def test_save_and_load_beside_a_qwen2_model(tmp_path):
    """In a model directory, the saved unit tokenizer loads as PreTrainedTokenizerFast and reads
    unit strings exactly (AutoTokenizer would force Qwen2's byte-level text tokenizer there)."""
    from transformers import PreTrainedTokenizerFast, Qwen2Config

    Qwen2Config(vocab_size=39, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1).save_pretrained(tmp_path)
    tok = UnitTokenizer(37)
    tok.save(tmp_path)
    assert UnitTokenizer.load(tmp_path) == tok
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert loaded("<S><u0> <u36><S>", add_special_tokens=False)["input_ids"] == [1, 2, 38, 1]
    with pytest.raises(FileNotFoundError, match="no unit tokenizer"):
        UnitTokenizer.load(tmp_path / "missing")
