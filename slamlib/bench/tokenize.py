"""Speed benchmarks, printed as JSON (`python -m slamlib bench tokenize`).

Tokenization speed is seconds of audio per wall-clock second ("x real time"), measured twice:
end to end from FLAC files (decoding, features, k-means, dedup, parquet writing: what
`tokenize_corpus` does) and compute only (features + k-means on waveforms already in memory),
each the median of three runs after a warm-up.
Two tokenizers: (a) the `tiny` profile's log-mel + 200-unit k-means, and (b) a HuBERT-base-shaped
25 Hz encoder with random weights (the mHuBERT-25Hz architecture, made locally) + 500-unit
k-means, which costs what the paper's tokenizer costs without downloading it. (b) runs in fp32,
slamlib's default; on a CUDA card with native bf16 it is measured under bf16 autocast too (the
opt-in `tokenizer.features.precision=bf16`, whose effect on units `bench unit-precision` measures).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from slamlib.bench.timing import machine, sync


def speech_folder(folder: Path, seconds: float, file_seconds: float = 10.0, source: Path | None = None) -> Path:
    """FLAC files of espeak speech (several voices), about file_seconds each, `seconds` in all;
    or, with `source`, copies of the audio files there taken in turn (for machines without
    espeak)."""
    from slamlib.audio import SAMPLE_RATE, audio_duration, list_audio_files, write_audio

    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        files = list_audio_files(source)
        if not files:
            raise FileNotFoundError(f"{source}: no audio files to benchmark with")
        total, i = 0.0, 0
        while total < seconds:
            original = files[i % len(files)]
            shutil.copyfile(original, folder / f"bench-{i:05d}{original.suffix}")
            total += audio_duration(original)
            i += 1
        return folder

    from slamlib.data.speech_sample import read_texts
    from slamlib.data.tts import EspeakTTS
    from slamlib.profiles import TINY

    tts, texts, voices = EspeakTTS(), read_texts(TINY.speech_sample.texts), TINY.speech_sample.voices
    total, i, n_file, current = 0.0, 0, 0, []
    while total < seconds:
        current.append(tts.synthesize(texts[i % len(texts)], voices[i % len(voices)]))
        i += 1
        if sum(map(len, current)) >= file_seconds * SAMPLE_RATE:
            wav = np.concatenate(current)
            write_audio(folder / f"bench-{n_file:05d}.flac", wav)
            total += len(wav) / SAMPLE_RATE
            n_file, current = n_file + 1, []
    return folder


def random_mhubert_25hz(seed: int = 0):
    """A HubertModel with mHuBERT-25Hz's shape (HuBERT-base, total conv stride 640), random weights."""
    from transformers import HubertConfig as HFHubertConfig
    from transformers import HubertModel

    torch.manual_seed(seed)
    config = HFHubertConfig(conv_stride=(5, 2, 2, 2, 2, 2, 4), conv_kernel=(10, 3, 3, 3, 3, 2, 4))
    return HubertModel(config).eval()


def _tokenizers(device: torch.device, folder: Path):
    from slamlib.audio import list_audio_files, load_audio
    from slamlib.profiles import HubertConfig, get_profile
    from slamlib.tokenization.features import HubertExtractor, LogMelExtractor
    from slamlib.tokenization.kmeans import KMeans
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

    gen = torch.Generator().manual_seed(0)
    tiny = get_profile("tiny").tokenizer  # 100 Hz log-mel with context, 500 units, short runs dropped
    logmel = LogMelExtractor(tiny.features, device=device)
    # centroids drawn from real frames: assignment costs the same as with fitted ones
    frames = torch.cat(logmel([load_audio(p) for p in list_audio_files(folder)[:4]])).cpu()
    km = KMeans(frames[torch.randperm(len(frames), generator=gen)[: tiny.n_units]])
    yield "logmel+kmeans500 (tiny)", SpeechTokenizer(logmel, km, min_run=tiny.min_run)
    hubert = HubertExtractor(HubertConfig(model="random-mhubert-25hz-shaped", layer=11), device=device,
                             model=random_mhubert_25hz())
    batch_seconds = 320.0 if device.type == "cuda" else 60.0
    yield "hubert25hz+kmeans500", SpeechTokenizer(hubert, KMeans(torch.randn(500, 768, generator=gen)),
                                                  batch_seconds=batch_seconds)
    if device.type == "cuda":  # the speed precision="bf16" buys; the units it moves: bench unit-precision
        hubert = HubertExtractor(HubertConfig(model="random-mhubert-25hz-shaped", layer=11, precision="bf16"),
                                 device=device, model=random_mhubert_25hz())
        if hubert.bf16:  # not on a card without native bf16
            yield "hubert25hz+kmeans500 bf16", SpeechTokenizer(hubert, KMeans(torch.randn(500, 768, generator=gen)),
                                                               batch_seconds=batch_seconds)


def bench_tokenize(seconds: float | None = None, devices: list[str] | None = None, audio: Path | None = None) -> dict:
    """See the module docstring; `audio`: a folder of audio files to repeat instead of
    synthesizing speech."""
    from slamlib.audio import SAMPLE_RATE, list_audio_files, load_audio
    from slamlib.tokenization.corpus import tokenize_corpus

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in devices:
            device = torch.device(name)
            for label, tokenizer in _tokenizers(device, speech_folder(tmp / "warmup", 20, source=audio)):
                cpu_hubert = device.type == "cpu" and label.startswith("hubert")
                audio_seconds = seconds or (30.0 if cpu_hubert else 600.0 if device.type == "cpu" else 3600.0)
                folder = tmp / f"audio-{int(audio_seconds)}"
                if not folder.exists():
                    speech_folder(folder, audio_seconds, source=audio)
                wavs = [load_audio(p) for p in list_audio_files(folder)]
                tokenizer.tokenize(wavs[:2])  # warm-up: kernels, allocator, thread pools
                times = []
                for _ in range(3):
                    sync(device)
                    start = time.perf_counter()
                    tokenizer.tokenize(wavs)
                    sync(device)
                    times.append(time.perf_counter() - start)
                compute = float(np.median(times))
                runs = [tokenize_corpus(folder, tmp / f"units-{name}-{label}-{r}", tokenizer, progress=False)
                        for r in range(3)]
                summary = runs[0]
                total = sum(len(w) for w in wavs) / SAMPLE_RATE
                results.append({
                    "tokenizer": label, "device": name, "audio_seconds": round(total, 1),
                    "x_realtime_end_to_end": float(np.median([r["x_realtime"] for r in runs])),
                    "x_realtime_compute": round(total / compute, 1),
                    "repeats": 3,
                    "units_per_second": summary["units_per_second"],
                })
                print(f"{label:>22} on {name}: {results[-1]['x_realtime_end_to_end']}x real time end to end, "
                      f"{results[-1]['x_realtime_compute']}x compute only", flush=True)
    return {"benchmark": "tokenize", "machine": machine(), "results": results}
