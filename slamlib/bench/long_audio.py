"""Long files and many processes (`python -m slamlib bench tokenize --part memory|processes|agreement`).

- memory: peak memory of tokenizing one file of 1, 10 and 60 minutes (`tokenize_corpus`, a fresh
  process each, peak resident memory from the kernel; on a GPU also the peak CUDA memory), window by
  window (the default) and, where it fits, whole. The log-mel tokenizer at every length; HuBERT at
  mHuBERT-25Hz's real size with random weights at 1 and 10 minutes (on a GPU, also 60).
- processes: the same folder of one-minute files tokenized by one process and by two
  (`--num-shards 2`), each share with its part of the cores, wall clock for the whole folder.
- agreement: how often windowed units equal whole-file units, against the overlap, for the log-mel
  tokenizer, the stand-in HuBERT (`slamlib.standins`) and a random HuBERT of mHuBERT's real size,
  each with k-means fitted on its own features of the same speech.

The speech is espeak's (`slamlib.bench.tokenize.speech_folder`), tiled to the length asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from slamlib.bench.timing import machine

CHILD = "slamlib.bench.long_audio"


def long_file(path: Path, minutes: float, speech: np.ndarray) -> Path:
    """A 16 kHz FLAC of `minutes`, `speech` repeated, written a piece at a time."""
    import soundfile as sf

    from slamlib.audio import SAMPLE_RATE

    n = int(minutes * 60 * SAMPLE_RATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as f:
        written = 0
        while written < n:
            piece = speech[: n - written]
            f.write(piece)
            written += len(piece)
    return path


def _speech(seconds: float, audio: Path | None) -> np.ndarray:
    from slamlib.audio import list_audio_files, load_audio
    from slamlib.bench.tokenize import speech_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = speech_folder(Path(tmp) / "speech", seconds, source=audio)
        return np.concatenate([load_audio(p) for p in list_audio_files(folder)])


def _tokenizer(kind: str, device: str, window: float, overlap: float):
    """The measured tokenizers, with random centroids (assigning costs what fitted ones cost)."""
    import torch

    from slamlib.bench.tokenize import random_mhubert_25hz
    from slamlib.profiles import HubertConfig, get_profile
    from slamlib.tokenization.features import HubertExtractor, LogMelExtractor
    from slamlib.tokenization.kmeans import KMeans
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

    gen = torch.Generator().manual_seed(0)
    if kind == "logmel":
        tiny = get_profile("tiny").tokenizer
        extractor = LogMelExtractor(tiny.features, device=device)
    else:
        extractor = HubertExtractor(HubertConfig(model="random-mhubert-25hz-shaped", layer=11), device=device,
                                    model=random_mhubert_25hz())
    kmeans = KMeans(torch.randn(500, extractor.dim, generator=gen))
    return SpeechTokenizer(extractor, kmeans, window_seconds=window, window_overlap_seconds=overlap)


def _child(kind: str, file: str, window: float, device: str) -> dict:
    """In a fresh process: tokenize one file, report peak memory."""
    import resource

    import torch

    from slamlib.tokenization.corpus import tokenize_corpus

    tokenizer = _tokenizer(kind, device, window, min(5.0, window / 2))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = tokenize_corpus(Path(file).parent, Path(tmp) / "units", tokenizer, progress=False)
        wall = time.perf_counter() - start
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "rss_before_mb": round(before, 1), "seconds": round(wall, 2),
           "x_realtime": round(summary["audio_seconds"] / wall, 1), "units": summary["units"]}
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _run_child(kind: str, file: Path, window: float, device: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                       os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", CHILD, "child", kind, str(file), str(window), device],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        return {"error": (run.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(run.stdout.strip().splitlines()[-1])


def bench_memory(device: str = "cpu", logmel_minutes=(1, 10, 60), hubert_minutes=(1, 10),
                 whole_up_to: dict | None = None, audio: Path | None = None) -> dict:
    """Peak memory against file length, windowed (60 s windows) and, up to `whole_up_to[kind]`
    minutes, whole."""
    whole_up_to = whole_up_to or {"logmel": 60, "hubert": 1}
    speech = _speech(60.0, audio)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, lengths in (("logmel", logmel_minutes), ("hubert", hubert_minutes)):
            for minutes in lengths:
                file = long_file(Path(tmp) / f"{kind}-{minutes}" / "long.flac", minutes, speech)
                for mode, window in (("windowed", 60.0), ("whole", 1e9)):
                    if mode == "whole" and minutes > whole_up_to.get(kind, 0):
                        continue
                    result = _run_child(kind, file, window, device)
                    rows.append({"tokenizer": kind, "minutes": minutes, "mode": mode, "device": device, **result})
                    print(json.dumps(rows[-1]), flush=True)
                file.unlink()
    flat = {}
    for kind in ("logmel", "hubert"):
        peaks = [r["peak_rss_mb"] for r in rows if r["tokenizer"] == kind and r["mode"] == "windowed"
                 and "peak_rss_mb" in r]
        if len(peaks) > 1:
            flat[kind] = round(max(peaks) / min(peaks) - 1, 3)  # growth from the shortest file to the longest
    return {"rows": rows, "growth_windowed": flat}


def bench_processes(minutes: float = 60.0, audio: Path | None = None) -> dict:
    """One process against two shares (each with half the cores) on one folder of one-minute files."""
    from slamlib.tokenization.corpus import read_units

    speech = _speech(60.0, audio)
    cores = os.cpu_count() or 2
    out = {"audio_minutes": minutes, "cores": cores}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(int(minutes)):
            long_file(tmp / "audio" / f"file-{i:03d}.flac", 1.0, np.roll(speech, i * 16_000))
        _tokenizer("logmel", "cpu", 60.0, 10.0).save(tmp / "tok")
        base = [sys.executable, "-m", "slamlib", "tokenize", str(tmp / "audio"), "--profile", "tiny", "--tokenizer",
                str(tmp / "tok"), "--quiet"]
        for n in (1, 2):
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // n))}
            start = time.perf_counter()
            procs = [subprocess.Popen(base + ["--out", str(tmp / f"units-{n}")] +
                                      (["--num-shards", str(n), "--shard-index", str(i)] if n > 1 else []),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for i in range(n)]
            errors = [p.communicate()[1] for p in procs]
            wall = time.perf_counter() - start
            if any(p.returncode for p in procs):
                raise RuntimeError(f"tokenize with {n} processes failed: {errors}")
            out[f"{n}_process_seconds"] = round(wall, 2)
            out[f"{n}_process_x_realtime"] = round(minutes * 60 / wall, 1)
        one = read_units(tmp / "units-1").sort_values("id").reset_index(drop=True)
        two = read_units(tmp / "units-2").sort_values("id").reset_index(drop=True)
        out["same_rows"] = bool(one.equals(two))
    return out


ENCODERS = ("logmel", "standin", "mhubert")


def bench_agreement(seconds: float = 180.0, windows=(20.0, 60.0), overlaps=(0.0, 2.0, 5.0, 10.0),
                    device: str = "cpu", audio: Path | None = None, encoders=ENCODERS) -> dict:
    """Windowed against whole-file units on one file of `seconds` of speech (short enough to
    encode whole), for each window and overlap, three encoders."""
    import torch

    from slamlib.bench.tokenize import random_mhubert_25hz
    from slamlib.profiles import HubertConfig, get_profile
    from slamlib.tokenization.features import HubertExtractor
    from slamlib.tokenization.kmeans import KMeans, fit_kmeans
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer, build_speech_tokenizer
    from slamlib.tokenization.windows import windowed_agreement

    wav = _speech(seconds, audio)[: int(seconds * 16_000)]
    rows = []

    def fitted(extractor, n_units):
        probe = SpeechTokenizer(extractor, KMeans(torch.zeros(1, extractor.dim)))
        feats = probe.features([wav])[0]
        return SpeechTokenizer(extractor, fit_kmeans(feats, n_units, seed=0, device=extractor.device))

    def standin():
        from slamlib.standins.units import _hubert

        with tempfile.TemporaryDirectory() as tmp:
            model = _hubert(Path(tmp) / "hubert", 0)
        return fitted(HubertExtractor(HubertConfig(model="stand-in"), device=device, model=model), 100)

    makers = {
        "logmel": ("logmel (tiny)", lambda: build_speech_tokenizer(get_profile("tiny").tokenizer, fit_audio=[wav],
                                                                    device=device)),
        "standin": ("stand-in HuBERT (width 32)", standin),
        "mhubert": ("random HuBERT (mHuBERT-25Hz size)", lambda: fitted(
            HubertExtractor(HubertConfig(model="random-mhubert-25hz-shaped"), device=device,
                            model=random_mhubert_25hz()), 500)),
    }
    for name, make in (makers[e] for e in encoders):
        tokenizer = make()
        for window in windows:
            for overlap in overlaps:
                if overlap >= window or window >= seconds:
                    continue
                start = time.perf_counter()
                result = windowed_agreement(tokenizer, [wav], window, overlap)
                rows.append({"encoder": name, **result, "seconds": round(time.perf_counter() - start, 1)})
                print(json.dumps(rows[-1]), flush=True)
    return {"audio_seconds": round(len(wav) / 16_000, 1), "rows": rows}


def bench_long(parts=("memory", "processes", "agreement"), device: str = "cpu", audio: Path | None = None) -> dict:
    out = {"benchmark": "tokenize (long files, processes)", "machine": machine()}
    if "memory" in parts:
        gpu = device.startswith("cuda")
        out["memory"] = bench_memory(device, hubert_minutes=(1, 10, 60) if gpu else (1, 10),
                                     whole_up_to={"logmel": 60, "hubert": 10 if gpu else 1}, audio=audio)
    if "processes" in parts:
        out["processes"] = bench_processes(audio=audio)
    if "agreement" in parts:
        out["agreement"] = bench_agreement(device=device, audio=audio)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "child":
        kind, file, window, device = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
        print(json.dumps(_child(kind, file, window, device)))
