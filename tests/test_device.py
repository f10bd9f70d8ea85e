"""What slamlib chooses on cards this machine does not have: capabilities are faked by hand."""

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch

from slamlib import device
from slamlib.train.attention import VARLEN, choose
from slamlib.device import Capabilities, announce, attention_kernel, known_card, training_precision
from slamlib.fits import Workload, check_profile_fits, cpu_estimate, measure_cpu_tflops, memory_estimate, speech_lm_parameters
from slamlib.profiles import get_profile
from slamlib.train.checkpoints import read_log
from slamlib.train.trainer import Trainer

from test_train import random_docs, tiny_lm, train_cfg

OLD = ["T4", "V100"]
MODERN = ["A5000", "A100", "H100"]
SLAM = get_profile("slam")


def card(name, **kernels):
    return dataclasses.replace(known_card(name), **kernels) if kernels else known_card(name)


@pytest.mark.parametrize("name", OLD)
def test_cards_without_bf16_train_in_fp16_with_loss_scaling_and_the_exact_kernel(name):
    base = known_card(name)
    caps = Capabilities.gpu(base.name, base.capability, base.memory_gib,
                            flash_attn=True, torch_varlen=True)  # installed, but the card cannot run them
    assert caps.capability < (8, 0) and not caps.bf16 and not caps.flash_attn
    for requested in ("bf16", "auto"):  # the slam profile's "bf16" means the paper's mixed precision
        p = training_precision(caps, requested)
        assert (p.name, p.dtype, p.grad_scaler, p.autocast) == ("fp16", torch.float16, True, True)
        assert "8.0" in p.reason
    assert training_precision(caps, "fp32").name == "fp32"
    assert attention_kernel(caps) == "sdpa"
    # even a hand-made record that claims flash-attn cannot pick it below cc 8.0
    assert attention_kernel(dataclasses.replace(caps, flash_attn=True, torch_varlen=True)) == "sdpa"


@pytest.mark.parametrize("flash", [True, False])
@pytest.mark.parametrize("torch_varlen", [True, False])
@pytest.mark.parametrize("name", MODERN)
def test_ampere_and_later_train_in_bf16_with_varlen_attention_where_installed(name, flash, torch_varlen):
    caps = card(name, flash_attn=flash, torch_varlen=torch_varlen)
    p = training_precision(caps, "bf16")
    assert (p.name, p.dtype, p.grad_scaler) == ("bf16", torch.bfloat16, False)
    assert training_precision(caps, "fp16").grad_scaler  # asked for: fp16 keeps its loss scaling
    want = "flash_attention_2" if flash else (VARLEN if torch_varlen else "sdpa")
    assert attention_kernel(caps) == want
    assert choose("auto", "cuda", caps) == want  # what the trainer asks for goes through the same choice
    assert choose("eager", "cuda", caps) == "eager"


def test_detect_reads_this_machine():
    caps = Capabilities.detect("cpu")
    assert caps.device_type == "cpu" and caps.capability is None and not caps.bf16 and caps.name
    if not torch.cuda.is_available():
        assert Capabilities.detect() == caps
    assert attention_kernel(caps) == VARLEN == choose("auto", "cpu")  # the grouped CPU kernel, as before


def test_a_cpu_trains_in_fp32_and_the_slam_profile_is_far_too_slow_there():
    cpu = Capabilities.cpu("a test CPU")
    p = training_precision(cpu, "bf16")
    assert (p.name, p.grad_scaler, p.autocast) == ("fp32", False, False)
    assert speech_lm_parameters(SLAM.model.architecture, 500) == 358_347_904  # REFERENCE §2
    work = Workload.of_profile(SLAM)
    assert (work.steps, work.rows_per_step, work.context) == (17_625, 128, 1024)
    assert work.flops == pytest.approx(6 * 358_347_904 * 17_625 * 128 * 1024)
    assert cpu_estimate(SLAM, 0.06) / 86_400 == pytest.approx(958, abs=1)
    with pytest.warns(UserWarning, match=r"far too slow on a CPU.* 958 days.*--profile tiny"):
        messages = check_profile_fits(SLAM, cpu, tflops=0.06)
    assert len(messages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_profile_fits(get_profile("tiny"), cpu, tflops=0.06) == []  # minutes, not days


def test_the_cpu_rate_is_measured():
    rate = measure_cpu_tflops(size=256, repeats=2)
    assert math.isfinite(rate) and 1e-5 < rate < 100


def test_the_paper_batch_warns_on_16_gb_cards_only():
    for name in OLD:
        with pytest.warns(UserWarning, match=r"likely needs about 19\.\d GiB.*gradient_checkpointing"):
            check_profile_fits(SLAM, known_card(name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in MODERN:
            assert check_profile_fits(SLAM, known_card(name)) == []
        # activation checkpointing keeps a layer's activations, not 24: the T4 then has room
        saved = get_profile("slam", {"train.gradient_checkpointing": True})
        assert check_profile_fits(saved, known_card("T4")) == []
    # in fp32 the same batch needs twice the activations: too much for the A5000
    with pytest.warns(UserWarning, match="likely needs about 3"):
        check_profile_fits(SLAM, known_card("A5000"), precision=training_precision(known_card("A5000"), "fp32"))
    # the count agrees with the README's: 5.7 GB of fp32 state, 0.7 GB of bf16 weights, ~14 GB activations
    assert memory_estimate(SLAM, training_precision(known_card("A5000"))) / 1e9 == pytest.approx(20.4, abs=0.2)


def test_announce_prints_one_line_once(monkeypatch, capsys):
    monkeypatch.setattr(device, "_announced", False)
    t4 = known_card("T4")
    line = announce(t4, training_precision(t4), attention_kernel(t4))
    out = capsys.readouterr().out
    assert out == line + "\n" and out.count("\n") == 1
    assert line.startswith("device: Tesla T4 (cc 7.5, 15.0 GiB) — fp16 autocast with gradient scaling "
                           "(no bf16 below compute capability 8.0); attention: exact per-document kernel")
    assert "FlashAttention needs cc 8.0" in line
    assert announce(t4, training_precision(t4), "sdpa") is None and capsys.readouterr().out == ""


def test_dpo_gets_fp16_on_a_t4_and_bf16_on_an_a100(monkeypatch, tmp_path):
    import trl

    from slamlib import dpo

    fields = {f.name for f in dataclasses.fields(trl.DPOConfig)}
    assert {"bf16", "fp16"} <= fields
    cfg = SLAM.dpo
    configs = {}
    for name in ("T4", "A100", "cpu"):
        caps = known_card(name)
        monkeypatch.setattr(Capabilities, "detect", classmethod(lambda cls, device=None, caps=caps: caps))
        configs[name] = dpo._trl_config(cfg, tmp_path, max_steps=1, seed=0, eval_dataset=False, device=None)
    assert (configs["T4"].fp16, configs["T4"].bf16) == (True, False)  # TRL would turn bf16 on unless told
    assert (configs["A100"].fp16, configs["A100"].bf16) == (False, True)
    assert (configs["cpu"].fp16, configs["cpu"].bf16) == (False, False)


# --- the trainer, on this CPU, pretending to be on a T4 --------------------------------------------

def _t4_trainer(out: Path, **cfg):
    """The tiny trainer asking for the paper's precision on a (pretended) T4: fp16 autocast on the CPU."""
    return Trainer(tiny_lm(), random_docs(60), train_cfg(precision="bf16", **cfg), out, seed=1,
                   capabilities=known_card("T4"))


def test_the_trainer_trains_in_fp16_with_a_loss_scaler_where_bf16_is_missing(tmp_path):
    fp16 = _t4_trainer(tmp_path / "fp16")
    assert fp16.precision.name == "fp16" and fp16.scaler.is_enabled()
    assert fp16.model.config._attn_implementation == "sdpa"  # the T4's exact kernel
    fp32 = Trainer(tiny_lm(), random_docs(60), train_cfg(), tmp_path / "fp32", seed=1)
    assert fp32.precision.name == "fp32" and not fp32.scaler.is_enabled()
    start = [p.detach().clone() for p in fp16.model.parameters()]
    fp16.fit(max_steps=3, progress=False)
    fp32.fit(max_steps=3, progress=False)
    half, full = ([r for r in read_log(t.out) if "loss" in r] for t in (fp16, fp32))
    assert len(half) == 3 and all(math.isfinite(r["loss"]) for r in half)
    # the gradients were unscaled before clipping: their norm is the fp32 one, not 65,536 times it
    assert half[0]["grad_norm"] == pytest.approx(full[0]["grad_norm"], rel=0.05)
    assert [r["loss"] for r in half] == pytest.approx([r["loss"] for r in full], rel=0.02)
    assert half[-1]["loss"] < half[0]["loss"]
    assert not all(torch.equal(a, b) for a, b in zip(start, fp16.model.parameters()))  # the steps were taken
    assert fp16.scaler.get_scale() == 2.0**16  # no overflow, no growth yet (every 2,000 steps)


def test_an_overflowing_fp16_step_is_skipped_and_the_scale_resumes(tmp_path):
    trainer = _t4_trainer(tmp_path, save_every=10**6)
    trainer._started = trainer.clock()  # what fit() sets (save_checkpoint records the time)
    trainer.plan(budget=None, tokens=None, max_steps=10, started=trainer._started)
    trainer.train_step()
    trainer.scaler.update(2.0**120)  # so large that the fp16 backward pass overflows
    before = [p.detach().clone() for p in trainer.model.parameters()]
    record = trainer.train_step()
    assert math.isinf(record["grad_norm"]) or math.isnan(record["grad_norm"])
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))  # skipped
    assert trainer.scaler.get_scale() == 2.0**119  # and the scale halved
    trainer.save_checkpoint()
    trainer._stop_prefetch()
    again = _t4_trainer(tmp_path, save_every=10**6)
    assert again.resume() and again.scaler.get_scale() == 2.0**119
