"""Synthetic data: the tiny world's stories spoken, as corpora in the real datasets' schemas.

From the texts of `slamlib.data.stories`, read by espeak-ng (`slamlib.data.tts`), this writes:

    audio/read_speech/        multi-voice read utterances   (LibriSpeech's fields)
    audio/spoken_stories/     single-voice stories          (sTinyStories' fields)
    audio/preference/train/   preference pairs, story voice   (SpokenSwag's fields)
    audio/preference/heldout/ pairs like those, never trained on
    benchmarks/tsc/, ssc/, sblimp/   wavs + pairs.csv       (read by slamlib.data.benchmarks)

Audio corpora are parquet shards with FLAC-encoded audio; a shard is written whole or not at
all, so an interrupted run resumes by shard and a finished one is not redone. A story's audio is
its set-up and its ending synthesized separately and joined, so that the two sides of a benchmark
pair share the set-up audio exactly and differ only in the ending.

`prepare_data` is notebook 03 in one call: the profile's synthetic corpora and/or real hub
corpora, tokenized into `units/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import soundfile as sf

from slamlib import reuse
from slamlib.audio import SAMPLE_RATE, write_audio
from slamlib.data.benchmarks import write_pairs
from slamlib.data.stories import Texts, build_texts
from slamlib.data.tts import EspeakTTS
from slamlib.metrics import AUTO_BLEU, auto_bleu_slamkit
from slamlib.profiles import Voice
from slamlib.progress import progress as progress_bar
from slamlib.runs import RunDir

if TYPE_CHECKING:
    import pandas as pd

SPEECH_CORPORA = ("read_speech", "spoken_stories")
PREFERENCE_CORPORA = ("preference/train", "preference/heldout")
BENCHMARKS = ("tsc", "ssc", "sblimp")


def make_texts(cfg, seed: int) -> Texts:
    """The texts of every corpus, with SpokenSwag's repetition filter applied to the pairs (as
    SlamKit applies it: Auto-BLEU of prompt + chosen below the threshold). Pairs are drawn with a
    margin so that the configured number survive the filter."""
    margin = lambda n: n + n // 5 + 10  # noqa: E731
    texts = build_texts(seed, n_stories=cfg.n_stories, n_read=cfg.n_read, n_preference=margin(cfg.n_preference),
                        n_test_stories=cfg.n_test_stories, n_sblimp=cfg.n_sblimp,
                        n_heldout_preference=margin(cfg.n_heldout_preference), action_prob=cfg.action_prob,
                        home_prob=cfg.home_prob, feeling_prob=cfg.feeling_prob,
                        read_activity_fraction=cfg.read_activity_fraction)
    for name, wanted in (("preference", cfg.n_preference), ("heldout_preference", cfg.n_heldout_preference)):
        kept = []
        for pair in getattr(texts, name):
            pair["auto_bleu2"] = auto_bleu_slamkit(f"{pair['prompt_text']} {pair['chosen_text']}", n=2)
            if pair["auto_bleu2"] < cfg.max_auto_bleu:
                kept.append(pair)
        setattr(texts, name, kept[:wanted])
    return texts


def flac(wav: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _audio(wav: np.ndarray, name: str) -> dict:
    return {"bytes": flac(wav), "path": name}


Audio = dict  # (text, voice) -> (waveform, words)


def _synthesize(tts: EspeakTTS, jobs: list[tuple[str, Voice]]) -> Audio:
    unique = list(dict.fromkeys(jobs))
    return dict(zip(unique, tts.synthesize_many(unique, aligned=True)))


def _join(audio: Audio, *parts: str, voice: Voice) -> tuple[np.ndarray, list]:
    """Parts synthesized one by one and joined; word times shifted to the joined audio."""
    wavs, words, offset = [], [], 0.0
    for part in parts:
        wav, part_words = audio[(part, voice)]
        wavs.append(wav)
        words += [{**w, "start_time": round(w["start_time"] + offset, 3),
                   "end_time": round(w["end_time"] + offset, 3)} for w in part_words]
        offset += len(wav) / SAMPLE_RATE
    return np.concatenate(wavs), words


def _pipelined(tts: EspeakTTS, batches: list, jobs_of: Callable[[list], list]):
    """Yield (batch, audio) in order while the next batch is being synthesized, so that encoding
    and writing one batch overlaps the synthesis of the next."""
    from concurrent.futures import ThreadPoolExecutor

    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1) as background:
        future = background.submit(_synthesize, tts, jobs_of(batches[0]))
        for i, batch in enumerate(batches):
            audio = future.result()
            if i + 1 < len(batches):
                future = background.submit(_synthesize, tts, jobs_of(batches[i + 1]))
            yield batch, audio


def _check_manifest(folder: Path, fingerprint: str, rows: int, settings: dict,
                    products: tuple[str, ...] = ("pairs.csv", "wavs")) -> None:
    """A corpus folder made with other settings (or another seed) is emptied and made again,
    saying which settings changed; one made with these is kept (its missing shards are filled in).
    `products`: what else it holds, named relative to it (globs allowed)."""
    manifest = folder / "corpus.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("fingerprint") == fingerprint:
            return
        changed = reuse.differences(old["settings"], settings) if "settings" in old else ["not recorded"]
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
        print(f"{folder}: settings changed: {shown}; synthesizing it again", flush=True)
        reuse.forget(folder, "corpus.json", *(p.relative_to(folder).as_posix() for pattern in products
                                              for p in folder.glob(pattern)))
        for shard in folder.glob("shard-*.parquet"):
            shard.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "rows": rows, "settings": settings}, indent=2) + "\n")


def _write_sharded(tts: EspeakTTS, folder: Path, rows: list, jobs_of: Callable[[list], list],
                   build: Callable[[list, Audio], list[dict]], features, shard_size: int, fingerprint: str,
                   settings: dict, desc: str, progress: bool) -> int:
    """Write rows as parquet shards of shard_size; only missing shards are synthesized. Returns
    how many shards were written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check_manifest(folder, fingerprint, len(rows), settings)
    missing = [(number, rows[start : start + shard_size]) for number, start in enumerate(range(0, len(rows), shard_size))
               if not (folder / f"shard-{number:05d}.parquet").exists()]
    for (number, batch), audio in progress_bar(_pipelined(tts, missing, lambda b: jobs_of(b[1])),
                                               total=len(missing), desc=desc, enabled=progress, unit="shard"):
        # pyarrow, not datasets: its Audio encoder needs torchcodec even for encoded bytes. The
        # schema's metadata still tells `datasets` that the audio columns are Audio.
        table = pa.Table.from_pylist(build(batch, audio), schema=features.arrow_schema)
        path = folder / f"shard-{number:05d}.parquet"
        tmp = folder / f".{path.name}.tmp"
        pq.write_table(table, tmp, compression="none")  # FLAC is compressed already
        os.replace(tmp, path)
    return len(missing)


def _features(kind: str):
    from datasets import Audio, Features, List, Value

    audio = Audio(sampling_rate=SAMPLE_RATE, decode=False)
    if kind == "read_speech":
        return Features({"id": Value("string"), "file": Value("string"), "audio": audio, "text": Value("string"),
                         "speaker_id": Value("int64"), "chapter_id": Value("int64"), "voice": Value("string")})
    if kind == "spoken_stories":
        word = {"word": Value("string"), "start_time": Value("float64"), "end_time": Value("float64")}
        return Features({"id": Value("string"), "audio": audio, "text": Value("string"),
                         "aligned_text": List(word), "split_sentence": Value("bool")})
    return Features({"id": Value("string"), "speaker": Value("string"), "prompt_text": Value("string"),
                     "chosen_text": Value("string"), "rejected_text": Value("string"), "prompt": audio,
                     "chosen": audio, "rejected": audio, "auto_bleu2": Value("float64"), "kind": Value("string")})


def _assign(items: list, voices: tuple[Voice, ...], seed: int, part: str) -> list[Voice]:
    rng = random.Random(f"{seed}/{part}/voices")
    return [voices[rng.randrange(len(voices))] for _ in items]


def synthesize_corpora(cfg, seed: int, run: RunDir, progress: bool = True) -> dict:
    """Write every synthetic corpus and benchmark of a SynthConfig into the run folder."""
    if not (cfg.read_voices and cfg.preference_voices and cfg.sblimp_voices):
        raise ValueError("the synthetic data needs read_voices, preference_voices and sblimp_voices")
    texts = make_texts(cfg, seed)
    # AUTO_BLEU names the definition the pairs were filtered with: pairs written under another are not reused
    # the lexical test has a fingerprint of its own: its size changes nothing else
    fingerprint = hashlib.sha256(json.dumps([{k: v for k, v in dataclasses.asdict(cfg).items() if k not in LEXICAL},
                                             seed, AUTO_BLEU], default=str).encode()).hexdigest()[:16]
    settings = {**reuse.settings(cfg, "data.synthetic.", leave_out=("workers",)), "seed": seed,
                "auto_bleu": AUTO_BLEU}  # what changed, when the fingerprint does
    tts = EspeakTTS(workers=cfg.workers)
    written = {}
    common = dict(shard_size=cfg.shard_size, fingerprint=fingerprint, settings=settings, progress=progress)

    # read speech: LibriSpeech's fields; speaker_id is the voice's index
    voices = _assign(texts.read_speech, cfg.read_voices, seed, "read")
    rows = [{"id": f"read-{i:06d}", "text": t, "voice": v} for i, (t, v) in enumerate(zip(texts.read_speech, voices))]
    written["read_speech"] = _write_sharded(
        tts, run.folder("audio", "read_speech"), rows, lambda batch: [(r["text"], r["voice"]) for r in batch],
        lambda batch, audio: [{"id": r["id"], "file": f"{r['id']}.flac",
                               "audio": _audio(_join(audio, r["text"], voice=r["voice"])[0], f"{r['id']}.flac"),
                               "text": r["text"], "speaker_id": cfg.read_voices.index(r["voice"]), "chapter_id": 0,
                               "voice": str(r["voice"])} for r in batch],
        _features("read_speech"), desc="read speech", **common)

    # spoken stories: sTinyStories' fields, one voice; split_sentence: synthesized in parts
    def build_stories(batch, audio):
        out = []
        for st in batch:
            wav, words = _join(audio, st.prompt, st.ending, voice=cfg.story_voice)
            out.append({"id": st.id, "audio": _audio(wav, f"{st.id}.flac"), "text": st.text,
                        "aligned_text": words, "split_sentence": True})
        return out

    written["spoken_stories"] = _write_sharded(
        tts, run.folder("audio", "spoken_stories"), texts.stories,
        lambda batch: [(part, cfg.story_voice) for st in batch for part in (st.prompt, st.ending)],
        build_stories, _features("spoken_stories"), desc="spoken stories", **common)

    # preference pairs: SpokenSwag's fields, read by the profile's preference voices
    roles = ("prompt", "chosen", "rejected")
    for name, pairs in (("train", texts.preference), ("heldout", texts.heldout_preference)):
        voices = _assign(pairs, cfg.preference_voices, seed, f"preference/{name}")
        rows = [{**p, "voice": v} for p, v in zip(pairs, voices)]
        written[f"preference/{name}"] = _write_sharded(
            tts, run.folder("audio", "preference", name), rows,
            lambda batch: [(r[f"{role}_text"], r["voice"]) for r in batch for role in roles],
            lambda batch, audio: [{
                "id": r["id"], "speaker": str(r["voice"]), "prompt_text": r["prompt_text"],
                "chosen_text": r["chosen_text"], "rejected_text": r["rejected_text"],
                **{role: _audio(_join(audio, r[f"{role}_text"], voice=r["voice"])[0], f"{r['id']}-{role}.flac")
                   for role in roles},
                "auto_bleu2": r["auto_bleu2"], "kind": r["kind"]} for r in batch],
            _features("preference"), desc=f"preference pairs ({name})", **common)

    benchmarks = write_benchmarks(texts, cfg, seed, run, tts, fingerprint, progress, settings=settings)
    lexical = write_lexical(texts, cfg, seed, run, tts, fingerprint, settings=settings) if cfg.n_swuggy else []
    if lexical:
        benchmarks["swuggy"] = str(run.folder("benchmarks", "swuggy"))
    tts.close()
    counts = {"read_speech": len(texts.read_speech), "spoken_stories": len(texts.stories),
              "preference/train": len(texts.preference), "preference/heldout": len(texts.heldout_preference),
              "tsc": len(texts.tsc), "ssc": len(texts.ssc), "sblimp": len(texts.sblimp), "swuggy": len(lexical)}
    return {"fingerprint": fingerprint, "shards_written": written, "benchmarks": benchmarks, "counts": counts}


def write_benchmarks(texts: Texts, cfg, seed: int, run: RunDir, tts: EspeakTTS, fingerprint: str,
                     progress: bool = True, chunk: int = 200, settings: dict | None = None) -> dict:
    """tStoryCloze-, sStoryCloze- and sBLIMP-style sets: wavs/ and pairs.csv in benchmarks/NAME.
    A pair's two files share the set-up audio; only the ending differs."""
    stories = {st.id: st for st in texts.test_stories}
    folders = {name: run.folder("benchmarks", name) for name in BENCHMARKS}
    for folder in folders.values():
        _check_manifest(folder, fingerprint, 0, settings or {})
    roles = ("positive", "negative")
    wav_path = lambda name, pair, role: folders[name] / "wavs" / f"{pair['id']}_{role}.wav"  # noqa: E731

    def entry(name, pair, **extra):
        return {"id": pair["id"], "positive": f"wavs/{pair['id']}_positive.wav",
                "negative": f"wavs/{pair['id']}_negative.wav", **extra,
                "positive_text": pair["positive_text"], "negative_text": pair["negative_text"]}

    def todo(batch):  # (benchmark, pair, role, voice) whose wav is not written yet
        return [(name, pair, role, voice) for name, pair, voice in batch for role in roles
                if not wav_path(name, pair, role).exists()]

    story_pairs = [(name, pair, cfg.story_voice) for t, s in zip(texts.tsc, texts.ssc) for name, pair in
                   (("tsc", t), ("ssc", s))]
    voices = _assign(texts.sblimp, cfg.sblimp_voices, seed, "sblimp")
    sblimp_pairs = [("sblimp", pair, voice) for pair, voice in zip(texts.sblimp, voices)]
    batches = [items[i : i + chunk] for items in (story_pairs, sblimp_pairs) for i in range(0, len(items), chunk)]
    jobs_of = lambda batch: [(text, voice) for _, pair, role, voice in todo(batch)  # noqa: E731
                             for text in (pair.get("prompt_text"), pair[f"{role}_text"]) if text]
    for batch, audio in progress_bar(_pipelined(tts, batches, jobs_of), total=len(batches), desc="benchmarks",
                                     enabled=progress):
        for name, pair, role, voice in todo(batch):
            parts = [t for t in (pair.get("prompt_text"), pair[f"{role}_text"]) if t]
            write_audio(wav_path(name, pair, role), _join(audio, *parts, voice=voice)[0])
    rows = {name: [] for name in BENCHMARKS}
    for name, pair, voice in story_pairs:
        rows[name].append(entry(name, pair, prompt_text=pair["prompt_text"], mood=stories[pair["story"]].mood))
    for name, pair, voice in sblimp_pairs:
        rows[name].append(entry(name, pair, category=pair["category"], voice=str(voice)))
    for name in BENCHMARKS:
        write_pairs(folders[name], rows[name])
    return {name: str(folder) for name, folder in folders.items()}


LEXICAL = ("n_swuggy",)  # SynthConfig fields that only the lexical test reads
LEXICAL_VOICES = 2  # the first sBLIMP voices read every word and non-word, as sWUGGY's voices do


def write_lexical(texts: Texts, cfg, seed: int, run: RunDir, tts: EspeakTTS, fingerprint: str,
                  settings: dict | None = None) -> list[dict]:
    """The sWUGGY-style set (`slamlib.data.lexical`) in ZeroSpeech's lexical layout, in
    benchmarks/swuggy: wavs and gold.csv. Words come from the pretraining texts (read speech and
    spoken stories), their counts there as `frequency`."""
    import pandas as pd

    from slamlib.data.lexical import lexical_items

    items = lexical_items([*texts.read_speech, *(st.text for st in texts.stories)], cfg.n_swuggy, seed)
    voices = cfg.sblimp_voices[:LEXICAL_VOICES]
    folder = run.folder("benchmarks", "swuggy")
    key = hashlib.sha256(json.dumps([fingerprint, cfg.n_swuggy], default=str).encode()).hexdigest()[:16]
    _check_manifest(folder, key, len(items), {**(settings or {}), "data.synthetic.n_swuggy": cfg.n_swuggy},
                    products=("gold.csv", "*.wav"))  # ZeroSpeech's layout: the wavs beside gold.csv
    rows = [{"filename": f"w{item['id']:04d}-v{v}-{correct}", "id": item["id"], "voice": str(voice),
             "frequency": item["frequency"], "word": text, "phones": " ".join(text), "length": len(item["word"]),
             "correct": correct, "_voice": voice}
            for item in items for v, voice in enumerate(voices)
            for correct, text in ((1, item["word"]), (0, item["nonword"]))]
    todo = [r for r in rows if not (folder / f"{r['filename']}.wav").exists()]
    if todo:
        audio = _synthesize(tts, [(r["word"], r["_voice"]) for r in todo])
        for r in todo:
            write_audio(folder / f"{r['filename']}.wav", audio[(r["word"], r["_voice"])][0])
    table = pd.DataFrame(rows).drop(columns=["_voice"])
    tmp = folder / ".gold.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, folder / "gold.csv")
    return items


def tokenize_synthetic(run: RunDir, tokenizer, progress: bool = True) -> dict:
    """Units for every synthetic audio corpus in the run folder (benchmarks are tokenized when
    they are evaluated)."""
    from slamlib.data.corpora import tokenize_audio_corpus

    out = {}
    for name in SPEECH_CORPORA:
        out[name] = tokenize_audio_corpus(
            run.root / "audio" / name, run.folder("units", name), tokenizer, id_column="id",
            keep_columns=("text", "voice"), name=name, progress=progress, replace_stale=True)
    for name in PREFERENCE_CORPORA:
        out[name] = tokenize_audio_corpus(
            run.root / "audio" / name, run.folder("units", name), tokenizer, kind="preference",
            id_column="id", keep_columns=("speaker", "prompt_text", "chosen_text", "rejected_text", "kind"),
            name=name, progress=progress, replace_stale=True)
    return out


def prepare_data(profile, run: RunDir, tokenizer=None, *, max_rows: int | None = None, progress: bool = True) -> dict:
    """Notebook 03 in one call: synthesize the profile's synthetic corpora and/or load its hub
    corpora (at most max_rows rows each), and tokenize everything into units/.

    Without a tokenizer, the run folder's speech tokenizer is used (made by notebook 01); if there
    is none, one is built as the profile says, fitting k-means on the read speech if it must."""
    from slamlib.checks import check
    from slamlib.data.corpora import load_hub_corpus, parquet_rows, tokenize_audio_corpus
    from slamlib.tokenization.speech_tokenizer import load_or_build_speech_tokenizer

    check("max_rows", max_rows, "count")

    summary: dict = {"units": {}}
    if profile.data.synthetic is not None:
        summary["synthetic"] = synthesize_corpora(profile.data.synthetic, profile.seed, run, progress)
    if tokenizer is None:
        from slamlib.audio import decode_audio

        def fit_audio():
            for row in parquet_rows(run.root / "audio" / "read_speech", ["id", "audio"]):
                yield decode_audio(row["audio"]["bytes"], row["id"])

        tokenizer = load_or_build_speech_tokenizer(
            profile.tokenizer, run.folder("speech_tokenizer"), device=profile.device, seed=profile.seed,
            fit_audio=fit_audio() if profile.data.synthetic is not None else None,
            fit_from={"audio/read_speech": reuse.content_key(run.root / "audio" / "read_speech")})
    summary["speech_tokenizer"] = tokenizer.fingerprint()
    if profile.data.synthetic is not None:
        summary["units"].update(tokenize_synthetic(run, tokenizer, progress))
    for corpus in profile.data.hub:
        dataset = load_hub_corpus(corpus, max_rows)
        summary["units"][corpus.name] = tokenize_audio_corpus(
            dataset, run.folder("units", corpus.name), tokenizer, kind=corpus.kind, id_column=corpus.id_column,
            keep_columns=corpus.keep_columns, audio_column=corpus.audio_column, name=f"{corpus.name} ({corpus.dataset})",
            max_auto_bleu=corpus.max_auto_bleu, progress=progress, replace_stale=True)
    if profile.data.librilight:
        summary["units"]["librilight"] = tokenize_librilight(profile.data, run.folder("units", "librilight"),
                                                             tokenizer, progress=progress)
    return summary


def tokenize_librilight(data, out_dir, tokenizer, *, progress: bool = True, **sharding) -> dict:
    """The Libri-Light folder of a `DataConfig` cut by its voice activity and tokenized into
    `out_dir` (units made from another folder or another target length are replaced)."""
    from slamlib.data.librilight import made_from
    from slamlib.tokenization.corpus import tokenize_corpus

    folder = Path(data.librilight)
    if not folder.is_dir():
        raise FileNotFoundError(f"data.librilight={data.librilight}: no such folder (download Libri-Light's small,"
                                " medium, large or duplicate subset and point there)")
    return tokenize_corpus(folder, out_dir, tokenizer, target_seconds=data.librilight_target_seconds,
                           made_from=made_from(folder, data.librilight_target_seconds), replace_stale=True,
                           progress=progress, **sharding)


def scaled(profile, factor: float):
    """The profile with every synthetic corpus `factor` times its size (at least 20 of each): for
    quick looks and tests. Hub corpora are cut with max_rows instead."""
    from slamlib.checks import check

    check("scale", factor, "positive", optional=False)
    cfg = profile.data.synthetic
    if cfg is None or factor == 1:
        return profile
    counts = {f: max(20, round(getattr(cfg, f) * factor)) for f in
              ("n_stories", "n_read", "n_preference", "n_heldout_preference", "n_test_stories", "n_sblimp", "n_swuggy")
              if getattr(cfg, f)}
    return dataclasses.replace(profile, data=dataclasses.replace(profile.data, synthetic=dataclasses.replace(cfg, **counts)))


def written_sentences(run: RunDir, profile=None) -> tuple[set[str], set[str]]:
    """(training, held-out) sentences as written to the run folder: the synthetic corpora and
    benchmarks, and with a `profile` also the texts kept with its hub corpora's units and those of
    its benchmark folders that have texts (pairs.csv, a ZeroSpeech gold.csv; the SpokenStoryCloze
    and SALMon folders have none)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from slamlib.data.benchmarks import MANIFEST, read_pairs
    from slamlib.data.stories import normalize, split_sentences

    def sentences(texts) -> set[str]:
        return {normalize(s) for t in texts if isinstance(t, str) for s in split_sentences(t)}

    def column_texts(folder: Path, columns: list[str]) -> list[str]:
        out = []
        for shard in sorted(folder.glob("shard-*.parquet")):
            names = set(pq.read_schema(shard).names)
            table = pq.read_table(shard, columns=[c for c in columns if c in names])
            for c in table.column_names:
                out += table.column(c).to_pylist()
        return out

    text_columns = ["prompt_text", "positive_text", "negative_text"]
    pref_columns = ["prompt_text", "chosen_text", "rejected_text"]
    training = sentences(column_texts(run.root / "audio" / "read_speech", ["text"]))
    training |= sentences(column_texts(run.root / "audio" / "spoken_stories", ["text"]))
    training |= sentences(column_texts(run.root / "audio" / "preference" / "train", pref_columns))
    heldout = sentences(column_texts(run.root / "audio" / "preference" / "heldout", pref_columns))
    benchmarks = [run.root / "benchmarks" / name for name in BENCHMARKS]
    if profile is not None:
        for corpus in profile.data.hub:
            training |= sentences(column_texts(run.root / "units" / corpus.name, ["text", *pref_columns]))
        benchmarks += [run.root / path for _, path in profile.eval.benchmarks]  # an absolute path stays
    for folder in dict.fromkeys(benchmarks):
        if (folder / MANIFEST).exists():
            table = pd.read_csv(folder / MANIFEST, dtype=str, keep_default_na=False)
            heldout |= sentences(t for c in text_columns if c in table for t in table[c])
        elif folder.exists() and profile is not None:
            heldout |= sentences(p.info.get(c) for p in read_pairs(folder) for c in text_columns)
    return training, heldout


def example_table(run: RunDir, n: int = 3) -> "pd.DataFrame":
    """A few rows of every text corpus and benchmark in the run folder, in one table:
    corpus, id, text (or prompt), positive / chosen, negative / rejected, note."""
    import pandas as pd
    import pyarrow.parquet as pq

    rows = []
    for name in SPEECH_CORPORA + PREFERENCE_CORPORA:
        shards = sorted((run.root / "audio" / name).glob("shard-*.parquet"))
        if not shards:
            continue
        table = pq.read_table(shards[0]).slice(0, n).drop_columns(
            [c for c in ("audio", "prompt", "chosen", "rejected", "aligned_text") if c in pq.read_schema(shards[0]).names])
        for r in table.to_pylist():
            rows.append({"corpus": name, "id": r["id"], "text": r.get("text") or r.get("prompt_text"),
                         "positive / chosen": r.get("chosen_text", ""), "negative / rejected": r.get("rejected_text", ""),
                         "note": r.get("voice") or r.get("kind") or ""})
    for name in BENCHMARKS:
        manifest = run.root / "benchmarks" / name / "pairs.csv"
        if manifest.exists():
            for r in pd.read_csv(manifest, dtype=str, keep_default_na=False).head(n).to_dict("records"):
                rows.append({"corpus": f"benchmark {name}", "id": r["id"], "text": r.get("prompt_text", ""),
                             "positive / chosen": r["positive_text"], "negative / rejected": r["negative_text"],
                             "note": r.get("category") or r.get("mood") or ""})
    return pd.DataFrame(rows)


def listen_examples(profile, run: RunDir) -> list[tuple[str, np.ndarray, str]]:
    """(title, waveform, text) for one example of every corpus and benchmark the profile made:
    synthetic ones from the run folder, hub ones from the hub (or local copy)."""
    import pandas as pd

    from slamlib.audio import decode_audio, load_audio
    from slamlib.data.corpora import ROLES, load_hub_corpus, parquet_rows

    out = []
    for name in SPEECH_CORPORA + PREFERENCE_CORPORA:
        folder = run.root / "audio" / name
        if not any(folder.glob("shard-*.parquet")):
            continue
        row = next(parquet_rows(folder))
        if "audio" in row:
            out.append((f"{name} ({row.get('voice', '')})", decode_audio(row["audio"]["bytes"], name), row["text"]))
        else:
            out += [(f"{name}: {role} ({row['speaker']})", decode_audio(row[role]["bytes"], name), row[f"{role}_text"])
                    for role in ROLES]
    for name in BENCHMARKS:
        manifest = run.root / "benchmarks" / name / "pairs.csv"
        if manifest.exists():
            first = pd.read_csv(manifest, dtype=str, keep_default_na=False).iloc[0]
            for role in ("positive", "negative"):
                text = " ".join(filter(None, [first.get("prompt_text", ""), first[f"{role}_text"]]))
                out.append((f"benchmark {name}: {role}", load_audio(manifest.parent / first[role]), text))
    for corpus in profile.data.hub:
        row = next(iter(load_hub_corpus(corpus, max_rows=1)))
        columns = ROLES if corpus.kind == "preference" else (corpus.audio_column,)
        for column in columns:
            audio = row[column]
            data = audio["bytes"] if isinstance(audio, dict) else audio
            text = row.get(f"{column}_text") or row.get("text", "")
            out.append((f"{corpus.name}: {column}", decode_audio(data, corpus.name), text))
    return out
