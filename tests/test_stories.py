import random
from collections import Counter

import pytest

from slamlib.data.stories import BOYS, FEELINGS, GIRLS, TOPICS, StoryWorld, build_texts, normalize
from slamlib.metrics import auto_bleu_gslm, auto_bleu_slamkit, word_tokens

SIZES = dict(n_stories=300, n_read=200, n_preference=200, n_test_stories=200, n_sblimp=200,
             n_heldout_preference=200)


@pytest.fixture(scope="module")
def texts():
    return build_texts(7, **SIZES)


def test_same_seed_same_texts_and_other_seeds_differ(texts):
    again = build_texts(7, **SIZES)
    assert [s.text for s in again.stories] == [s.text for s in texts.stories]
    assert again.sblimp == texts.sblimp and again.tsc == texts.tsc and again.preference == texts.preference
    other = build_texts(8, **SIZES)
    assert [s.text for s in other.stories] != [s.text for s in texts.stories]
    assert other.sblimp != texts.sblimp


def test_no_heldout_sentence_in_training(texts):
    assert texts.heldout_sentences() and texts.training_sentences()
    assert not texts.training_sentences() & texts.heldout_sentences()


def test_endings_agree_with_the_story(texts):
    for story in texts.stories + texts.test_stories:
        assert story.obj in story.ending and (story.name in story.ending or {"he", "she"} & set(normalize(story.ending).split()))
        assert sum(place[4:] in story.ending for place in TOPICS[story.topic]["places"]) >= 1  # a place of its setting
        assert story.feeling in FEELINGS[story.mood] and story.feeling in normalize(story.ending).split()
        assert f"{story.color} {story.obj}" in " ".join(story.setup)  # set up before it is named
        flipped = set(normalize(story.flipped_ending).split()) - set(normalize(story.ending).split())
        assert len(flipped) == 1 and flipped.pop() in FEELINGS["bad" if story.mood == "good" else "good"]


def test_tstorycloze_negatives_come_from_stories_about_something_else(texts):
    people = {n.lower() for n in BOYS + GIRLS}
    endings = {s.ending: s for s in texts.test_stories}
    for pair, story in zip(texts.tsc, texts.test_stories):
        assert pair["positive_text"] == story.ending and pair["prompt_text"] == story.prompt
        words = set(normalize(pair["negative_text"]).split())
        assert not words & ({story.color, *story.obj.split()} | (set(normalize(story.text).split()) & people))
        assert endings[pair["negative_text"]].topic != story.topic


def test_sstorycloze_negatives_differ_in_the_feeling_only(texts):
    for pair, story in zip(texts.ssc, texts.test_stories):
        pos, neg = pair["positive_text"].split(), pair["negative_text"].split()
        assert len(pos) == len(neg) and sum(a != b for a, b in zip(pos, neg)) == 1


def test_sblimp_pairs_are_minimal_and_cover_four_phenomena(texts):
    categories = Counter(p["category"] for p in texts.sblimp)
    assert set(categories) == {"word_order", "article", "pronoun_case", "agreement"}
    assert min(categories.values()) > len(texts.sblimp) / 8
    for pair in texts.sblimp:
        good, bad = word_tokens(pair["positive_text"]), word_tokens(pair["negative_text"])
        swapped = sorted(good) == sorted(bad)  # word order: the same words, moved
        one_word = len(good) == len(bad) and sum(a != b for a, b in zip(good, bad)) == 1
        assert good != bad and (swapped or one_word)


def test_grammatical_sides_use_the_grammar_of_the_stories(texts):
    """What sBLIMP-style tests reward must be in the training stories: 'an orange', 'were'..."""
    training = " ".join(s.text for s in texts.stories)
    for phrase in (" an orange ", " were ", "He carried the", "She brought the"):
        assert phrase in training


def test_preference_pairs(texts):
    kinds = Counter(p["kind"] for p in texts.preference)
    assert set(kinds) == {"contradiction", "other_story"}
    for pair in texts.preference:
        assert pair["chosen_text"] != pair["rejected_text"]
        assert pair["chosen_text"].split()[-1] == pair["rejected_text"].split()[-1] or pair["kind"] == "other_story"


def test_stories_are_varied():
    world, rng = StoryWorld(), random.Random(0)
    stories = [world.story(rng, str(i)) for i in range(2000)]
    vocabulary = {w for s in stories for w in normalize(s.text).split()}
    assert len(vocabulary) > 250
    assert len({s.text for s in stories}) == 2000
    assert 25 < sum(len(s.text.split()) for s in stories) / 2000 < 50


@pytest.mark.parametrize("text,expected", [
    ("", 0.0), ("one", 0.0), ("a b c d", 0.0),
    ("the cat the cat sat", 0.5),  # bigrams: the-cat x2, cat-the, cat-sat -> 2 of 4 repeat
    ("go go go", 1.0),  # both 'go go' bigrams repeat
    ("Tom, Tom, Tom.", 4 / 5),  # tokens Tom , Tom , Tom . -> bigrams (Tom ,)x2 (, Tom)x2 (Tom .)
])
def test_auto_bleu_slamkit_by_hand(text, expected):
    assert auto_bleu_slamkit(text) == pytest.approx(expected)


def test_auto_bleu_gslm_by_hand():
    # "a b a b": unigrams 4/4 repeat; bigrams: (a b)@0 sees only tokens[3:], (b a)@1 sees [a] and [],
    # (a b)@2 sees [a b] -> 1/3
    assert auto_bleu_gslm("a b a b") == pytest.approx(0.5 * 1 + 0.5 * (1 / 3))
    assert auto_bleu_gslm("a b a b", mean="geometric") == pytest.approx(1 ** 0.5 * (1 / 3) ** 0.5)
    assert auto_bleu_gslm("x") == 0.0
    # the two definitions differ on the same text
    assert auto_bleu_gslm("go go go") != auto_bleu_slamkit("go go go")
    with pytest.raises(ValueError, match="arithmetic"):
        auto_bleu_gslm("a b", mean="median")
