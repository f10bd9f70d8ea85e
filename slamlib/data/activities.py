"""Everyday activities, step by step: the tiny world's SWAG, the text behind its preference pairs.

SpokenSwag is built from SWAG: short present-tense descriptions of an everyday action (a set-up
sentence and how it goes on), whose wrong endings are fluent sentences that do not follow. The
preference pairs of the tiny world are built the same way from texts of another kind than its
stories (which are in the past tense and have characters, objects, events and feelings):

    Tom is in the kitchen with a red bowl and a bag of flour.       (the set-up)
    Tom pours the flour into the red bowl.                          (the steps so far)
    Tom mixes the flour with milk and two eggs in the red bowl.     chosen: the next step
    Tom takes the warm cake out of the oven and shows it to Mia.    rejected: a later step, skipped to

A rejected continuation is always a step of the same activity that comes two or more steps later:
fluent, about the same person and things, and out of order. No benchmark is made this way: the
benchmarks' negatives are story endings (another story's, or the same with its feeling flipped),
and no story sentence is an activity step (`family` tells them apart; tests check it).

Activity sentences are also part of the read speech (the LibriSpeech stand-in, which is general
read text), so that pretraining has heard this kind of text, as a real speech LM has heard
everyday descriptions before it meets SpokenSwag.
"""

from __future__ import annotations

import random
import re

# Each activity: set-up sentences (one is drawn) and six steps in their order, each step with two
# phrasings (one is drawn). Every sentence names the person ({n}) and a colour ({c}) or a friend
# ({f}): two large slots, so that keeping held-out sentences out of training never empties a step.
ACTIVITIES: dict[str, dict[str, list]] = {
    "baking": dict(
        setup=["{n} is in the kitchen with a {c} bowl and a bag of flour.",
               "{n} stands at the table with a {c} bowl, some eggs and a bag of flour."],
        steps=[["{n} pours the flour into the {c} bowl.", "{n} tips the bag of flour into the {c} bowl."],
               ["{n} mixes the flour with milk and two eggs in the {c} bowl.", "{n} stirs milk and eggs into the flour in the {c} bowl."],
               ["{n} pours the batter from the {c} bowl into a round pan.", "{n} scrapes the batter out of the {c} bowl into a pan."],
               ["{n} puts the pan into the hot oven and waits with {f}.", "{n} slides the pan into the oven and sits down with {f}."],
               ["{n} takes the warm cake out of the oven and shows it to {f}.", "{n} lifts the cake out of the oven while {f} watches."],
               ["{n} cuts the cake and gives {f} the biggest piece.", "{n} and {f} eat the cake at the table."]]),
    "washing_a_dog": dict(
        setup=["{n} is in the yard with a {c} bucket and a muddy dog.",
               "{n} stands outside with a {c} bucket, a towel and a dirty dog."],
        steps=[["{n} fills the {c} bucket with warm water.", "{n} runs warm water into the {c} bucket."],
               ["{n} calls the dog over to the {c} bucket.", "{n} leads the muddy dog to the {c} bucket."],
               ["{n} rubs soap into the dog's fur next to the {c} bucket.", "{n} scrubs the dog with soap beside the {c} bucket."],
               ["{n} rinses the soap off the dog while {f} holds it.", "{n} pours clean water over the dog as {f} holds it still."],
               ["{n} dries the dog with a big towel and {f} helps.", "{n} wraps the wet dog in a towel with {f}."],
               ["{n} and {f} watch the clean dog run across the grass.", "{n} lets the clean dog go and it runs to {f}."]]),
    "planting": dict(
        setup=["{n} kneels in the garden with a {c} trowel and a packet of seeds.",
               "{n} is in the garden with a {c} trowel, a packet of seeds and a watering can."],
        steps=[["{n} digs a row of small holes with the {c} trowel.", "{n} makes small holes in the soil with the {c} trowel."],
               ["{n} drops two seeds into each hole beside the {c} trowel.", "{n} puts the seeds into the holes one by one and sets down the {c} trowel."],
               ["{n} covers the seeds with soil using the {c} trowel.", "{n} pushes soil over the seeds with the {c} trowel."],
               ["{n} waters the soil while {f} holds the can.", "{n} sprinkles water over the row as {f} watches."],
               ["{n} and {f} see small green shoots come up a week later.", "{n} shows {f} the little green shoots a week later."],
               ["{n} picks the first flowers and gives them to {f}.", "{n} and {f} pick the flowers that grew from the seeds."]]),
    "painting": dict(
        setup=["{n} is next to an old fence with a tin of {c} paint.",
               "{n} stands by the wooden fence with a brush and a tin of {c} paint."],
        steps=[["{n} opens the tin of {c} paint with a spoon.", "{n} takes the lid off the tin of {c} paint."],
               ["{n} dips the brush into the {c} paint.", "{n} pushes the brush into the tin of {c} paint."],
               ["{n} paints the first board of the fence {c}.", "{n} brushes {c} paint along the top board."],
               ["{n} paints the rest of the fence while {f} paints the gate.", "{n} and {f} paint the other boards one by one."],
               ["{n} washes the brush in water when the fence is done and {f} helps.", "{n} cleans the brush while {f} closes the tin."],
               ["{n} and {f} look at the fence drying in the sun.", "{n} stands back with {f} and looks at the new fence."]]),
    "snowman": dict(
        setup=["{n} is outside in the snow with a {c} scarf and a carrot.",
               "{n} runs into the snowy yard with a {c} scarf and a carrot."],
        steps=[["{n} rolls a small snowball across the yard in the {c} scarf.", "{n} pushes a snowball through the snow, the {c} scarf flying."],
               ["{n} keeps rolling until the ball is big, the {c} scarf on the ground.", "{n} rolls the snowball until it is as tall as a chair, then takes off the {c} scarf."],
               ["{n} lifts a smaller ball onto the big one with {f}.", "{n} and {f} put a second ball on top of the first."],
               ["{n} pushes the carrot into the head as a nose and {f} laughs.", "{n} gives the snowman a carrot nose while {f} watches."],
               ["{n} wraps the {c} scarf around the snowman's neck.", "{n} ties the {c} scarf around the snowman."],
               ["{n} and {f} take a picture next to the snowman.", "{n} stands next to the snowman and {f} takes a picture."]]),
    "fishing": dict(
        setup=["{n} sits on the dock with a {c} fishing rod and a can of worms.",
               "{n} walks to the lake with a {c} fishing rod and a can of worms."],
        steps=[["{n} puts a worm on the hook of the {c} rod.", "{n} fixes a worm to the hook of the {c} fishing rod."],
               ["{n} throws the line of the {c} rod into the water.", "{n} casts the {c} rod out over the lake."],
               ["{n} waits quietly with the {c} rod in both hands.", "{n} holds the {c} rod still and watches the water."],
               ["{n} feels a tug on the line and calls {f}.", "{n} sees the line jump and shouts to {f}."],
               ["{n} reels in a shiny fish as {f} holds the net.", "{n} pulls the fish out of the water and {f} catches it in a net."],
               ["{n} and {f} let the fish swim away.", "{n} lets the fish go back into the lake with {f}."]]),
    "tea": dict(
        setup=["{n} is in the kitchen with a {c} kettle and two cups.",
               "{n} walks into the kitchen and takes out a {c} kettle and two cups."],
        steps=[["{n} fills the {c} kettle with water from the tap.", "{n} holds the {c} kettle under the tap."],
               ["{n} puts the {c} kettle on the stove and turns it on.", "{n} sets the {c} kettle on the hot stove."],
               ["{n} puts a tea bag into each cup while the {c} kettle heats.", "{n} drops a tea bag into each cup beside the {c} kettle."],
               ["{n} pours hot water from the kettle into the cups and calls {f}.", "{n} fills both cups with hot water and waves to {f}."],
               ["{n} adds milk to the tea and gives one cup to {f}.", "{n} stirs milk into the tea and hands a cup to {f}."],
               ["{n} and {f} drink the tea by the window.", "{n} sits with {f} and they drink their tea."]]),
    "kite": dict(
        setup=["{n} is on a windy hill with a {c} kite and a long string.",
               "{n} climbs a windy hill with a {c} kite under one arm."],
        steps=[["{n} unrolls the string of the {c} kite.", "{n} ties the string to the {c} kite."],
               ["{n} holds the {c} kite up to the wind.", "{n} lifts the {c} kite high and turns to face the wind."],
               ["{n} runs down the hill pulling the {c} kite behind.", "{n} starts to run and the {c} kite drags along the grass."],
               ["{n} lets out more string as the kite climbs and {f} cheers.", "{n} gives the kite more string and {f} claps."],
               ["{n} hands the string to {f} when the kite is high.", "{n} lets {f} hold the string of the high kite."],
               ["{n} and {f} pull the kite down as the sun sets.", "{n} winds the string in with {f} at the end of the day."]]),
    "packing": dict(
        setup=["{n} is in the bedroom with a {c} suitcase on the bed.",
               "{n} opens a {c} suitcase on the bedroom floor."],
        steps=[["{n} folds some shirts and puts them in the {c} suitcase.", "{n} lays folded shirts in the {c} suitcase."],
               ["{n} adds socks and a toothbrush to the {c} suitcase.", "{n} packs socks and a toothbrush into the {c} suitcase."],
               ["{n} closes the {c} suitcase and pulls the zip.", "{n} zips the {c} suitcase shut."],
               ["{n} carries the suitcase to the car where {f} is waiting.", "{n} rolls the suitcase out to the car and {f} opens the door."],
               ["{n} gets into the car and {f} drives to the station.", "{n} sits in the car next to {f} on the way to the station."],
               ["{n} waves to {f} from the window of the train.", "{n} gets on the train and {f} waves goodbye."]]),
    "sandwich": dict(
        setup=["{n} is at the kitchen table with a {c} plate and a loaf of bread.",
               "{n} puts a {c} plate and a loaf of bread on the table."],
        steps=[["{n} cuts two slices of bread and lays them on the {c} plate.", "{n} puts two slices of bread on the {c} plate."],
               ["{n} spreads butter on the bread on the {c} plate.", "{n} butters both slices on the {c} plate."],
               ["{n} lays cheese and tomato on one slice on the {c} plate.", "{n} puts cheese and tomato on the bread on the {c} plate."],
               ["{n} puts the other slice on top and cuts the sandwich for {f}.", "{n} closes the sandwich and cuts it in half for {f}."],
               ["{n} gives half of the sandwich to {f}.", "{n} hands {f} one half of the sandwich."],
               ["{n} and {f} wash the plates after lunch.", "{n} clears the table with {f} after they eat."]]),
    "bike": dict(
        setup=["{n} is in the garage with a {c} bike that has a flat tyre.",
               "{n} wheels a {c} bike with a flat tyre out of the garage."],
        steps=[["{n} turns the {c} bike upside down.", "{n} sets the {c} bike on its seat and handlebars."],
               ["{n} takes the flat tyre off the {c} bike.", "{n} pulls the wheel off the {c} bike."],
               ["{n} finds the hole and puts a patch on it next to the {c} bike.", "{n} sticks a patch over the hole beside the {c} bike."],
               ["{n} puts the wheel back on and {f} pumps up the tyre.", "{n} fits the wheel again while {f} brings the pump."],
               ["{n} rides the bike down the street with {f}.", "{n} and {f} ride down the street together."],
               ["{n} and {f} park their bikes by the park gate.", "{n} leans the bike against the park gate next to {f}."]]),
    "reading": dict(
        setup=["{n} goes into the library with a {c} bag full of old books.",
               "{n} walks into the library carrying a {c} bag of books."],
        steps=[["{n} gives the old books from the {c} bag back at the desk.", "{n} puts the old books from the {c} bag on the desk."],
               ["{n} looks along the shelves with the empty {c} bag.", "{n} walks between the shelves with the {c} bag on one arm."],
               ["{n} picks a thick book and puts it in the {c} bag.", "{n} takes a thick book off the shelf and into the {c} bag."],
               ["{n} sits in a soft chair and starts to read next to {f}.", "{n} opens the book in a chair beside {f}."],
               ["{n} reads a page out loud to {f}.", "{n} shows {f} a picture in the book."],
               ["{n} and {f} walk home as the library closes.", "{n} leaves the library with {f} at closing time."]]),
}


def _slot_regex(template: str) -> re.Pattern:
    """A template as a regular expression: its words literal, each {slot} any words."""
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join("(.+?)" if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts))


ACTIVITY_TEMPLATES = [t for a in ACTIVITIES.values() for t in a["setup"] + [p for step in a["steps"] for p in step]]
_ACTIVITY_PATTERNS = [_slot_regex(t) for t in ACTIVITY_TEMPLATES]


def is_activity_sentence(sentence: str) -> bool:
    """Whether a sentence is a set-up or a step of one of the activities (any names and colours).

    >>> is_activity_sentence("Mia fills the blue kettle with water from the tap.")
    True
    >>> is_activity_sentence("In the end, Mia was sad about the kettle at the kitchen.")
    False
    """
    return any(p.fullmatch(sentence) for p in _ACTIVITY_PATTERNS)


def script(rng: random.Random, names: list[str], colors: list[str]) -> tuple[str, list[str]]:
    """(activity, sentences): one activity told from its set-up through all its steps."""
    activity = rng.choice(sorted(ACTIVITIES))
    name = rng.choice(names)
    slots = {"n": name, "f": rng.choice([x for x in names if x != name]), "c": rng.choice(colors)}
    spec = ACTIVITIES[activity]
    return activity, [rng.choice(spec["setup"]).format(**slots)] + [rng.choice(s).format(**slots) for s in spec["steps"]]


def preference_pair(rng: random.Random, pair_id: str, names: list[str], colors: list[str]) -> dict:
    """A SWAG-like pair: the set-up and the first k steps as the prompt (k = 1 or 2), step k+1 as
    chosen, and a step two or more further on as rejected (it skips what has to happen first)."""
    activity, sentences = script(rng, names, colors)
    steps = sentences[1:]
    k = rng.randint(1, 2)
    later = rng.randint(k + 2, len(steps) - 1)
    return {"id": pair_id, "prompt_text": " ".join(sentences[: k + 1]), "chosen_text": steps[k],
            "rejected_text": steps[later], "kind": "skipped_step", "activity": activity, "skip": later - k}
