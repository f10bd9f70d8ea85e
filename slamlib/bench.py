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

import json
import platform
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch


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

    from slamlib.profiles import TINY
    from slamlib.speech_sample import read_texts
    from slamlib.tts import EspeakTTS

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
    from slamlib.features import HubertConfig, HubertExtractor, LogMelExtractor
    from slamlib.kmeans import KMeans
    from slamlib.tokenization import SpeechTokenizer

    from slamlib.profiles import get_profile

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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_tokenize(seconds: float | None = None, devices: list[str] | None = None, audio: Path | None = None) -> dict:
    """See the module docstring; `audio`: a folder of audio files to repeat instead of
    synthesizing speech."""
    from slamlib.audio import SAMPLE_RATE, list_audio_files, load_audio
    from slamlib.tokenization import tokenize_corpus

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


# --- ceilings ----------------------------------------------------------------------------------------

# Dense bf16 tensor-core peaks (datasheets), for model FLOPs utilisation.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "A6000": 154.8, "A5000": 111.1, "L40S": 362.0}


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of fn() after a warm-up: CUDA events on a GPU, the clock elsewhere."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return float(np.median(times))


def bench_ceilings(devices: list[str] | None = None) -> dict:
    """What the hardware does at best, measured once: a large matrix product (bf16 on a GPU,
    fp32 on a CPU), the paper model's own matrix shapes (8192 tokens x hidden 896 against its
    projections), and a large device-to-device copy (bytes read plus bytes written). Random
    inputs, several sets in turn so that repeats do not run from cache."""
    devices = devices or (["cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for name in devices:
        device = torch.device(name)
        gpu = device.type == "cuda"
        dtype = torch.bfloat16 if gpu else torch.float32
        gen = torch.Generator(device=device).manual_seed(0)
        row = {"device": name, "dtype": str(dtype).replace("torch.", "")}
        big = 8192 if gpu else 1024
        shapes = {"square": (big, big, big)}
        if gpu:  # (tokens, in, out) of the paper model's projections, forward
            shapes.update({"qkv/o 8192x896x896": (8192, 896, 896), "mlp up 8192x896x4864": (8192, 896, 4864),
                           "mlp down 8192x4864x896": (8192, 4864, 896)})
        for label, (m, k, n) in shapes.items():
            sets = [(torch.randn(m, k, generator=gen, device=device, dtype=dtype),
                     torch.randn(k, n, generator=gen, device=device, dtype=dtype)) for _ in range(3)]
            turn = iter(range(10**9))

            def product(sets=sets, turn=turn):
                a, b = sets[next(turn) % len(sets)]
                return a @ b

            seconds = _timed(product, device, 20 if gpu else 5)
            row[f"matmul_tflops {label}"] = round(2 * m * k * n / seconds / 1e12, 1 if gpu else 3)
            del sets
        size = (2 << 30) if gpu else (256 << 20)
        source = torch.empty(size // 4, dtype=torch.float32, device=device).uniform_(generator=gen)
        target = torch.empty_like(source)
        seconds = _timed(lambda: target.copy_(source), device, 20 if gpu else 5)
        row["copy_tb_per_s"] = round(2 * size / seconds / 1e12, 3)
        del source, target
        if gpu:
            row["gpu"] = torch.cuda.get_device_name(device)
            row["datasheet_bf16_tflops"] = peak_tflops(row["gpu"])
            torch.cuda.empty_cache()
        print(f"ceilings on {name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "device"), flush=True)
        results.append(row)
    return {"benchmark": "ceilings", "machine": machine(), "results": results}


# --- training -------------------------------------------------------------------------------------

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


def _bench_docs(n_units: int, low: int, high: int, tokens: int, seed: int = 0, learnable: bool = False):
    """Documents of random units (lengths uniform in [low, high)); `learnable`: drawn from a
    sparse random chain (each unit has 4 possible successors), so that a model's loss can fall
    well below that of uniform units."""
    from slamlib.train import Documents

    rng = np.random.default_rng(seed)
    successors = rng.integers(2, n_units + 2, (n_units + 2, 4))
    docs, total = [], 0
    while total < tokens:
        n = int(rng.integers(low, high))
        if learnable:
            units = [int(rng.integers(2, n_units + 2))]
            for choice in rng.integers(0, 4, n - 3):
                units.append(int(successors[units[-1], choice]))
        else:
            units = rng.integers(2, n_units + 2, n - 2).tolist()
        docs.append([1, *units, 1])
        total += n
    return Documents.from_lists(docs)


def _bench_setup(device: str, steps: int, grad_accum: int | None = None, learnable: bool = False):
    """(profile, units, model config, train config, documents) for training benchmarks: the
    profile's batch (on a GPU the paper's 8 x 1024 per micro-batch, 16 micro-batches a step)."""
    import dataclasses

    profile, n_units, model_cfg = _bench_profile(device)
    cfg = dataclasses.replace(profile.train, grad_accum=grad_accum or profile.train.grad_accum)
    low, high = (90, 460) if device == "cpu" else (100, 1024)  # utterance lengths in units
    docs = _bench_docs(n_units, low, high, tokens=cfg.context * cfg.batch_size * cfg.grad_accum * (steps + 6) * 2,
                       learnable=learnable)
    return profile, n_units, model_cfg, cfg, docs


def _accelerator(device: str, precision: str):
    """An Accelerator for one benchmark (accelerate keeps one state per process: reset it, so
    that fp32 and bf16 can be measured one after the other)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    return Accelerator(cpu=device == "cpu", mixed_precision="bf16" if precision == "bf16" else "no")


def _precision(cfg, device: str) -> str:
    return "bf16" if cfg.precision == "bf16" and device != "cpu" else "fp32"


def _new_model(model_cfg, n_units: int, device: str, seed: int = 0):
    from slamlib.model import init_speech_lm

    return init_speech_lm(model_cfg, n_units, init="random", seed=seed).to(device)


def _trainer(model, docs, cfg, device: str, out: str, precision: str | None = None):
    from slamlib.train import Trainer

    trainer = Trainer(model, docs, cfg, out, accelerator=_accelerator(device, precision or _precision(cfg, device)))
    trainer.state.max_steps, trainer.state.warmup = 10**6, 1
    return trainer


def _timed_steps(trainer, device: str, steps: int, warmup: int, around=None) -> tuple[float, int]:
    """(seconds, tokens) of `steps` optimizer steps run back to back as `fit` runs them (the
    host is not made to wait between steps), after `warmup` steps; `around`: a context to run
    them in."""
    from contextlib import nullcontext

    for _ in range(warmup):
        trainer.read_record(trainer.train_step(read=False))
    _sync(torch.device(device))
    before = trainer.state.tokens
    with around or nullcontext():
        start = time.perf_counter()
        for _ in range(steps):
            record = trainer.train_step(read=False)
        trainer.read_record(record)
        _sync(torch.device(device))
        seconds = time.perf_counter() - start
    trainer._stop_prefetch()
    return seconds, trainer.state.tokens - before


def _time_ours(model, docs, cfg, device: str, steps: int, warmup: int = 2) -> tuple[float, float]:
    """(tokens/s, seconds/step) of our trainer (see `_timed_steps`)."""
    with tempfile.TemporaryDirectory() as out:
        seconds, tokens = _timed_steps(_trainer(model, docs, cfg, device, out), device, steps, warmup)
    return tokens / seconds, seconds / steps


def _time_hf_trainer(model, docs, cfg, device: str, steps: int) -> float:
    """tokens/s of a plain transformers Trainer set up as SlamKit does: padding-free batches from
    DataCollatorWithFlattening, about the same tokens per micro-batch and per step, the same
    precision and attention implementation as the model was built with."""
    from transformers import DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from accelerate.state import AcceleratorState

    lengths = docs.lengths
    per_device = max(1, int(round(cfg.batch_size * cfg.context / lengths.mean())))
    data = [{"input_ids": docs[i].tolist()} for i in range(len(docs))]  # any indexable dataset will do
    marks = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            _sync(torch.device(device))
            marks.append(time.perf_counter())

    AcceleratorState._reset_state(True)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=per_device, gradient_accumulation_steps=cfg.grad_accum,
            max_steps=steps + 2, learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=1,
            max_grad_norm=cfg.max_grad_norm, bf16=_precision(cfg, device) == "bf16",
            use_cpu=device == "cpu", report_to=[], save_strategy="no", logging_strategy="no",
            dataloader_drop_last=True, remove_unused_columns=False, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorWithFlattening(return_position_ids=True), callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # it prints a dict amid our JSON
        trainer.train()
    step = float(np.median(np.diff(marks[1:])))
    return per_device * cfg.grad_accum * float(lengths.mean()) / step


def _mfu(tokens_s: float, flops: float, tflops: float | None) -> float | None:
    return round(tokens_s * flops / (tflops * 1e12), 4) if tflops else None


def bench_train(devices: list[str] | None = None, steps: int = 10, compare: bool = True,
                compile: bool = False, micro_batches: list[int] | None = None,
                matmul_tflops: float | None = None) -> dict:
    """Training throughput: the tiny config on CPU; the paper model (Qwen2.5-0.5B architecture,
    502-unit vocabulary, context 1024, 8 x 16 sequences a step, bf16, random weights) on a GPU,
    with MFU (against the datasheet peak, and against `matmul_tflops` when a measured ceiling
    is given) and the peak memory of a step, each beside a plain transformers Trainer in the
    same setting. With `compile`, also our trainer with torch.compile; `micro_batches` adds rows
    for other splits of the same global batch (e.g. 16 sequences x 8 micro-batches)."""
    import dataclasses

    from slamlib.attention import choose, cuda_kernel_name
    from slamlib.model import count_parameters

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        profile, n_units, model_cfg, cfg, docs = _bench_setup(device, steps)
        gpu = device != "cpu"
        name = torch.cuda.get_device_name(0) if gpu else machine()["cpu"]
        peak = peak_tflops(name) if gpu else None
        variants = [("eager", cfg)]
        if compile:
            variants.append(("compiled", dataclasses.replace(cfg, compile=True)))
        rows_per_step = cfg.batch_size * cfg.grad_accum
        for size in micro_batches or []:
            if size != cfg.batch_size and rows_per_step % size == 0:
                variants.append((f"compiled, {size} x {rows_per_step // size}" if compile else f"{size} x {rows_per_step // size}",
                                 dataclasses.replace(cfg, batch_size=size, grad_accum=rows_per_step // size, compile=compile)))
        for label, variant in variants:
            if gpu:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            model = _new_model(model_cfg, n_units, device)
            n_params = count_parameters(model)
            row = {"config": profile.name, "variant": label, "device": device, "context": variant.context,
                   "micro_batch": variant.batch_size, "grad_accum": variant.grad_accum,
                   "precision": _precision(variant, device), "parameters": n_params,
                   "attention": choose(variant.attention, device)}
            if gpu:
                row["varlen_kernel"] = cuda_kernel_name()
            flops = train_flops_per_token(n_params, model.config.num_hidden_layers, model.config.hidden_size,
                                          docs.chunked(variant.context).lengths)
            row["gflops_per_token"] = round(flops / 1e9, 3)
            try:
                tokens_s, step_s = _time_ours(model, docs, variant, device, steps, warmup=3 if variant.compile else 2)
            except torch.OutOfMemoryError as error:
                row["error"] = f"out of memory: {str(error)[:160]}"
                results.append(row)
                del model
                continue
            row.update(tokens_per_second=round(tokens_s), seconds_per_step=round(step_s, 4),
                       mfu=_mfu(tokens_s, flops, peak), mfu_of_measured_matmul=_mfu(tokens_s, flops, matmul_tflops))
            if gpu:  # weights, AdamW state, gradients and the activations of one micro-batch
                row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            del model
            print(f"{profile.name} on {device} ({label}): {row['tokens_per_second']:,} tokens/s"
                  + (f", MFU {row['mfu']:.1%}" if row.get("mfu") else ""), flush=True)
            results.append(row)
        if compare:
            if gpu:
                torch.cuda.empty_cache()
            hf_model = _new_model(model_cfg, n_units, device)
            row = {"config": profile.name, "variant": "transformers Trainer + DataCollatorWithFlattening",
                   "device": device, "attention": hf_model.config._attn_implementation,
                   "micro_batch": f"~{cfg.batch_size * cfg.context} tokens", "grad_accum": cfg.grad_accum,
                   "precision": _precision(cfg, device)}
            hf_tokens_s = _time_hf_trainer(hf_model, docs, cfg, device, steps)
            del hf_model
            flops = float(results[-1]["gflops_per_token"]) * 1e9
            row.update(tokens_per_second=round(hf_tokens_s), mfu=_mfu(hf_tokens_s, flops, peak))
            ours = [r for r in results if r["device"] == device and r.get("tokens_per_second")]
            best = max(ours, key=lambda r: r["tokens_per_second"]) if ours else None
            if best:
                row["best_of_ours_over_this"] = round(best["tokens_per_second"] / hf_tokens_s, 2)
            print(f"{profile.name} on {device}: transformers Trainer {row['tokens_per_second']:,} tokens/s", flush=True)
            results.append(row)
    return {"benchmark": "train", "machine": machine(), "results": results}


# --- where a step's time goes ----------------------------------------------------------------------

_CATEGORIES = (  # (category, substrings of an op's or kernel's name), first match wins
    ("attention", ("attn", "attention", "flash")),
    ("compiled kernels", ("triton", "compiledfunction")),
    ("optimizer and clipping", ("adam", "multi_tensor_apply", "foreach")),
    ("matrix products", ("mm", "matmul", "linear", "gemm", "cutlass", "sm90_xmma", "bmm")),
    ("cross-entropy", ("cross_entropy", "nll_loss", "log_softmax", "_softmax")),
    ("copies to the device", ("memcpy", "to_copy", "copy_", "pin_memory")),
)


def _category(name: str) -> str:
    lower = name.lower()
    for category, keys in _CATEGORIES:
        if any(k in lower for k in keys):
            return category
    return "elementwise, norms, other"


def bench_profile(device: str | None = None, steps: int = 3, compile: bool = False, top: int = 15) -> dict:
    """Where a training step's time goes: `steps` steps of the profile's trainer under
    torch.profiler, the device time by kind of operation (attention, matrix products, the
    optimizer, cross-entropy, copies, the rest) and the top operations, and how busy the
    device was (device time over wall time: below 1, the device waited for the host)."""
    import dataclasses

    from torch.profiler import ProfilerActivity, profile

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device != "cpu"
    setup, n_units, model_cfg, cfg, docs = _bench_setup(device, steps + 3)
    cfg = dataclasses.replace(cfg, compile=compile)
    model = _new_model(model_cfg, n_units, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with tempfile.TemporaryDirectory() as out:
        prof = profile(activities=activities)
        wall, _ = _timed_steps(_trainer(model, docs, cfg, device, out), device, steps, 3 if compile else 2, around=prof)
    events = prof.key_averages()

    def self_time(e) -> float:  # microseconds
        if gpu:
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
        return float(e.self_cpu_time_total)

    ops = [(e.key, self_time(e), e.count) for e in events if self_time(e) > 0 and not e.key.startswith("ProfilerStep")]
    if gpu:  # kernels themselves (not the aten ops that launched them, which would count twice)
        kernels = [(e.key, self_time(e), e.count) for e in events
                   if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")
                   and self_time(e) > 0]
        ops = kernels or ops
    total = sum(t for _, t, _ in ops) / 1e6
    by_category: dict[str, float] = {}
    for name, t, _ in ops:
        by_category[_category(name)] = by_category.get(_category(name), 0.0) + t / 1e6
    ops.sort(key=lambda o: -o[1])
    result = {
        "benchmark": "profile", "machine": machine(), "config": setup.name, "device": device, "compiled": compile,
        "steps": steps, "micro_batch": cfg.batch_size, "grad_accum": cfg.grad_accum,
        "attention": model.config._attn_implementation,  # as the trainer set it
        "wall_seconds_per_step": round(wall / steps, 4),
        ("device_seconds_per_step" if gpu else "cpu_seconds_per_step"): round(total / steps, 4),
        "by_category_seconds_per_step": {k: round(v / steps, 5) for k, v in
                                         sorted(by_category.items(), key=lambda kv: -kv[1])},
        "top": [{"op": name[:90], "seconds_per_step": round(t / 1e6 / steps, 5), "calls_per_step": round(n / steps, 1)}
                for name, t, n in ops[:top]],
    }
    if gpu:
        result["device_busy"] = round(total / wall, 3)
    print(f"profile ({device}, {'compiled' if compile else 'eager'}): {wall / steps:.3f} s/step; "
          + ", ".join(f"{k} {v:.4f}" for k, v in result["by_category_seconds_per_step"].items()), flush=True)
    return result


# --- attention over packed documents ----------------------------------------------------------------

def _packed_attention_inputs(device: str, dtype, seed: int, batch: int = 8, length: int = 1024, heads: int = 14,
                             kv_heads: int = 2, dim: int = 64):
    """Random q, k, v (the paper model's attention shape) and the boundaries of documents of
    100-1,024 tokens packed into `batch` rows of `length`."""
    from slamlib.train import Documents, collate, pack

    rng = np.random.default_rng(seed)
    docs = Documents.from_lists([[1] * int(rng.integers(100, length)) for _ in range(4 * batch)])
    rows = pack(docs.lengths, rng.permutation(len(docs)), length)[:batch]
    cu = collate(docs, rows, length)["cu_seq_lens"].to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    make = lambda h: torch.randn(len(rows), h, length, dim, generator=gen, device=device, dtype=dtype)  # noqa: E731
    return make(heads), make(kv_heads), make(kv_heads), cu


def bench_attention(device: str | None = None, repeats: int = 20) -> dict:
    """The varlen kernel that training uses on this device, checked and timed: its output and
    gradients against the exact reference computed in float64 on fresh random inputs
    (‖out − ref‖ / ‖ref‖; bf16 inputs land between 1e-3 and 1e-2), and forward + backward time
    beside sdpa with the block-diagonal mask (transformers' path for packed rows) and sdpa over
    whole rows with no documents at all (a lower bound)."""
    from slamlib.attention import _kernel, cuda_kernel_name, document_ids, reference_attention, varlen_attention_forward

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device != "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    scale = 64 ** -0.5
    result = {"benchmark": "attention", "machine": machine(), "device": device, "dtype": str(dtype).replace("torch.", ""),
              "kernel": cuda_kernel_name() if gpu else "grouped (CPU)", "checks": []}
    q0 = _packed_attention_inputs(device, dtype, 0)[0]
    if gpu and _kernel(q0) is None:
        result["error"] = "no varlen kernel for these inputs here (needs torch >= 2.10 or flash-attn, and sm80+)"
    for seed in (1, 2, 3):
        q, k, v, cu = _packed_attention_inputs(device, dtype, seed, batch=2 if not gpu else 8)
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        out, _ = varlen_attention_forward(None, q, k, v, None, scaling=scale, cu_seq_lens_q=cu,
                                          max_length_q=q.shape[2])
        grad = torch.randn_like(out)
        out.backward(grad)
        ref_in = [t.detach().double().cpu().requires_grad_() for t in (q, k, v)]
        docs = document_ids(q.shape[0], q.shape[2], "cpu", cu.cpu())
        ref = reference_attention(*ref_in, docs, scale)
        ref.backward(grad.double().cpu())
        rel = lambda a, b: float((a.double().cpu() - b).norm() / b.norm())  # noqa: E731
        check = {"out": rel(out.detach(), ref.detach()), "dq": rel(q.grad, ref_in[0].grad),
                 "dk": rel(k.grad, ref_in[1].grad), "dv": rel(v.grad, ref_in[2].grad)}
        check["finite"] = bool(torch.isfinite(out).all())
        result["checks"].append({k2: (float(f"{v2:.3g}") if isinstance(v2, float) else v2) for k2, v2 in check.items()})
    limit = 2e-2 if dtype == torch.bfloat16 else 1e-4
    result["within_tolerance"] = all(c["finite"] and max(c["out"], c["dq"], c["dk"], c["dv"]) < limit
                                     for c in result["checks"])
    q, k, v, cu = _packed_attention_inputs(device, dtype, 4, batch=8 if gpu else 2)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    batch, heads, length, _ = q.shape
    docs = document_ids(batch, length, device, cu)
    mask = ((docs[:, :, None] == docs[:, None, :]) & torch.ones(length, length, dtype=torch.bool, device=device).tril())[:, None]
    kr, vr = (t.repeat_interleave(heads // t.shape[1], 1) for t in (k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    variants = {
        "varlen (training's path)": lambda: varlen_attention_forward(None, q, k, v, None, scaling=scale, cu_seq_lens_q=cu,
                                                                     max_length_q=length)[0],
        "sdpa, block-diagonal mask": lambda: sdpa(q, kr, vr, attn_mask=mask, scale=scale),
        "sdpa, causal rows (no documents)": lambda: sdpa(q, kr, vr, is_causal=True, scale=scale),
    }
    timings = {}
    for label, forward in variants.items():
        def step(forward=forward):
            out = forward()
            out.backward(torch.ones_like(out))
            q.grad = k.grad = v.grad = None
        timings[label] = round(_timed(step, torch.device(device), repeats if gpu else 3) * 1e3, 3)
    result["forward_backward_ms"] = timings
    result["shape"] = {"batch": batch, "length": length, "heads": heads, "kv_heads": k.shape[1], "head_dim": q.shape[-1],
                       "documents": len(cu) - 1}
    print(f"attention ({device}, {result['kernel']}): within tolerance {result['within_tolerance']}; "
          + ", ".join(f"{k2} {v2} ms" for k2, v2 in timings.items()), flush=True)
    return result


# --- numerics and memory ---------------------------------------------------------------------------

def precision_curves(model_cfg, n_units: int, docs, cfg, device: str, steps: int, seed: int = 0) -> dict:
    """Loss per step of the same model (same initial weights, same batches) trained in fp32
    and with bf16 autocast, and how far apart the two curves are."""
    import dataclasses

    curves = {}
    for precision in ("fp32", "bf16"):
        model = _new_model(model_cfg, n_units, device, seed=seed)
        with tempfile.TemporaryDirectory() as out:
            trainer = _trainer(model, docs, dataclasses.replace(cfg, compile=False), device, out, precision=precision)
            trainer.state.max_steps, trainer.state.warmup = steps, max(1, steps // 10)
            curves[precision] = [trainer.train_step()["loss"] for _ in range(steps)]
            trainer._stop_prefetch()
        del model, trainer
    fp32, bf16 = np.array(curves["fp32"]), np.array(curves["bf16"])
    relative = np.abs(bf16 - fp32) / np.abs(fp32)
    return {"steps": steps, "fp32": [round(x, 5) for x in fp32], "bf16": [round(x, 5) for x in bf16],
            "max_relative_difference": round(float(relative.max()), 5),
            "final_relative_difference": round(float(relative[-1]), 5),
            "loss_drop_fp32": round(float(fp32[0] - fp32[-1]), 4)}


def bench_precision(device: str | None = None, steps: int = 30, tolerance: float = 0.02) -> dict:
    """bf16 autocast against fp32 on a short run of the profile's model (the paper's on a GPU,
    with a micro-batch a step so that the run stays short): the curves must stay within
    `tolerance` (relative) of each other at every step."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    profile, n_units, model_cfg, cfg, docs = _bench_setup(device, steps, grad_accum=1, learnable=True)
    result = {"benchmark": "precision", "machine": machine(), "config": profile.name, "device": device,
              "tolerance": tolerance, **precision_curves(model_cfg, n_units, docs, cfg, device, steps)}
    result["within_tolerance"] = result["max_relative_difference"] <= tolerance
    print(f"precision ({device}): bf16 vs fp32 loss at most {result['max_relative_difference']:.2%} apart "
          f"over {steps} steps", flush=True)
    return result


def bench_memory(gib: float = 24.0, steps: int = 3, compile: bool = False, checkpointing: bool = False) -> dict:
    """Whether the paper's recipe (its model, 8 x 1024 tokens a micro-batch, bf16 autocast, fused
    AdamW) trains on a card of `gib` GiB (the A5000 has 24): this process is held to that much
    GPU memory (less what the CUDA context takes on such a card) for a few steps; optionally
    with activation checkpointing (`train.gradient_checkpointing`)."""
    import dataclasses

    if not torch.cuda.is_available():
        raise SystemExit("bench memory needs a CUDA GPU")
    device = "cuda"
    profile, n_units, model_cfg, cfg, docs = _bench_setup(device, steps, grad_accum=2)
    cfg = dataclasses.replace(cfg, compile=compile, gradient_checkpointing=checkpointing)
    total = torch.cuda.get_device_properties(0).total_memory
    context_gib = 0.5  # what a CUDA context and cuBLAS workspaces take outside PyTorch's allocator
    fraction = min(1.0, (gib - context_gib) * 2**30 / total)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.set_per_process_memory_fraction(fraction)
    row = {"benchmark": "memory", "machine": machine(), "config": profile.name, "card_gib": gib,
           "allowed_gib": round(fraction * total / 2**30, 2), "micro_batch": cfg.batch_size, "context": cfg.context,
           "compiled": compile, "checkpointing": checkpointing}
    try:
        model = _new_model(model_cfg, n_units, device)
        tokens_s, _ = _time_ours(model, docs, cfg, device, steps, warmup=1)
        row.update(fits=True, tokens_per_second=round(tokens_s))
    except torch.OutOfMemoryError as error:
        row.update(fits=False, error=str(error)[:300])
    finally:
        row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    print(f"memory: the paper batch {'fits' if row['fits'] else 'does NOT fit'} in {gib} GiB "
          f"(peak {row['peak_allocated_gib']} GiB allocated)", flush=True)
    return row


# --- evaluation ------------------------------------------------------------------------------------

def bench_eval(devices: list[str] | None = None, pairs: int | None = None,
               batch_tokens: list[int] | None = None) -> dict:
    """Pairs scored per second (two utterances each, tStoryCloze-length: 250-450 units), with
    random weights: the tiny model on CPU, the paper's architecture on a GPU (bf16), at the
    profile's batch size in tokens and any others given. Scoring only: the units are given
    (tokenizing speech is measured by `bench tokenize`)."""
    from slamlib.evaluate import sequence_scores

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        profile, n_units, model_cfg = _bench_profile(device)
        model = _new_model(model_cfg, n_units, device).eval()
        if device != "cpu":
            model = model.to(torch.bfloat16)
        n = pairs or (200 if device == "cpu" else 1900)
        rng = np.random.default_rng(1)
        seqs = [[1, *rng.integers(2, n_units + 2, int(rng.integers(250, 450))).tolist(), 1] for _ in range(2 * n)]
        for size in dict.fromkeys([profile.eval.batch_tokens, *(batch_tokens or [])]):
            sequence_scores(model, seqs[:64], batch_tokens=size)  # warm-up
            _sync(torch.device(device))
            start = time.perf_counter()
            sequence_scores(model, seqs, batch_tokens=size)
            _sync(torch.device(device))
            seconds = time.perf_counter() - start
            row = {"config": profile.name, "device": device, "pairs": n, "batch_tokens": size,
                   "attention": model.config._attn_implementation, "seconds": round(seconds, 2),
                   "pairs_per_second": round(n / seconds, 1), "tokens_per_second": round(sum(map(len, seqs)) / seconds)}
            print(f"{profile.name} on {device}, {size} tokens a batch: {row['pairs_per_second']} pairs/s", flush=True)
            results.append(row)
        del model
    return {"benchmark": "eval", "machine": machine(), "results": results}


# --- everything a GPU run of the slam profile needs, in one call ----------------------------------------

def bench_gpu(out: str | Path | None = None, audio: Path | None = None, steps: int = 6,
              only: list[str] | None = None) -> dict:
    """Every measurement of the `slam` profile on one GPU, in one process, each section on its
    own (one that fails is recorded with its error and the rest go on): the ceilings, training
    (eager, compiled, compiled with 16 x 8 micro-batches, and the transformers Trainer), where a
    step's time goes (eager and compiled), bf16 against fp32, the paper batch on 24 GiB,
    evaluation at ~1,900 pairs, and tokenization. The JSON is rewritten to `out` after every
    section, and a short table printed at the end. `only`: these sections alone."""
    if not torch.cuda.is_available():
        raise SystemExit("bench gpu needs a CUDA GPU")
    report: dict = {"benchmark": "gpu", "machine": machine(), "sections": {}}
    ceiling: dict = {}

    def matmul():
        return ceiling.get("matmul_tflops square")

    sections = [  # the most telling first: a run cut short by a time limit still has them
        ("ceilings", lambda: bench_ceilings(["cuda"])),
        ("attention", lambda: bench_attention("cuda")),
        ("train", lambda: bench_train(["cuda"], steps=steps, compile=True, micro_batches=[16],
                                      matmul_tflops=matmul())),
        ("precision", lambda: bench_precision("cuda", steps=30)),
        ("memory 24 GiB", lambda: bench_memory(24.0)),
        ("memory 24 GiB, checkpointing", lambda: bench_memory(24.0, checkpointing=True)),
        ("eval", lambda: bench_eval(["cuda"], batch_tokens=[32768])),
        ("tokenize", lambda: bench_tokenize(devices=["cuda"], audio=audio)),
        ("profile eager", lambda: bench_profile("cuda", steps=2)),
        ("profile compiled", lambda: bench_profile("cuda", steps=2, compile=True)),
    ]
    if only:
        unknown = set(only) - {name for name, _ in sections}
        if unknown:
            raise SystemExit(f"no section(s) {sorted(unknown)}; the sections are {[name for name, _ in sections]}")
        sections = [(name, run) for name, run in sections if name in only]
    for name, run in sections:
        start = time.perf_counter()
        print(f"--- {name}", flush=True)
        try:
            result = run()
        except BaseException as error:  # noqa: BLE001: record it, go on with the next section
            if isinstance(error, KeyboardInterrupt):
                raise
            result = {"error": f"{type(error).__name__}: {error}"[:500], "traceback": traceback.format_exc()[-3000:]}
            print(f"{name} failed: {result['error']}", flush=True)
        result["section_seconds"] = round(time.perf_counter() - start, 1)
        report["sections"][name] = result
        if name == "ceilings" and result.get("results"):
            ceiling.update(result["results"][0])
        torch.cuda.empty_cache()
        if out:
            Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(gpu_summary(report), flush=True)
    return report


def gpu_summary(report: dict) -> str:
    """The numbers that matter from `bench_gpu`'s report, one line each."""
    sections = report["sections"]
    lines = [f"machine: {report['machine'].get('gpu')}, torch {report['machine']['torch']}"]
    for name, result in sections.items():
        if "error" in result:
            lines.append(f"{name}: FAILED {result['error'][:150]}")
    attention = sections.get("attention", {})
    if "checks" in attention:
        worst = max(max(c["out"], c["dq"], c["dk"], c["dv"]) for c in attention["checks"])
        lines.append(f"attention ({attention['kernel']}): worst relative error {worst:.2e}, within tolerance "
                     f"{attention['within_tolerance']}; fwd+bwd ms {attention['forward_backward_ms']}")
    ceilings = sections.get("ceilings", {}).get("results", [{}])[0]
    if ceilings:
        lines.append("ceilings: " + ", ".join(f"{k} {v}" for k, v in ceilings.items() if k.startswith(("matmul", "copy"))))
    for row in sections.get("train", {}).get("results", []):
        lines.append(f"train {row['variant']} ({row.get('attention')}): {row.get('tokens_per_second', row.get('error'))} "
                     f"tokens/s, MFU {row.get('mfu')}, of measured matmul {row.get('mfu_of_measured_matmul')}, "
                     f"peak {row.get('peak_memory_gib')} GiB"
                     + (f", ours/this {row['best_of_ours_over_this']}" if "best_of_ours_over_this" in row else ""))
    for key in ("profile eager", "profile compiled"):
        result = sections.get(key, {})
        if "by_category_seconds_per_step" in result:
            lines.append(f"{key}: {result['wall_seconds_per_step']} s/step, device busy {result.get('device_busy')}, "
                         + ", ".join(f"{k} {v}" for k, v in result["by_category_seconds_per_step"].items()))
    precision = sections.get("precision", {})
    if "max_relative_difference" in precision:
        lines.append(f"precision: bf16 vs fp32 max {precision['max_relative_difference']:.2%} apart over "
                     f"{precision['steps']} steps (loss {precision['fp32'][0]} -> {precision['fp32'][-1]})")
    for key in ("memory 24 GiB", "memory 24 GiB, checkpointing"):
        memory = sections.get(key, {})
        if "fits" in memory:
            lines.append(f"{key}: fits = {memory['fits']}, peak {memory['peak_allocated_gib']} GiB allocated, "
                         f"{memory['peak_reserved_gib']} reserved, {memory.get('tokens_per_second')} tokens/s")
    for row in sections.get("eval", {}).get("results", []):
        lines.append(f"eval {row['pairs']} pairs, {row['batch_tokens']} tokens a batch: {row['seconds']} s "
                     f"({row['pairs_per_second']} pairs/s)")
    for row in sections.get("tokenize", {}).get("results", []):
        lines.append(f"tokenize {row['tokenizer']}: {row['x_realtime_end_to_end']}x real time end to end, "
                     f"{row['x_realtime_compute']}x compute only")
    lines += [f"{name}: {result['section_seconds']} s" for name, result in sections.items()]
    return "\n".join(lines)
