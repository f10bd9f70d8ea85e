"""A procedural world of simple English mini-stories: the text behind the `tiny` profile's speech.

Every story happens in one of eight settings (the sea, a farm, a forest, a kitchen, a school, a
city, winter, a garden) and follows one arc, told with many templates and a vocabulary of several
hundred words:

    Tom was a little boy who lived by the sea.               (a character, sometimes a home)
    One morning, Tom found a red shell in the sand.          (an object of the setting, with a colour)
    He carried the red shell to the harbour.                 (something done with it, somewhere)
    Then his friend Mia broke the shell, and Tom was sad.    (an event, good or bad; sometimes a feeling)
    In the end, Tom was sad about the shell at the beach.    (the ending)

The ending must agree with what came before: it names the same character (or pronoun), the same
object and a place of the same setting, and its feeling follows from the event (bad events make
sad endings) and repeats the feeling the story stated, when it stated one. That is what the
held-out tests probe, as their real counterparts do:

- tStoryCloze-style: the true ending against the ending of another story of the same setting,
  about someone of the same gender and the same kind of object (so neither a place, a pronoun nor
  the object gives the answer away: the ending must agree with this story's people, event and colour);
- sStoryCloze-style: the true ending against the same ending with the feeling flipped, which
  contradicts the event (and the feeling the story stated, in about 70% of the stories);
- sBLIMP-style: a grammatical sentence against a minimally different ungrammatical one (word order,
  a/an, pronoun case, subject-verb agreement).

The preference pairs are not made from the stories: like SpokenSwag's, they come from texts of
another kind, everyday activities told step by step (`slamlib.data.activities`), and their
rejected continuations are made by an operation no benchmark uses.

Generation is seeded and deterministic. `build_texts` makes every corpus at once and guarantees
that no sentence of a held-out set appears in any training corpus.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

from slamlib.data import activities

BOYS = ["Tom", "Ben", "Sam", "Max", "Leo", "Jack", "Finn", "Noah", "Owen", "Luke", "Ryan", "Adam",
        "Eli", "Hugo", "Milo", "Oscar", "Theo", "Felix", "Jonah", "Peter", "Henry", "Jake"]
GIRLS = ["Mia", "Lily", "Anna", "Emma", "Rose", "Lucy", "Ella", "Zoe", "Ruby", "Nora", "Grace", "Ivy",
         "Chloe", "Hannah", "Sara", "Maya", "Julia", "Clara", "Alice", "Kate", "Molly", "Daisy"]
BOYS_GIRLS_LOWER = [n.lower() for n in BOYS + GIRLS]
KINDS = {"he": ["boy", "dog", "bear", "fox", "rabbit", "cat", "mouse", "duck"],
         "she": ["girl", "dog", "bear", "fox", "rabbit", "cat", "mouse", "duck"]}
TRAITS = ["little", "kind", "happy", "small", "brave", "quiet", "clever", "funny", "shy", "busy"]
# Every story happens in one setting, and the setting decides where the character lives, what is
# found, where it is found and where things happen: the story's topic. An ending that belongs to
# another story is, almost always, about another topic, as in the real tStoryCloze.
TOPICS = {
    "sea": dict(
        homes=["by the sea", "near the beach", "in a house by the harbour", "on a small island"],
        objects=["shell", "boat", "bucket", "net", "starfish", "anchor", "lighthouse", "surfboard"],
        found=["on the beach", "in the sand", "by the rocks", "in a rock pool", "near the waves"],
        places=["the beach", "the harbour", "the sea", "the sandy shore", "the pier"]),
    "farm": dict(
        homes=["on a big farm", "in a little farmhouse", "next to a cornfield", "by the old mill"],
        objects=["wagon", "basket", "egg", "pitchfork", "tractor", "bell", "rope", "milk can"],
        found=["in the barn", "in the hay", "by the fence", "behind the chicken coop", "in the field"],
        places=["the farm", "the barn", "the cornfield", "the cow shed", "the meadow"]),
    "forest": dict(
        homes=["in the forest", "in a cabin in the woods", "under a tall pine tree", "near a mossy log"],
        objects=["feather", "pinecone", "acorn", "tent", "lantern", "compass", "mushroom", "nest"],
        found=["under a tree", "in the leaves", "by the stream", "near a mossy rock", "in a hollow log"],
        places=["the forest", "the woods", "the stream", "the campfire", "the waterfall"]),
    "kitchen": dict(
        homes=["in a blue house", "in a cosy cottage", "above a bakery", "in a house with a red door"],
        objects=["cup", "spoon", "kettle", "jar", "cake", "teapot", "cookie", "frying pan"],
        found=["in the kitchen", "in the cupboard", "on the table", "next to the oven", "in the pantry"],
        places=["the kitchen", "the dinner table", "the bakery", "the picnic", "the tea party"]),
    "school": dict(
        homes=["near the school", "across from the library", "next to the playground", "on a quiet street"],
        objects=["pencil", "book", "map", "puzzle", "crayon", "ruler", "backpack", "globe"],
        found=["in the classroom", "in a desk", "in the library", "on the school bus", "by the blackboard"],
        places=["the school", "the library", "the classroom", "the art room", "the science fair"]),
    "city": dict(
        homes=["in a busy city", "in a tall building", "above a toy shop", "near the train station"],
        objects=["bike", "train", "key", "umbrella", "ticket", "wallet", "scooter", "watch"],
        found=["at the market", "at the shop", "on the street", "at the bus stop", "in the subway"],
        places=["the market", "the station", "the museum", "the city square", "the toy shop"]),
    "winter": dict(
        homes=["in a snowy village", "at the top of the hill", "near the frozen lake", "in a warm log house"],
        objects=["scarf", "glove", "sled", "snow globe", "mitten", "ice skate", "snowball", "woolly hat"],
        found=["in the snow", "on the ice", "by the frozen pond", "under a snowy bush", "near the igloo"],
        places=["the ice rink", "the snowy hill", "the frozen lake", "the ski slope", "the snow fort"]),
    "garden": dict(
        homes=["next to the park", "in a house with a garden", "near the flower shop", "by the greenhouse"],
        objects=["flower", "watering can", "ladybug", "seed", "butterfly", "rose", "shovel", "birdhouse"],
        found=["in the garden", "on the grass", "by the pond", "under the roses", "in a flower pot"],
        places=["the park", "the garden", "the greenhouse", "the pond", "the flower show"]),
}
COLORS = ["red", "blue", "green", "yellow", "pink", "purple", "white", "black", "brown", "gold",
          "silver", "gray", "orange"]
# Every template combines at least two large slots (names, objects, colours, places), so that
# keeping held-out sentences out of training never empties a template for common fillers.
FOUND = ["One morning, {n} found {a} {c} {o} {w}.", "One day, {n} saw {a} {c} {o} {w}.",
         "After lunch, {n} found {a} {c} {o} {w}.", "On a sunny day, {n} spotted {a} {c} {o} {w}.",
         "One evening, {n} got {a} {c} {o} from {pp} grandma."]
INTRO = ["{n} was a {t} {k}.", "There was a {t} {k} named {n}.", "Once upon a time, there was a {t} {k} called {n}."]
INTRO_HOME = ["{n} was a {t} {k} who lived {h}.", "There was a {t} {k} named {n} who lived {h}.",
              "Once upon a time, a {t} {k} called {n} lived {h}.", "{n} was a {t} {k}, and {p} lived {h}."]
ACTION = ["{P} carried the {c} {o} to {l}.", "{P} took the {c} {o} to {l} every day.",
          "{n} showed the {c} {o} to all {pp} friends at {l}.", "{P} played with the {c} {o} at {l}.",
          "{n} kept the {c} {o} in a safe place at {l}.", "{P} brought the {c} {o} to {l} with a friend."]
GOOD = ["Then {pp} friend {f} helped {pr} clean the {o} at {l}.", "Then {f} said the {o} was very nice.",
        "Later, {f} gave {pr} a gift for the {o} at {l}.", "Then {f} and {n} were playing with the {o} all day.",
        "Later, {f} helped {pr} fix the {o}.", "Then everyone at {l} liked {n}'s {o}."]
BAD = ["Then {pp} friend {f} broke the {o}.", "Then {n}'s {c} {o} fell into the water at {l}.",
       "Later, a big dog ran away with {n}'s {o}.", "Then {f} took the {o} and did not give it back.",
       "Later, {n} lost the {o} at {l}.", "Then the rain ruined {n}'s {o} at {l}."]
FEELINGS = {"good": ["happy", "glad", "proud", "excited", "cheerful"],
            "bad": ["sad", "upset", "angry", "lonely", "unhappy"]}
# Endings name the story's object and a place of its setting again, with a feeling that follows
# from the event; {e2} is the place of the ending, drawn from the same setting.
ENDING = ["In the end, {n} was {e} about the {o} at {e2}.", "That night, {p} felt {e} about the {c} {o} from {e2}.",
          "So {n} went home from {e2}, {e} about the {o}.", "After that day, {p} was {e} about the {o} at {e2}.",
          "In the end, {n} and {f} were {e} about the {o} at {e2}."]


def _pronouns(gender: str) -> dict:
    he = gender == "he"
    return {"p": "he" if he else "she", "P": "He" if he else "She", "pp": "his" if he else "her",
            "pr": "him" if he else "her"}


def normalize(sentence: str) -> str:
    """Lower-case words only: the form in which sentences are compared for overlap."""
    return " ".join(re.findall(r"[a-z']+", sentence.lower()))


@dataclass(frozen=True)
class Story:
    """One story: its set-up sentences and ending, plus the facts the ending must agree with."""

    id: str
    setup: tuple[str, ...]
    ending: str
    name: str
    color: str
    obj: str
    mood: str  # "good" or "bad": the event's kind, which decides the ending's feeling
    feeling: str
    template: int  # which ending template
    flipped_ending: str  # the same ending with a feeling of the other kind
    topic: str  # the setting (a key of TOPICS) that chose its home, object and places

    @property
    def sentences(self) -> tuple[str, ...]:
        return (*self.setup, self.ending)

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def prompt(self) -> str:
        return " ".join(self.setup)


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class StoryWorld:
    """Draws stories and minimal pairs from the world's templates with a given random generator."""

    def __init__(self, action_prob: float = 0.5, home_prob: float = 0.3, feeling_prob: float = 0.7):
        self.action_prob = action_prob
        self.home_prob = home_prob
        self.feeling_prob = feeling_prob  # chance that the event sentence says how the character felt

    def story(self, rng: random.Random, story_id: str) -> Story:
        gender = rng.choice(["he", "she"])
        name = rng.choice(BOYS if gender == "he" else GIRLS)
        friend = rng.choice([x for x in BOYS + GIRLS if x != name])
        topic = rng.choice(sorted(TOPICS))
        setting = TOPICS[topic]
        slots = {"n": name, "f": friend, "k": rng.choice(KINDS[gender]), "t": rng.choice(TRAITS),
                 "h": rng.choice(setting["homes"]), "o": rng.choice(setting["objects"]), "c": rng.choice(COLORS),
                 "w": rng.choice(setting["found"]), "l": rng.choice(setting["places"]),
                 "e2": rng.choice(setting["places"]), **_pronouns(gender)}
        slots["a"] = _a(slots["c"])
        intro = INTRO_HOME if rng.random() < self.home_prob else INTRO
        setup = [rng.choice(intro).format(**slots), rng.choice(FOUND).format(**slots)]
        if rng.random() < self.action_prob:
            setup.append(rng.choice(ACTION).format(**slots))
        mood = rng.choice(["good", "bad"])
        event = rng.choice(GOOD if mood == "good" else BAD).format(**slots)
        template = rng.randrange(len(ENDING))
        feeling = rng.choice(FEELINGS[mood])
        if rng.random() < self.feeling_prob:  # "Then Mia broke the shell, and Tom was sad."
            event = f"{event[:-1]}, and {name} was {feeling}."
        setup.append(event)
        other = "bad" if mood == "good" else "good"
        flipped = rng.choice(FEELINGS[other])
        ending = ENDING[template].format(e=feeling, **slots)
        flipped_ending = ENDING[template].format(e=flipped, **slots)
        return Story(story_id, tuple(setup), ending, name, slots["c"], slots["o"], mood, feeling,
                     template, flipped_ending, topic)

    def minimal_pair(self, rng: random.Random) -> tuple[str, str, str]:
        """(grammatical, ungrammatical, phenomenon): a sentence of this world and a minimally
        different version that breaks its grammar. Every phenomenon is one the stories use."""
        gender = rng.choice(["he", "she"])
        name = rng.choice(BOYS if gender == "he" else GIRLS)
        friend = rng.choice([x for x in BOYS + GIRLS if x != name])
        pr = _pronouns(gender)
        setting = TOPICS[rng.choice(sorted(TOPICS))]
        obj, color = rng.choice(setting["objects"]), rng.choice(COLORS)
        place, found = rng.choice(setting["places"]), rng.choice(setting["found"])
        feeling = rng.choice(FEELINGS["good"] + FEELINGS["bad"])
        phenomenon = rng.choice(["word_order", "article", "pronoun_case", "agreement"])
        if phenomenon == "word_order":  # the colour after its noun
            good = f"One day, {name} saw {_a(color)} {color} {obj} {found}."
            bad = good.replace(f"{color} {obj}", f"{obj} {color}")
        elif phenomenon == "article":  # a before consonants, an before vowels
            if rng.random() < 0.5:
                color = "orange"  # the one vowel-initial colour: half the pairs need "an"
            good = f"One morning, {name} found {_a(color)} {color} {obj} {found}."
            bad = good.replace(f" {_a(color)} {color} ", f" {'a' if _a(color) == 'an' else 'an'} {color} ")
        elif phenomenon == "pronoun_case":  # an object pronoun as the subject
            verb = rng.choice(["carried", "brought"])
            good = f"{pr['P']} {verb} the {color} {obj} to {place}."
            bad = f"{'Him' if gender == 'he' else 'Her'} {verb} the {color} {obj} to {place}."
        else:  # subject-verb agreement: a plural subject takes "were", a single one "was"
            if rng.random() < 0.5:
                good = f"In the end, {name} and {friend} were {feeling} about the {obj} at {place}."
                bad = good.replace(" were ", " was ")
            else:
                good = f"In the end, {name} was {feeling} about the {obj} at {place}."
                bad = good.replace(" was ", " were ")
        return good, bad, phenomenon


@dataclass
class Texts:
    """Every text of the tiny world, ready to be spoken."""

    read_speech: list[str] = field(default_factory=list)  # multi-voice utterances (LibriSpeech stand-in)
    stories: list[Story] = field(default_factory=list)  # single-voice stories (sTinyStories stand-in)
    preference: list[dict] = field(default_factory=list)  # DPO training pairs (SpokenSwag stand-in)
    heldout_preference: list[dict] = field(default_factory=list)
    test_stories: list[Story] = field(default_factory=list)  # for tStoryCloze / sStoryCloze
    tsc: list[dict] = field(default_factory=list)
    ssc: list[dict] = field(default_factory=list)
    sblimp: list[dict] = field(default_factory=list)

    def training_sentences(self) -> set[str]:
        out = {normalize(s) for u in self.read_speech for s in split_sentences(u)}
        out |= {normalize(s) for st in self.stories for s in st.sentences}
        for pair in self.preference:
            out |= {normalize(s) for key in ("prompt_text", "chosen_text", "rejected_text")
                    for s in split_sentences(pair[key])}
        return out

    def heldout_sentences(self) -> set[str]:
        out = {normalize(s) for st in self.test_stories for s in (*st.sentences, st.flipped_ending)}
        out |= {normalize(p[k]) for p in self.sblimp for k in ("positive_text", "negative_text")}
        for pair in self.heldout_preference:
            out |= {normalize(s) for key in ("prompt_text", "chosen_text", "rejected_text")
                    for s in split_sentences(pair[key])}
        return out


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _rng(seed: int, part: str) -> random.Random:
    """An independent generator per part, so that changing one part's size leaves the others."""
    return random.Random(int(hashlib.sha256(f"{seed}/{part}".encode()).hexdigest()[:16], 16))


def _same_setting_other(stories: list[Story], i: int, rng: random.Random, ending_words: list[set[str]]) -> Story:
    """Another story of the same setting, about a character of the same gender and, where the
    collection has one, the same kind of object (so that neither a place, a pronoun nor the object
    gives the answer away), whose ending names none of story i's people or its colour. In a
    collection too small for that, any other story. `ending_words`: each story's ending as a set
    of words."""
    story = stories[i]
    own = set(normalize(story.text).split()) & set(BOYS_GIRLS_LOWER) | {story.color}
    for same_object in (True, False):
        candidates = [j for j, other in enumerate(stories)
                      if j != i and other.topic == story.topic and (other.name in BOYS) == (story.name in BOYS)
                      and (other.obj == story.obj) == same_object and not own & ending_words[j]]
        if candidates:
            return stories[candidates[rng.randrange(len(candidates))]]
    return stories[(i + 1) % len(stories)]


def build_texts(seed: int, *, n_stories: int, n_read: int, n_preference: int, n_test_stories: int,
                n_sblimp: int, n_heldout_preference: int, action_prob: float = 0.5,
                home_prob: float = 0.3, feeling_prob: float = 0.7, read_activity_fraction: float = 0.3) -> Texts:
    """Every corpus of the tiny world, with held-out sets disjoint from training at sentence level.

    Held-out sets are drawn first; a training story, utterance or pair that would repeat any
    held-out sentence is redrawn. `read_activity_fraction` of the read utterances are activity
    steps (the kind of text the preference pairs are made of), the rest story sentences."""
    world = StoryWorld(action_prob, home_prob, feeling_prob)
    texts = Texts()
    rng = _rng(seed, "test")
    seen: set[str] = set()

    def fresh_story(rng, prefix, i, avoid):
        while True:
            story = world.story(rng, f"{prefix}-{i:06d}")
            sents = {normalize(s) for s in (*story.sentences, story.flipped_ending)}
            if not sents & avoid and normalize(story.text) not in seen:
                seen.add(normalize(story.text))
                return story

    def fresh_pair(rng, prefix, i, avoid):
        while True:
            pair = activities.preference_pair(rng, f"{prefix}-{i:06d}", BOYS + GIRLS, COLORS)
            text = " ".join(pair[k] for k in ("prompt_text", "chosen_text", "rejected_text"))
            if not {normalize(x) for x in split_sentences(text)} & avoid and normalize(text) not in seen:
                seen.add(normalize(text))
                return pair

    heldout: set[str] = set()
    texts.test_stories = [fresh_story(rng, "test", i, set()) for i in range(n_test_stories)]
    for st in texts.test_stories:
        heldout |= {normalize(s) for s in (*st.sentences, st.flipped_ending)}
    ending_words = [set(normalize(st.ending).split()) for st in texts.test_stories]
    for i, st in enumerate(texts.test_stories):
        other = _same_setting_other(texts.test_stories, i, rng, ending_words)
        texts.tsc.append({"id": f"tsc-{i:05d}", "story": st.id, "prompt_text": st.prompt,
                          "positive_text": st.ending, "negative_text": other.ending})
        texts.ssc.append({"id": f"ssc-{i:05d}", "story": st.id, "prompt_text": st.prompt,
                          "positive_text": st.ending, "negative_text": st.flipped_ending})
    rng = _rng(seed, "sblimp")
    pairs_seen = set()
    while len(texts.sblimp) < n_sblimp:
        good, bad, phenomenon = world.minimal_pair(rng)
        if normalize(good) in pairs_seen:
            continue
        pairs_seen.add(normalize(good))
        texts.sblimp.append({"id": f"sblimp-{len(texts.sblimp):05d}", "positive_text": good,
                             "negative_text": bad, "category": phenomenon})
        heldout |= {normalize(good), normalize(bad)}
    rng = _rng(seed, "heldout_preference")
    texts.heldout_preference = [fresh_pair(rng, "heldpref", i, set()) for i in range(n_heldout_preference)]
    for pair in texts.heldout_preference:
        heldout |= {normalize(s) for k in ("prompt_text", "chosen_text", "rejected_text")
                    for s in split_sentences(pair[k])}

    rng = _rng(seed, "stories")
    texts.stories = [fresh_story(rng, "story", i, heldout) for i in range(n_stories)]
    rng = _rng(seed, "read")
    while len(texts.read_speech) < n_read:
        # read speech: one to three consecutive sentences of a story or an activity not used elsewhere
        if rng.random() < read_activity_fraction:
            while True:
                sentences = activities.script(rng, BOYS + GIRLS, COLORS)[1]
                start = rng.randrange(len(sentences))
                sentences = sentences[start : start + rng.randint(1, 3)]
                if not {normalize(x) for x in sentences} & heldout:
                    break
        else:
            story = fresh_story(rng, "read", len(texts.read_speech), heldout)
            start = rng.randrange(len(story.sentences))
            sentences = story.sentences[start : start + rng.randint(1, 3)]
        texts.read_speech.append(" ".join(sentences))
    rng = _rng(seed, "preference")
    texts.preference = [fresh_pair(rng, "pref", i, heldout) for i in range(n_preference)]
    return texts
