"""The speech language model: a Qwen2-family causal LM over units, TWIST-initialised.

TWIST initialisation (Hassid et al., 2023; the paper's §4.1) starts the speech LM from a
pretrained *text* LM: keep the transformer (every layer and the final norm), replace the text
vocabulary with the unit vocabulary, and train on. The paper's ablation, random initialisation,
builds the same architecture with fresh weights. Both come from `init_speech_lm`.
`twist_parts` chooses what is copied: the paper copies every decoder weight ("all"); the tiny
profile copies only the MLPs, because its text LM, a minute's training on a few thousand stories,
has attention patterns for words that hurt a model of units (README, "TWIST on the tiny world").

How the unit embeddings start: the text LM's embedding rows belong to text tokens and mean nothing
for units, so by default every unit embedding is drawn afresh from the model's own initialiser
(normal, std = `initializer_range`, 0.02 for Qwen2), exactly as random initialisation draws them.
SlamKit instead resizes the text embedding matrix and so keeps the first 502 text-token rows;
`unit_embeddings="text_rows"` does that, and the `slam` profile uses it, as the published models
were made. The embeddings are tied to the output
layer (Qwen2.5-0.5B ties them), so the same rows score the next unit.

Settings that differ from the text LM (SlamKit's, for the paper model): vocabulary = units + 2 with
`<PAD>`=0 and `<S>`=1 as BOS and EOS (so published Slam checkpoints use the same ids), rope
theta 10,000 (Qwen's default is 1,000,000), dropout 0, no KV cache in training.

A saved speech LM is a plain transformers checkpoint (`AutoModelForCausalLM.from_pretrained`
loads it) with the unit tokenizer beside it (`PreTrainedTokenizerFast.from_pretrained` loads it)
and the exact speech tokenizer it was trained with in `speech_tokenizer/`. `load_speech_lm` also
reads SlamKit's `UnitLM` folders (the published Slam models), and `slamlib.formats` writes either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from slamlib.tokenization.units import BOS_ID, EOS_ID, PAD_ID, UnitTokenizer

if TYPE_CHECKING:
    import pandas as pd

SPEECH_TOKENIZER_DIR = "speech_tokenizer"


def base_config(model_cfg):
    """The text LM's config: from its directory or hub id when given, else (offline) from the
    architecture numbers the profile carries."""
    from transformers import Qwen2Config

    arch = model_cfg.architecture
    return Qwen2Config(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, max_position_embeddings=arch.max_position_embeddings,
        rms_norm_eps=arch.rms_norm_eps, tie_word_embeddings=arch.tie_word_embeddings,
    )


def speech_config(text_config, n_units: int, rope_theta: float = 10_000.0):
    """A text LM config turned into the speech LM's: unit vocabulary, SlamKit ids, rope theta,
    no dropout."""
    config = text_config.__class__.from_dict(text_config.to_dict())
    config.vocab_size = UnitTokenizer(n_units).vocab_size
    config.pad_token_id, config.bos_token_id, config.eos_token_id = PAD_ID, BOS_ID, EOS_ID
    config.rope_parameters = {"rope_type": "default", "rope_theta": float(rope_theta)}
    config.attention_dropout = 0.0
    for name in ("hidden_dropout", "dropout", "embd_pdrop", "resid_pdrop"):
        if hasattr(config, name):
            setattr(config, name, 0.0)
    config.use_cache = False
    config.architectures = None
    return config


def count_parameters(model) -> int:
    """Parameters, each counted once (tied embeddings are one matrix)."""
    return sum(p.numel() for p in model.parameters())


def parameter_table(model) -> "pd.DataFrame":
    """Parameters by component: embeddings, attention, MLP, norms, output layer."""
    import pandas as pd

    groups: dict[str, int] = {}
    seen = set()
    for name, param in model.named_parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        group = weight_part(name)
        if group == "vocabulary":
            tied = model.config.tie_word_embeddings
            group = ("embeddings (tied to the output layer)" if tied else "embeddings") if "embed_tokens" in name \
                else "output layer"
        elif group == "mlp":
            group = "MLP"
        groups[group] = groups.get(group, 0) + param.numel()
    table = pd.DataFrame({"parameters": groups})
    table.loc["total"] = table.parameters.sum()
    table["share"] = (table.parameters / table.loc["total", "parameters"]).map("{:.1%}".format)
    return table


def build_on_meta(config):
    """The model for a config without allocating weights (counts and shapes only)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def init_speech_lm(model_cfg, n_units: int, *, init: str | None = None, base: str | os.PathLike | None = None,
                   seed: int = 0):
    """A speech LM with `n_units` units: TWIST-initialised from the text LM `base` (a hub id or
    local directory; default: the profile's) or randomly initialised (`init="random"`), with the
    same architecture either way."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from slamlib import hub

    init = init or model_cfg.init
    if init not in ("twist", "random"):
        raise ValueError(f"init must be 'twist' or 'random', not {init!r}")
    base = base or model_cfg.base
    text_model = None
    if init == "twist":
        path = hub.resolve_model(str(base), what="text LM to TWIST-initialise from")
        text_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        text_config = text_model.config
    elif base is not None and Path(str(base)).is_dir():
        text_config = AutoConfig.from_pretrained(base)
    else:  # the same architecture, known offline
        text_config = base_config(model_cfg)
    config = speech_config(text_config, n_units, model_cfg.rope_theta)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if text_model is not None:
        _transplant(text_model, model, model_cfg.unit_embeddings, model_cfg.twist_parts)
    model.config.slamlib_init = init  # recorded in config.json
    return model


TWIST_PARTS = ("attention", "mlp", "norms")


def weight_part(name: str) -> str:
    """Which part of a decoder a weight belongs to: "vocabulary" (embeddings, LM head),
    "attention", "mlp" or "norms"."""
    if name in ("model.embed_tokens.weight", "lm_head.weight"):
        return "vocabulary"
    if ".self_attn." in name:
        return "attention"
    if ".mlp." in name:
        return "mlp"
    if "norm" in name.rsplit(".", 2)[-2]:
        return "norms"
    raise ValueError(f"{name}: not a weight of a known decoder part ({', '.join(TWIST_PARTS)})")


def _transplant(text_model, speech_model, unit_embeddings: str, parts=("all",)) -> None:
    """Copy the text LM's weights of `parts` ("all", or some of "attention", "mlp", "norms"),
    never the vocabulary-sized ones; then set the unit embeddings. Weights not copied keep the
    random initialisation, identical to the random twin's drawn with the same seed."""
    parts = set(TWIST_PARTS if "all" in parts else parts)
    unknown = parts - set(TWIST_PARTS)
    if unknown:
        raise ValueError(f"model.twist_parts: unknown part(s) {sorted(unknown)}; "
                         f"choose from all, {', '.join(TWIST_PARTS)}")
    source = text_model.state_dict()
    target = speech_model.state_dict()
    missing = [k for k in target if weight_part(k) != "vocabulary" and k not in source]
    if missing:
        raise ValueError(f"the text LM lacks weights the speech LM needs: {missing[:5]} (architectures differ)")
    with torch.no_grad():
        for name, tensor in target.items():
            if weight_part(name) not in parts:
                continue
            if source[name].shape != tensor.shape:
                raise ValueError(f"{name}: text LM shape {tuple(source[name].shape)} != {tuple(tensor.shape)}")
            tensor.copy_(source[name])
        if unit_embeddings == "text_rows":
            rows = speech_model.config.vocab_size
            text_rows = text_model.get_input_embeddings().weight
            if text_rows.shape[0] < rows:
                raise ValueError(f"model.unit_embeddings=text_rows needs {rows} text embedding rows; the text LM has "
                                 f"{text_rows.shape[0]} (use model.unit_embeddings=normal)")
            speech_model.get_input_embeddings().weight.copy_(text_rows[:rows])
        elif unit_embeddings != "normal":
            raise ValueError(f"unit_embeddings must be 'normal' or 'text_rows', not {unit_embeddings!r}")
        # "normal": the rows drawn by from_config's initialiser stay, as in random initialisation
    if not speech_model.config.tie_word_embeddings:
        speech_model.get_output_embeddings().weight.data.copy_(speech_model.get_input_embeddings().weight.data)


def save_speech_lm(model, directory: str | os.PathLike, speech_tokenizer=None) -> Path:
    """A transformers checkpoint with the unit tokenizer and (when given) the speech tokenizer."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    n_units = model.config.vocab_size - 2
    UnitTokenizer(n_units).save(directory)
    if speech_tokenizer is not None:
        if speech_tokenizer.n_units != n_units:
            raise ValueError(f"the speech tokenizer has {speech_tokenizer.n_units} units, the model {n_units}")
        speech_tokenizer.save(directory / SPEECH_TOKENIZER_DIR)
    return directory


def load_speech_lm(ref: str | os.PathLike, *, device="cpu", dtype=torch.float32, speech_tokenizer=None,
                   tokenizer_config=None):
    """(model, speech tokenizer) from a saved speech LM (a local directory or a hub id), in
    slamlib's format or SlamKit's `UnitLM` format (`slamlib.formats`).

    A checkpoint without its own `speech_tokenizer/` (a published SlamKit checkpoint such as
    `slprl/slam`) gets `speech_tokenizer` if given, else the one `tokenizer_config` (a
    `TokenizerConfig`) describes, by default the `slam` profile's: mHuBERT-25Hz layer 11 with the
    official 500-unit k-means."""
    from slamlib import hub
    from slamlib.formats import load_causal_lm
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer, build_speech_tokenizer

    path = Path(hub.resolve_model(str(ref), what="speech language model"))
    try:
        model = load_causal_lm(path, dtype=dtype).to(device).eval()
    except Exception as err:  # a damaged weights file: the error itself names no path
        if type(err).__module__.split(".")[0] != "safetensors":
            raise
        raise ValueError(f"{path}: its weights cannot be read ({err}); the file is damaged: write the model "
                         "again (the step that made it, with --restart)") from err
    if speech_tokenizer is None:
        if (path / SPEECH_TOKENIZER_DIR / "speech_tokenizer.json").exists():
            speech_tokenizer = SpeechTokenizer.load(path / SPEECH_TOKENIZER_DIR, device=device)
        else:
            if tokenizer_config is None:
                from slamlib.profiles import SLAM

                tokenizer_config = SLAM.tokenizer
            if not tokenizer_config.kmeans:
                raise ValueError(f"{path} has no {SPEECH_TOKENIZER_DIR}/ of its own, and the profile's speech tokenizer "
                                 "fits its k-means on speech: use a profile with a pretrained k-means (--profile slam) "
                                 "or give one (--set tokenizer.kmeans=FILE)")
            speech_tokenizer = build_speech_tokenizer(tokenizer_config, device=device)
    if speech_tokenizer.unit_tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"{path}: the model's vocabulary ({model.config.vocab_size}) does not fit a "
                         f"{speech_tokenizer.n_units}-unit speech tokenizer")
    return model, speech_tokenizer


def describe(config) -> dict:
    """The settings that define a speech LM, for printing."""
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings", "rope_parameters",
            "attention_dropout", "pad_token_id", "bos_token_id", "eos_token_id", "use_cache")
    return {k: getattr(config, k) for k in keys if hasattr(config, k)}


def dry_run(profile) -> dict:
    """The speech LM a profile would build, resolved offline: its config and parameter count."""
    config = speech_config(base_config(profile.model), profile.tokenizer.n_units, profile.model.rope_theta)
    model = build_on_meta(config)
    return {"config": describe(config), "parameters": count_parameters(model),
            "table": parameter_table(model)}
