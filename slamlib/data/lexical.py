"""The tiny world's lexical test, an sWUGGY-style set: real words against pronounceable non-words.

Each item is a word of the tiny world's training texts and a non-word made from it by changing one
letter (a vowel for a vowel, or the consonant that begins a syllable for another), so that it
still sounds like a word but is none the world uses. As in sWUGGY, each item is read by several voices, and `frequency` is the
word's count in the training texts (sWUGGY's is its count in LibriSpeech): the frequency bands show
whether a model knows common words better than rare ones. A few everyday English words that never
occur in the tiny world (count 0, the "oov" band) show what a model makes of words it never heard.

The set is written in ZeroSpeech 2021's lexical layout (`gold.csv` with `filename, id, voice,
frequency, word, phones, length, correct`, letters standing in for phones), so the reader and the
scorer are those of the real sWUGGY. Neither the words nor the non-words are trained on as items:
the words occur only inside training sentences, and no pair is in DPO's data.

Not here: speaking and writing the set (`slamlib.data.synth`).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Iterable

VOWELS = "aeiou"
CONSONANTS = "bdfgklmnprstvz"
# everyday English words the tiny world never uses (checked against its texts: any it does use are dropped)
OOV_WORDS = ("pencil", "window", "ladder", "candle", "rocket", "planet", "button", "carpet", "pillow", "bucket",
             "tunnel", "monkey", "lemon", "guitar", "camera", "basket", "hammer", "jacket", "mirror", "wallet")


def word_counts(texts: Iterable[str]) -> Counter:
    """Lower-cased alphabetic words and how often each occurs.

    >>> word_counts(["Tom saw a red ball.", "The ball was red!"]).most_common(2)
    [('red', 2), ('ball', 2)]
    """
    counts: Counter = Counter()
    for text in texts:
        counts.update(re.findall(r"[a-z]+", text.lower()))
    return counts


def nonword(word: str, avoid: set[str], rng: random.Random) -> str | None:
    """`word` with one letter changed, that is not in `avoid`; None when every such change is. A
    vowel becomes another vowel; a consonant becomes another consonant only where a vowel follows
    it and no consonant precedes it (an onset of its own), so that the result stays pronounceable.

    >>> sorted(c for c in (nonword("boat", set(), random.Random(s)) for s in range(40)) if c[1:] == "oat")[:3]
    ['doat', 'foat', 'goat']
    >>> nonword("boat", {"coat", "goat"}, random.Random(0)) not in {"boat", "coat", "goat", None}
    True
    """
    candidates = []
    for i, letter in enumerate(word):
        onset = (letter in CONSONANTS and i + 1 < len(word) and word[i + 1] in VOWELS
                 and (i == 0 or word[i - 1] in VOWELS))
        group = VOWELS if letter in VOWELS else CONSONANTS if onset else ""
        candidates += [word[:i] + other + word[i + 1:] for other in group if other != letter]
    candidates = [c for c in candidates if c not in avoid and not re.search(r"(.)\1\1", c)]
    return rng.choice(sorted(candidates)) if candidates else None


def lexical_items(training_texts: Iterable[str], n_words: int, seed: int) -> list[dict]:
    """`n_words` words of the training texts (three letters or more, drawn evenly over the ranks
    of their counts, so rare and common words are both there) and the OOV words the texts never
    use, each with a non-word: {id, word, nonword, frequency}."""
    counts = word_counts(training_texts)
    rng = random.Random(f"{seed}/lexical")
    vocabulary = sorted((w for w in counts if len(w) >= 3), key=lambda w: (-counts[w], w))
    if n_words > len(vocabulary):
        raise ValueError(f"data.synthetic.n_swuggy={n_words}: the training texts have only {len(vocabulary)} words"
                         " of three letters or more")
    step = len(vocabulary) / n_words if n_words else 1
    words = [vocabulary[int(i * step)] for i in range(n_words)]
    words += [w for w in OOV_WORDS if w not in counts]
    avoid = set(counts) | set(OOV_WORDS)
    items = []
    for word in words:
        other = nonword(word, avoid, rng)
        if other is None:
            continue
        avoid.add(other)  # no two items share a non-word
        items.append({"id": len(items), "word": word, "nonword": other, "frequency": counts.get(word, 0)})
    return items
