"""SlamKit's Auto-BLEU (the paper's number) on NLTK word tokens, checked by hand.

Every expected value below is worked out from the tokens written next to it: bigrams are the
consecutive token windows, and a bigram position counts when its bigram occurs at another position.
"""

from collections import Counter

import pytest

from slamlib import metrics
from slamlib.metrics import auto_bleu_slamkit, nltk_word_tokens, word_tokens


def regex_auto_bleu(text: str) -> float:
    """The definition used before NLTK's tokenizer: the same counting on `word_tokens` (kept here
    only to show that the two tokenizers give different numbers)."""
    tokens = word_tokens(text)
    grams = list(zip(tokens, tokens[1:]))
    counts = Counter(grams)
    return sum(counts[g] > 1 for g in grams) / len(grams) if grams else 0.0


def test_nltk_splits_contractions_and_only_the_final_period():
    assert nltk_word_tokens("I don't know. I don't know.") == ["I", "do", "n't", "know.", "I", "do", "n't", "know", "."]
    assert nltk_word_tokens("Mr. Smith met Mr. Smith.") == ["Mr.", "Smith", "met", "Mr.", "Smith", "."]


@pytest.mark.parametrize("text,expected", [
    # I do n't know. I do n't know . -> 8 bigrams; (I do) x2 and (do n't) x2 repeat; (n't know.),
    # (know. I), (n't know), (know .) do not: 4/8 (the regex tokens gave 6/7)
    ("I don't know. I don't know.", 4 / 8),
    # Mr. Smith met Mr. Smith . -> 5 bigrams; (Mr. Smith) x2 repeats: 2/5 (regex: Mr . Smith ... gave 4/7)
    ("Mr. Smith met Mr. Smith.", 2 / 5),
    # The cat sat. The cat sat . -> 6 bigrams; only (The cat) x2 repeats: 2/6 (regex: 6/7)
    ("The cat sat. The cat sat.", 2 / 6),
    ("", 0.0), ("one", 0.0),
    ("Hello.", 0.0),  # Hello . -> one bigram, which has nothing to repeat
    ("Tom, Tom, Tom.", 4 / 5),  # Tom , Tom , Tom . -> (Tom ,) x2 and (, Tom) x2 of 5
])
def test_auto_bleu_slamkit_on_nltk_tokens_by_hand(text, expected):
    assert auto_bleu_slamkit(text) == pytest.approx(expected)


def test_nltk_tokens_change_the_number():
    text = "I don't know. I don't know."
    assert regex_auto_bleu(text) == pytest.approx(6 / 7)  # I don't know . I don't know . -> 7 bigrams, 6 repeat
    assert auto_bleu_slamkit(text) == 0.5
    assert regex_auto_bleu("Mr. Smith met Mr. Smith.") == pytest.approx(4 / 7)


def test_other_n():
    # a b c a b c -> trigrams abc, bca, cab, abc: 2/4; unigrams: all 6 repeat
    assert auto_bleu_slamkit("a b c a b c", n=3) == pytest.approx(0.5)
    assert auto_bleu_slamkit("a b c a b c", n=1) == pytest.approx(1.0)
    assert auto_bleu_slamkit("a b", n=3) == 0.0  # fewer tokens than n: no n-grams


def test_tokenizer_is_built_once():
    assert metrics._nltk_tokenizer() is metrics._nltk_tokenizer()


def test_word_tokens_is_unchanged():
    # the regex tokenizer other modules use for vocabularies keeps contractions and splits every period
    assert word_tokens("I don't know. Mr. Smith.") == ["I", "don't", "know", ".", "Mr", ".", "Smith", "."]
