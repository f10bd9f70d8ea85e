"""Pretraining a speech LM on packed units: the entry point of notebook 04 and `python -m slamlib train`.

`pretrain` continues a saved speech LM (TWIST-initialised or random) on the units folders of a run,
with the profile's training settings, and saves the result as a speech LM directory like its start.
A finished run is reused, and an interrupted one resumed, only when its settings, start and data
are the ones asked for (`slamlib.reuse`); otherwise it trains again from the start and says why.
`compare_inits` trains several initial models for the same short run, for notebook 04's curves.

Not here: the training loop (`slamlib.train.trainer`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from slamlib import reuse
from slamlib.checks import check, check_settings
from slamlib.locks import folder_lock
from slamlib.model import load_speech_lm, save_speech_lm
from slamlib.train.checkpoints import LOG_NAME, read_log
from slamlib.train.packing import unit_documents
from slamlib.train.trainer import Trainer


def training_folders(data: str | os.PathLike, corpora: Sequence[str]) -> list[Path]:
    """The units folders to train on: `data` itself if it holds shards, else data/units/<corpus>
    (a run folder) or data/<corpus> (a units folder) for each corpus."""
    data = Path(data)
    if any(data.glob("shard-*.parquet")):
        return [data]
    for root in (data / "units", data):
        folders = [root / c for c in corpora]
        if all(any(f.glob("shard-*.parquet")) for f in folders):
            return folders
    raise FileNotFoundError(
        f"{data}: neither a units folder nor a run folder with units of {list(corpora)} "
        "(run notebook 03, or `python -m slamlib synth`, first)")


def pretrain(model_dir: str | os.PathLike, folders: Sequence[str | os.PathLike], cfg, out_dir: str | os.PathLike, *,
             seed: int = 0, budget=None, tokens: int | None = None, max_steps: int | None = None,
             resume: bool = True, on_change: str = "refuse", progress: bool = True, callbacks=(),
             device: str | None = None) -> dict:
    """Continue a saved speech LM (e.g. the TWIST-initialised one) on packed units; the result,
    saved in out_dir, is a speech LM directory like its start.

    A finished run made with the same settings, start and data is returned as it is, an
    interrupted one resumes from its newest checkpoint. A run in `out_dir` made otherwise is
    refused (`SettingsChanged`, naming what differs) or, with `on_change="restart"`, replaced;
    `resume=False` always starts again. Only one process writes `out_dir` at a time (`slamlib.locks`)."""
    check_settings(cfg, "train.")
    check("budget", budget, "budget"), check("tokens", tokens, "count"), check("max_steps", max_steps, "count")
    with folder_lock(out_dir, "pretraining"):
        return _pretrain(model_dir, folders, cfg, Path(out_dir), seed=seed, budget=budget, tokens=tokens,
                         max_steps=max_steps, resume=resume, on_change=on_change, progress=progress,
                         callbacks=callbacks, device=device)


def _pretrain(model_dir, folders, cfg, out: Path, *, seed, budget, tokens, max_steps, resume, on_change, progress,
              callbacks, device) -> dict:
    done = out / "train_summary.json"
    made_with = {**reuse.settings(cfg, "train.", leave_out=reuse.TRAIN_NOT_IN_RESULT), "seed": seed,
                 "budget": budget, "tokens": tokens, "max_steps": max_steps, "start": reuse.content_key(model_dir),
                 **{f"data {'/'.join(Path(f).parts[-2:])}": reuse.content_key(f) for f in folders}}
    if resume and reuse.reuse_or_refuse(out, made_with, what=str(out), on_change=on_change,
                                        flag="--restart (resume=False in Python)"):
        if done.exists() and (out / "config.json").exists():
            return {**json.loads(done.read_text()), "already_done": True}
    else:  # a stale run's checkpoints must not be resumed, nor its log continued
        reuse.forget(out, done.name, "checkpoints", LOG_NAME)
    reuse.record(out, made_with)
    model, speech_tokenizer = load_speech_lm(model_dir, device="cpu")
    docs = unit_documents(folders)
    train_docs, valid_docs = docs.split(cfg.valid_fraction, seed=seed)
    accelerator = None
    if device == "cpu":
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True, log_with=list(cfg.trackers) or None, project_dir=str(out))
    trainer = Trainer(model, train_docs, cfg, out, valid_docs=valid_docs, seed=seed, callbacks=callbacks,
                      accelerator=accelerator, save_model=lambda m, d: save_speech_lm(m, d, speech_tokenizer))
    summary = trainer.fit(budget=budget, tokens=tokens, max_steps=max_steps, resume=resume, progress=progress)
    summary.update(documents=len(docs), data_tokens=docs.n_tokens, start=str(model_dir))
    if trainer.accelerator.is_main_process:
        done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def short_run_config(cfg, steps: int):
    """The profile's training settings for a short comparison run: one micro-batch a step, a
    fixed number of steps, frequent held-out evaluation, no checkpoints."""
    import dataclasses

    return dataclasses.replace(cfg, grad_accum=1, max_steps=steps, budget=None, tokens=None,
                               min_warmup_steps=max(1, steps // 10), warmup_ratio=0.0, valid_fraction=0.1,
                               eval_every=max(1, steps // 10), save_every=10**9, log_every=1, trackers=())


def compare_inits(models: dict, folders: Sequence[str | os.PathLike], cfg, out_root: str | os.PathLike, *,
                  steps: int, seed: int = 0, progress: bool = True, callbacks: dict | None = None,
                  device: str | None = None) -> dict:
    """Train each initial model ({name: model dir}) for the same short run on the same data;
    return {name: log records}."""
    short = short_run_config(cfg, steps)
    logs = {}
    for name, model_dir in models.items():
        out = Path(out_root) / f"short_{name}"
        pretrain(model_dir, folders, short, out, seed=seed, max_steps=steps, on_change="restart", progress=progress,
                 callbacks=(callbacks or {}).get(name, ()), device=device)
        logs[name] = read_log(out)
    return logs
