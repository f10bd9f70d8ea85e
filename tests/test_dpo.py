import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tiny_arch

from slamlib.dpo import (
    TokenizationMismatch,
    check_trainer_ids,
    dpo_trainer,
    expected_ids,
    preference_rows,
    read_dpo_log,
    train_dpo,
)
from slamlib.model import init_speech_lm, load_speech_lm, save_speech_lm
from slamlib.reuse import SettingsChanged
from slamlib.profiles import ModelConfig, get_profile

ARCH = tiny_arch(vocab_size=40, max_position_embeddings=512)


def write_pairs_units(folder, n=32, seed=0):
    """Preference units, one row per utterance: chosen continuations count up from the prompt's
    last unit, rejected ones are random (something a model can learn to prefer)."""
    rng = np.random.default_rng(seed)
    rows = []
    for pair in range(n):
        prompt = rng.integers(0, 16, int(rng.integers(5, 12))).tolist()
        chosen = [(prompt[-1] + k) % 16 for k in range(1, 6)]
        rejected = rng.integers(0, 16, 5).tolist()
        for role, units in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
            rows.append({"id": f"p{pair}/{role}", "units": units, "pair": f"p{pair}", "role": role})
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "shard-00000.parquet")
    return folder


@pytest.fixture(scope="module")
def start(tmp_path_factory, speech_tokenizer):
    root = tmp_path_factory.mktemp("dpo")
    save_speech_lm(init_speech_lm(ModelConfig(base=None, architecture=ARCH), 16, init="random"), root / "lm",
                   speech_tokenizer)
    write_pairs_units(root / "train")
    write_pairs_units(root / "heldout", n=8, seed=1)
    return root


def small_cfg(**changes):
    """The tiny profile's DPO settings, small; plain DPO unless `sft_weight` is given."""
    return dataclasses.replace(get_profile("tiny").dpo, **{"batch_size": 4, "lr": 2e-3, "budget": None, "log_every": 1,
                                                            "eval_every": 5, "max_length": 64, "sft_weight": 0.0,
                                                            **changes})


def test_trl_sees_exactly_the_unit_ids(start):
    model, speech_tokenizer = load_speech_lm(start / "lm")
    rows = preference_rows(start / "train", speech_tokenizer.unit_tokenizer)
    trainer = dpo_trainer(model, speech_tokenizer, rows, small_cfg(), start / "out-ids")
    for i in range(len(rows)):
        got = trainer.train_dataset[i]
        want = expected_ids(rows[i], speech_tokenizer.unit_tokenizer)
        assert got["prompt_ids"] == want["prompt_ids"] and got["prompt_ids"][0] == 1
        assert got["chosen_ids"] == want["chosen_ids"] and got["chosen_ids"][-1] == 1 and len(got["chosen_ids"]) == 6
        assert got["rejected_ids"] == want["rejected_ids"]
    assert want["prompt_ids"][1:] == [u + 2 for u in rows[-1]["units"]["prompt"]]


def test_the_guard_refuses_empty_or_wrong_ids(start):
    model, speech_tokenizer = load_speech_lm(start / "lm")
    rows = preference_rows(start / "train", speech_tokenizer.unit_tokenizer)
    good = [expected_ids(r, speech_tokenizer.unit_tokenizer) for r in rows]
    check_trainer_ids(good, rows, speech_tokenizer.unit_tokenizer)
    empty = [{**g, "chosen_ids": []} for g in good]  # what a tokenizer that reads nothing gives TRL
    with pytest.raises(TokenizationMismatch, match="chosen_ids"):
        check_trainer_ids(empty, rows, speech_tokenizer.unit_tokenizer)
    shifted = [{**g, "prompt_ids": [i + 1 for i in g["prompt_ids"]]} for g in good]
    with pytest.raises(TokenizationMismatch, match="prompt_ids"):
        check_trainer_ids(shifted, rows, speech_tokenizer.unit_tokenizer)


def test_dpo_loss_falls_and_the_model_is_saved(start):
    out = start / "out"
    summary = train_dpo(start / "lm", start / "train", small_cfg(), out, heldout_units=start / "heldout",
                        max_steps=24, device="cpu")
    log = read_dpo_log(out)
    losses = [r["loss"] for r in log if "loss" in r and "eval_loss" not in r]
    assert summary["steps"] == 24 and losses[0] > 0.6
    assert losses[-1] < 0.5 and summary["final_margin"] > 0  # away from log 2: it is learning
    assert any("eval_rewards/accuracies" in r for r in log)
    model, tokenizer = load_speech_lm(out)
    assert tokenizer.n_units == 16
    again = train_dpo(start / "lm", start / "train", small_cfg(), out, heldout_units=start / "heldout",
                      max_steps=24, device="cpu")
    assert again["already_done"]


def test_dpo_trains_again_when_a_setting_changes(start, capsys):
    out = start / "out-reuse"
    train_dpo(start / "lm", start / "train", small_cfg(), out, max_steps=2, device="cpu")
    capsys.readouterr()
    assert train_dpo(start / "lm", start / "train", small_cfg(), out, max_steps=2, device="cpu")["already_done"]
    assert "settings changed" not in capsys.readouterr().out
    with pytest.raises(SettingsChanged, match=rf"{out} holds a run made otherwise \(settings changed: dpo.beta 0.1 -> "
                                              r"0.3\); --restart \(restart=True in Python\) trains again"):
        train_dpo(start / "lm", start / "train", small_cfg(beta=0.3), out, max_steps=2, device="cpu")
    assert (out / "dpo_summary.json").exists()  # the old run is still there
    changed = train_dpo(start / "lm", start / "train", small_cfg(beta=0.3), out, max_steps=2, device="cpu",
                        on_change="restart")
    assert f"{out}: settings changed: dpo.beta 0.1 -> 0.3; training again" in capsys.readouterr().out
    assert not changed.get("already_done") and changed["beta"] == 0.3
    again = train_dpo(start / "lm", start / "train", small_cfg(beta=0.3), out, max_steps=2, device="cpu", restart=True)
    assert not again.get("already_done")  # --restart: trained again though nothing changed


def test_the_likelihood_term_adds_the_chosen_nll(start):
    """With sft_weight w, the first loss (policy = reference, so the DPO part is log 2) is
    log 2 + w x the chosen continuation's mean NLL, which a random 16-unit model puts near log 18."""
    first = {}
    for weight in (0.0, 0.5):
        out = start / f"out-sft-{weight}"
        train_dpo(start / "lm", start / "train", small_cfg(sft_weight=weight, lr=1e-9), out, max_steps=1, device="cpu")
        first[weight] = [r["loss"] for r in read_dpo_log(out) if "loss" in r][0]
    assert first[0.0] == pytest.approx(np.log(2), abs=1e-3)
    nll = (first[0.5] - first[0.0]) / 0.5
    assert np.log(18) - 1.0 < nll < np.log(18) + 1.0


def test_a_wall_clock_budget_stops_dpo(start):
    summary = train_dpo(start / "lm", start / "train", small_cfg(), start / "out-budget", budget="0.001s", device="cpu")
    planned = round(small_cfg().epochs * 32 / 4)  # the profile's passes over 32 pairs, 4 a step
    assert summary["planned_steps"] == planned > 1 and summary["steps"] == 1  # the budget, not the plan, ended it


def test_paper_dpo_settings():
    dpo = get_profile("slam").dpo
    assert (dpo.beta, dpo.lr, dpo.batch_size, dpo.grad_accum) == (0.1, 5e-5, 4, 16)
    # SlamKit's schedule (cosine_with_min_lr, min_lr = lr: constant after 100 warmup steps) and clipping
    assert (dpo.scheduler, dpo.warmup_steps, dpo.max_grad_norm) == ("constant_with_warmup", 100, 0.5)
    assert dpo.corpus == "spokenswag" and dpo.max_steps == 813
