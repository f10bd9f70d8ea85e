"""Figures the notebooks show, built here so that every notebook draws them the same way.

Each function returns a matplotlib Figure; notebooks display it and save it to the run folder.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from slamlib.audio import SAMPLE_RATE


def plot_tokenization(wav: np.ndarray, tokenized, title: str = "", max_labels: int = 60):
    """Waveform, log-mel spectrogram (100 frames/s) and unit sequence on one time axis.

    Each deduplicated unit is drawn as a span covering the frames it stands for, labelled with
    its unit number (when there is room). `tokenized` is a `slamlib.tokenization.speech_tokenizer.Tokenized`."""
    from slamlib.profiles import LogMelConfig
    from slamlib.tokenization.features import LogMelExtractor

    display = LogMelConfig(n_mels=80, frame_rate=100.0, stack=1, cmn=False)
    log_mel = LogMelExtractor(display, device="cpu").log_mel([wav])[0].numpy()
    mel_rate = display.frame_rate
    units, durations, frame_rate = tokenized.units, tokenized.durations, tokenized.frame_rate
    seconds = len(wav) / SAMPLE_RATE
    fig, (ax_wav, ax_spec, ax_units) = plt.subplots(
        3, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2, 1]}
    )
    ax_wav.plot(np.arange(len(wav)) / SAMPLE_RATE, wav, linewidth=0.4, color="tab:blue")
    ax_wav.set_ylabel("amplitude")
    ax_wav.set_title(title)
    ax_spec.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma",
                   extent=(0, len(log_mel) / mel_rate, 0, log_mel.shape[1]))
    ax_spec.set_ylabel("mel bin")
    starts = np.concatenate(([0], np.cumsum(durations)[:-1])) / frame_rate
    widths = np.asarray(durations) / frame_rate
    cmap = plt.get_cmap("tab20")
    label = len(units) <= max_labels
    for unit, start, width in zip(units, starts, widths):
        ax_units.axvspan(start, start + width, color=cmap(int(unit) % 20), alpha=0.8)
        if label:
            ax_units.text(start + width / 2, 0.5, str(int(unit)), ha="center", va="center",
                          rotation=90, fontsize=7)
    ax_units.set_yticks([])
    ax_units.set_ylabel("units")
    ax_units.set_xlabel("seconds")
    ax_units.set_xlim(0, seconds)
    fig.tight_layout()
    return fig


def plot_unit_histogram(unit_lists: Sequence[Sequence[int]], n_units: int, title: str = "unit frequencies"):
    """How often each unit occurs (sorted by frequency), on a log scale."""
    counts = np.bincount(np.concatenate([np.asarray(u, dtype=np.int64) for u in unit_lists]), minlength=n_units)
    fig, (ax_rank, ax_id) = plt.subplots(1, 2, figsize=(12, 3.2))
    ax_rank.bar(np.arange(n_units), np.sort(counts)[::-1], width=1.0, color="tab:purple")
    ax_rank.set_yscale("log")
    ax_rank.set_xlabel("unit rank")
    ax_rank.set_ylabel("count")
    ax_rank.set_title(f"{title}: {int((counts > 0).sum())} of {n_units} units used")
    ax_id.bar(np.arange(n_units), counts, width=1.0, color="tab:gray")
    ax_id.set_xlabel("unit id")
    ax_id.set_title("by unit id")
    fig.tight_layout()
    return fig


def plot_rate_histogram(values: Sequence[float], xlabel: str, title: str = ""):
    """A histogram of a per-utterance number, with its mean marked."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=30, color="tab:green", alpha=0.8)
    ax.axvline(values.mean(), color="black", linestyle="--", label=f"mean {values.mean():.1f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("utterances")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_corpus_lengths(tables: dict):
    """Seconds and units per utterance for each tokenized corpus ({name: DataFrame with
    `seconds` and `units`}), as overlaid histograms."""
    fig, (ax_sec, ax_units) = plt.subplots(1, 2, figsize=(12, 3.5))
    for name, table in tables.items():
        n_units = table.units.map(len)
        ax_sec.hist(table.seconds, bins=40, histtype="step", linewidth=1.5,
                    label=f"{name} ({table.seconds.sum() / 3600:.1f} h)")
        ax_units.hist(n_units, bins=40, histtype="step", linewidth=1.5, label=f"{name} ({n_units.sum():,} units)")
    ax_sec.set_xlabel("seconds per utterance")
    ax_units.set_xlabel("units per utterance")
    for ax in (ax_sec, ax_units):
        ax.set_ylabel("utterances")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_loss_curves(runs: dict, title: str = ""):
    """Training loss (and held-out loss, dashed) against step, one colour per run:
    {label: list of log records as written to train_log.jsonl}."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (label, records) in enumerate(runs.items()):
        color = f"C{i}"
        steps = [r["step"] for r in records if "loss" in r]
        ax.plot(steps, [r["loss"] for r in records if "loss" in r], color=color, label=f"{label} (train)")
        valid = [(r["step"], r["valid_loss"]) for r in records if r.get("valid_loss") is not None]
        if valid:
            ax.plot(*zip(*valid), color=color, linestyle="--", marker="o", markersize=3, label=f"{label} (held out)")
    ax.set_xlabel("step")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


class LivePlot:
    """A training callback that redraws a figure of the records so far, in place in a notebook, at
    most every `every` seconds; outside a notebook it only collects the records. `draw` turns
    the records into a figure (by default: loss curves).

    >>> live = LivePlot("pretraining")   # pretrain(..., callbacks=[live]) calls it with each record
    >>> live({"step": 1, "loss": 2.5}); live({"step": 2, "loss": 2.0})
    >>> [r["loss"] for r in live.records], type(live.finish()).__name__
    ([2.5, 2.0], 'Figure')
    """

    def __init__(self, title: str = "", every: float = 3.0, label: str = "run", draw=None):
        self.title, self.every, self.label = title, every, label
        self.draw = draw or (lambda records: plot_loss_curves({self.label: records}, self.title))
        self.records: list[dict] = []
        self._handle = None
        self._last = 0.0

    def __call__(self, record: dict) -> None:
        import time

        self.records.append(record)
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._show()

    def _show(self) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None or not self.records:
            return
        fig = self.draw(self.records)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)

    def finish(self):
        """Draw the final state and return it as a figure (for saving)."""
        self._show()
        fig = self.draw(self.records)
        plt.close(fig)
        return fig


def plot_dpo(records: list[dict], title: str = "DPO"):
    """Reward margins and preference accuracy (the implicit reward's) over steps, on the training
    batches and, when evaluated, on held-out pairs."""
    train = [r for r in records if "rewards/margins" in r]
    held = [r for r in records if "eval_rewards/margins" in r]
    fig, (ax_margin, ax_acc) = plt.subplots(1, 2, figsize=(12, 3.6))
    for rows, prefix, style, label in ((train, "", "-", "training batches"), (held, "eval_", "--o", "held-out pairs")):
        if rows:
            steps = [r["step"] for r in rows]
            ax_margin.plot(steps, [r[f"{prefix}rewards/margins"] for r in rows], style, markersize=3, label=label)
            ax_acc.plot(steps, [100 * r[f"{prefix}rewards/accuracies"] for r in rows], style, markersize=3, label=label)
    ax_margin.axhline(0, color="gray", linewidth=0.8)
    ax_margin.set_ylabel("reward margin (chosen - rejected)")
    ax_acc.axhline(50, color="gray", linewidth=0.8)
    ax_acc.set_ylabel("chosen rewarded above rejected (%)")
    for ax in (ax_margin, ax_acc):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_accuracies(table, title: str = "accuracy (95% interval)"):
    """Grouped bars: benchmarks on the x axis, one bar per model, error bars = 95% intervals.
    `table`: rows (model, benchmark, accuracy, interval95)."""
    models = list(dict.fromkeys(table["model"]))
    benchmarks = list(dict.fromkeys(table["benchmark"]))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(benchmarks)), 3.8))
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("benchmark").reindex(benchmarks)
        x = np.arange(len(benchmarks)) + (i - (len(models) - 1) / 2) * width
        ax.bar(x, rows["accuracy"], width, yerr=rows["interval95"], capsize=3, label=model)
    ax.axhline(50, color="gray", linestyle="--", linewidth=0.8, label="chance")
    ax.set_xticks(np.arange(len(benchmarks)), benchmarks)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_packed_rows(batch: dict, n_rows: int = 4):
    """The first rows of a packed batch: each document in its own colour (padding grey), a tick
    at each document's first token (never a target), and the position ids restarting there."""
    import matplotlib.colors as mcolors

    from slamlib.tokenization.units import PAD_ID

    positions = batch["position_ids"][:n_rows].numpy()
    padding = batch["input_ids"][:n_rows].numpy() == PAD_ID
    doc = np.cumsum(np.diff(positions, axis=1, prepend=positions[:, :1] - 1) != 1, axis=1).astype(float)
    doc[padding] = np.nan
    cmap = mcolors.ListedColormap(plt.get_cmap("tab10").colors)
    cmap.set_bad("lightgray")
    fig, (ax_doc, ax_pos) = plt.subplots(2, 1, figsize=(12, 0.6 * n_rows + 2.5), sharex=True)
    ax_doc.imshow(np.ma.masked_invalid(doc % 10), aspect="auto", cmap=cmap, interpolation="nearest")
    ys, xs = np.nonzero((positions == 0) & ~padding)
    ax_doc.scatter(xs, ys, marker="|", color="black", s=150, label="document start (not a target)")
    ax_doc.set_yticks(range(n_rows))
    ax_doc.set_ylabel("row")
    ax_doc.set_title("documents packed into rows (one colour per document, padding grey)")
    ax_doc.legend(loc="upper right", fontsize=8)
    ax_pos.plot(positions.T, linewidth=0.8)
    ax_pos.set_ylabel("position id")
    ax_pos.set_xlabel("token")
    ax_pos.set_title("position ids restart at every document")
    fig.tight_layout()
    return fig


README_FIGURES = ("02_twist_vs_random", "04_pretraining_loss", "05_dpo")


def readme_figures(run_dir, out_dir, names: Sequence[str] = README_FIGURES, width: int = 800) -> list:
    """Copies of a run's figures (RUN_DIR/figures/NAME.png), at most `width` pixels wide, for a
    page that shows what the tutorial draws; returns the paths written."""
    from pathlib import Path

    from PIL import Image

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    sources = [run_dir / "figures" / f"{name}.png" for name in names]
    missing = [str(p) for p in sources if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks {', '.join(missing)}: run the tutorial into it first "
                                "(python -m slamlib run --profile tiny --out RUN_DIR)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        image = Image.open(source)
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        target = out_dir / source.name
        image.convert("RGB").quantize(colors=64).save(target, optimize=True)
        written.append(target)
    return written


def plot_long_file(example: dict, title: str = ""):
    """A long recording (`slamlib.data.librilight.long_example`): its waveform with the voiced
    spans shaded, the window seams as dashed lines, and below it the frames whose windowed unit
    differs from the whole-file unit."""
    wav, rate = example["wav"], example["frame_rate"]
    fig, (ax_wav, ax_diff) = plt.subplots(2, 1, figsize=(12, 4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    step = max(1, len(wav) // 20_000)  # an envelope: a point every few samples is enough to see it
    t = np.arange(0, len(wav), step) / SAMPLE_RATE
    ax_wav.plot(t, wav[::step], linewidth=0.3, color="tab:blue")
    for k, (on, off) in enumerate(example["spans"]):
        ax_wav.axvspan(on, off, color="tab:green", alpha=0.15, label="voice activity" if k == 0 else None)
    for k, seam in enumerate(example["seams"]):
        for ax in (ax_wav, ax_diff):
            ax.axvline(seam, color="tab:red", linestyle="--", linewidth=1, label="window seam" if k == 0 and ax is ax_wav else None)
    ax_wav.set_ylabel("amplitude")
    ax_wav.legend(loc="upper right", fontsize=8)
    ax_wav.set_title(title or example["name"])
    differ = np.flatnonzero(example["whole"] != example["windowed"]) / rate
    ax_diff.vlines(differ, 0, 1, color="black", linewidth=0.8)
    ax_diff.set_yticks([])
    ax_diff.set_ylabel("differs")
    ax_diff.set_xlabel(f"seconds · windowed units equal the whole file's on {example['agreement']:.2%} of frames")
    ax_diff.set_xlim(0, len(wav) / SAMPLE_RATE)
    fig.tight_layout()
    return fig
