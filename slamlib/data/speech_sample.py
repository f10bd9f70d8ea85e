"""The speech sample that notebook 01 tokenizes, as audio files plus `metadata.csv`.

For the `tiny` profile it is synthetic: sentences from `data/sentences.txt`, each read by one of
several espeak voices (different accents, rates and pitches). For the `slam` profile it is the
first rows of a real dataset (LibriSpeech), decoded with soundfile and written as FLAC.

Writing is idempotent: files already present are kept, and `metadata.csv` (file, text, voice,
seconds) is rewritten whole at the end. A sample made with other settings (or another seed) is
made again (`slamlib.reuse`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pandas as pd

from slamlib import reuse
from slamlib.audio import SAMPLE_RATE, audio_duration, decode_audio, write_audio
from slamlib.data.tts import EspeakTTS
from slamlib.profiles import REPO_ROOT, Profile, SpeechSampleConfig
from slamlib.progress import progress as progress_bar


def prepare_speech_sample(profile: Profile, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Write the profile's speech sample to out_dir and return out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = profile.speech_sample
    made_with = {**reuse.settings(cfg, "speech_sample."), "seed": profile.seed}
    if not reuse.matches(out_dir, made_with, what=str(out_dir), redo="making it again"):
        _remove_sample(out_dir)
    if cfg.source == "espeak":
        rows = _espeak_sample(cfg, out_dir, profile.seed, progress)
    else:
        rows = _dataset_sample(cfg, out_dir, progress)
    table = pd.DataFrame(rows, columns=["file", "text", "voice", "seconds"])
    tmp = out_dir / ".metadata.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / "metadata.csv")
    reuse.record(out_dir, made_with)
    return out_dir


def _remove_sample(out_dir: Path) -> None:
    """A sample made with other settings: its files (named `utt-NNNNN`, the same names a new
    sample uses for other sentences) and its metadata go, nothing else in the folder."""
    reuse.forget(out_dir, "metadata.csv")
    for path in out_dir.glob("utt-[0-9][0-9][0-9][0-9][0-9].*"):
        path.unlink()


def read_texts(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    texts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"{path}: no sentences")
    return texts


def _espeak_sample(cfg: SpeechSampleConfig, out_dir: Path, seed: int, progress: bool) -> list[dict]:
    if not cfg.voices:
        raise ValueError("the espeak speech sample needs at least one voice")
    texts = read_texts(cfg.texts)
    rng = random.Random(seed)
    plan, order = [], []
    for i in range(cfg.n_utterances):
        # Rounds: every sentence once (shuffled) before any sentence twice; each round gives a
        # sentence the next voice, so voices stay balanced across sentences.
        rnd, j = divmod(i, len(texts))
        if j == 0:
            order = rng.sample(range(len(texts)), len(texts))
        plan.append((f"utt-{i:05d}.wav", texts[order[j]], cfg.voices[(order[j] + rnd) % len(cfg.voices)]))
    missing = [(name, text, voice) for name, text, voice in plan if not (out_dir / name).exists()]
    tts = EspeakTTS(workers=2)
    waves = tts.synthesize_many((text, voice) for _, text, voice in missing)
    for (name, _, _), wav in progress_bar(zip(missing, waves), total=len(missing), desc="espeak",
                                          enabled=progress):
        write_audio(out_dir / name, wav)
    tts.close()
    return [{"file": name, "text": text, "voice": str(voice), "seconds": audio_duration(out_dir / name)}
            for name, text, voice in plan]


def _dataset_sample(cfg: SpeechSampleConfig, out_dir: Path, progress: bool) -> list[dict]:
    from datasets import Audio

    from slamlib import hub

    dataset = hub.load_dataset(cfg.source, name=cfg.dataset_config, split=cfg.split, streaming=True,
                               what="speech sample dataset")
    dataset = dataset.cast_column(cfg.audio_column, Audio(decode=False))
    rows = []
    for i, row in enumerate(progress_bar(dataset.take(cfg.n_utterances), total=cfg.n_utterances,
                                         desc=cfg.source, enabled=progress)):
        name = f"utt-{i:05d}.flac"
        path = out_dir / name
        if not path.exists():
            audio = row[cfg.audio_column]
            write_audio(path, decode_audio(audio["bytes"], f"{cfg.source}[{i}]"), SAMPLE_RATE)
        text = row.get(cfg.text_column, "") if cfg.text_column else ""
        rows.append({"file": name, "text": text, "voice": str(row.get("speaker_id", "")),
                     "seconds": audio_duration(path)})
    return rows
