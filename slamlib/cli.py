"""Command line: `python -m slamlib COMMAND ...` (or the `slam` console script).

Every command prints a JSON summary as its last line of output, for scripts to read.

    python -m slamlib profile tiny                          # the resolved settings
    python -m slamlib tokenize AUDIO_DIR --out DIR --profile tiny
    python -m slamlib synth --profile tiny --out runs/tiny                # notebook 03's data
    python -m slamlib tokenize openslr/librispeech_asr --dataset-config clean --split validation \\
        --max-items 100 --out DIR --profile slam
    python -m slamlib init --profile slam --dry-run
    python -m slamlib train --profile tiny --data runs/tiny --out runs/tiny/models/pretrained --budget 3m
    python -m slamlib dpo --profile tiny --data runs/tiny --out runs/tiny/models/dpo
    python -m slamlib eval --model runs/tiny/models/dpo --benchmark tsc --data runs/tiny/benchmarks/tsc
    python -m slamlib eval --model slprl/slam --benchmark ssc --data sSC/       # the slam profile's tokenizer
    python -m slamlib generate --model runs/tiny/models/dpo --prompt speech.wav --out continued.wav
    python -m slamlib export --format slamkit runs/slam/models/dpo runs/slam/export/slamkit     # a UnitLM folder
    python -m slamlib bench tokenize
    python -m slamlib run --profile tiny --out runs/tiny
    python -m slamlib run --profile slam --out runs/slam --set train.budget=2h --set data.hub.librispeech.rows=20000
    python -m slamlib run --profile tiny --seed 1 --init random --out runs/tiny-random1   # the paper's ablation
    python -m slamlib results add runs/tiny && python -m slamlib results readme      # README's tables from runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slamlib.checks import arg


def _print_json(data: dict) -> None:
    print(json.dumps(data, default=str), flush=True)


def _profile(args, flags: dict[str, str] | None = None):
    """The profile, then `--set`, then the command's own flags ({setting: flag name}) where given:
    the same order as a notebook's profile < OVERRIDES < parameters."""
    from slamlib.profiles import get_profile, parse_overrides

    flags = {"tokenizer.trust_pickle": "trust_pickle", **(flags or {})}
    given = {key: getattr(args, flag) for key, flag in flags.items() if getattr(args, flag, None) is not None}
    return get_profile(args.profile, {**parse_overrides(args.set), **given})


def _device(args, profile) -> str:
    from slamlib.device import resolve_device

    return args.device or resolve_device(profile.device)


def cmd_profile(args) -> dict:
    profile = _profile(args)
    print(profile.to_json())
    return {"profile": profile.name}


def _is_audio_folder(path: Path) -> bool:
    from slamlib.audio import list_audio_files

    return path.is_dir() and bool(list_audio_files(path))


def cmd_tokenize(args) -> dict:
    from slamlib.locks import folder_lock, share_lock
    from slamlib.tokenization.corpus import share_name

    num_shards, shard_index = _sharding(args)
    if num_shards > 1:  # this process's share only: the other shares work beside it
        with share_lock(args.out, f"slamlib tokenize, share {shard_index} of 0..{num_shards - 1}",
                        share_name(num_shards, shard_index)):
            return _tokenize(args, num_shards, shard_index)
    with folder_lock(args.out, "slamlib tokenize"):  # before the speech tokenizer is fitted into it
        return _tokenize(args, 1, 0)


def _sharding(args) -> tuple[int, int]:
    """(number of shares, this process's share): --num-shards/--shard-index, else the
    processes of `accelerate launch` (WORLD_SIZE, RANK), else one."""
    import os

    if (args.num_shards is None) != (args.shard_index is None):
        raise ValueError("give --num-shards and --shard-index together (or neither)")
    if args.num_shards is not None:
        if args.shard_index >= args.num_shards:
            raise ValueError(f"--shard-index {args.shard_index} must be below --num-shards {args.num_shards}"
                             f" (shares are numbered 0..{args.num_shards - 1})")
        return args.num_shards, args.shard_index
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def _share_device(device: str, num_shards: int) -> str:
    """Under `accelerate launch`, each process on its own card (LOCAL_RANK)."""
    import os

    import torch

    if num_shards > 1 and device in (None, "auto") and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def _tokenize(args, num_shards: int, shard_index: int) -> dict:
    from slamlib import hub
    from slamlib.tokenization.corpus import dataset_items, folder_items, tokenize_corpus
    from slamlib.tokenization.speech_tokenizer import (SpeechTokenizer, build_speech_tokenizer,
                                                       load_or_build_speech_tokenizer)

    profile = _profile(args)
    out = Path(args.out)
    device = _share_device(args.device or profile.device, num_shards)
    source_path = Path(args.input)
    if _is_audio_folder(source_path) and not args.dataset:
        source = source_path
        items = lambda: folder_items(source_path)  # noqa: E731
    else:
        source = hub.load_dataset(args.input, name=args.dataset_config, split=args.split,
                                  streaming=args.streaming, what="dataset to tokenize")
        items = lambda: dataset_items(source, audio_column=args.audio_column, name=args.input)  # noqa: E731

    saved = out / "speech_tokenizer"
    if args.tokenizer:
        tokenizer = SpeechTokenizer.load(args.tokenizer, device=device, window_seconds=profile.tokenizer.window_seconds,
                                         window_overlap_seconds=profile.tokenizer.window_overlap_seconds)
    elif num_shards > 1 and not profile.tokenizer.kmeans:
        raise ValueError(f"profile {profile.name} fits its k-means, which one process must do before a corpus is"
                         " spread over several: tokenize with one process first (or notebook 01) and pass --tokenizer"
                         f" {saved}")
    elif num_shards > 1 and shard_index > 0:  # share 0 saves it; the same pretrained k-means here
        tokenizer = build_speech_tokenizer(profile.tokenizer, device=device, seed=profile.seed)
    else:
        def fit_audio():
            for item in items():
                try:
                    yield item.load()
                except Exception as err:  # bad files are reported by the tokenizing pass
                    print(f"skipping for k-means fitting: {err}", file=sys.stderr)

        tokenizer = load_or_build_speech_tokenizer(profile.tokenizer, saved, fit_audio=fit_audio(),
                                                   device=device, seed=profile.seed)
    from slamlib.data.librilight import is_librilight, made_from

    target = profile.data.librilight_target_seconds
    # recorded as notebook 03 records it, so that the run finds these units its own
    origin = made_from(source_path, target) if isinstance(source, Path) and is_librilight(source_path) else None
    summary = tokenize_corpus(
        source, out, tokenizer, shard_size=args.shard_size, audio_column=args.audio_column, made_from=origin,
        id_column=args.id_column, keep_columns=args.keep_columns, max_items=args.max_items,
        progress=not args.quiet, num_shards=num_shards, shard_index=shard_index, target_seconds=target,
    )
    for bad in summary["bad"]:
        print(f"skipped bad audio: {bad['source']}: {bad['reason']}", file=sys.stderr)
    for note in summary["notes"]:
        print(f"{note['source']}: {note['reason']}", file=sys.stderr)
    if names := [s["source"] for s in summary["skipped"]]:
        print(f"not audio, so not tokenized ({len(names)} files, listed in {out / 'bad_audio.json'}): "
              + ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""), file=sys.stderr)
    return {"command": "tokenize", "profile": profile.name, "speech_tokenizer": str(args.tokenizer or saved),
            **summary}


def cmd_synth(args) -> dict:
    from slamlib.data.synth import prepare_data, scaled
    from slamlib.runs import RunDir
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

    from slamlib.locks import folder_lock

    profile = scaled(_profile(args), args.scale)
    run = RunDir(args.out)
    tokenizer = SpeechTokenizer.load(args.tokenizer, device=profile.device) if args.tokenizer else None
    with folder_lock(run.root, "slamlib synth"):
        summary = prepare_data(profile, run, tokenizer, max_rows=args.max_rows, progress=not args.quiet)
    units = {name: {k: s[k] for k in ("tokenized", "already_done", "audio_seconds", "units", "units_per_second")}
             for name, s in summary["units"].items()}
    bad = {name: s["bad"] for name, s in summary["units"].items() if s["bad"]}
    counts = summary.get("synthetic", {}).get("counts", {})
    return {"command": "synth", "profile": profile.name, "out": str(run.root), "counts": counts, "units": units,
            "bad": bad, "speech_tokenizer": summary["speech_tokenizer"]}


def cmd_init(args) -> dict:
    from slamlib import model

    profile = _profile(args)
    if args.dry_run:
        result = model.dry_run(profile)
        print(json.dumps(result["config"], indent=2, default=str))
        print(result["table"].to_string())
        return {"command": "init", "profile": profile.name, "dry_run": True, "parameters": result["parameters"],
                "config": result["config"]}
    from slamlib.runs import RunDir
    from slamlib.text_lm import prepare_initial_models
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

    from slamlib.locks import folder_lock

    if not args.out:
        raise ValueError("init needs --out RUN_DIR (or --dry-run)")
    run = RunDir(args.out)
    tokenizer = SpeechTokenizer.load(run.require("speech_tokenizer", "01_tokenization.ipynb"), device="cpu")
    with folder_lock(run.root, "slamlib init"):
        paths = prepare_initial_models(profile, run, tokenizer, inits=args.inits, progress=not args.quiet)
    counts = {name: model.count_parameters(model.load_speech_lm(path)[0]) for name, path in paths.items()}
    return {"command": "init", "profile": profile.name, "models": {k: str(v) for k, v in paths.items()},
            "parameters": counts}


def cmd_train(args) -> dict:
    from slamlib.train.pretrain import pretrain, training_folders

    profile = _profile(args)
    if profile.train is None:
        raise ValueError(f"profile {profile.name} has no training settings")
    folders = training_folders(args.data, profile.data.training_corpora(profile.train.corpora))
    start = args.init
    if start is None:
        from slamlib.runs import RunDir

        start = RunDir(args.data).require(f"models/init_{profile.model.init}", "02_model_initialization.ipynb")
    summary = pretrain(start, folders, profile.train, args.out, seed=profile.seed, budget=args.budget,
                       tokens=args.tokens, max_steps=args.max_steps, resume=not args.restart,
                       progress=not args.quiet, device=args.device or (profile.device if profile.device != "auto" else None))
    return {"command": "train", "profile": profile.name, "out": str(args.out),
            "data": [str(f) for f in folders], **summary}


def cmd_dpo(args) -> dict:
    from slamlib.dpo import train_dpo
    from slamlib.runs import RunDir

    profile = _profile(args)
    if profile.dpo is None:
        raise ValueError(f"profile {profile.name} has no DPO settings")
    run = RunDir(args.data)
    start = args.model or run.require("models/pretrained", "04_packed_pretraining.ipynb")
    train = run.require(f"units/{profile.dpo.corpus}", "03_synthetic_data.ipynb")
    heldout = run.root / "units" / profile.dpo.heldout if profile.dpo.heldout else None
    summary = train_dpo(start, train, profile.dpo, args.out, heldout_units=heldout if heldout and heldout.exists() else None,
                        budget=args.budget, max_steps=args.max_steps, seed=profile.seed, restart=args.restart,
                        device=args.device or (profile.device if profile.device != "auto" else None))
    return {"command": "dpo", "profile": profile.name, "out": str(args.out), **summary}


def cmd_eval(args) -> dict:
    from slamlib.evaluate import evaluate_benchmark
    from slamlib.model import load_speech_lm

    profile = _profile(args, {"eval.score": "score"})
    # a model folder without a speech tokenizer of its own (a published SlamKit checkpoint) gets the profile's
    model, speech_tokenizer = load_speech_lm(args.model, device=_device(args, profile), tokenizer_config=profile.tokenizer)
    result = evaluate_benchmark(model, speech_tokenizer, args.benchmark, args.data, score=profile.eval.score,
                                batch_tokens=profile.eval.batch_tokens, progress=not args.quiet)
    if args.pairs_out:
        result.per_pair.to_csv(args.pairs_out, index=False)
    return {"command": "eval", "model": str(args.model), "data": str(args.data), "score": profile.eval.score,
            **result.to_dict()}


_GENERATION_FLAGS = ("temperature", "top_k", "max_new_tokens", "repetition_penalty", "prompt_seconds")


def cmd_generate(args) -> dict:
    import numpy as np

    from slamlib.audio import SAMPLE_RATE, load_audio, write_audio
    from slamlib.evaluate import generate_continuation
    from slamlib.model import load_speech_lm
    from slamlib.vocoders.load import load_vocoder
    from slamlib.vocoders.griffin_lim import GriffinLimVocoder

    profile = _profile(args, {f"eval.generation.{key}": key for key in _GENERATION_FLAGS})
    device = _device(args, profile)
    model, speech_tokenizer = load_speech_lm(args.model, device=device, tokenizer_config=profile.tokenizer)
    vocoder = load_vocoder(speech_tokenizer, hifigan_checkpoint=profile.eval.hifigan_checkpoint,
                           hifigan_config=profile.eval.hifigan_config, device=device)
    wav = load_audio(args.prompt)
    if isinstance(vocoder, GriffinLimVocoder):  # typical unit durations, from the prompt's own speech
        vocoder.fit_durations([speech_tokenizer.tokenize(wav)])
    cfg = profile.eval.generation
    result = generate_continuation(model, speech_tokenizer, vocoder, wav, cfg, seed=args.seed)
    write_audio(args.out, result["audio"], SAMPLE_RATE)
    return {"command": "generate", "model": str(args.model), "prompt": str(args.prompt), "out": str(args.out),
            "prompt_units": len(result["prompt_units"]), "new_units": len(result["new_units"]),
            "seconds": round(len(result["audio"]) / SAMPLE_RATE, 3),
            "continuation_seconds": round(len(result["continuation_audio"]) / SAMPLE_RATE, 3),
            "settings": {k: getattr(cfg, k) for k in _GENERATION_FLAGS},
            "silent": bool(np.abs(result["audio"]).max() == 0)}


def cmd_export(args) -> dict:
    from slamlib.formats import export_speech_lm, load_causal_lm, read_config

    out = export_speech_lm(args.model, args.out, args.format, dtype=args.dtype, base_model_name=args.base_model_name)
    model = load_causal_lm(out)  # what was written reads back
    return {"command": "export", "model": str(args.model), "out": str(out), "format": args.format,
            "dtype": args.dtype, "model_type": read_config(out)["model_type"],
            "parameters": sum(p.numel() for p in model.parameters()), "files": sorted(f.name for f in out.iterdir())}


def cmd_bench(args) -> dict:
    what = args.what
    if what == "tokenize":
        from slamlib.bench.long_audio import bench_long
        from slamlib.bench.tokenize import bench_tokenize

        parts = args.part or TOKENIZE_PARTS
        out = bench_tokenize(seconds=args.seconds, devices=args.device, audio=args.audio) if "speed" in parts else {}
        if set(parts) - {"speed"}:
            device = (args.device or ["cuda" if _cuda() else "cpu"])[-1]
            out["long"] = bench_long([p for p in parts if p != "speed"], device=device, audio=args.audio)
        return out
    if what == "train":
        from slamlib.bench.train import bench_train

        return bench_train(devices=args.device, steps=args.steps or 10, compare=not args.no_compare,
                           compile=args.compile, micro_batches=args.micro_batch)
    if what == "eval":
        from slamlib.bench.eval import bench_eval

        return bench_eval(devices=args.device, pairs=args.pairs, batch_tokens=args.batch_tokens)
    one = args.device[0] if args.device else None
    if what == "ceilings":
        from slamlib.bench.ceilings import bench_ceilings

        return bench_ceilings(devices=args.device)
    if what == "attention":
        from slamlib.bench.attention import bench_attention

        return bench_attention(one)
    if what == "profile":
        from slamlib.bench.profile import bench_profile

        return bench_profile(one, steps=args.steps or 3, compile=args.compile)
    if what == "precision":
        from slamlib.bench.precision import bench_precision

        return bench_precision(one, steps=args.steps or 30)
    if what == "unit-precision":
        from slamlib.bench.unit_precision import bench_unit_precision

        return bench_unit_precision(seconds=args.seconds or 60.0, device=one, audio=args.audio)
    if what == "memory":
        from slamlib.bench.memory import bench_memory

        return bench_memory(args.gib, compile=args.compile, checkpointing=args.checkpointing)
    if what == "gpu":
        from slamlib.bench.gpu import bench_gpu

        return bench_gpu(out=args.out, audio=args.audio, steps=args.steps or 6, only=args.section)
    raise SystemExit(f"unknown benchmark {what!r}")


def cmd_run(args) -> dict:
    from slamlib.pipeline import run_tutorial
    from slamlib.profiles import parse_overrides

    overrides = parse_overrides(args.set)
    if "seed" in overrides:
        raise ValueError("give the seed with --seed, not --set seed=... (it is every notebook's SEED)")
    profile = _profile(args)  # a bad key or value fails here, before the first notebook
    out = args.out or f"runs/{profile.name}" + (f"-seed{args.seed}" if args.seed else "")
    return run_tutorial(profile.name, out, parameters={"SEED": args.seed, "INIT": args.init}, overrides=overrides)


def cmd_figures(args) -> dict:
    from slamlib.plots import readme_figures

    written = readme_figures(args.run_dir, args.out)
    return {"figures": [str(p) for p in written], "bytes": sum(p.stat().st_size for p in written)}


def _with_profile(p, default="tiny"):
    p.add_argument("--profile", default=default, help=f"tiny (offline, CPU) or slam (the paper's); default {default}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a profile setting, e.g. tokenizer.n_units=100 (repeatable)")
    p.add_argument("--trust-pickle", action="store_const", const="true", dest="trust_pickle",
                   help="load a pickled k-means other than the official one without its SHA-256 "
                        "(tokenizer.trust_pickle; a pickle runs the code it holds)")
    return p


def _profile_parser(sub) -> None:
    p = sub.add_parser("profile", help="print a profile's resolved settings")
    p.add_argument("profile", nargs="?", default="tiny")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    p.set_defaults(func=cmd_profile)


def _tokenize_parser(sub) -> None:
    p = _with_profile(sub.add_parser("tokenize", help="speech -> deduplicated units, as parquet shards"))
    p.add_argument("input", help="a folder of audio files, or a dataset (hub id or local copy)")
    p.add_argument("--out", required=True, help="folder for the shards (and the fitted speech tokenizer)")
    p.add_argument("--tokenizer", help="a saved speech tokenizer directory (default: from the profile)")
    p.add_argument("--dataset", action="store_true", help="read INPUT as a dataset even if it is a folder")
    p.add_argument("--dataset-config", help="dataset configuration name (e.g. clean)")
    p.add_argument("--split", default="train")
    p.add_argument("--streaming", action="store_true", help="stream the dataset instead of downloading it")
    p.add_argument("--audio-column", default="audio")
    p.add_argument("--id-column", help="column with utterance ids (default: the audio path or row number)")
    p.add_argument("--keep-columns", nargs="*", default=[], help="extra columns to copy into the shards")
    p.add_argument("--max-items", type=arg("count"), help="at most this many utterances")
    p.add_argument("--shard-size", type=arg("count"), default=1000, help="utterances a shard")
    p.add_argument("--num-shards", type=arg("count"), help="spread the corpus over this many processes (job"
                   " arrays; under `accelerate launch` its processes are the shares)")
    p.add_argument("--shard-index", type=arg("count0"), help="this process's share, 0 to --num-shards - 1")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the profile's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tokenize)


def _synth_parser(sub) -> None:
    p = _with_profile(sub.add_parser("synth", help="the profile's training and test data, spoken and tokenized"))
    p.add_argument("--out", required=True, help="run folder (its speech_tokenizer/ is used when present)")
    p.add_argument("--tokenizer", help="a saved speech tokenizer directory")
    p.add_argument("--scale", type=arg("positive"), default=1.0, help="multiply every synthetic corpus size (quick looks)")
    p.add_argument("--max-rows", type=arg("count"), help="at most this many rows of each hub corpus")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_synth)


def _init_parser(sub) -> None:
    p = _with_profile(sub.add_parser("init", help="speech LMs initialised from a text LM (TWIST) or randomly"))
    p.add_argument("--dry-run", action="store_true", help="only resolve the configuration and count parameters (offline)")
    p.add_argument("--out", help="run folder (it holds speech_tokenizer/; models go to models/init_*)")
    p.add_argument("--inits", nargs="+", default=["twist", "random"], choices=["twist", "random"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_init)


def _train_parser(sub) -> None:
    p = _with_profile(sub.add_parser("train", help="packed pretraining under a time, token or step budget"))
    p.add_argument("--data", required=True, help="a run folder (its units/ of the profile's corpora) or a units folder")
    p.add_argument("--out", required=True, help="output folder: checkpoints, train_log.jsonl, then the model")
    p.add_argument("--init", help="the speech LM to start from (default: DATA/models/init_<profile's init>)")
    p.add_argument("--budget", type=arg("budget"), help="wall-clock budget, e.g. 5m, 2h, 24h (default: the profile's)")
    p.add_argument("--tokens", type=arg("count"), help="a token budget instead")
    p.add_argument("--max-steps", type=arg("count"), help="an exact number of optimizer steps instead")
    p.add_argument("--restart", action="store_true", help="train again from the start, replacing a run in --out "
                   "(also one made with other settings, which is otherwise refused)")
    p.add_argument("--device", help="cpu to force the CPU (default: the profile's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _dpo_parser(sub) -> None:
    p = _with_profile(sub.add_parser("dpo", help="preference optimisation (DPO) on spoken preference pairs"))
    p.add_argument("--data", required=True, help="the run folder (its units/ of the preference pairs)")
    p.add_argument("--out", required=True, help="output folder: the DPO model, dpo_log.jsonl")
    p.add_argument("--model", help="the speech LM to start from (default: DATA/models/pretrained)")
    p.add_argument("--budget", type=arg("budget"), help="wall clock, e.g. 30m (default: the profile's)")
    p.add_argument("--max-steps", type=arg("count"), help="an exact number of optimizer steps instead")
    p.add_argument("--restart", action="store_true", help="train again from the start, replacing a run in --out")
    p.add_argument("--device", help="cpu to force the CPU")
    p.set_defaults(func=cmd_dpo)


def _eval_parser(sub) -> None:
    from slamlib.data.benchmarks import BENCHMARKS

    # a model folder that carries its speech tokenizer uses it; one that does not (a published SlamKit
    # checkpoint) gets the profile's, and the vocoder always comes from the profile (eval.hifigan_*)
    p = _with_profile(sub.add_parser("eval", help="accuracy of a speech LM on a pairwise benchmark"), default="slam")
    p.add_argument("--model", required=True,
                   help="a speech LM directory or hub id (without speech_tokenizer/ in it: the profile's)")
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--data", required=True, help="a pairs.csv manifest or an official benchmark folder")
    p.add_argument("--score", choices=["mean", "sum"],
                   help="log-likelihood per token, or in total (default: the profile's eval.score)")
    p.add_argument("--pairs-out", help="also write every pair's scores to this CSV")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the profile's)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)



def _generate_parser(sub) -> None:
    p = _with_profile(sub.add_parser("generate", help="continue a spoken prompt and write the audio"), default="slam")
    p.add_argument("--model", required=True,
                   help="a speech LM directory or hub id (without speech_tokenizer/ in it: the profile's)")
    p.add_argument("--prompt", required=True, help="an audio file; its first --seconds are the prompt")
    p.add_argument("--out", required=True, help="where to write the prompt + continuation (vocoded)")
    # sampling: each flag defaults to the profile's eval.generation setting (after --set)
    p.add_argument("--seconds", dest="prompt_seconds", type=arg("positive"), help="prompt length (eval.generation.prompt_seconds)")
    p.add_argument("--temperature", type=arg("positive"))
    p.add_argument("--top-k", type=arg("count"))
    p.add_argument("--max-new-tokens", type=arg("count"))
    p.add_argument("--repetition-penalty", type=arg("positive"))
    p.add_argument("--seed", type=arg("count0"), default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the profile's)")
    p.set_defaults(func=cmd_generate)


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a speech LM in SlamKit's UnitLM format or slamlib's (transformers)")
    p.add_argument("model", help="a speech LM folder or hub id, in either format")
    p.add_argument("out", help="a new (or empty) folder")
    p.add_argument("--format", choices=["slamkit", "transformers"], default="slamkit")
    p.add_argument("--dtype", choices=["bfloat16", "float32", "float16"], default="bfloat16",
                   help="the weights' dtype (SlamKit's Slam models are bfloat16)")
    p.add_argument("--base-model-name", default="Qwen/Qwen2.5-0.5B",
                   help="slamkit: the text LM SlamKit reads the base config of (base_config overrides every field)")
    p.set_defaults(func=cmd_export)


TOKENIZE_PARTS = ("speed", "memory", "processes", "agreement")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmarks (JSON)")
    p.add_argument("what", choices=["tokenize", "train", "eval", "ceilings", "attention", "profile", "precision", "memory",
                                     "gpu", "unit-precision"],
                   help="gpu: every measurement of the slam profile on a GPU in one call; unit-precision: the"
                        " share of HuBERT units that bf16 autocast changes")
    p.add_argument("--seconds", type=float, help="seconds of audio per measurement")
    p.add_argument("--audio", type=Path,
                   help="tokenize, unit-precision, gpu: a folder of audio to use instead of synthesizing speech")
    p.add_argument("--device", action="append", help="device(s) to measure (default: cpu, and cuda if present)")
    p.add_argument("--steps", type=int, help="timed steps (train, profile, precision)")
    p.add_argument("--no-compare", action="store_true", help="train: skip the transformers Trainer baseline")
    p.add_argument("--compile", action="store_true", help="train, profile, memory: with torch.compile")
    p.add_argument("--micro-batch", type=int, action="append",
                   help="train: also this many sequences a micro-batch (same global batch)")
    p.add_argument("--pairs", type=int, help="eval: pairs to score")
    p.add_argument("--batch-tokens", type=int, action="append", help="eval: also this many tokens a batch")
    p.add_argument("--gib", type=float, default=24.0, help="memory: the card's size to hold the run to")
    p.add_argument("--checkpointing", action="store_true", help="memory: with activation checkpointing")
    p.add_argument("--out", type=Path, help="gpu: write the report here after every section")
    p.add_argument("--section", action="append", help="gpu: run this section only (repeatable)")
    p.add_argument("--part", action="append", choices=TOKENIZE_PARTS,
                   help="tokenize: speed (x real time), memory (peak against file length), processes (1 against 2),"
                        " agreement (windowed against whole units); repeatable, default all")
    p.set_defaults(func=cmd_bench)



def _run_parser(sub) -> None:
    p = _with_profile(sub.add_parser("run", help="run the tutorial notebooks in order with papermill"))
    p.add_argument("--out", help="run folder (default runs/PROFILE, or runs/PROFILE-seedN)")
    p.add_argument("--seed", type=arg("count0"), default=0, help="every notebook's SEED: data, models, order")
    p.add_argument("--init", choices=("twist", "random"), default="twist",
                   help="the model notebook 04 pretrains: TWIST (default) or random initialisation, the paper's ablation")
    p.set_defaults(func=cmd_run)


def cmd_results(args) -> dict:
    from slamlib import results

    if args.action == "add":
        if not args.run_dir:
            raise ValueError("results add needs a run folder: python -m slamlib results add runs/tiny")
        rec = results.add(args.run_dir, args.label, args.file)
        return {"added": rec["label"], "file": str(args.file), "runs": len(results.load(args.file))}
    if args.action == "suite":
        if args.seconds is None:
            raise ValueError("results suite needs --seconds: how long .ci/run took from a fresh clone")
        return {"suite": results.add_suite(args.seconds, args.file), "file": str(args.file)}
    stale = results.update_docs([args.readme] if args.readme else None, args.file, check=args.check)
    if args.check and stale:
        raise ValueError(f"{', '.join(map(str, stale))}: results tables or quoted numbers differ from {args.file}: "
                         "run python -m slamlib results readme")
    return {"file": str(args.file), "stale" if args.check else "written": [str(d) for d in stale]}


def _results_parser(sub) -> None:
    from slamlib.results import RESULTS_FILE

    p = sub.add_parser("results", help="the committed results file (results/tiny.json) and README's tables from it")
    p.add_argument("action", choices=("add", "readme", "suite"),
                   help="add: a finished run's numbers to the file; readme: rewrite the tables and quoted numbers "
                        "of README, docs/ and the notebooks from the file; suite: record the test suite's time (--seconds)")
    p.add_argument("run_dir", nargs="?", help="add: the run folder (with metrics.json)")
    p.add_argument("--label", help="add: the row's name (default 'seed N', with the init when random)")
    p.add_argument("--file", type=Path, default=RESULTS_FILE)
    p.add_argument("--seconds", type=float, help="suite: how long .ci/run took from a fresh clone")
    p.add_argument("--readme", type=Path, help="readme: only this file (default: README.md, docs/*.md, notebooks/*.ipynb)")
    p.add_argument("--check", action="store_true", help="readme: exit non-zero if a file is not current")
    p.set_defaults(func=cmd_results)


def _figures_parser(sub) -> None:
    p = sub.add_parser("figures", help="a run's figures, small, for a page (README: docs/figures)")
    p.add_argument("run_dir", help="a finished tutorial run folder")
    p.add_argument("--out", default="docs/figures")
    p.set_defaults(func=cmd_figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m slamlib", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_profile_parser, _tokenize_parser, _synth_parser, _init_parser, _train_parser, _dpo_parser,
                _eval_parser, _generate_parser, _export_parser, _bench_parser, _run_parser, _results_parser, _figures_parser):  # --help's order
        add(sub)
    return parser


# what to do about an operating-system error, by its errno name
OS_HINTS = {"EACCES": "check its permissions, or write somewhere else", "EPERM": "check its permissions, or write "
            "somewhere else", "ENOSPC": "the disk is full: free some space, or write to another disk",
            "EDQUOT": "the disk quota is used up: free some space, or write to another disk",
            "EROFS": "it is on a read-only file system: write somewhere else",
            "EEXIST": "it is in the way: move it, or choose another path", "ENOENT": "check the path"}


def explain(err: BaseException) -> str | None:
    """One line for an error the user can act on (a bad value, a missing or damaged file, a full
    disk, a folder in use); None for anything else, which is a bug and keeps its traceback."""
    import errno

    from slamlib.hub import AssetUnavailableError
    from slamlib.locks import FolderInUse
    from slamlib.pipeline import NotebookFailed
    from slamlib.runs import MissingStepError

    kind = type(err).__module__.split(".")[0]
    if kind in ("pyarrow", "safetensors"):
        what = "parquet" if kind == "pyarrow" else "safetensors"
        return f"a damaged or unreadable {what} file: {err}; delete it and run the step that writes it again"
    if isinstance(err, (AssetUnavailableError, NotebookFailed, MissingStepError, FolderInUse, ValueError)):
        return str(err)
    if isinstance(err, OSError) and err.errno is None:  # raised by slamlib, with its own message
        return str(err)
    if isinstance(err, OSError):
        name = errno.errorcode.get(err.errno, "")
        where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f) or "(no path given)"
        return f"{where}: {err.strerror or name}" + (f"; {OS_HINTS[name]}" if name in OS_HINTS else "")
    return None


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except Exception as err:
        line = None if args.debug else explain(err)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        _print_json({"command": args.command, "error": line})
        raise SystemExit(1) from None
    _print_json(result)


if __name__ == "__main__":
    main()
