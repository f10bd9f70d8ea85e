"""Speech LM checkpoint formats (`slamlib.formats`): SlamKit's UnitLM folders read with the logits of
the network they wrap, both formats written, and anything else refused by name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from slamlib import standins
from slamlib.formats import CheckpointFormatError, export_speech_lm, load_causal_lm, read_config
from slamlib.model import load_speech_lm

UNITS = torch.tensor([[1, 2, 9, 300, 501, 77, 77, 1]])  # <S> units <S>, ids up to 501 (unit 499)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The same random network as SlamKit publishes it (UnitLM) and as a plain transformers folder."""
    root = tmp_path_factory.mktemp("formats")
    standins._slamkit_checkpoint(root / "unitlm", seed=3)
    standins._plain_speech_lm(root / "plain", seed=3)
    return root


def weight_names(folder) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return set(f.keys())


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(UNITS).logits


def test_a_unitlm_folder_is_what_slamkit_publishes(folders):
    config = read_config(folders / "unitlm")
    assert config["model_type"] == "speech_language_model" and config["architectures"] == ["UnitLM"]
    assert config["vocab_size"] == 502 and config["base_config"]["vocab_size"] == 151936
    names = weight_names(folders / "unitlm")
    assert "lm.model.embed_tokens.weight" in names and "lm.model.layers.1.mlp.up_proj.weight" in names
    assert all(n.startswith("lm.") for n in names) and "lm.lm_head.weight" not in names  # tied


def test_a_unitlm_folder_loads_with_the_logits_of_the_network_it_wraps(folders):
    unitlm, plain = load_causal_lm(folders / "unitlm"), load_causal_lm(folders / "plain")
    assert type(unitlm).__name__ == "Qwen2ForCausalLM"
    assert unitlm.config.vocab_size == 502 and unitlm.config.rope_parameters["rope_theta"] == 10_000
    assert (unitlm.config.pad_token_id, unitlm.config.bos_token_id, unitlm.config.eos_token_id) == (0, 1, 1)
    assert torch.equal(logits(unitlm), logits(plain))
    assert unitlm.lm_head.weight.data_ptr() == unitlm.model.embed_tokens.weight.data_ptr()  # tied again


def test_a_unitlm_folder_loads_in_the_dtype_it_was_written_in(folders):
    model = load_causal_lm(folders / "unitlm", dtype=torch.bfloat16)
    with safe_open(str(folders / "unitlm" / "model.safetensors"), "pt") as f:
        stored = f.get_tensor("lm.model.layers.0.self_attn.q_proj.weight")
    assert stored.dtype == torch.bfloat16
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, stored)


def test_load_speech_lm_gives_a_unitlm_folder_the_profiles_speech_tokenizer(folders):
    sentinel = type("Tok", (), {"unit_tokenizer": type("U", (), {"vocab_size": 502})(), "n_units": 500})()
    model, tokenizer = load_speech_lm(folders / "unitlm", speech_tokenizer=sentinel)
    assert tokenizer is sentinel and model.config.vocab_size == 502 and not model.training


def test_export_to_slamkit_writes_the_published_layout(folders, tmp_path):
    out = export_speech_lm(folders / "plain", tmp_path / "exported", "slamkit")
    exported, published = read_config(out), read_config(folders / "unitlm")
    assert set(exported) == set(published)  # the same fields as SlamKit's UnitLMConfig saves
    assert set(published["base_config"]) <= set(exported["base_config"])
    for key in ("model_type", "architectures", "vocab_size", "base_model_name", "tie_word_embeddings", "torch_dtype",
                "rope_theta"):
        assert exported[key] == published[key], key
    for key in ("model_type", "hidden_size", "num_hidden_layers", "rope_theta", "pad_token_id", "bos_token_id"):
        assert exported["base_config"][key] == published["base_config"][key], key
    assert weight_names(out) == weight_names(folders / "unitlm")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.get_tensor("lm.model.norm.weight").dtype == torch.bfloat16
    assert torch.equal(logits(load_causal_lm(out)), logits(load_causal_lm(folders / "plain")))


def test_export_to_transformers_loads_without_slamlib(folders, tmp_path):
    from transformers import AutoModelForCausalLM

    out = export_speech_lm(folders / "unitlm", tmp_path / "plain", "transformers", dtype="float32")
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert torch.equal(logits(model), logits(load_causal_lm(folders / "unitlm")))
    assert (out / "tokenizer.json").exists()  # the unit tokenizer, as slamlib saves a model


def test_export_keeps_a_full_folder_and_leaves_nothing_half_written(folders, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken"):
        export_speech_lm(folders / "plain", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    with pytest.raises(ValueError, match="format"):
        export_speech_lm(folders / "plain", tmp_path / "new", "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_folder_in_neither_format_is_refused_by_name(tmp_path):
    from transformers import HubertConfig

    with pytest.raises(CheckpointFormatError, match="no config.json") as err:
        load_causal_lm(tmp_path)
    assert str(tmp_path) in str(err.value) and "UnitLM" in str(err.value)
    HubertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path / "encoder")
    with pytest.raises(CheckpointFormatError, match="hubert") as err:
        load_causal_lm(tmp_path / "encoder")
    assert str(tmp_path / "encoder") in str(err.value) and "speech_language_model" in str(err.value)


def test_a_damaged_unitlm_folder_names_what_is_wrong(folders, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folders / "unitlm", broken)
    config = json.loads((broken / "config.json").read_text())
    del config["base_config"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match="base_config"):
        load_causal_lm(broken)
    shutil.copy(folders / "unitlm" / "config.json", broken / "config.json")
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="model.safetensors|weights") as err:
        load_causal_lm(broken)
    assert str(broken) in str(err.value)
