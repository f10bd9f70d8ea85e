"""Speech LM checkpoint formats: slamlib's folder and SlamKit's `UnitLM` folder, read and written.

slamlib saves a speech LM as a plain transformers causal LM (`Qwen2ForCausalLM` over units + 2 ids,
`AutoModelForCausalLM` loads it) with its unit and speech tokenizers beside it. SlamKit, which made
the published Slam models (`slprl/slam`, `slprl/slam_scaled`), wraps the same causal LM in a
`UnitLM` and saves the wrapper, so its folders differ in three ways:

- `config.json` has `model_type: "speech_language_model"`, `architectures: ["UnitLM"]`, the unit
  vocabulary size (`vocab_size`: 502), `base_model_name`, `twist_init`, and the wrapped LM's whole
  config as a dictionary under `base_config` (its `vocab_size` may still be the text LM's: SlamKit
  resizes the embeddings after building the LM, so the outer `vocab_size` is the one that holds);
- every weight name starts with `lm.` (`lm.model.layers.0.mlp.up_proj.weight`, ...), and with tied
  embeddings only `lm.model.embed_tokens.weight` is stored;
- no tokenizer: SlamKit knows the unit ids (`<PAD>`=0, `<S>`=1, unit u -> u + 2) and the speech
  tokenizer (mHuBERT-25Hz layer 11, the TWIST 500-unit k-means) from its own configs.

`load_causal_lm(path)` reads either format into a transformers causal LM (the same logits: the
weights are the same tensors under shorter names); `export_speech_lm` writes either format.
Anything else fails with one message naming the folder and the two formats.

>>> checkpoint_format({"model_type": "speech_language_model", "base_config": {"model_type": "qwen2"}})
'slamkit'
>>> checkpoint_format({"model_type": "qwen2"})
'transformers'
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

SLAMKIT_MODEL_TYPE = "speech_language_model"
SLAMKIT_PREFIX = "lm."
FORMATS = ("transformers", "slamkit")
ACCEPTED = ("a slamlib / transformers causal LM folder (config.json with a model_type that "
            "AutoModelForCausalLM knows, e.g. qwen2) or a SlamKit UnitLM folder (config.json with "
            f"model_type {SLAMKIT_MODEL_TYPE!r}, the LM's config under base_config, weights named lm.*)")
# Keys of a saved config that describe how it was saved, not the model.
_SAVE_KEYS = ("torch_dtype", "dtype", "_name_or_path", "transformers_version", "architectures", "model_type")
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class CheckpointFormatError(ValueError):
    """A folder that is not a speech LM in a format slamlib reads."""


def read_config(path: str | os.PathLike) -> dict:
    """The folder's config.json as a dictionary, or a CheckpointFormatError naming the folder."""
    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise CheckpointFormatError(f"{path}: no config.json, so not a speech LM folder; accepted: {ACCEPTED}")
    try:
        data = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointFormatError(f"{config}: not valid JSON ({err}); accepted: {ACCEPTED}") from None
    if not isinstance(data, dict):
        raise CheckpointFormatError(f"{config}: not a JSON object; accepted: {ACCEPTED}")
    return data


def checkpoint_format(config: dict) -> str:
    """"slamkit" for a SlamKit UnitLM config, "transformers" for any other model type."""
    model_type = config.get("model_type")
    if model_type == SLAMKIT_MODEL_TYPE:
        if not isinstance(config.get("base_config"), dict) or "model_type" not in config["base_config"]:
            raise CheckpointFormatError(f"a {SLAMKIT_MODEL_TYPE} config needs the base LM's config (with its "
                                        "model_type) under base_config")
        return "slamkit"
    if not model_type:
        raise CheckpointFormatError(f"config.json has no model_type; accepted: {ACCEPTED}")
    return "transformers"


# --- reading ---------------------------------------------------------------------------------------

def load_causal_lm(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """A transformers causal LM from a folder in either format, in `dtype`."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    config = read_config(path)
    try:
        fmt = checkpoint_format(config)
    except CheckpointFormatError as err:
        raise CheckpointFormatError(f"{path / 'config.json'}: {err}") from None
    if fmt == "slamkit":
        return load_slamkit(path, config, dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (ValueError, KeyError) as err:
        if "model type" in str(err) or "Unrecognized" in str(err) or isinstance(err, KeyError):
            raise CheckpointFormatError(f"{path}: model_type {config.get('model_type')!r} is not a causal LM "
                                        f"transformers knows ({err}); accepted: {ACCEPTED}") from None
        raise


def slamkit_base_config(config: dict):
    """The wrapped LM's transformers config from a UnitLM config.json: `base_config`, with the
    unit vocabulary, SlamKit's special ids and the embedding tying of the wrapper."""
    from transformers import AutoConfig

    base = {k: v for k, v in config["base_config"].items() if k not in _SAVE_KEYS}
    if "vocab_size" not in config:
        raise CheckpointFormatError("a UnitLM config.json needs vocab_size (units + 2)")
    base["vocab_size"] = int(config["vocab_size"])
    for key, default in (("pad_token_id", 0), ("bos_token_id", 1), ("eos_token_id", 1)):
        base[key] = base.get(key) if base.get(key) is not None else config.get(key, default)
    base["tie_word_embeddings"] = config.get("tie_word_embeddings", base.get("tie_word_embeddings", True))
    out = AutoConfig.for_model(config["base_config"]["model_type"], **base)
    out.architectures = config["base_config"].get("architectures")
    return out


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a saved model: `model.safetensors`, its sharded form, or `pytorch_model.bin`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    single, index, pickled = path / "model.safetensors", path / "model.safetensors.index.json", path / "pytorch_model.bin"
    try:
        if single.is_file():
            return load_file(single)
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            weights = {}
            for shard in shards:
                weights.update(load_file(path / shard))
            return weights
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise CheckpointFormatError(f"{path}: its weights cannot be read ({type(err).__name__}: {err})") from None
    if pickled.is_file():
        return torch.load(pickled, map_location="cpu", weights_only=True)
    raise CheckpointFormatError(f"{path}: no weights (model.safetensors, model.safetensors.index.json or "
                                "pytorch_model.bin)")


def load_slamkit(path: str | os.PathLike, config: dict | None = None, dtype: torch.dtype = torch.float32):
    """A SlamKit UnitLM folder as the transformers causal LM it wraps: the base config from
    `base_config`, the weights with their `lm.` prefix removed."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    config = config if config is not None else read_config(path)
    try:
        lm_config = slamkit_base_config(config)
    except (CheckpointFormatError, ValueError, KeyError) as err:
        raise CheckpointFormatError(f"{path / 'config.json'}: {err}") from None
    weights = read_weights(path)
    foreign = [k for k in weights if not k.startswith(SLAMKIT_PREFIX)]
    if foreign:
        raise CheckpointFormatError(f"{path}: weights {foreign[:3]} lack the UnitLM prefix {SLAMKIT_PREFIX!r}")
    state = {k[len(SLAMKIT_PREFIX):]: v.to(dtype) for k, v in weights.items()}
    model = AutoModelForCausalLM.from_config(lm_config, dtype=dtype)
    expected = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})" for k, v in state.items()
             if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise CheckpointFormatError(f"{path}: weights do not fit its config.json: {wrong[:3]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if lm_config.tie_word_embeddings else set()
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise CheckpointFormatError(f"{path}: weights missing {missing[:3]}, unexpected {unexpected[:3]}")
    if lm_config.tie_word_embeddings:
        model.tie_weights()
    model.config.name_or_path = str(path)
    return model


# --- writing ---------------------------------------------------------------------------------------

def slamkit_config(model, *, base_model_name: str, dtype: str) -> dict:
    """config.json of a UnitLM wrapping `model`, with the fields SlamKit's UnitLMConfig saves.
    `base_config` also carries the older names (`rope_theta`, `torch_dtype`) that the
    transformers 4.x releases SlamKit was written for read."""
    base = model.config.to_dict()
    base.pop("slamlib_init", None)
    base["architectures"] = [type(model).__name__]
    base["_name_or_path"] = base_model_name
    base["torch_dtype"] = base["dtype"] = dtype
    rope = base.get("rope_parameters") or {}
    if "rope_theta" in rope:
        base["rope_theta"] = rope["rope_theta"]
    base.setdefault("rope_scaling", None)
    import transformers

    # UnitLMConfig takes pad/bos/eos as arguments and hands them to the base config only, so the
    # wrapper's own config.json does not carry them; the rope theta it was given it does.
    return {
        "architectures": ["UnitLM"],
        "model_type": SLAMKIT_MODEL_TYPE,
        "base_model_name": base_model_name,
        "base_config": base,
        "vocab_size": model.config.vocab_size,
        "twist_init": getattr(model.config, "slamlib_init", "twist") == "twist",
        "use_cache": False,
        "rope_theta": base.get("rope_theta"),
        "trust_remote_code": None,
        "use_safetensors": None,
        "max_position_embeddings": model.config.max_position_embeddings,
        "tie_word_embeddings": model.config.tie_word_embeddings,
        "torch_dtype": dtype,
        "transformers_version": transformers.__version__,
    }


def slamkit_weights(model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's tensors under UnitLM's names; with tied embeddings the output layer is the
    input embedding and is not stored twice (transformers keeps `embed_tokens`)."""
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    return {SLAMKIT_PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}


def _write_slamkit(model, folder: Path, *, base_model_name: str, dtype: str) -> None:
    from safetensors.torch import save_file

    config = slamkit_config(model, base_model_name=base_model_name, dtype=dtype)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = {"pad_token_id": model.config.pad_token_id, "bos_token_id": model.config.bos_token_id,
                  "eos_token_id": model.config.eos_token_id}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_file(slamkit_weights(model, _DTYPES[dtype]), folder / "model.safetensors", metadata={"format": "pt"})


def export_speech_lm(ref: str | os.PathLike, out: str | os.PathLike, fmt: str = "slamkit", *,
                     dtype: str = "bfloat16", base_model_name: str = "Qwen/Qwen2.5-0.5B") -> Path:
    """Write the speech LM at `ref` (either format) to the new folder `out` in format `fmt`.

    "slamkit": config.json, generation_config.json and model.safetensors as SlamKit saves a UnitLM,
    in `dtype` (SlamKit's Slam models are bfloat16); `base_model_name` is the text LM SlamKit
    reads the base config of (every field is then overridden by `base_config`).
    "transformers": slamlib's own folder (weights in `dtype`, the unit tokenizer beside them).
    A speech tokenizer of the model's own is copied to `out/speech_tokenizer/` either way (SlamKit
    ignores it). `out` must not exist or be empty: nothing already there is overwritten, and a
    failed export leaves no half-written folder.
    """
    from slamlib.model import SPEECH_TOKENIZER_DIR
    from slamlib.tokenization.units import UnitTokenizer

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, not {dtype!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; export writes a new folder")
    source = _local_model(ref)
    model = load_causal_lm(source, dtype=torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "slamkit":
            _write_slamkit(model, staging, base_model_name=base_model_name, dtype=dtype)
        else:
            model.to(_DTYPES[dtype]).save_pretrained(staging)
            UnitTokenizer(model.config.vocab_size - 2).save(staging)
        if (source / SPEECH_TOKENIZER_DIR).is_dir():
            shutil.copytree(source / SPEECH_TOKENIZER_DIR, staging / SPEECH_TOKENIZER_DIR)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def _local_model(ref: str | os.PathLike) -> Path:
    from slamlib import hub

    return Path(hub.resolve_model(str(ref), what="speech language model"))
