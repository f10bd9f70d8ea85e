"""A seed decides everything: the same bytes whatever the machine's load or the number of workers."""

import random

import numpy as np

from slamlib.data.stories import StoryWorld
from slamlib.data.tts import EspeakTTS
from slamlib.profiles import TINY_VOICES, Voice


def test_an_utterance_does_not_depend_on_the_voices_read_before_it():
    """Loading voice after voice leaves traces in espeak-ng's globals: a worker that loaded its voices
    itself read 29 of these 150 utterances differently from a worker that only ever read one voice."""
    rng, world = random.Random(0), StoryWorld()
    texts = [world.story(rng, "s").text for _ in range(30)]
    voices = [*TINY_VOICES, Voice("en-us", rate=175, pitch=50)]
    jobs = [(texts[i % len(texts)], voices[rng.randrange(len(voices))]) for i in range(150)]
    switching = EspeakTTS()
    mixed = [switching.synthesize(*job) for job in jobs]
    one_voice_each = {str(v): EspeakTTS() for v in voices}
    alone = [one_voice_each[str(voice)].synthesize(text, voice) for text, voice in jobs]
    assert [i for i, (a, b) in enumerate(zip(mixed, alone)) if not np.array_equal(a, b)] == []
