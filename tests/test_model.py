import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import tiny_arch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from slamlib.hub import AssetUnavailableError
from slamlib.model import (
    count_parameters,
    dry_run,
    init_speech_lm,
    load_speech_lm,
    parameter_table,
    save_speech_lm,
    weight_part,
)
from slamlib.profiles import ModelConfig, get_profile
from slamlib.runs import RunDir
from slamlib.text_lm import (
    char_tokenizer,
    char_vocabulary,
    prepare_initial_models,
    train_text_lm,
    word_tokenizer,
    word_vocabulary,
)
from slamlib.train.checkpoints import read_log

ARCH = tiny_arch(vocab_size=300, max_position_embeddings=256)


@pytest.fixture(scope="module")
def text_lm_dir(tmp_path_factory):
    """A small random text LM saved the way a hub model is (a Qwen2 with a 300-token vocabulary)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("text-lm")
    Qwen2ForCausalLM(Qwen2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6,
                                 tie_word_embeddings=True)).save_pretrained(path)
    return path


def cfg(base):
    return ModelConfig(base=str(base), architecture=ARCH)


def test_paper_model_has_358_347_904_parameters_offline():
    result = dry_run(get_profile("slam"))
    assert result["parameters"] == 358_347_904
    assert result["config"]["vocab_size"] == 502 and result["config"]["hidden_size"] == 896
    assert result["config"]["rope_parameters"]["rope_theta"] == 10_000
    table = result["table"]
    assert table.loc["total", "parameters"] == 358_347_904
    assert table.loc["embeddings (tied to the output layer)", "parameters"] == 502 * 896


def test_init_dry_run_cli():
    from test_cli import slamlib_cli

    result, summary = slamlib_cli("init", "--profile", "slam", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert summary["parameters"] == 358_347_904 and summary["dry_run"]
    assert "MLP" in result.stdout and '"num_key_value_heads": 2' in result.stdout


def test_twist_keeps_the_transformer_and_replaces_the_vocabulary(text_lm_dir):
    base = AutoModelForCausalLM.from_pretrained(text_lm_dir)
    twist = init_speech_lm(cfg(text_lm_dir), 500, init="twist", seed=1)
    random = init_speech_lm(cfg(text_lm_dir), 500, init="random", seed=1)
    c = twist.config
    assert (c.vocab_size, c.pad_token_id, c.bos_token_id, c.eos_token_id) == (502, 0, 1, 1)
    assert c.rope_parameters["rope_theta"] == 10_000 and c.attention_dropout == 0 and not c.use_cache
    assert count_parameters(twist) == count_parameters(random) == count_parameters(base) + (502 - 300) * 32
    text_weights = base.state_dict()
    for name, tensor in twist.state_dict().items():
        if "embed_tokens" in name or "lm_head" in name:
            continue
        assert torch.equal(tensor, text_weights[name]), name
        assert not torch.equal(random.state_dict()[name], text_weights[name]) or tensor.ndim == 1
    # unit embeddings start exactly as random initialisation draws them, and are tied to the output
    assert torch.equal(twist.get_input_embeddings().weight, random.get_input_embeddings().weight)
    assert twist.get_output_embeddings().weight.data_ptr() == twist.get_input_embeddings().weight.data_ptr()
    std = twist.get_input_embeddings().weight.std().item()
    assert 0.01 < std < 0.03  # N(0, initializer_range = 0.02)


def test_twist_parts_copy_only_the_chosen_parts(text_lm_dir):
    base = AutoModelForCausalLM.from_pretrained(text_lm_dir).state_dict()
    mlp_only = init_speech_lm(dataclasses.replace(cfg(text_lm_dir), twist_parts=("mlp",)), 500, seed=1).state_dict()
    random = init_speech_lm(cfg(text_lm_dir), 500, init="random", seed=1).state_dict()
    parts = {weight_part(name) for name in mlp_only}
    assert parts == {"vocabulary", "attention", "mlp", "norms"}
    for name, tensor in mlp_only.items():
        # the MLPs come from the text LM; everything else is the random twin's, weight for weight
        assert torch.equal(tensor, base[name] if weight_part(name) == "mlp" else random[name]), name
    with pytest.raises(ValueError, match="twist_parts.*'ffn'"):
        init_speech_lm(dataclasses.replace(cfg(text_lm_dir), twist_parts=("ffn",)), 500)
    assert get_profile("tiny").model.twist_parts == ("mlp",) and get_profile("slam").model.twist_parts == ("all",)


def test_text_rows_option_copies_the_first_text_rows(text_lm_dir):
    base = AutoModelForCausalLM.from_pretrained(text_lm_dir)
    twist = init_speech_lm(dataclasses.replace(cfg(text_lm_dir), unit_embeddings="text_rows"), 100, init="twist")
    assert torch.equal(twist.get_input_embeddings().weight, base.get_input_embeddings().weight[:102])


def test_mismatched_architectures_are_refused(text_lm_dir, tmp_path):
    other = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    model = init_speech_lm(cfg(text_lm_dir), 10, init="random")
    from slamlib.model import _transplant

    with pytest.raises(ValueError, match="lacks weights|shape"):
        _transplant(other, model, "normal")
    with pytest.raises(ValueError, match="init must be"):
        init_speech_lm(cfg(text_lm_dir), 10, init="zero")


def test_random_init_needs_no_network(tmp_path):
    model = init_speech_lm(get_profile("tiny").model.__class__(base="Qwen/Qwen2.5-0.5B", architecture=ARCH), 8,
                           init="random")
    assert model.config.vocab_size == 10 and model.config.hidden_size == 32
    with pytest.raises(AssetUnavailableError, match="Qwen/Qwen2.5-0.5B"):
        init_speech_lm(get_profile("slam").model, 500, init="twist")


def test_checkpoint_is_plain_transformers_and_carries_its_speech_tokenizer(text_lm_dir, speech_tokenizer, tmp_path, speech):
    model = init_speech_lm(cfg(text_lm_dir), 16, init="twist")
    save_speech_lm(model, tmp_path / "lm", speech_tokenizer)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    assert plain.config.vocab_size == 18
    units = PreTrainedTokenizerFast.from_pretrained(tmp_path / "lm")
    assert units("<S><u3><S>", add_special_tokens=False)["input_ids"] == [1, 5, 1]
    loaded, tokenizer = load_speech_lm(tmp_path / "lm")
    assert tokenizer.fingerprint() == speech_tokenizer.fingerprint()
    ids = torch.tensor([tokenizer.encode(speech[0][2])])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model.eval()(ids).logits, atol=1e-5)
    with pytest.raises(ValueError, match="has 16 units, the model 10"):
        save_speech_lm(init_speech_lm(cfg(text_lm_dir), 10, init="random"), tmp_path / "x", speech_tokenizer)


def test_a_published_checkpoint_without_speech_tokenizer(text_lm_dir, speech_tokenizer, tmp_path):
    """SlamKit checkpoints hold only the model: they get the paper's tokenizer (offline: a clear
    error naming mHuBERT) or the one given."""
    save_speech_lm(init_speech_lm(cfg(text_lm_dir), 16, init="random"), tmp_path / "published")
    with pytest.raises(AssetUnavailableError, match="mhubert-base-25hz"):
        load_speech_lm(tmp_path / "published")
    model, tokenizer = load_speech_lm(tmp_path / "published", speech_tokenizer=speech_tokenizer)
    assert tokenizer is speech_tokenizer


def test_word_tokenizer_round_trip():
    texts = ["One day, Tom found a red kite.", "Tom's kite was red!"]
    tok = word_tokenizer(word_vocabulary(texts))
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) == 9  # 7 words, a comma, a full stop
    assert tok.decode(ids).replace(" ,", ",").replace(" .", ".") == texts[0].lower()
    assert tok("zebra", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_char_tokenizer_round_trip():
    texts = ["One day, Tom found a red kite.", "Tom's kite was red!"]
    tok = char_tokenizer(char_vocabulary(texts))
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) == len(texts[0])  # one id per character, spaces too
    assert tok.decode(ids) == texts[0].lower()
    assert tok("z", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_char_text_lm_saves_a_loadable_tokenizer(tmp_path):
    profile = get_profile("tiny", {"model.text_lm.steps": 4, "model.text_lm.batch_size": 8,
                                   "model.text_lm.context": 64, "model.text_lm.vocabulary": "char"})
    summary = train_text_lm(profile, tmp_path / "text_lm", texts=["Tom saw a red kite.", "Mia saw a kite."] * 20,
                            progress=False)
    assert summary["vocabulary"] == 3 + len(set("tom saw a red kite.mi"))
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path / "text_lm")
    assert tok.decode(tok("a red kite", add_special_tokens=False)["input_ids"]) == "a red kite"
    with pytest.raises(ValueError, match="model.text_lm.vocabulary='bytes'"):
        train_text_lm(get_profile("tiny", {"model.text_lm.vocabulary": "bytes"}), tmp_path / "other", texts=["a"])


def test_tiny_text_lm_trains_and_is_reused(tmp_path):
    profile = get_profile("tiny", {"model.text_lm.steps": 8, "model.text_lm.batch_size": 8,
                                   "model.text_lm.context": 64})
    texts = [f"One day, {n} found a {c} kite. In the end, {n} was happy about the {c} kite."
             for n in ("Tom", "Mia", "Ben", "Ivy") for c in ("red", "blue", "green", "gold")] * 5
    summary = train_text_lm(profile, tmp_path / "text_lm", texts=texts, progress=False)
    assert summary["final_loss"] < summary["first_loss"] and summary["vocabulary"] < 40
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "text_lm")
    assert model.config.hidden_size == profile.model.architecture.hidden_size
    assert PreTrainedTokenizerFast.from_pretrained(tmp_path / "text_lm")("tom", add_special_tokens=False)["input_ids"]
    again = train_text_lm(profile, tmp_path / "text_lm", texts=texts, progress=False)
    assert again == json.loads((tmp_path / "text_lm" / "text_lm.json").read_text())["summary"]


def write_units(folder, n=40, seed=0, units=16):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    docs = [rng.integers(0, units, rng.integers(20, 60)).tolist() for _ in range(n)]
    pq.write_table(pa.table({"id": [f"u{i}" for i in range(n)], "units": pa.array(docs, pa.list_(pa.int32()))}),
                   folder / "shard-00000.parquet")


def test_init_and_train_commands(tmp_path, speech_tokenizer):
    from test_cli import slamlib_cli

    run = RunDir(tmp_path / "run")
    speech_tokenizer.save(run.root / "speech_tokenizer")
    write_units(run.root / "units" / "spoken_stories")
    write_units(run.root / "units" / "read_speech", seed=1)
    small = ["--set", "model.text_lm.steps=5", "--set", "model.text_lm.context=64",
             "--set", "model.architecture.hidden_size=32", "--set", "model.architecture.intermediate_size=64",
             "--set", "model.architecture.num_hidden_layers=1", "--set", "train.context=128",
             "--set", "train.batch_size=2", "--set", "train.probe_steps=2", "--set", "train.eval_every=4",
             "--set", "train.save_every=4"]
    # the tiny text LM trains on the tiny world's texts: keep that world small here
    small += ["--set", "data.synthetic.n_stories=40", "--set", "data.synthetic.n_read=20",
              "--set", "data.synthetic.n_preference=20"]
    result, init = slamlib_cli("init", "--profile", "tiny", "--out", str(run.root), "--quiet", *small)
    assert result.returncode == 0, result.stderr
    assert set(init["models"]) == {"twist", "random"} and init["parameters"]["twist"] == init["parameters"]["random"]
    result, summary = slamlib_cli("train", "--profile", "tiny", "--data", str(run.root), "--out",
                                  str(run.root / "models" / "pretrained"), "--max-steps", "6", "--quiet", *small)
    assert result.returncode == 0, result.stderr
    # held-out loss on the same documents before and after (the training losses come from different batches)
    valid = [r["valid_loss"] for r in read_log(run.root / "models" / "pretrained") if r.get("valid_loss") is not None]
    assert summary["steps"] == 6 and valid[-1] < valid[0]
    assert summary["data"][0].endswith("units/spoken_stories")
    model, tokenizer = load_speech_lm(run.root / "models" / "pretrained")
    assert tokenizer.fingerprint() == speech_tokenizer.fingerprint()
    result, again = slamlib_cli("train", "--profile", "tiny", "--data", str(run.root), "--out",
                                str(run.root / "models" / "pretrained"), "--max-steps", "6", "--quiet", *small)
    assert again["already_done"] and again["steps"] == 6
    result, missing = slamlib_cli("train", "--profile", "tiny", "--data", str(tmp_path / "nothing"), "--out",
                                  str(tmp_path / "o"), "--max-steps", "2", "--quiet")
    assert result.returncode == 1 and "run notebook 03" in missing["error"]


def test_prepare_initial_models_is_idempotent(text_lm_dir, speech_tokenizer, tmp_path):
    profile = dataclasses.replace(get_profile("slam"), model=cfg(text_lm_dir))
    run = RunDir(tmp_path)
    paths = prepare_initial_models(profile, run, speech_tokenizer, progress=False)
    stamp = (paths["twist"] / "model.safetensors").stat().st_mtime_ns
    assert prepare_initial_models(profile, run, speech_tokenizer, progress=False) == paths
    assert (paths["twist"] / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((paths["random"] / "init.json").read_text())["init"] == "random"
    assert parameter_table(load_speech_lm(paths["twist"])[0]).loc["total", "parameters"] > 0
