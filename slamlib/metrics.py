"""Metric definitions on text and scores, written so that they can be checked by hand.

Auto-BLEU measures how much a text repeats itself. Two definitions are in use and give
different numbers, so they are named apart:

- `auto_bleu_slamkit` (SlamKit's `calc_auto_bleu`; the paper's Auto-BLEU column and SpokenSwag's
  repetition filter): tokens from NLTK's word tokenizer (`NLTKWordTokenizer`, which needs no
  downloaded data), bigrams; the fraction of bigram positions whose bigram also occurs at another
  position of the same text. This is the number the paper reports.
- `auto_bleu_gslm` (the original GSLM definition): whitespace tokens; for each n the fraction of
  n-grams that occur elsewhere in the text, never counting n-grams that overlap the one being
  checked; n = 1..N combined with weights (arithmetic or geometric mean).

Both score one transcript; the mean over samples is left to the callers.
`word_tokens` is a separate, regex tokenizer (words and punctuation) kept for vocabularies; Auto-BLEU
no longer uses it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Sequence

AUTO_BLEU = "nltk-word-bigrams"  # the definition auto_bleu_slamkit computes (data filtered with it record it)
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Words and punctuation marks as separate tokens, case kept.

    >>> word_tokens("Tom's kite, Tom's kite!")
    ["Tom's", 'kite', ',', "Tom's", 'kite', '!']
    """
    return _TOKEN.findall(text)


@lru_cache(maxsize=1)
def _nltk_tokenizer():
    """NLTK's Treebank-style word tokenizer, built once on first use (importing NLTK is slow, and
    only Auto-BLEU needs it)."""
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def nltk_word_tokens(text: str) -> list[str]:
    """The tokens SlamKit's Auto-BLEU counts: NLTK's word tokenizer on the whole text, without
    sentence splitting, so only the text's final period is split off its word and a period inside
    the text stays on the word before it.

    >>> nltk_word_tokens("I don't know. I don't know.")
    ['I', 'do', "n't", 'know.', 'I', 'do', "n't", 'know', '.']
    """
    return _nltk_tokenizer().tokenize(text)


def auto_bleu_slamkit(text: str, n: int = 2) -> float:
    """SlamKit's (the paper's) Auto-BLEU of one text: the fraction of its n-gram positions whose
    n-gram (of NLTK word tokens) also occurs at another position; 0 when it has no n-grams.

    >>> auto_bleu_slamkit("the cat the cat sat")   # 'the cat' twice out of 4 bigrams
    0.5
    >>> auto_bleu_slamkit("I don't know. I don't know.")   # 'I do' and "do n't" twice each: 4 of 8
    0.5
    """
    tokens = nltk_word_tokens(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(counts[g] > 1 for g in grams) / len(grams)


def auto_bleu_gslm(text: str, weights: Sequence[float] = (0.5, 0.5), mean: str = "arithmetic") -> float:
    """GSLM's self-BLEU of one utterance: for n = 1..len(weights), the fraction of n-grams found
    among the n-grams left of it or right of it, excluding those that overlap it.

    >>> round(auto_bleu_gslm("a b a b"), 3)   # unigrams 4/4; bigrams: only the last 'a b' finds one
    0.667
    """
    tokens = text.split()
    if len(tokens) <= 1:
        return 0.0
    scores = []
    for n in range(1, len(weights) + 1):
        grams = [tuple(tokens[p : p + n]) for p in range(len(tokens) - n + 1)]
        if not grams:
            scores.append(0.0)
            continue
        hits = 0
        for p, gram in enumerate(grams):
            left, right = tokens[:p], tokens[p + n + 1 :]
            others = {tuple(side[i : i + n]) for side in (left, right) for i in range(len(side) - n + 1)}
            hits += gram in others
        scores.append(hits / len(grams))
    if mean == "arithmetic":
        return float(sum(w * s for w, s in zip(weights, scores)))
    if mean == "geometric":
        return float(math.prod(s ** w for w, s in zip(weights, scores)))
    raise ValueError(f"mean must be 'arithmetic' or 'geometric', not {mean!r}")
