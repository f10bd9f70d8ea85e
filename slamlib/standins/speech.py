"""Stand-ins of the spoken corpora and benchmark folders, in their published layouts, read by espeak."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np


SAMPLE_RATE = 16_000

# rows and pairs written (a few tens of pairs per benchmark)
LIBRISPEECH_SPLITS = {"all": {"train.clean.100": 4, "train.clean.360": 2, "train.other.500": 2,
                              "validation.clean": 3},
                      "clean": {"validation": 4, "test": 2}}
N_STORIES = 8  # sTinyStories rows, in two shards
N_SWAG = {"train": 8, "validation": 3}
N_STORYCLOZE = 20  # pairs in each of sSC and tSC
N_SBLIMP_IDS, SBLIMP_VOICES = 10, ("Alex", "Victoria")  # 20 pairs
SALMON_PARTS, N_SALMON = ("bg_alignment", "sentiment_consistency", "speaker_consistency"), 8  # 24 pairs

# espeak voices (name, words per minute, pitch) standing in for the corpora's readers
_VOICES = [("en-us", 175, 50), ("en", 160, 40), ("en-us+f3", 180, 60), ("en+m3", 150, 35)]
_SWAG_SPEAKERS = ("af_bella", "am_michael", "bf_emma", "bm_george")  # Kokoro's 2 US + 2 UK voices


class _Speaker:
    """espeak-ng, one process, voices by index."""

    def __init__(self):
        from slamlib.data.tts import EspeakTTS

        self.tts = EspeakTTS(workers=1)

    def __call__(self, text: str, voice: int = 0, aligned: bool = False):
        from slamlib.data.tts import Voice

        name, rate, pitch = _VOICES[voice % len(_VOICES)]
        out = self.tts.synthesize_aligned(text, Voice(name, rate=rate, pitch=pitch))
        return out if aligned else out[0]

    def close(self):
        self.tts.close()


def _encode(wav: np.ndarray, fmt: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), SAMPLE_RATE, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _write_wav(path: Path, wav: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encode(wav, "WAV"))


_NOUNS = ["dog", "cat", "girl", "boy", "bird", "king", "farmer", "teacher", "fox", "baker", "sailor", "horse"]
_ADJS = ["small", "happy", "old", "brave", "quiet", "red", "tired", "clever", "kind", "little"]
_VERBS = ["found", "saw", "carried", "painted", "lost", "opened", "followed", "cleaned", "wanted", "built"]
_THINGS = ["box", "boat", "kite", "door", "ball", "garden", "letter", "basket", "bridge", "window"]
_PLACES = ["park", "river", "forest", "market", "school", "hill", "village", "beach"]


def _sentence(rng: random.Random) -> str:
    return (f"The {rng.choice(_ADJS)} {rng.choice(_NOUNS)} {rng.choice(_VERBS)} a {rng.choice(_THINGS)} "
            f"near the {rng.choice(_PLACES)}.")


def _story(rng: random.Random, n: int = 3) -> list[str]:
    name = rng.choice(["Lily", "Tom", "Anna", "Ben", "Mia", "Sam"])
    first = f"Once upon a time, {name} lived near the {rng.choice(_PLACES)}."
    return [first] + [_sentence(rng) for _ in range(n - 1)]


def _texts(rng: random.Random, n: int) -> list[str]:
    return [" ".join(_story(rng, 3)) for _ in range(n)]


def _parquet(path: Path, rows: list[dict], features) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the schema carries the `datasets` features (Audio columns) in its metadata, as hub shards do;
    # written with pyarrow because `datasets` encodes Audio through torchcodec (REFERENCE §7)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=features.arrow_schema), path)


def _librispeech(folder: Path, speak: _Speaker, rng: random.Random) -> list[np.ndarray]:
    """openslr/librispeech_asr's parquet layout (CONFIG/SPLIT/0000.parquet), its columns and its
    FLAC audio; texts upper case without punctuation, as LibriSpeech's are."""
    from datasets import Audio, Features, Value

    features = Features({"file": Value("string"), "audio": Audio(sampling_rate=SAMPLE_RATE),
                         "text": Value("string"), "speaker_id": Value("int64"), "chapter_id": Value("int64"),
                         "id": Value("string")})
    waves = []
    for config, splits in LIBRISPEECH_SPLITS.items():
        for split, n in splits.items():
            rows = []
            for i in range(n):
                speaker, chapter = rng.randrange(100, 9000), rng.randrange(1000, 200_000)
                utt = f"{speaker}-{chapter}-{i:04d}"
                text = " ".join(_sentence(rng) for _ in range(2)).upper().replace(".", "")
                wav = speak(text, voice=speaker)
                waves.append(wav)
                rows.append({"file": f"{utt}.flac", "audio": {"bytes": _encode(wav, "FLAC"), "path": f"{utt}.flac"},
                             "text": text, "speaker_id": speaker, "chapter_id": chapter, "id": utt})
            _parquet(folder / config / split / "0000.parquet", rows, features)
    return waves


def _stinystories(folder: Path, speak: _Speaker, rng: random.Random) -> list[np.ndarray]:
    """slprl/sTinyStories: one voice, `audio, text, aligned_text, split_sentence`, shards whose
    names name no split (all of it is train)."""
    from datasets import Audio, Features, List, Value

    features = Features({"audio": Audio(sampling_rate=SAMPLE_RATE), "text": Value("string"),
                         "aligned_text": List({"word": Value("string"), "start_time": Value("float64"),
                                               "end_time": Value("float64")}),
                         "split_sentence": Value("bool")})
    rows, waves = [], []
    for i in range(N_STORIES):
        text = " ".join(_story(rng, 4))
        wav, words = speak(text, voice=0, aligned=True)
        waves.append(wav)
        rows.append({"audio": {"bytes": _encode(wav, "WAV"), "path": f"story_{i:06d}.wav"}, "text": text,
                     "aligned_text": words, "split_sentence": bool(i % 2)})
    half = len(rows) // 2
    for shard, part in enumerate((rows[:half], rows[half:])):
        _parquet(folder / "data" / f"data-{shard:05d}-of-00002.parquet", part, features)
    return waves


def _spokenswag(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """slprl/SpokenSwag: `speaker, prompt_text, chosen_text, rejected_text, prompt, chosen,
    rejected, auto_bleu2`, one parquet file per split under data/."""
    from datasets import Audio, Features, Value

    audio = Audio(sampling_rate=SAMPLE_RATE)
    features = Features({"speaker": Value("string"), "prompt_text": Value("string"),
                         "chosen_text": Value("string"), "rejected_text": Value("string"),
                         "prompt": audio, "chosen": audio, "rejected": audio, "auto_bleu2": Value("float64")})
    for split, n in N_SWAG.items():
        rows = []
        for i in range(n):
            voice = rng.randrange(len(_SWAG_SPEAKERS))
            texts = {"prompt": _sentence(rng), "chosen": _sentence(rng), "rejected": _sentence(rng)}
            row = {"speaker": _SWAG_SPEAKERS[voice], "auto_bleu2": round(rng.random() * 0.3, 4)}
            for role, text in texts.items():
                row[f"{role}_text"] = text
                row[role] = {"bytes": _encode(speak(text, voice=voice), "WAV"), "path": f"{split}_{i}_{role}.wav"}
            rows.append(row)
        _parquet(folder / "data" / f"{split}-00000-of-00001.parquet", rows, features)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _storycloze(ssc: Path, tsc: Path, speak: _Speaker, rng: random.Random) -> None:
    """SpokenStoryCloze: `N_STORYID_correct.wav` and `N_STORYID_incorrect.wav`, whole stories.
    sSC's wrong ending is a plausible other sentence; tSC's is another story's ending."""
    stories = [(_uuid(rng), _story(rng, 4), _sentence(rng)) for _ in range(N_STORYCLOZE)]
    for i, (story, sentences, other) in enumerate(stories):
        body = " ".join(sentences[:-1])
        _write_wav(ssc / f"{i}_{story}_correct.wav", speak(f"{body} {sentences[-1]}"))
        _write_wav(ssc / f"{i}_{story}_incorrect.wav", speak(f"{body} {other}"))
        foreign = stories[(i + 1) % len(stories)][1][-1]
        _write_wav(tsc / f"{i}_{story}_correct.wav", speak(f"{body} {sentences[-1]}"))
        _write_wav(tsc / f"{i}_{story}_incorrect.wav", speak(f"{body} {foreign}"))


def _random_name(rng: random.Random, used: set) -> str:
    name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))
    assert name not in used
    used.add(name)
    return name


# sBLIMP stand-in: (type, subtype, good, bad) templates; ids restart in every subtype, as the release's may
_SBLIMP_SUBTYPES = (
    ("subject_verb_agreement", "regular_plural_subject_verb_agreement_1", "The {n}s are sleeping.", "The {n}s is sleeping."),
    ("subject_verb_agreement", "regular_plural_subject_verb_agreement_2", "The {n} is sleeping.", "The {n} are sleeping."),
)


def _sblimp(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """ZeroSpeech 2021 sBLIMP dev: wavs named by random ids (no suffix in gold.csv) and
    gold.csv (filename, type, subtype, correct, id, voice, transcription). Ids are numbered within
    each subtype, so the same id occurs in both subtypes: only (type, subtype, id, voice) is a pair."""
    import pandas as pd

    rows, used = [], set()
    for pair in range(N_SBLIMP_IDS):
        kind, subtype, good, bad = _SBLIMP_SUBTYPES[pair % len(_SBLIMP_SUBTYPES)]
        noun = rng.choice(_NOUNS)
        for v, voice in enumerate(SBLIMP_VOICES):
            for correct, text in ((1, good.format(n=noun)), (0, bad.format(n=noun))):
                name = _random_name(rng, used)
                _write_wav(folder / f"{name}.wav", speak(text, voice=v))
                rows.append({"filename": name, "type": kind, "subtype": subtype, "correct": correct,
                             "id": pair // len(_SBLIMP_SUBTYPES), "voice": voice, "transcription": text})
    pd.DataFrame(rows).to_csv(folder / "gold.csv", index=False)


# sWUGGY stand-in: words of the corpora's vocabulary and pronounceable non-words, with made-up LibriSpeech counts
_SWUGGY_WORDS = (("boat", "boak", 412), ("kite", "kipe", 37), ("garden", "garlen", 150), ("basket", "bosket", 9),
                 ("farmer", "fornier", 3), ("bridge", "brigde", 64), ("sailor", "sailom", 0), ("quiet", "quient", 18))


def _swuggy(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """ZeroSpeech 2021 sWUGGY (lexical) dev: wavs named by random ids and gold.csv (filename, id,
    voice, frequency, word, phones, length, correct): one id per (word, non-word), read by each
    voice; `frequency` the word's count in LibriSpeech (0: out of its vocabulary), `length` phones."""
    import pandas as pd

    rows, used = [], set()
    for pair, (word, nonword, count) in enumerate(_SWUGGY_WORDS):
        for v, voice in enumerate(SBLIMP_VOICES):
            for correct, text in ((1, word), (0, nonword)):
                name = _random_name(rng, used)
                _write_wav(folder / f"{name}.wav", speak(text, voice=v))
                rows.append({"filename": name, "id": pair, "voice": voice, "frequency": count, "word": text,
                             "phones": " ".join(text), "length": len(word), "correct": correct})
    pd.DataFrame(rows).to_csv(folder / "gold.csv", index=False)


def _salmon(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """SALMon: one folder per part, `sample_<index>_0.wav` the consistent recording and
    `sample_<index>_1.wav` the one whose second half changes (voice, or added noise)."""
    for p, part in enumerate(SALMON_PARTS):
        for i in range(N_SALMON):
            first, second = _sentence(rng), _sentence(rng)
            a, b = speak(first, voice=p), speak(second, voice=p)
            if part == "speaker_consistency":
                changed = speak(second, voice=p + 1)
            else:
                noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 0.05, len(b)).astype(np.float32)
                changed = np.clip(b + noise, -1, 1)
            _write_wav(folder / part / f"sample_{i}_0.wav", np.concatenate([a, b]))
            _write_wav(folder / part / f"sample_{i}_1.wav", np.concatenate([a, changed]))




# Libri-Light: (subset, speaker, book, file, sentences); one file runs past the tokenizer's window
LIBRILIGHT_FILES = (("small", "100", "sea_fairies_0812_librivox_64kb_mp3", "01_baum_sea_fairies_64kb", 14),
                    ("small", "1012", "tale_of_two_bad_mice_0810_librivox_64kb_mp3", "02_potter_two_bad_mice_64kb", 4))


def _librilight(folder: Path, speak: _Speaker, rng: random.Random) -> list[np.ndarray]:
    """Libri-Light's release layout, SUBSET/SPEAKER/BOOK/FILE.flac with FILE.json beside it
    (`speaker`, `book_meta`, `snr`, `voice_activity`: [[onset, offset], ...] in seconds): LibriVox
    chapters read as sentences with pauses of 0.4-2 s between them, and the voiced spans in the JSON."""
    import json

    waves = []
    for subset, speaker, book, name, n in LIBRILIGHT_FILES:
        pieces, spans, t = [], [], 0.0
        for _ in range(n):
            pause = np.zeros(int(rng.uniform(0.4, 2.0) * SAMPLE_RATE), np.float32)
            wav = speak(" ".join(_sentence(rng) for _ in range(2)), voice=int(speaker))
            t += len(pause) / SAMPLE_RATE
            spans.append([round(t, 2), round(t + len(wav) / SAMPLE_RATE, 2)])
            t += len(wav) / SAMPLE_RATE
            pieces += [pause, wav]
            waves.append(wav)
        audio = np.concatenate(pieces + [np.zeros(SAMPLE_RATE // 2, np.float32)])
        path = folder / subset / speaker / book / f"{name}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_encode(audio, "FLAC"))
        meta = {"speaker": speaker, "book_meta": {"id": book.split("_")[-4], "title": book.rsplit("_", 4)[0],
                                                  "url_librivox": f"https://librivox.org/{book}"},
                "snr": round(rng.uniform(8, 20), 4), "voice_activity": spans}
        path.with_suffix(".json").write_text(json.dumps(meta))
    return waves
