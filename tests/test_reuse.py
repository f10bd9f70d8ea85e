"""Reuse by content (`slamlib.reuse`): every stage reuses its product only when the settings and
inputs that made it are the ones asked for now; otherwise it names what changed in one line and
makes the product again. One test per stage: change one setting, it reruns; change nothing, it
reuses."""

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tiny_arch

from slamlib import reuse
from slamlib.data.speech_sample import prepare_speech_sample
from slamlib.model import init_speech_lm, save_speech_lm
from slamlib.profiles import ModelConfig, get_profile
from slamlib.reuse import SettingsChanged
from slamlib.runs import RunDir
from slamlib.text_lm import prepare_initial_models, train_text_lm
from slamlib.train.checkpoints import list_checkpoints, read_log
from slamlib.train.pretrain import pretrain

# the tiny profile with a one-layer model, a few text LM steps and a small tiny world
SMALL = {"model.text_lm.steps": 3, "model.text_lm.context": 64, "model.text_lm.batch_size": 2, "model.architecture.hidden_size": 32,
         "model.architecture.intermediate_size": 64, "model.architecture.num_hidden_layers": 1,
         "data.synthetic.n_stories": 40, "data.synthetic.n_read": 20, "data.synthetic.n_preference": 20}
TEXTS = ["one day tom found a red shell", "mia was sad", "they walked to the sea"] * 10


def small(**changes):
    return get_profile("tiny", {**SMALL, **changes})


def stamp(path):
    return path.stat().st_mtime_ns


def test_a_changed_setting_is_named_in_one_line(tmp_path, capsys):
    wanted = {"train.lr": 0.005, "seed": 0}
    assert not reuse.matches(tmp_path, wanted, what="x", redo="retraining")
    assert capsys.readouterr().out == ""  # nothing made yet: nothing to say
    reuse.record(tmp_path, wanted)
    assert reuse.matches(tmp_path, dict(reversed(wanted.items())), what="x", redo="retraining")
    assert not reuse.matches(tmp_path, {**wanted, "train.lr": 0.001}, what="models/pretrained", redo="retraining")
    assert capsys.readouterr().out == "models/pretrained: settings changed: train.lr 0.005 -> 0.001; retraining\n"


def test_an_input_is_known_by_its_record_or_its_files(tmp_path):
    folder = tmp_path / "units"
    folder.mkdir()
    (folder / "units_info.json").write_text('{"tokenizer": "a"}')
    key = reuse.content_key(folder)
    assert reuse.content_key(folder) == key
    (folder / "units_info.json").write_text('{"tokenizer": "b"}')  # same size, other content
    assert reuse.content_key(folder) != key
    reuse.record(folder, {"x": 1})
    assert reuse.content_key(folder) == reuse.digest({"x": 1})
    assert reuse.content_key("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"  # a hub id is its own key


def test_text_lm_trains_again_when_a_borrowed_training_setting_or_its_texts_change(tmp_path, capsys):
    first = train_text_lm(small(), tmp_path, TEXTS, progress=False)
    capsys.readouterr()
    weights = tmp_path / "model.safetensors"
    made = stamp(weights)
    assert train_text_lm(small(), tmp_path, TEXTS, progress=False) == first and stamp(weights) == made
    assert capsys.readouterr().out == ""
    old = small().train.max_grad_norm
    train_text_lm(small(**{"train.max_grad_norm": 0.25}), tmp_path, TEXTS, progress=False)
    out = capsys.readouterr().out
    assert f"text LM: settings changed: train.max_grad_norm {old} -> 0.25; training it again" in out
    assert stamp(weights) != made
    made = stamp(weights)
    train_text_lm(small(**{"train.max_grad_norm": 0.25}), tmp_path, TEXTS + ["a new story"], progress=False)
    assert "settings changed: texts " in capsys.readouterr().out and stamp(weights) != made


def test_initial_models_are_built_again_when_their_settings_or_text_lm_change(tmp_path, speech_tokenizer, capsys):
    run = RunDir(tmp_path)
    paths = prepare_initial_models(small(), run, speech_tokenizer, progress=False)
    capsys.readouterr()
    made = {name: stamp(path / "model.safetensors") for name, path in paths.items()}
    assert prepare_initial_models(small(), run, speech_tokenizer, progress=False) == paths
    assert {name: stamp(path / "model.safetensors") for name, path in paths.items()} == made
    assert capsys.readouterr().out == ""
    prepare_initial_models(small(**{"model.twist_parts": '["mlp", "norms"]'}), run, speech_tokenizer, progress=False)
    out = capsys.readouterr().out
    assert 'models/init_twist: settings changed: model.twist_parts ["mlp"] -> ["mlp", "norms"]; building it again' in out
    assert stamp(paths["twist"] / "model.safetensors") != made["twist"]
    made = stamp(paths["twist"] / "model.safetensors")
    prepare_initial_models(small(**{"model.twist_parts": '["mlp", "norms"]', "model.text_lm.lr": 0.01}), run,
                           speech_tokenizer, progress=False)
    out = capsys.readouterr().out
    assert "text LM: settings changed: model.text_lm.lr" in out
    assert "models/init_twist: settings changed: base_content" in out and stamp(paths["twist"] / "model.safetensors") != made


def write_units(folder, n=40, seed=0, units=16):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    docs = [rng.integers(0, units, rng.integers(20, 60)).tolist() for _ in range(n)]
    pq.write_table(pa.table({"id": [f"u{seed}-{i}" for i in range(n)], "units": pa.array(docs, pa.list_(pa.int32()))}),
                   folder / f"shard-{seed:05d}.parquet")


def test_pretraining_starts_again_when_a_setting_or_its_data_change(tmp_path, speech_tokenizer, capsys):
    start, units, out = tmp_path / "start", tmp_path / "units", tmp_path / "pretrained"
    save_speech_lm(init_speech_lm(ModelConfig(base=None, architecture=tiny_arch()), 16, init="random"), start,
                   speech_tokenizer)
    write_units(units)
    cfg = dataclasses.replace(small().train, context=128, batch_size=2, probe_steps=2, eval_every=2, save_every=3,
                              log_every=1)
    first = pretrain(start, [units], cfg, out, max_steps=4, progress=False)
    capsys.readouterr()
    assert not first.get("already_done") and [c.name for c in list_checkpoints(out)] == ["step-0000003"]
    again = pretrain(start, [units], cfg, out, max_steps=4, progress=False)
    assert again["already_done"] and capsys.readouterr().out == ""
    weights = (out / "model.safetensors").read_bytes()
    with pytest.raises(SettingsChanged, match=(  # by default a run made otherwise is kept, and named
            rf"{out} holds a run made otherwise \(settings changed: max_steps 4 -> 2; train.lr {cfg.lr} -> "
            rf"{cfg.lr / 2}\); --restart \(resume=False in Python\) trains again from the start")):
        pretrain(start, [units], dataclasses.replace(cfg, lr=cfg.lr / 2), out, max_steps=2, progress=False)
    assert (out / "model.safetensors").read_bytes() == weights and list_checkpoints(out)
    changed = pretrain(start, [units], dataclasses.replace(cfg, lr=cfg.lr / 2), out, max_steps=2, progress=False,
                       on_change="restart")  # as the notebooks ask
    assert f"settings changed: max_steps 4 -> 2; train.lr {cfg.lr} -> {cfg.lr / 2}; training again from the start" \
        in capsys.readouterr().out
    # a new run, not the old one continued: its own log and checkpoints only
    assert not changed.get("already_done") and not changed["resumed"] and changed["steps"] == 2
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1, 2]
    assert list_checkpoints(out) == []
    write_units(units, seed=1)  # more data
    with pytest.raises(SettingsChanged, match=rf"settings changed: data {tmp_path.name}/units "):
        pretrain(start, [units], dataclasses.replace(cfg, lr=cfg.lr / 2), out, max_steps=2, progress=False)
    more = pretrain(start, [units], dataclasses.replace(cfg, lr=cfg.lr / 2), out, max_steps=2, progress=False,
                    resume=False)  # --restart
    assert not more.get("already_done") and more["documents"] == 80


def test_a_speech_sample_of_other_settings_is_made_again(tmp_path, capsys):
    profile = get_profile("tiny", {"speech_sample.n_utterances": 3})
    folder = prepare_speech_sample(profile, tmp_path / "sample", progress=False)
    capsys.readouterr()
    first = (folder / "metadata.csv").read_text()
    made = stamp(folder / "utt-00000.wav")
    assert (prepare_speech_sample(profile, folder, progress=False) / "metadata.csv").read_text() == first
    assert stamp(folder / "utt-00000.wav") == made and capsys.readouterr().out == ""
    prepare_speech_sample(dataclasses.replace(profile, seed=1), folder, progress=False)
    assert "settings changed: seed 0 -> 1; making it again" in capsys.readouterr().out
    assert (folder / "metadata.csv").read_text() != first  # other sentences for the same file names
