"""The official definitions (SlamKit's code, the paper's numbers) pinned to hand-computed values, so that
a change that drifts from them fails here: how a sequence is scored, unit ids, dedup, GenPPL's formula.
(Auto-BLEU: tests/test_metrics.py; checkpoint formats: tests/test_formats.py; GenPPL's prompts:
tests/test_benchmarks.py.)"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from slamlib.evaluate import sequence_scores
from slamlib.genppl import gen_ppl
from slamlib.tokenization.units import UnitTokenizer, dedup

LOG2 = math.log(2)


class FixedModel(torch.nn.Module):
    """A 'model' over 4 ids (<PAD>, <S>, unit 0, unit 1) that predicts the same distribution
    everywhere: <S> 1/2, each unit 1/4 (<PAD> never)."""

    def __init__(self):
        super().__init__()
        self.logp = torch.nn.Parameter(torch.tensor([-1e4, math.log(0.5), math.log(0.25), math.log(0.25)]))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logp.expand(*input_ids.shape, 4))


def test_a_sequence_is_scored_from_the_first_unit_to_the_closing_s():
    """SlamKit's log_likelihood: targets are the ids after the first (the opening <S> is given, not
    predicted), the closing <S> is predicted, padding is not; mean over the predicted ids."""
    short = [1, 2, 3, 1]  # <S> u0 u1 <S>: log 1/4 + log 1/4 + log 1/2 = -5 log 2 over 3 predictions
    longer = [1, 2, 3, 2, 3, 1]  # batched with `short`, which is padded: -9 log 2 over 5
    mean = sequence_scores(FixedModel(), [short, longer], score="mean")
    total = sequence_scores(FixedModel(), [short, longer], score="sum")
    assert mean == pytest.approx([-5 * LOG2 / 3, -9 * LOG2 / 5], rel=1e-6)
    assert total == pytest.approx([-5 * LOG2, -9 * LOG2], rel=1e-6)
    # what the other readings would give: opening <S> scored too, or closing <S> left out
    assert mean[0] != pytest.approx(-6 * LOG2 / 4) and mean[0] != pytest.approx(-2 * LOG2)


def test_unit_ids_are_slamkits():
    """<PAD>=0, <S>=1 as BOS and EOS, unit u -> u + 2: 500 units, 502 ids."""
    tok = UnitTokenizer(500)
    assert tok.vocab_size == 502
    assert tok.encode([0, 7, 499]) == [1, 2, 9, 501, 1]
    assert tok.decode([1, 2, 9, 501, 1, 0, 0]) == [0, 7, 499]


def test_dedup_removes_consecutive_repeats_only():
    units, durations = dedup([5, 5, 3, 3, 3, 5, 7, 7])
    assert units.tolist() == [5, 3, 5, 7] and durations.tolist() == [2, 3, 1, 2]


def test_genppl_is_exp_of_the_mean_of_per_sample_mean_nlls():
    """SlamKit: torch.stack(nlls).mean().exp(), each nll a sample's mean over its tokens."""
    assert gen_ppl([math.log(2), math.log(8)]) == pytest.approx(4.0)  # not the mean of 2 and 8 (5)
