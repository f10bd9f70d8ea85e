import random
from collections import Counter

import pytest

from slamlib.data.activities import ACTIVITIES, _slot_regex, is_activity_sentence
from slamlib.data.stories import BOYS, FEELINGS, GIRLS, TOPICS, StoryWorld, build_texts, normalize, split_sentences
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


def test_tstorycloze_negatives_come_from_other_stories_of_the_same_setting(texts):
    people = {n.lower() for n in BOYS + GIRLS}
    endings = {s.ending: s for s in texts.test_stories}
    same_object = 0
    for pair, story in zip(texts.tsc, texts.test_stories):
        assert pair["positive_text"] == story.ending and pair["prompt_text"] == story.prompt
        words = set(normalize(pair["negative_text"]).split())
        assert not words & ({story.color} | (set(normalize(story.text).split()) & people))
        other = endings[pair["negative_text"]]
        assert other.topic == story.topic and (other.name in BOYS) == (story.name in BOYS) and other is not story
        same_object += other.obj == story.obj
    assert same_object > 0.75 * len(texts.tsc)  # the same kind of object wherever the collection has one


def test_a_stated_feeling_is_the_endings_feeling(texts):
    stated = 0
    for story in texts.test_stories:
        event = story.setup[-1]
        if f", and {story.name} was " in event:
            stated += 1
            assert event.endswith(f", and {story.name} was {story.feeling}.")
    assert 0.6 < stated / len(texts.test_stories) < 0.8  # feeling_prob 0.7


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


def test_preference_pairs_skip_ahead_in_an_activity(texts):
    for pair in texts.preference + texts.heldout_preference:
        steps = ACTIVITIES[pair["activity"]]["steps"]
        prompt = split_sentences(pair["prompt_text"])
        k = len(prompt) - 1  # the set-up, then steps 0 .. k-1
        assert pair["kind"] == "skipped_step" and k in (1, 2) and pair["skip"] >= 2

        def step_of(sentence):
            return [i for i, phrasings in enumerate(steps) if any(_slot_regex(p).fullmatch(sentence) for p in phrasings)]

        assert step_of(pair["chosen_text"]) == [k] and step_of(pair["rejected_text"]) == [k + pair["skip"]]


def test_no_benchmark_negative_is_made_the_way_preference_pairs_are_and_the_other_way_round(texts):
    """SpokenSwag's pairs are built from another corpus, with another kind of wrong ending, than the
    benchmarks DPO is measured on. Here: pairs are activity steps (rejected: a later step of the same
    activity); benchmark negatives are story endings (another story's, or the feeling flipped)."""
    story_sentences = [s for st in texts.stories + texts.test_stories for s in (*st.sentences, st.flipped_ending)]
    negatives = [p["negative_text"] for p in texts.tsc + texts.ssc + texts.sblimp]
    # the preference operation (a later step of an activity) cannot give a benchmark negative:
    # no story sentence or benchmark negative is an activity step
    assert not [s for s in story_sentences + negatives + [p["positive_text"] for p in texts.sblimp] if is_activity_sentence(s)]
    # the benchmarks' operations cannot give a preference pair's rejected side: it is not a story
    # ending, and flipping a feeling changes nothing in an activity (it names no feeling)
    endings = {st.ending for st in texts.stories + texts.test_stories} | {st.flipped_ending for st in texts.test_stories}
    feelings = set(FEELINGS["good"] + FEELINGS["bad"])
    for pair in texts.preference + texts.heldout_preference:
        for key in ("prompt_text", "chosen_text", "rejected_text"):
            assert all(is_activity_sentence(s) for s in split_sentences(pair[key]))
            assert not feelings & set(normalize(pair[key]).split())
        assert pair["rejected_text"] not in endings
    # and the pairs' texts are not the benchmarks' texts, sentence by sentence
    pair_sentences = {normalize(s) for p in texts.preference + texts.heldout_preference
                      for k in ("prompt_text", "chosen_text", "rejected_text") for s in split_sentences(p[k])}
    assert not pair_sentences & {normalize(s) for s in story_sentences + negatives}


def test_stories_are_varied():
    world, rng = StoryWorld(), random.Random(0)
    stories = [world.story(rng, str(i)) for i in range(2000)]
    vocabulary = {w for s in stories for w in normalize(s.text).split()}
    assert len(vocabulary) > 250
    assert len({s.text for s in stories}) == 2000
    assert 25 < sum(len(s.text.split()) for s in stories) / 2000 < 55


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
