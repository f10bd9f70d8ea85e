"""Speed benchmarks, printed as JSON (`python -m slamlib bench tokenize`).

Tokenization speed is seconds of audio per wall-clock second ("x real time"), measured twice:
end to end from FLAC files (decoding, features, k-means, dedup, parquet writing: what
`tokenize_corpus` does) and compute only (features + k-means on waveforms already in memory),
each the median of three runs after a warm-up.
Two tokenizers: (a) the `tiny` profile's log-mel + 200-unit k-means, and (b) a HuBERT-base-shaped
25 Hz encoder with random weights (the mHuBERT-25Hz architecture, made locally) + 500-unit
k-means, which costs what the paper's tokenizer costs without downloading it.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from slamlib.audio import SAMPLE_RATE, load_audio, write_audio


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def speech_folder(folder: Path, seconds: float, file_seconds: float = 10.0) -> Path:
    """FLAC files of espeak speech (several voices), about file_seconds each, `seconds` in all."""
    from slamlib.profiles import TINY
    from slamlib.speech_sample import read_texts
    from slamlib.tts import EspeakTTS

    tts, texts, voices = EspeakTTS(), read_texts(TINY.speech_sample.texts), TINY.speech_sample.voices
    folder.mkdir(parents=True, exist_ok=True)
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
    from slamlib.features import HubertConfig, HubertExtractor, LogMelExtractor
    from slamlib.kmeans import KMeans
    from slamlib.tokenization import SpeechTokenizer

    from slamlib.profiles import get_profile

    gen = torch.Generator().manual_seed(0)
    tiny = get_profile("tiny").tokenizer  # 100 Hz log-mel with context, 500 units, short runs dropped
    logmel = LogMelExtractor(tiny.features, device=device)
    # centroids drawn from real frames: assignment costs the same as with fitted ones
    frames = torch.cat(logmel([load_audio(p) for p in sorted(folder.glob("*.flac"))[:4]])).cpu()
    km = KMeans(frames[torch.randperm(len(frames), generator=gen)[: tiny.n_units]])
    yield "logmel+kmeans500 (tiny)", SpeechTokenizer(logmel, km, min_run=tiny.min_run)
    hubert = HubertExtractor(HubertConfig(model="random-mhubert-25hz-shaped", layer=11), device=device,
                             model=random_mhubert_25hz())
    batch_seconds = 320.0 if device.type == "cuda" else 60.0
    yield "hubert25hz+kmeans500", SpeechTokenizer(hubert, KMeans(torch.randn(500, 768, generator=gen)),
                                                  batch_seconds=batch_seconds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_tokenize(seconds: float | None = None, devices: list[str] | None = None) -> dict:
    from slamlib.tokenization import tokenize_corpus

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in devices:
            device = torch.device(name)
            for label, tokenizer in _tokenizers(device, speech_folder(tmp / "warmup", 20)):
                cpu_hubert = device.type == "cpu" and label.startswith("hubert")
                audio_seconds = seconds or (30.0 if cpu_hubert else 600.0 if device.type == "cpu" else 3600.0)
                folder = tmp / f"audio-{int(audio_seconds)}"
                if not folder.exists():
                    speech_folder(folder, audio_seconds)
                wavs = [load_audio(p) for p in sorted(folder.glob("*.flac"))]
                tokenizer.tokenize(wavs[:2])  # warm-up: kernels, allocator, thread pools
                times = []
                for _ in range(3):
                    _sync(device)
                    start = time.perf_counter()
                    tokenizer.tokenize(wavs)
                    _sync(device)
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


# --- training -------------------------------------------------------------------------------------

# Dense bf16 tensor-core peaks (datasheets), for model FLOPs utilisation.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "A6000": 154.8, "A5000": 111.1, "L40S": 362.0}


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None


def train_flops_per_token(n_params: int, n_layers: int, hidden: int, lengths: np.ndarray) -> float:
    """6 N for the weights plus causal attention within each document: per layer and token,
    6 * hidden * n forward and backward for a document of n tokens, averaged over tokens."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return 6.0 * n_params + 6.0 * n_layers * hidden * float((lengths ** 2).sum() / lengths.sum())


def _bench_profile(device: str):
    """(profile, units, model config) that a benchmark on `device` measures: the tiny profile on
    CPU, the slam profile (the paper's model) on a GPU; tiny's own architecture, sized for units."""
    import dataclasses

    from slamlib.profiles import get_profile

    profile = get_profile("tiny" if device == "cpu" else "slam")
    n_units = profile.tokenizer.n_units
    model_cfg = profile.model
    if model_cfg.text_lm is not None:
        model_cfg = dataclasses.replace(model_cfg, architecture=dataclasses.replace(
            model_cfg.architecture, vocab_size=n_units + 2))
    return profile, n_units, model_cfg


def _bench_docs(n_units: int, low: int, high: int, tokens: int, seed: int = 0):
    from slamlib.train import Documents

    rng = np.random.default_rng(seed)
    docs, total = [], 0
    while total < tokens:
        n = int(rng.integers(low, high))
        docs.append([1, *rng.integers(2, n_units + 2, n - 2).tolist(), 1])
        total += n
    return Documents.from_lists(docs)


def _time_ours(model, docs, cfg, device: str, steps: int) -> tuple[float, float]:
    """(tokens/s, seconds/step), median over steps after two warm-up steps."""
    from accelerate import Accelerator

    from slamlib.train import Trainer

    accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if cfg.precision == "bf16" and device != "cpu" else "no")
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model, docs, cfg, out, accelerator=accelerator)
        trainer.state.max_steps, trainer.state.warmup = 10**6, 1
        times, tokens = [], []
        for i in range(steps + 2):
            _sync(torch.device(device))
            start = time.perf_counter()
            before = trainer.state.tokens
            trainer.train_step()
            _sync(torch.device(device))
            if i >= 2:
                times.append(time.perf_counter() - start)
                tokens.append(trainer.state.tokens - before)
    step = float(np.median(times))
    return float(np.median(tokens)) / step, step


def _time_hf_trainer(model, docs, cfg, device: str, steps: int) -> float:
    """tokens/s of a plain transformers Trainer set up as SlamKit does: padding-free batches from
    DataCollatorWithFlattening, about the same tokens per step, the same precision."""
    from datasets import Dataset
    from transformers import DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments

    lengths = docs.lengths
    per_device = max(1, int(round(cfg.batch_size * cfg.context / lengths.mean())))
    data = Dataset.from_dict({"input_ids": [docs[i].tolist() for i in range(len(docs))]})
    marks = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            _sync(torch.device(device))
            marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=per_device, gradient_accumulation_steps=1,
            max_steps=steps + 2, learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=1,
            max_grad_norm=cfg.max_grad_norm, bf16=cfg.precision == "bf16" and device != "cpu",
            use_cpu=device == "cpu", report_to=[], save_strategy="no", logging_strategy="no",
            dataloader_drop_last=True, remove_unused_columns=False, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorWithFlattening(return_position_ids=True), callbacks=[Clock()])
        trainer.train()
    step = float(np.median(np.diff(marks[1:])))
    return per_device * float(lengths.mean()) / step


def bench_train(devices: list[str] | None = None, steps: int = 10, compare: bool = True,
                compile: bool = False) -> dict:
    """Training throughput: the tiny config on CPU; the paper model (Qwen2.5-0.5B architecture,
    502-unit vocabulary, context 1024, 8 sequences, bf16, random weights) on a GPU, with MFU and
    the peak memory of a step (the paper's recipe must fit a 24 GB card), each beside a plain
    transformers Trainer in the same setting; with `compile`, also our trainer with
    torch.compile."""
    import dataclasses

    from slamlib.model import count_parameters, init_speech_lm

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        profile, n_units, model_cfg = _bench_profile(device)
        cfg = dataclasses.replace(profile.train, grad_accum=1)
        low, high = (90, 460) if device == "cpu" else (100, 1024)
        docs = _bench_docs(n_units, low, high, tokens=cfg.context * cfg.batch_size * (steps + 4) * 2)
        row = {"config": profile.name, "device": device, "context": cfg.context, "batch": cfg.batch_size,
               "precision": cfg.precision if device != "cpu" else "fp32"}
        model = init_speech_lm(model_cfg, n_units, init="random", device=device).to(device)
        n_params = count_parameters(model)
        row["parameters"] = n_params
        row["attention"] = model.config._attn_implementation
        if device != "cpu":
            torch.cuda.reset_peak_memory_stats(device)
        tokens_s, step_s = _time_ours(model, docs, cfg, device, steps)
        row.update(tokens_per_second=round(tokens_s), seconds_per_step=round(step_s, 4))
        if device != "cpu":  # weights, AdamW state, gradients and activations of one micro-batch
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        flops = train_flops_per_token(n_params, model.config.num_hidden_layers, model.config.hidden_size,
                                      docs.chunked(cfg.context).lengths)
        name = torch.cuda.get_device_name(0) if device != "cpu" else machine()["cpu"]
        peak = peak_tflops(name) if device != "cpu" else None
        row["gflops_per_token"] = round(flops / 1e9, 3)
        if peak:
            row["mfu"] = round(tokens_s * flops / (peak * 1e12), 4)
        if compile:
            compiled_model = init_speech_lm(model_cfg, n_units, init="random", device=device).to(device)
            compiled_s, _ = _time_ours(compiled_model, docs, dataclasses.replace(cfg, compile=True), device, steps)
            row["compiled_tokens_per_second"] = round(compiled_s)
            if peak:
                row["compiled_mfu"] = round(compiled_s * flops / (peak * 1e12), 4)
        if compare:
            hf_model = init_speech_lm(model_cfg, n_units, init="random", device=device).to(device)
            hf_tokens_s = _time_hf_trainer(hf_model, docs, cfg, device, steps)
            row["transformers_trainer_tokens_per_second"] = round(hf_tokens_s)
            row["speedup_over_transformers_trainer"] = round(tokens_s / hf_tokens_s, 2)
            if peak:
                row["transformers_trainer_mfu"] = round(hf_tokens_s * flops / (peak * 1e12), 4)
        print(f"{profile.name} on {device}: {row['tokens_per_second']:,} tokens/s"
              + (f", MFU {row['mfu']:.1%}" if "mfu" in row else "")
              + (f"; compiled {row['compiled_tokens_per_second']:,}" if compile else "")
              + (f"; transformers Trainer {row['transformers_trainer_tokens_per_second']:,}" if compare else ""),
              flush=True)
        results.append(row)
    return {"benchmark": "train", "machine": machine(), "results": results}


# --- evaluation ------------------------------------------------------------------------------------

def bench_eval(devices: list[str] | None = None, pairs: int | None = None) -> dict:
    """Pairs scored per second (two utterances each, tStoryCloze-length: 250-450 units), with
    random weights: the tiny model on CPU, the paper's architecture on a GPU. Scoring only: the
    units are given (tokenizing speech is measured by `bench tokenize`)."""
    from slamlib.evaluate import sequence_scores
    from slamlib.model import init_speech_lm

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        profile, n_units, model_cfg = _bench_profile(device)
        model = init_speech_lm(model_cfg, n_units, init="random", device=device).to(device).eval()
        if device != "cpu":
            model = model.to(torch.bfloat16)
        n = pairs or (200 if device == "cpu" else 1900)
        rng = np.random.default_rng(1)
        seqs = [[1, *rng.integers(2, n_units + 2, int(rng.integers(250, 450))).tolist(), 1] for _ in range(2 * n)]
        sequence_scores(model, seqs[:16], batch_tokens=profile.eval.batch_tokens)  # warm-up
        _sync(torch.device(device))
        start = time.perf_counter()
        sequence_scores(model, seqs, batch_tokens=profile.eval.batch_tokens)
        _sync(torch.device(device))
        seconds = time.perf_counter() - start
        row = {"config": profile.name, "device": device, "pairs": n, "seconds": round(seconds, 2),
               "pairs_per_second": round(n / seconds, 1),
               "tokens_per_second": round(sum(map(len, seqs)) / seconds)}
        print(f"{profile.name} on {device}: {row['pairs_per_second']} pairs/s", flush=True)
        results.append(row)
    return {"benchmark": "eval", "machine": machine(), "results": results}
