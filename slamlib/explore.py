"""Interactive explorers for the notebooks: pick an utterance, a pair or a prompt, and look and listen.

One function per explorer, each called in one line by a notebook:

- `utterance_explorer` (01): an utterance as waveform, spectrogram and units, its audio and the
  audio rebuilt from its units, with dedup on or off;
- `corpus_browser` (03): any corpus under `units/` or benchmark under `benchmarks/`, by id: text,
  units and audio, and a preference pair's prompt, chosen and rejected side by side;
- `likelihood_explorer` (04, 05): the per-unit log-likelihoods that decide a pair, for several models;
- `generation_playground` (06): continue a prompt (a benchmark file or an uploaded one) with
  chosen sampling settings, and listen;
- `wrong_pairs_explorer` (06): the benchmark pairs a model gets wrong, to listen to and read.

They use only slamlib's generic interfaces (speech tokenizer, vocoder, speech LM, run folder), so
they work on every profile. Each returns an explorer object that shows itself when it is a cell's
value: as ipywidgets controls above an output area, or, in static mode (`SLAMLIB_STATIC=1`, as in
a papermill run, where no browser draws widgets), as plain outputs of its first selection
(figures, audio players, text, tables), without creating any widget. The state lives in the
object (`select(...)`, `current`, `shown`); the widgets, made on first display, only change it.

Not here: the figures shared with the rest of the notebooks (`slamlib.plots`), scoring and
generation themselves (`slamlib.evaluate`).
"""

from __future__ import annotations

import dataclasses
import glob
import html
import io
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from slamlib.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, decode_audio, load_audio

STATIC_ENV = "SLAMLIB_STATIC"
MAX_PROMPT_SECONDS = 60.0  # longer uploads are refused: a prompt is a few seconds, and all of it is tokenized
MAX_IDS = 500  # ids offered per corpus or benchmark (a dropdown of a million ids is no use)


def static_mode() -> bool:
    """Whether explorers render plain outputs instead of widgets (`SLAMLIB_STATIC=1`)."""
    return os.environ.get(STATIC_ENV) == "1"


# --- what an explorer shows ------------------------------------------------------------------------

def units_text(units: Sequence[int], limit: int = 400) -> str:
    """Units as text, cut after `limit` of them.

    >>> units_text([7, 7, 3, 12], limit=3)
    '7 7 3 … (4 in all)'
    """
    units = [int(u) for u in units]
    text = " ".join(map(str, units[:limit]))
    return f"{text} … ({len(units)} in all)" if len(units) > limit else text


def _html(body: str):
    from IPython.display import HTML

    return HTML(body)


def _line(label: str, text: str = ""):
    """One line of text, after a bold label if there is one."""
    bold = f"<b>{html.escape(label)}</b> " if label else ""
    return _html(f"<div>{bold}{html.escape(str(text))}</div>")


def _units(label: str, units: Sequence[int]):
    return _html(f"<div><b>{html.escape(label)}</b> ({len(units)} units)<br>"
                 f"<code style='white-space: pre-wrap'>{html.escape(units_text(units))}</code></div>")


def _message(text: str):
    """A problem, said where the user is looking."""
    return _html(f"<div style='color: #b00'><b>⚠</b> {html.escape(text)}</div>")


def _audio(label: str, wav: np.ndarray) -> list:
    """A label and an audio player (or why there is none)."""
    from IPython.display import Audio

    wav = np.asarray(wav, dtype=np.float32)
    if wav.size == 0:
        return [_line(label, "(no audio: 0 samples)")]
    seconds = f"({wav.size / SAMPLE_RATE:.2f} s)"
    return [_line(label, seconds), Audio(wav, rate=SAMPLE_RATE, normalize=bool(np.abs(wav).max() > 0))]


def _image(fig):
    """A figure as a PNG image; the figure is closed, so a notebook does not draw it a second time."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buffer.getvalue(), format="png")


def _bundle(item) -> dict:
    """A display object as the output an Output widget holds."""
    from IPython import get_ipython
    from IPython.core.formatters import DisplayFormatter

    shell = get_ipython()
    formatter = shell.display_formatter if shell is not None else DisplayFormatter()
    data, metadata = formatter.format(item)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


class Explorer:
    """What every explorer shares. `current` holds the facts of the current view (ids, texts,
    units, audio), `shown` the display objects that show them; `select(...)` changes the selection.
    `widget` (made on first use) is the controls above an output area; `controls` names them."""

    output_classes: tuple[str, ...] = ("slamlib-explorer-output",)  # CSS classes of the output area

    def __init__(self):
        self.current: dict = {}
        self.shown: list = []
        self._widget = None
        self._controls: dict = {}
        self._syncing = False
        self._rendered: list | None = None  # the `shown` the output area holds

    # what each explorer defines
    def _view(self) -> tuple[dict, list]:
        raise NotImplementedError

    def _make_controls(self) -> dict:
        raise NotImplementedError

    def _sync(self) -> None:
        """Set the controls from the state (after a selection changed it)."""

    # shared machinery
    def refresh(self) -> None:
        self.current, self.shown = self._view()
        self._render()

    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as widgets

            self.output = widgets.Output()
            for name in self.output_classes:
                self.output.add_class(name)
            self._controls = self._make_controls()
            self._widget = widgets.VBox([*self._controls.values(), self.output])
            self._render()
        return self._widget

    @property
    def controls(self) -> dict:
        """The widgets by name (made now if they were not)."""
        _ = self.widget
        return self._controls

    def _render(self) -> None:
        if self._widget is None:
            return
        if self._rendered is not self.shown:  # a moved slider changes no output: send nothing
            self.output.outputs = tuple(_bundle(item) for item in self.shown)
            self._rendered = self.shown
        self._syncing = True
        try:
            self._sync()
        finally:
            self._syncing = False

    def _safely(self, action: Callable[[], None]) -> None:
        """Run a widget callback. Whatever goes wrong is shown in the output: an exception raised
        out of a callback would only reach the browser's log."""
        try:
            action()
        except Exception as err:  # noqa: BLE001 (any failure becomes a message)
            text = str(err) if isinstance(err, (AudioError, ValueError, FileNotFoundError)) else \
                f"{type(err).__name__}: {err}"
            self.current, self.shown = {"error": text}, [_message(text)]
            self._render()

    def _on_change(self, key: str):
        """An observer that selects the control's new value as `key`."""
        def changed(change):
            if not self._syncing:
                self._safely(lambda: self.select(**{key: change["new"]}))
        return changed

    def select(self, **choices) -> "Explorer":
        """Change the selection and show it; if it cannot be shown, the selection stays as it was."""
        unknown = [key for key in choices if not hasattr(self, key)]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no choice {unknown[0]!r}")
        before = {key: getattr(self, key) for key in choices}
        for key, value in choices.items():
            setattr(self, key, value)
        try:
            self.refresh()
        except Exception:
            for key, value in before.items():
                setattr(self, key, value)
            raise
        return self

    def _ipython_display_(self):
        from IPython.display import display

        if static_mode():
            for item in self.shown:
                display(item)
        else:
            display(self.widget)


def _dropdown(description: str, options, value, width: str = "60%"):
    import ipywidgets as widgets

    return widgets.Dropdown(description=description, options=options, value=value,
                            layout=widgets.Layout(width=width), style={"description_width": "initial"})


# --- reading a run folder -----------------------------------------------------------------------------

def _shards(folder: Path) -> list[Path]:
    from slamlib.tokenization.corpus import SHARD_GLOB

    return sorted(Path(folder).glob(SHARD_GLOB))


def _rows_where(folder: Path, column: str, value: str, columns: Sequence[str] | None = None) -> list[dict]:
    """The rows of a folder of parquet shards whose `column` equals `value`."""
    import pyarrow.dataset as ds

    table = ds.dataset([str(s) for s in _shards(folder)], format="parquet")
    return table.to_table(columns=list(columns) if columns else None, filter=ds.field(column) == value).to_pylist()


def _first_values(folder: Path, column: str, limit: int) -> list[str]:
    """The first `limit` distinct values of a column, in shard order."""
    import pyarrow.parquet as pq

    seen: dict[str, None] = {}
    for shard in _shards(folder):
        seen.update(dict.fromkeys(pq.read_table(shard, columns=[column]).column(column).to_pylist()))
        if len(seen) >= limit:
            break
    return list(seen)[:limit]


def _audio_of(run_root: Path, corpus: str, item: str, columns: Sequence[str]) -> dict[str, np.ndarray] | str:
    """Audio of an utterance (or a pair's roles) as the run folder keeps it: in the parquet shards
    of `audio/CORPUS` (one column per role) or as files `audio/CORPUS/ID.*`. A string says why
    there is none."""
    folder = run_root / "audio" / corpus
    if _shards(folder):
        rows = _rows_where(folder, "id", item, columns)
        if not rows:
            return f"{folder} has no row {item!r}"
        return {c: decode_audio((rows[0][c] or {}).get("bytes") or b"", f"{corpus}/{item}.{c}") for c in columns}
    files = [p for p in folder.glob(f"{glob.escape(item)}.*") if p.suffix.lower() in AUDIO_EXTENSIONS] \
        if folder.is_dir() else []
    if files:
        return {columns[0]: load_audio(files[0])}
    return f"this run folder keeps no audio of {corpus} (a hub corpus keeps it on the hub)"


def _preference_pair(folder: Path, pair: str) -> dict:
    """One preference pair from its units folder: `ROLE_units` and the texts kept with them."""
    from slamlib.data.corpora import ROLES

    rows = {r["role"]: r for r in _rows_where(folder, "pair", pair)}
    if set(rows) != set(ROLES):
        raise ValueError(f"{folder}: pair {pair!r} lacks {sorted(set(ROLES) - set(rows))}")
    first = rows["prompt"]
    out = {k: v for k, v in first.items() if k not in ("id", "units", "durations", "seconds", "role")}
    out.update({f"{role}_units": list(rows[role]["units"]) for role in ROLES})
    return out


def _preference_items(run_root: Path, corpus: str, pair: dict) -> list:
    """A preference pair shown: what it is, then each role's text, audio and units."""
    from slamlib.data.corpora import ROLES

    about = ", ".join(f"{k} {pair[k]}" for k in ("kind", "speaker") if pair.get(k))
    items = [_line(f"{corpus} · pair {pair['pair']}", about)]
    audio = _audio_of(run_root, corpus, pair["pair"], ROLES)
    if isinstance(audio, str):
        items.append(_line("audio:", audio))
    for role in ROLES:
        items.append(_line(f"{role}:", pair.get(f"{role}_text") or "(no text kept)"))
        if not isinstance(audio, str):
            items += _audio(f"{role} audio", audio[role])
        items.append(_units(f"{role} units", pair[f"{role}_units"]))
    return items


def _benchmark_items(name: str, pair, units: Mapping[str, Sequence[int]] | None = None) -> list:
    """A benchmark pair shown: its id and info, the shared set-up (when the manifest has it), then
    each side's text, audio and units."""
    info = {k: v for k, v in pair.info.items() if v not in ("", None)}
    about = ", ".join(f"{k} {v}" for k, v in info.items() if not k.endswith("_text"))
    items = [_line(f"{name} · pair {pair.id}", about)]
    if info.get("prompt_text"):
        items.append(_line("set-up:", info["prompt_text"]))
    for side in ("positive", "negative"):
        items.append(_line(f"{side}:", info.get(f"{side}_text", "(the benchmark has no text)")))
        items += _audio(f"{side} audio ({getattr(pair, side).name})", load_audio(getattr(pair, side)))
        if units is not None:
            items.append(_units(f"{side} units", units[side]))
    return items


def _benchmark_folders(run_root: Path, profile=None) -> dict[str, Path]:
    """{name: folder}: the profile's benchmarks that exist in the run, or without a profile every
    folder under `benchmarks/` that reads as one."""
    from slamlib.data.benchmarks import BenchmarkFormatError, read_pairs

    if profile is not None:
        found = {name: Path(path) if Path(path).is_absolute() else run_root / path
                 for name, path in profile.eval.benchmarks}
        return {name: path for name, path in found.items() if path.exists()}
    out = {}
    for folder in sorted(p for p in (run_root / "benchmarks").glob("*") if p.is_dir()):
        try:
            read_pairs(folder)
        except BenchmarkFormatError:
            continue
        out[folder.name] = folder
    return out


def _find_pair(pairs, pair_id: str, name: str):
    found = next((p for p in pairs if p.id == pair_id), None)
    if found is None:
        raise ValueError(f"{name} has no pair {pair_id!r}")
    return found


def _pair_label(pair) -> str:
    text = pair.info.get("positive_text") or pair.info.get("category") or pair.positive.name
    return f"{pair.id} · {text[:60]}"


# --- 01: one utterance -------------------------------------------------------------------------------

class UtteranceExplorer(Explorer):
    """An utterance of a speech sample: its units on the waveform and spectrogram, its audio and
    the audio its units rebuild; with dedup off, the per-frame units."""

    def __init__(self, tokenizer, sample_dir, vocoder=None):
        super().__init__()
        self.tokenizer, self.sample_dir = tokenizer, Path(sample_dir)
        meta = self.sample_dir / "metadata.csv"
        if not meta.exists():
            raise FileNotFoundError(f"{meta}: no metadata.csv (file, text, voice, seconds) in the sample folder")
        self.meta = pd.read_csv(meta, dtype={"file": str}, keep_default_na=False)
        if self.meta.empty:
            raise ValueError(f"{meta} lists no utterance")
        self._vocoder = vocoder
        self.file, self.dedup = self.meta.file.iloc[0], True
        self.refresh()

    def _make_controls(self):
        import ipywidgets as widgets

        options = [(f"{r.file} · {str(getattr(r, 'text', ''))[:60]}", r.file) for r in self.meta.itertuples()]
        controls = {"utterance": _dropdown("utterance", options, self.file),
                    "dedup": widgets.Checkbox(value=self.dedup, description="dedup (merge repeated units)")}
        controls["utterance"].observe(self._on_change("file"), "value")
        controls["dedup"].observe(self._on_change("dedup"), "value")
        return controls

    def _sync(self):
        self._controls["utterance"].value, self._controls["dedup"].value = self.file, self.dedup

    def frames(self, wav: np.ndarray) -> np.ndarray:
        """The unit of every feature frame, before dedup."""
        features = self.tokenizer.features([wav])[0]
        return self.tokenizer.kmeans.assign(features).cpu().numpy()

    def vocoder(self):
        """The tokenizer's vocoder (`load_vocoder`), made on first use; a string says why there is none."""
        if self._vocoder is None:
            from slamlib.vocoders.load import load_vocoder

            try:
                self._vocoder = load_vocoder(self.tokenizer)
            except Exception as err:  # noqa: BLE001 (offline, or units no vocoder speaks: say so, show the rest)
                self._vocoder = f"no vocoder for these units: {err}"
        return self._vocoder

    def _view(self):
        from slamlib import plots
        from slamlib.tokenization.speech_tokenizer import Tokenized
        from slamlib.tokenization.units import dedup

        row = self.meta[self.meta.file == self.file].iloc[0]
        wav = load_audio(self.sample_dir / self.file)
        frames = self.frames(wav)
        deduped = dedup(frames, self.tokenizer.min_run)
        units, durations = deduped if self.dedup else (frames, np.ones_like(frames))
        seconds = len(wav) / SAMPLE_RATE
        tokenized = Tokenized(units, durations, seconds, self.tokenizer.frame_rate)
        title = f"{row.get('voice', '')}: {row.get('text', '')}".strip(": ")
        facts = {"file": self.file, "text": row.get("text", ""), "dedup": self.dedup, "frames": len(frames),
                 "units": units.tolist(), "durations": durations.tolist(), "original": wav}
        summary = (f"{seconds:.2f} s -> {len(frames)} frames ({self.tokenizer.frame_rate:g} per second) -> "
                   f"{len(deduped[0])} units after dedup (runs under {self.tokenizer.min_run} frames dropped first)")
        items = [_line(self.file, title), _line("", summary), _image(plots.plot_tokenization(wav, tokenized, title))]
        items += _audio("the recording", wav)
        vocoder = self.vocoder()
        if isinstance(vocoder, str):
            items.append(_line("rebuilt from units:", vocoder))
        else:
            facts["rebuilt"] = vocoder(units, durations)
            items += _audio("rebuilt from its units (with their durations)", facts["rebuilt"])
        label = "units after dedup" if self.dedup else "per-frame units (dedup off: one per frame)"
        items.append(_units(label, units))
        return facts, items


def utterance_explorer(tokenizer, sample_dir, *, vocoder=None) -> UtteranceExplorer:
    """Explore the utterances of a speech sample folder (`metadata.csv`: file, text, voice, seconds)
    with a speech tokenizer. `vocoder`: the one to rebuild audio from units with (default: the
    tokenizer's, `slamlib.vocoders.base.load_vocoder`)."""
    return UtteranceExplorer(tokenizer, sample_dir, vocoder)


# --- 03: corpora and benchmarks ---------------------------------------------------------------------

class _SourceThenItem(Explorer):
    """Two dropdowns: a source (`sources`), then one of its items, held in the attribute `ITEM`;
    `items(source)` gives a source's (label, value) choices. A new source starts at its first item."""

    ITEM, SOURCE_LABEL = "id", "source"

    def items(self, source: str | None = None) -> list[tuple[str, str]]:
        raise NotImplementedError

    def select(self, **choices):
        if "source" in choices and self.ITEM not in choices:
            choices[self.ITEM] = self.items(choices["source"])[0][1]
        return super().select(**choices)

    def _make_controls(self):
        controls = {"source": _dropdown(self.SOURCE_LABEL, list(self.sources), self.source),
                    self.ITEM: _dropdown(self.ITEM, self.items(), getattr(self, self.ITEM))}
        for key, control in controls.items():
            control.observe(self._on_change(key), "value")
        return controls

    def _sync(self):
        controls = self._controls
        controls["source"].value = self.source
        if controls[self.ITEM].options != tuple(self.items()):
            controls[self.ITEM].options = self.items()
        controls[self.ITEM].value = getattr(self, self.ITEM)


class CorpusBrowser(_SourceThenItem):
    """The corpora under `RUN/units/` and the benchmarks under `RUN/benchmarks/`, item by item."""

    ITEM, SOURCE_LABEL = "id", "corpus or benchmark"

    def __init__(self, run_dir, max_ids: int = MAX_IDS):
        from slamlib.data.benchmarks import read_pairs

        super().__init__()
        self.root, self.max_ids = Path(run_dir), max_ids
        self.sources: dict[str, tuple[str, str]] = {}  # label -> (kind, name): ("corpus", "read_speech")
        for info in sorted((self.root / "units").rglob("units_info.json")):
            if _shards(info.parent):
                name = info.parent.relative_to(self.root / "units").as_posix()
                self.sources[f"corpus · {name}"] = ("corpus", name)
        self.benchmarks = {name: read_pairs(folder) for name, folder in _benchmark_folders(self.root).items()}
        self.sources.update({f"benchmark · {name}": ("benchmark", name) for name in self.benchmarks})
        if not self.sources:
            raise FileNotFoundError(f"{self.root}: no corpus under units/ and no benchmark under benchmarks/ "
                                    "(run notebooks 01 and 03 first)")
        self._tokenizer = None
        self._ids: dict[str, list[tuple[str, str]]] = {}
        self.source = next(iter(self.sources))
        self.id = self.ids()[0][1]
        self.refresh()

    def ids(self, source: str | None = None) -> list[tuple[str, str]]:
        """(label, id) of the first `max_ids` items of a source."""
        source = source or self.source
        if source not in self._ids:
            kind, name = self.sources[source]
            if kind == "benchmark":
                self._ids[source] = [(_pair_label(p), p.id) for p in self.benchmarks[name][: self.max_ids]]
            else:
                folder = self.root / "units" / name
                column = "pair" if self._is_preference(folder) else "id"
                self._ids[source] = [(v, v) for v in _first_values(folder, column, self.max_ids)]
        return self._ids[source]

    @staticmethod
    def _is_preference(folder: Path) -> bool:
        import pyarrow.parquet as pq

        return {"pair", "role"} <= set(pq.read_schema(_shards(folder)[0]).names)

    def items(self, source: str | None = None) -> list[tuple[str, str]]:
        return self.ids(source)

    def speech_tokenizer(self):
        """The run's speech tokenizer (for benchmark units), loaded on first use."""
        if self._tokenizer is None:
            from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

            path = self.root / "speech_tokenizer"
            if not (path / "speech_tokenizer.json").exists():
                raise FileNotFoundError(f"{path}: no speech tokenizer (run notebooks/01_tokenization.ipynb first)")
            self._tokenizer = SpeechTokenizer.load(path, device="cpu")
        return self._tokenizer

    def _view(self):
        kind, what = self.sources[self.source]
        if kind == "benchmark":
            return self._benchmark_view(what)
        folder = self.root / "units" / what
        if self._is_preference(folder):
            pair = _preference_pair(folder, self.id)
            return {"source": self.source, "id": self.id, **pair}, _preference_items(self.root, what, pair)
        rows = _rows_where(folder, "id", self.id)
        if not rows:
            raise ValueError(f"{folder} has no utterance {self.id!r}")
        row = rows[0]
        facts = {"source": self.source, **{k: v for k, v in row.items() if k != "aligned_text"}}
        about = ", ".join(f"{k} {row[k]}" for k in ("voice", "speaker", "speaker_id") if row.get(k) not in (None, ""))
        items = [_line(f"{what} · {self.id}", f"{row['seconds']:.2f} s{', ' + about if about else ''}")]
        if row.get("text"):
            items.append(_line("text:", row["text"]))
        audio = _audio_of(self.root, what, self.id, ("audio",))
        items += [_line("audio:", audio)] if isinstance(audio, str) else _audio("audio", audio["audio"])
        items.append(_units("units", row["units"]))
        return facts, items

    def _benchmark_view(self, name: str):
        from slamlib.evaluate import utterance_ids

        pair = _find_pair(self.benchmarks[name], self.id, name)
        tokenizer = self.speech_tokenizer()
        # the units evaluation keeps for these files (or they are made, and kept, now)
        ids = utterance_ids(tokenizer, [pair.positive, pair.negative],
                            cache_dir=self.root / "units" / "benchmarks" / name)
        units = {side: tokenizer.unit_tokenizer.decode(ids[getattr(pair, side)]) for side in ("positive", "negative")}
        facts = {"source": self.source, "id": pair.id, "positive": pair.positive, "negative": pair.negative,
                 "info": pair.info, "units": units}
        return facts, _benchmark_items(name, pair, units)


def corpus_browser(run_dir, *, max_ids: int = MAX_IDS) -> CorpusBrowser:
    """Browse a run folder's tokenized corpora and benchmarks by id (the first `max_ids` of each)."""
    return CorpusBrowser(run_dir, max_ids)


# --- 04 and 05: likelihoods ---------------------------------------------------------------------------

@torch.no_grad()
def unit_log_likelihoods(model, ids: Sequence[int]) -> np.ndarray:
    """Log-probability of every token of an id sequence after the first, each given the tokens
    before it: for `<S> units <S>`, one per unit and one for the closing `<S>`. Their mean (or sum)
    is the utterance's score in `slamlib.evaluate.sequence_scores`, computed the same way."""
    if len(ids) < 2:
        raise ValueError("an id sequence needs at least two tokens (<S> and something to predict)")
    device = next(model.parameters()).device
    x = torch.as_tensor([list(ids)], dtype=torch.long, device=device)
    model.eval()
    logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits.float()
    logp = torch.log_softmax(logits[0, :-1], dim=-1).gather(-1, x[0, 1:, None]).squeeze(-1)
    return logp.cpu().double().numpy()


def plot_unit_log_likelihoods(curves: Mapping[str, Mapping[str, np.ndarray]], sides: Sequence[str],
                              parted_at: int | None = None, title: str = ""):
    """One panel per side of a pair: each model's per-token log-likelihood along the utterance,
    its mean dashed. `parted_at`: the first token where the two sides differ (a dotted line)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sides), figsize=(12, 3.4), sharey=True, squeeze=False)
    for ax, side in zip(axes[0], sides):
        for i, (name, by_side) in enumerate(curves.items()):
            logp = by_side[side]
            ax.plot(np.arange(1, len(logp) + 1), logp, color=f"C{i}", linewidth=0.9,
                    label=f"{name}: mean {logp.mean():.3f}, total {logp.sum():.1f}")
            ax.axhline(logp.mean(), color=f"C{i}", linestyle="--", linewidth=0.8)
        if parted_at is not None:
            ax.axvline(parted_at - 0.5, color="gray", linestyle=":", label="the sides differ from here")
        ax.set_title(side)
        ax.set_xlabel("predicted token (units, then the closing <S>)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("log-likelihood (nats)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _parted_at(a: Sequence[int], b: Sequence[int]) -> int:
    """The first position (in predicted tokens, from 1) where two id sequences differ."""
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return max(n, 1)


class LikelihoodExplorer(_SourceThenItem):
    """A pair (benchmark or held-out preference) as each model scores it: per-token log-likelihoods
    of both sides, and the means or totals the benchmark compares."""

    ITEM, SOURCE_LABEL = "pair", "pairs"

    def __init__(self, models: Mapping[str, object], run_dir, profile, device: str | None = None,
                 max_pairs: int = MAX_IDS, source: str | None = None):
        from slamlib.data.benchmarks import read_pairs
        from slamlib.model import load_speech_lm

        super().__init__()
        if not models:
            raise ValueError("likelihood_explorer needs at least one model: {name: folder}")
        self.root, self.profile, self.max_pairs = Path(run_dir), profile, max_pairs
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.models = {name: load_speech_lm(path, device=device, tokenizer_config=profile.tokenizer)
                       for name, path in models.items()}
        self.sources: dict[str, list] = {name: read_pairs(folder)
                                         for name, folder in _benchmark_folders(self.root, profile).items()}
        self.preference = self._preference_folder()
        if self.preference is not None:
            from slamlib.data.corpora import read_preference_units

            self.sources["held-out preference"] = read_preference_units(self.preference).pair.tolist()
        if not self.sources:
            raise FileNotFoundError(f"{self.root}: none of the profile's benchmarks and no held-out preference pairs "
                                    "(run notebooks/03_synthetic_data.ipynb first)")
        self.source = source if source in self.sources else next(iter(self.sources))
        self.pair = self.pair_ids()[0][1]
        self.refresh()

    def _preference_folder(self) -> Path | None:
        held = self.profile.eval.preference_heldout
        folder = self.root / "units" / held if held else None
        return folder if folder is not None and _shards(folder) else None

    def pair_ids(self, source: str | None = None) -> list[tuple[str, str]]:
        pairs = self.sources[source or self.source][: self.max_pairs]
        return [(p, p) if isinstance(p, str) else (_pair_label(p), p.id) for p in pairs]

    def items(self, source: str | None = None) -> list[tuple[str, str]]:
        return self.pair_ids(source)

    def sequences(self, name: str) -> tuple[list[int], list[int]]:
        """The two id sequences of the selected pair for one model, as slamlib's scoring builds them:
        `<S> units <S>` of each benchmark file; `<S> prompt continuation <S>` of a preference pair."""
        model, tokenizer = self.models[name]
        if self.source == "held-out preference":
            from slamlib.tokenization.units import UnitTokenizer

            pair = _preference_pair(self.preference, self.pair)
            tok = UnitTokenizer(model.config.vocab_size - 2)
            return tuple(tok.encode([*pair["prompt_units"], *pair[f"{role}_units"]]) for role in ("chosen", "rejected"))
        from slamlib.evaluate import utterance_ids

        pair = _find_pair(self.sources[self.source], self.pair, self.source)
        ids = utterance_ids(tokenizer, [pair.positive, pair.negative],
                            cache_dir=self.root / "units" / "benchmarks" / self.source)
        return ids[pair.positive], ids[pair.negative]

    def _view(self):
        from slamlib.evaluate import pair_accuracy

        preference = self.source == "held-out preference"
        sides = ("chosen", "rejected") if preference else ("positive", "negative")
        score = self.profile.eval.score
        curves, rows, seqs = {}, {}, {}
        for name, (model, _) in self.models.items():
            seqs[name] = self.sequences(name)
            curves[name] = dict(zip(sides, (unit_log_likelihoods(model, ids) for ids in seqs[name])))
            scores = [float(curves[name][s].mean() if score == "mean" else curves[name][s].sum()) for s in sides]
            verdict = pair_accuracy(np.array(scores[:1]), np.array(scores[1:]))[0]
            rows[name] = {**{f"{s} mean": curves[name][s].mean() for s in sides},
                          **{f"{s} total": curves[name][s].sum() for s in sides},
                          f"{sides[0]} - {sides[1]} ({score})": scores[0] - scores[1],
                          "counts": verdict, "verdict": {1.0: "right", 0.5: "tie", 0.0: "wrong"}[verdict]}
        table = pd.DataFrame.from_dict(rows, orient="index")
        first = seqs[next(iter(seqs))]
        fig = plot_unit_log_likelihoods(curves, sides, _parted_at(first[0][1:], first[1][1:]),
                                        f"{self.source} · {self.pair}")
        facts = {"source": self.source, "pair": self.pair, "sides": sides, "sequences": seqs,
                 "log_likelihoods": curves, "table": table}
        if preference:
            texts = _preference_items(self.root, self.profile.eval.preference_heldout,
                                      _preference_pair(self.preference, self.pair))
        else:
            texts = _benchmark_items(self.source, _find_pair(self.sources[self.source], self.pair, self.source))
        measure = "mean log-likelihood per predicted token" if score == "mean" else "total log-likelihood"
        compared = (f"The benchmark compares each side's {measure}; the pair counts 1 when the {sides[0]} side "
                    "scores higher, 0.5 on a tie, 0 otherwise.")
        return facts, [_image(fig), _line("", compared), table.round(3), *texts]


def likelihood_explorer(models: Mapping[str, object], run_dir, profile, *, source: str | None = None,
                        device: str | None = None, max_pairs: int = MAX_IDS) -> LikelihoodExplorer:
    """Compare models ({name: folder or hub id}) pair by pair on a run's benchmarks and held-out
    preference pairs, unit by unit. `source`: the pairs shown first (a benchmark's name or
    "held-out preference", when the run has them; default: the first benchmark). `device`: where
    the models run (default: cuda when present)."""
    return LikelihoodExplorer(models, run_dir, profile, device, max_pairs, source)


# --- 06: generation -----------------------------------------------------------------------------------

def read_upload(name: str, data: bytes, max_seconds: float = MAX_PROMPT_SECONDS) -> np.ndarray:
    """An uploaded prompt as 16 kHz mono audio; `AudioError` naming the file if it is empty, not
    audio, or longer than `max_seconds` (judged from the header, before decoding)."""
    import soundfile as sf

    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        reason = getattr(err, "error_string", None) or str(err)  # libsndfile's words, without the buffer's repr
        raise AudioError(name, f"not an audio file soundfile can read ({reason})") from err
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > max_seconds:
        raise AudioError(name, f"{seconds:.1f} s of audio; prompts may be at most {max_seconds:g} s")
    return decode_audio(data, name)


class GenerationPlayground(Explorer):
    """Continue a prompt with chosen sampling settings and listen to the prompt and continuation,
    both vocoded from units (`slamlib.evaluate.generate_continuation`)."""

    output_classes = (*Explorer.output_classes, "slamlib-playground-output")
    SETTINGS = ("temperature", "top_k", "repetition_penalty", "max_new_tokens", "prompt_seconds")

    def __init__(self, model, speech_tokenizer, vocoder, prompt_files: Sequence, generation_config,
                 max_seconds: float = MAX_PROMPT_SECONDS):
        super().__init__()
        self.model, self.speech_tokenizer, self.vocoder = model, speech_tokenizer, vocoder
        self.max_seconds = max_seconds
        names = [Path(p).name for p in prompt_files]  # by file name, or whole path where names repeat
        self.prompts: dict[str, Path | np.ndarray] = {
            name if names.count(name) == 1 else str(p): Path(p) for name, p in zip(names, prompt_files)}
        self.settings = {**{k: getattr(generation_config, k) for k in self.SETTINGS}, "seed": 0}
        self.base_config = generation_config
        self.prompt = next(iter(self.prompts), None)
        if self.prompt is None:
            self.current, self.shown = {}, [_line("", "Upload a prompt (a wav or flac file), then press Generate.")]
        else:
            self.generate()

    def config(self):
        """The `GenerationConfig` the current settings make."""
        return dataclasses.replace(self.base_config, **{k: self.settings[k] for k in self.SETTINGS})

    def prompt_audio(self) -> np.ndarray:
        prompt = self.prompts[self.prompt]
        return load_audio(prompt) if isinstance(prompt, Path) else prompt

    def generate(self) -> dict:
        """Continue the selected prompt with the current settings; returns what was shown."""
        from slamlib.evaluate import generate_continuation

        if self.prompt is None:
            raise ValueError("no prompt: upload one or give prompt files")
        cfg = self.config()
        result = generate_continuation(self.model, self.speech_tokenizer, self.vocoder, self.prompt_audio(), cfg,
                                       seed=int(self.settings["seed"]))
        new_seconds = (len(result["audio"]) - len(result["prompt_audio"])) / SAMPLE_RATE
        sampling = (f"seed {self.settings['seed']}, temperature {cfg.temperature:g}, top-k {cfg.top_k}, "
                    f"repetition penalty {cfg.repetition_penalty:g}, at most {cfg.max_new_tokens} new units")
        prompt_seconds = len(result["original_prompt"]) / SAMPLE_RATE
        items = [_line(self.prompt, f"{prompt_seconds:.2f} s of prompt -> {len(result['prompt_units'])} units; "
                                    f"{len(result['new_units'])} new units ({new_seconds:.2f} s); {sampling}")]
        items += _audio("the prompt as recorded", result["original_prompt"])
        items += _audio("prompt and continuation, from units", result["audio"])
        items += [_units("prompt units", result["prompt_units"]), _units("new units", result["new_units"])]
        self.current, self.shown = {"prompt": self.prompt, "settings": dict(self.settings), **result}, items
        self._render()
        return self.current

    def upload(self, name: str, data: bytes) -> None:
        """Make an uploaded file the prompt (shown, not yet continued), or say what is wrong with it."""
        try:
            wav = read_upload(name, bytes(data), self.max_seconds)
        except AudioError as err:
            self.current, self.shown = {"error": str(err)}, [_message(str(err))]
            self._render()
            return
        key = f"uploaded: {name}"
        self.prompts[key] = wav
        self.prompt = key
        self.current = {"prompt": key, "original_prompt": wav}
        self.shown = [*_audio(f"{key}: press Generate to continue it", wav)]
        self._render()

    def select(self, **choices):
        """Change the prompt and/or settings (temperature, top_k, repetition_penalty,
        max_new_tokens, prompt_seconds, seed); press Generate (or call `generate`) to continue."""
        for key, value in choices.items():
            if key == "prompt":
                if value not in self.prompts:
                    raise ValueError(f"no prompt {value!r}; choose one of {list(self.prompts)}")
                self.prompt = value
            elif key in self.settings:
                self.settings[key] = value
            else:
                raise TypeError(f"the playground has no setting {key!r}")
        if "prompt" in choices:
            self.current = {"prompt": self.prompt, "original_prompt": self.prompt_audio()}
            self.shown = _audio(f"{self.prompt}: press Generate to continue it", self.current["original_prompt"])
        self._render()
        return self

    def _make_controls(self):
        import ipywidgets as widgets

        s, wide = self.settings, {"description_width": "initial"}
        controls = {
            "prompt": _dropdown("prompt", list(self.prompts), self.prompt),
            "upload": widgets.FileUpload(accept=",".join(sorted(AUDIO_EXTENSIONS)), multiple=False,
                                         description="upload a prompt", layout=widgets.Layout(width="auto")),
            "temperature": widgets.FloatSlider(value=s["temperature"], min=0.05, max=2.0, step=0.05,
                                               description="temperature", style=wide),
            "top_k": widgets.IntSlider(value=s["top_k"], min=1, max=200, description="top-k", style=wide),
            "repetition_penalty": widgets.FloatSlider(value=s["repetition_penalty"], min=1.0, max=2.0, step=0.05,
                                                      description="repetition penalty", style=wide),
            "max_new_tokens": widgets.IntSlider(value=s["max_new_tokens"], min=1, max=max(500, s["max_new_tokens"]),
                                                description="new units (at most)", style=wide),
            "prompt_seconds": widgets.FloatSlider(value=s["prompt_seconds"], min=0.5, max=self.max_seconds, step=0.5,
                                                  description="prompt seconds", style=wide),
            "seed": widgets.IntText(value=s["seed"], description="seed", style=wide),
            "generate": widgets.Button(description="Generate", button_style="primary", icon="play"),
        }
        for key in ("prompt", *self.SETTINGS, "seed"):
            controls[key].observe(self._on_change(key), "value")
        controls["upload"].observe(self._uploaded, "value")
        controls["generate"].add_class("slamlib-generate")
        controls["generate"].on_click(self._clicked)
        return controls

    def _clicked(self, button):
        button.disabled, button.description = True, "Generating…"
        try:
            self._safely(self.generate)
        finally:
            button.disabled, button.description = False, "Generate"

    def _uploaded(self, change):
        for file in change["new"]:
            self._safely(lambda file=file: self.upload(str(file.get("name", "upload")), file.get("content") or b""))
        if change["new"]:
            self._controls["upload"].value = ()  # so that uploading the same file again is seen

    def _sync(self):
        controls = self._controls
        if controls["prompt"].options != tuple(self.prompts):
            controls["prompt"].options = list(self.prompts)
        controls["prompt"].value = self.prompt
        for key, value in self.settings.items():
            controls[key].value = value


def generation_playground(model, speech_tokenizer, vocoder, prompt_files: Sequence, generation_config, *,
                          max_seconds: float = MAX_PROMPT_SECONDS) -> GenerationPlayground:
    """Continue prompts (any of `prompt_files`, or an uploaded file of at most `max_seconds`) with
    a speech LM, starting from `generation_config`'s settings. The first prompt is continued once
    on creation."""
    return GenerationPlayground(model, speech_tokenizer, vocoder, prompt_files, generation_config, max_seconds)


class WrongPairsExplorer(Explorer):
    """The pairs each model gets wrong (`correct` 0 in `evaluate_model`'s results; ties are not
    wrong), benchmark by benchmark, to listen to and read."""

    def __init__(self, results: Mapping, run_dir, profile, max_pairs: int = MAX_IDS):
        from slamlib.data.benchmarks import read_pairs

        super().__init__()
        self.root, self.profile, self.max_pairs = Path(run_dir), profile, max_pairs
        by_model = {"model": results} if "benchmarks" in results else dict(results)
        folders = _benchmark_folders(self.root, profile)
        self.pairs: dict[str, list] = {}  # benchmark -> pairs (or preference pair ids), in evaluation order
        self.wrong: dict[tuple[str, str], list[str]] = {}  # (model, benchmark) -> wrong pair ids
        for model, result in by_model.items():
            parts = {name: r for name, r in result.get("benchmarks", {}).items() if "correct" in r}
            if "correct" in result.get("preference_heldout", {}):
                parts["held-out preference"] = result["preference_heldout"]
            for name, part in parts.items():
                if name not in self.pairs:
                    self.pairs[name] = self._read(name, folders, read_pairs)
                ids = [p if isinstance(p, str) else p.id for p in self.pairs[name]]
                if len(ids) != len(part["correct"]):
                    raise ValueError(f"{model} · {name}: {len(part['correct'])} results for {len(ids)} pairs; "
                                     "the data changed since it was evaluated (evaluate again)")
                self.wrong[(model, name)] = [i for i, c in zip(ids, part["correct"]) if c == 0]
        if not self.wrong:
            raise ValueError("no per-pair results: pass evaluate_model's result(s) ({name: result} or one result)")
        self.summary = pd.DataFrame([{"model": m, "benchmark": b, "wrong": len(w), "pairs": len(self.pairs[b])}
                                     for (m, b), w in self.wrong.items()])
        self.model, self.benchmark = next(iter(self.wrong))
        self.pair = next(iter(self.wrong[(self.model, self.benchmark)]), None)
        self.refresh()

    def _read(self, name: str, folders: dict, read_pairs) -> list:
        if name == "held-out preference":
            from slamlib.data.corpora import read_preference_units

            return read_preference_units(self.root / "units" / self.profile.eval.preference_heldout).pair.tolist()
        if name not in folders:
            raise FileNotFoundError(f"{name}: the profile's benchmark folder is not in {self.root}")
        return read_pairs(folders[name])

    def options(self) -> list[tuple[str, str]]:
        """(label, id) of the selected model's first `max_pairs` wrong pairs on the selected benchmark."""
        wrong = set(self.wrong[(self.model, self.benchmark)][: self.max_pairs])
        return [(p, p) if isinstance(p, str) else (_pair_label(p), p.id)
                for p in self.pairs[self.benchmark] if (p if isinstance(p, str) else p.id) in wrong]

    def select(self, **choices):
        if ("model" in choices or "benchmark" in choices) and "pair" not in choices:
            key = (choices.get("model", self.model), choices.get("benchmark", self.benchmark))
            if key not in self.wrong and "benchmark" not in choices:  # another model: its first benchmark
                key = next(k for k in self.wrong if k[0] == key[0])
                choices["benchmark"] = key[1]
            if key not in self.wrong:
                raise ValueError(f"no results for {key[0]} on {key[1]}")
            choices["pair"] = next(iter(self.wrong[key]), None)
        return super().select(**choices)

    def _make_controls(self):
        models = list(dict.fromkeys(m for m, _ in self.wrong))
        benchmarks = list(dict.fromkeys(b for _, b in self.wrong))
        controls = {"model": _dropdown("model", models, self.model, "40%"),
                    "benchmark": _dropdown("benchmark", benchmarks, self.benchmark, "40%"),
                    "pair": _dropdown("wrong pair", self.options(), self.pair)}
        for key, control in controls.items():
            control.observe(self._on_change(key), "value")
        return controls

    def _sync(self):
        controls = self._controls
        controls["model"].value, controls["benchmark"].value = self.model, self.benchmark
        if controls["pair"].options != tuple(self.options()):
            controls["pair"].options = self.options()
        controls["pair"].value = self.pair

    def _view(self):
        wrong = self.wrong[(self.model, self.benchmark)]
        facts = {"model": self.model, "benchmark": self.benchmark, "wrong": wrong, "pair": self.pair}
        head = [self.summary, _line(f"{self.model} · {self.benchmark}:",
                                    f"{len(wrong)} of {len(self.pairs[self.benchmark])} pairs wrong")]
        if self.pair is None:
            return facts, head
        if self.benchmark == "held-out preference":
            corpus = self.profile.eval.preference_heldout
            pair = _preference_pair(self.root / "units" / corpus, self.pair)
            return {**facts, **pair}, [*head, *_preference_items(self.root, corpus, pair)]
        pair = _find_pair(self.pairs[self.benchmark], self.pair, self.benchmark)
        facts.update(positive=pair.positive, negative=pair.negative, info=pair.info)
        return facts, [*head, *_benchmark_items(self.benchmark, pair)]


def wrong_pairs_explorer(results: Mapping, run_dir, profile, *, max_pairs: int = MAX_IDS) -> WrongPairsExplorer:
    """The pairs a model gets wrong: `results` is one `evaluate_model` result or {model name: result}
    (notebook 06's `results`); the pairs are read from the profile's benchmark folders in the run.
    The first `max_pairs` wrong pairs of each benchmark are offered."""
    return WrongPairsExplorer(results, run_dir, profile, max_pairs)
