"""Bad values are refused where they enter, before any work starts, naming the setting and the
value; operating-system and file-format failures end a command with one line, not a traceback."""

import dataclasses
import errno

import pytest
from conftest import tiny_arch
from test_cli import slamlib_cli

from slamlib import cli
from slamlib.checks import check_settings
from slamlib.profiles import ModelConfig, get_profile


@pytest.mark.parametrize("key, value, said", [
    ("train.max_steps", "0", "train.max_steps=0: expected a whole number of at least 1"),
    ("train.max_steps", "-5", "train.max_steps=-5: expected a whole number of at least 1"),
    ("train.max_steps", "2.5", "train.max_steps='2.5': expected a whole number"),
    ("train.batch_size", "2.5", "train.batch_size='2.5': expected a whole number"),
    ("train.lr", "nan", "train.lr=nan: expected a finite number above 0"),
    ("train.lr", "fast", "train.lr='fast': expected a number"),
    ("dpo.beta", "-0.1", "dpo.beta=-0.1: expected a finite number above 0"),
    ("train.warmup_ratio", "1.5", "train.warmup_ratio=1.5: expected a probability, from 0 to 1"),
    ("train.budget", "0s", "train.budget='0s': expected a duration above 0"),
    ("dpo.budget", "soon", "dpo.budget='soon': expected a duration above 0"),
    ("eval.n_generations", "-1", "eval.n_generations=-1: expected a whole number of at least 1"),
    ("eval.generation.temperature", "inf", "eval.generation.temperature=inf: expected a finite number above 0"),
    ("eval.score", "median", "eval.score='median': expected one of ['mean', 'sum']"),
    ("data.synthetic.n_stories", "0", "data.synthetic.n_stories=0: expected a whole number of at least 1"),
    ("train.compile", "1", "train.compile='1': expected true or false"),
    ("train.adam_betas", "[0.9, 1.0]", "train.adam_betas=(0.9, 1.0): expected two numbers from 0 up to"),
    ("train.max_step", "5", "no setting 'train.max_step'"),
])
def test_a_bad_setting_is_named_with_its_value(key, value, said):
    with pytest.raises(ValueError) as caught:
        get_profile("tiny", {key: value})
    assert said in str(caught.value)


def test_settings_given_in_python_are_checked_too():
    with pytest.raises(ValueError, match=r"seed=True: expected a whole number of at least 0"):
        get_profile("tiny", {"seed": True})
    model = ModelConfig(base=None, architecture=tiny_arch(num_hidden_layers=0))
    with pytest.raises(ValueError, match=r"model.architecture.num_hidden_layers=0: expected a whole number"):
        check_settings(dataclasses.replace(get_profile("tiny"), model=model))
    assert check_settings(get_profile("slam")) == get_profile("slam")  # the shipped profiles pass


def test_stage_arguments_are_checked_before_any_work(tmp_path):
    from slamlib.dpo import train_dpo
    from slamlib.tokenization.corpus import tokenize_corpus
    from slamlib.train.pretrain import pretrain

    tiny = get_profile("tiny")
    for kwargs, said in (({"max_steps": 0}, "max_steps=0"), ({"max_steps": -5}, "max_steps=-5"),
                         ({"tokens": 0}, "tokens=0"), ({"budget": "0m"}, "budget='0m'")):
        with pytest.raises(ValueError, match=said):
            pretrain(tmp_path / "no-model", [tmp_path / "no-units"], tiny.train, tmp_path / "out", **kwargs)
    with pytest.raises(ValueError, match=r"budget=-1: expected a duration"):
        train_dpo(tmp_path / "no-model", tmp_path / "no-units", tiny.dpo, tmp_path / "dpo", budget=-1)
    with pytest.raises(ValueError, match=r"train\.lr=0: expected a finite number above 0"):
        pretrain(tmp_path / "m", [], dataclasses.replace(tiny.train, lr=0), tmp_path / "out")
    with pytest.raises(ValueError, match=r"shard_size=0: expected a whole number of at least 1"):
        tokenize_corpus(tmp_path, tmp_path / "units", None, shard_size=0)
    assert not (tmp_path / "out").exists() and not (tmp_path / "dpo").exists() and not (tmp_path / "units").exists()


@pytest.mark.parametrize("command", [
    ["train", "--data", "D", "--out", "O", "--max-steps", "0"],
    ["train", "--data", "D", "--out", "O", "--max-steps", "-5"],
    ["train", "--data", "D", "--out", "O", "--budget", "0s"],
    ["dpo", "--data", "D", "--out", "O", "--max-steps", "nan"],
    ["synth", "--out", "O", "--scale", "0"],
    ["tokenize", "A", "--out", "O", "--shard-size", "-1"],
])
def test_the_command_line_refuses_bad_counts_by_option(command, tmp_path):
    result, _ = slamlib_cli(*command, cwd=tmp_path)
    option = next(a for a in command if a.startswith("--") and a not in ("--data", "--out"))
    assert result.returncode == 2 and f"argument {option}: " in result.stderr and "is not " in result.stderr
    assert not (tmp_path / "O").exists()


def test_explain_names_the_path_and_what_to_do():
    assert cli.explain(PermissionError(errno.EACCES, "Permission denied", "/data/out")) == \
        "/data/out: Permission denied; check its permissions, or write somewhere else"
    assert cli.explain(OSError(errno.ENOSPC, "No space left on device", "/data/out/shard-00001.parquet")) == \
        "/data/out/shard-00001.parquet: No space left on device; the disk is full: free some space, or write to another disk"
    assert cli.explain(FileExistsError(errno.EEXIST, "File exists", "/data/x")) == \
        "/data/x: File exists; it is in the way: move it, or choose another path"
    assert cli.explain(KeyError("a bug")) is None  # anything else keeps its traceback


def test_a_full_disk_ends_the_command_with_one_line(monkeypatch, capsys):
    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/units/shard-00003.parquet")

    monkeypatch.setattr(cli, "cmd_profile", full)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["profile", "tiny"])
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and "Traceback" not in err
    assert err.startswith("error: /data/units/shard-00003.parquet: No space left on device; the disk is full")
    with pytest.raises(OSError, match="No space left"):  # --debug: the traceback
        cli.main(["--debug", "profile", "tiny"])


def test_damaged_files_are_named(tmp_path, speech_tokenizer):
    import pyarrow.parquet as pq

    from slamlib.model import init_speech_lm, load_speech_lm, save_speech_lm

    model = init_speech_lm(ModelConfig(base=None, architecture=tiny_arch(vocab_size=18)), 16, init="random", seed=0)
    folder = save_speech_lm(model, tmp_path / "model", speech_tokenizer)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"{folder}: its weights cannot be read \(.*\); the file is damaged"):
        load_speech_lm(folder)
    shard = tmp_path / "shard-00000.parquet"
    shard.write_bytes(b"PAR1 and then nothing a parquet reader can use")
    with pytest.raises(Exception) as caught:
        pq.read_table(shard)
    said = cli.explain(caught.value)
    assert said.startswith("a damaged or unreadable parquet file: ") and str(shard) in said
