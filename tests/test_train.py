import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from slamlib.profiles import get_profile
from slamlib.train.attention import VARLEN
from slamlib.train.checkpoints import read_log
from slamlib.train.packing import Documents, collate, pack, token_losses, unit_documents
from slamlib.train.schedule import lr_factor, parse_duration, warmup_steps
from slamlib.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def tiny_lm(seed=0, vocab=40, impl="sdpa"):
    torch.manual_seed(seed)
    config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=256, use_cache=False)
    config._attn_implementation = impl
    return Qwen2ForCausalLM(config)


def random_docs(n=60, seed=0, vocab=40, low=3, high=30):
    rng = np.random.default_rng(seed)
    return Documents.from_lists([[1, *rng.integers(2, vocab, rng.integers(low, high)), 1] for _ in range(n)])


def train_cfg(**changes):
    base = get_profile("tiny").train
    return dataclasses.replace(base, **{"context": 64, "batch_size": 4, "grad_accum": 2, "lr": 3e-3, "min_lr": 1e-4,
                                        "warmup_ratio": 0.1, "min_warmup_steps": 2, "log_every": 1, "eval_every": 5,
                                        "save_every": 4, "probe_steps": 3, "budget": None, **changes})


@pytest.mark.parametrize("impl", ["sdpa", "eager", VARLEN])
def test_packed_loss_equals_per_document_loss(impl):
    model = tiny_lm(impl=impl).eval()
    docs = random_docs(12)
    rows = pack(docs.lengths, np.arange(len(docs)), 64)
    assert len(rows) < len(docs)  # really packed: several documents per row
    batch = collate(docs, rows, 64)
    with torch.no_grad():
        packed_sum, packed_count = token_losses(model, batch)
        total, count = 0.0, 0
        for i in range(len(docs)):
            ids = torch.from_numpy(docs[i]).long()[None]
            logits = model(input_ids=ids).logits
            total += torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum").item()
            count += len(docs[i]) - 1
    assert int(packed_count) == count
    assert float(packed_sum) / count == pytest.approx(total / count, rel=1e-5)



@pytest.mark.parametrize("impl", ["sdpa", VARLEN])
def test_flattened_examples_lose_what_each_document_loses_alone(impl):
    """SlamKit's packing: documents end to end in one unpadded row, the same per-document loss."""
    from slamlib.train.packing import collate_flat

    model = tiny_lm(impl=impl).eval()
    docs = random_docs(5)
    batch = collate_flat(docs, [np.array([i]) for i in range(5)])
    assert batch["input_ids"].shape == (1, docs.n_tokens)  # no padding at all
    with torch.no_grad():
        flat_sum, flat_count = token_losses(model, batch)
        rows_sum, rows_count = token_losses(model, collate(docs, [np.array([i]) for i in range(5)], 64))
    assert int(flat_count) == int(rows_count) == docs.n_tokens - 5
    assert float(flat_sum) == pytest.approx(float(rows_sum), rel=1e-5)


def test_examples_packing_takes_batch_size_documents_a_micro_batch(tmp_path):
    """train.packing="examples": a step is batch_size x grad_accum documents (32 x 2 here), so its
    tokens are the documents' own; "rows" fills rows of `context` tokens with several documents."""
    from slamlib.train.batches import BatchLoader

    docs = random_docs(40)
    examples = BatchLoader(docs, context=64, batch_size=4, rows_per_step=8, seed=0, packing="examples")
    steps = examples.epoch(0)
    assert len(steps) == 5 and all(len(step) == 8 and all(len(r) == 1 for r in step) for step in steps)
    assert sorted(int(r[0]) for step in steps for r in step) == list(range(40))  # each document once
    micro = examples.host(steps[0])
    assert len(micro) == 2 and micro[0]["input_ids"].shape[1] == int(docs.lengths[[int(r[0]) for r in steps[0][:4]]].sum())
    rows = BatchLoader(docs, context=64, batch_size=4, rows_per_step=8, seed=0).epoch(0)
    assert any(len(r) > 1 for step in rows for r in step)
    with pytest.raises(ValueError, match="train.packing"):
        BatchLoader(docs, context=64, batch_size=4, rows_per_step=8, seed=0, packing="greedy")
    trainer = Trainer(tiny_lm(), docs, train_cfg(packing="examples", grad_accum=2), tmp_path, seed=0)
    summary = trainer.fit(max_steps=3, progress=False)
    assert summary["steps"] == 3 and summary["tokens"] == sum(
        int(docs.lengths[int(r[0])]) for step in trainer.batches(0)[:3] for r in step)


def test_split_holds_out_at_least_one_document_of_a_small_corpus():
    docs = Documents.from_lists([[1, 5 + i, 1] for i in range(4)])
    train, valid = docs.split(0.1, seed=0)  # 0.4 documents: one, not none
    assert (len(train), len(valid)) == (3, 1)
    assert docs.split(0.0)[1].lengths.size == 0 and len(Documents.from_lists([[1, 5, 1]]).split(0.1)[0]) == 1
    big_train, big_valid = Documents.from_lists([[1, i % 400 + 2, 1] for i in range(1000)]).split(0.02, seed=0)
    assert len(big_valid) == 20  # unchanged where the fraction gives whole documents

def test_collate_restarts_positions_and_masks_boundaries():
    docs = Documents.from_lists([[1, 5, 6, 1], [1, 7, 1]])
    batch = collate(docs, [np.array([0, 1])], 10)
    assert batch["input_ids"][0].tolist() == [1, 5, 6, 1, 1, 7, 1, 0, 0, 0]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2]
    assert batch["labels"][0].tolist() == [-100, 5, 6, 1, -100, 7, 1, -100, -100, -100]
    # document boundaries over the flattened batch: two documents and the padding, then a full row
    two = collate(Documents.from_lists([[1, 5, 6, 1], [1, 7, 1], [1] * 10]), [np.array([0, 1]), np.array([2])], 10)
    assert two["cu_seq_lens"].tolist() == [0, 4, 7, 10, 20] and two["cu_seq_lens"].dtype == torch.int32


def test_long_documents_are_cut_to_the_context():
    docs = Documents.from_lists([list(range(10)), [1, 2]]).chunked(4)
    assert [docs[i].tolist() for i in range(len(docs))] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [1, 2]]
    with pytest.raises(ValueError, match="more than the context"):
        pack(np.array([5]), np.array([0]), 4)


def test_schedule_warms_up_then_reaches_min_lr_at_the_end():
    lr, min_lr, max_steps, warm = 1e-3, 5e-5, 1000, 10
    factors = [lr_factor(s, max_steps, warm, lr, min_lr) for s in range(max_steps)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # monotone decay after warmup
    assert lr * lr_factor(max_steps, max_steps, warm, lr, min_lr) == pytest.approx(min_lr)
    assert lr * factors[10 + 495] == pytest.approx(min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-2)
    slam = get_profile("slam").train
    # SlamKit's 100 warmup steps (its warmup_steps, which transformers prefers to its warmup_ratio of 1%)
    assert warmup_steps(slam, 17_625) == 100 and warmup_steps(slam, 2_000) == 100
    assert warmup_steps(get_profile("slam", {"train.warmup_ratio": "0.01"}).train, 17_625) == 176  # the paper's 1%


def test_durations():
    assert parse_duration("24h") == 86400 and parse_duration("1h30m") == 5400 and parse_duration("5m") == 300
    with pytest.raises(ValueError, match="cannot read the duration"):
        parse_duration("soon")


def test_training_lowers_the_loss_and_logs(tmp_path):
    docs = random_docs(80)
    # a learnable pattern: every document counts up
    docs = Documents.from_lists([[1, *[(i % 30) + 2 for i in range(k, k + len(docs[j]) - 2)], 1]
                                 for j, k in enumerate(range(80))])
    trainer = Trainer(tiny_lm(), docs, train_cfg(), tmp_path, valid_docs=random_docs(4, seed=9), seed=0)
    summary = trainer.fit(max_steps=50, progress=False)
    records = read_log(tmp_path)
    losses = [r["loss"] for r in records if "loss" in r]
    assert summary["steps"] == 50 and len(losses) == 50
    assert losses[-1] < 0.6 * losses[0]
    assert records[0]["step"] == 0 and "valid_loss" in records[0]
    assert all(r["tokens_per_second"] > 0 for r in records if "loss" in r)
    assert 1e-4 <= records[-1]["lr"] < 1.2e-4  # the cosine ends with the run (min_lr at max_steps)


class Interrupt(Exception):
    pass


def full_and_cut(root, docs, *, stop: int, cuts=("cut",)):
    """An uninterrupted 11-step run in root/full (returned) and runs stopped after step `stop`."""
    full = Trainer(tiny_lm(), docs, train_cfg(), root / "full", seed=3)
    full.fit(max_steps=11, progress=False)

    def stop_here(record):
        if record.get("step") == stop:
            raise Interrupt

    for name in cuts:
        with pytest.raises(Interrupt):
            Trainer(tiny_lm(), docs, train_cfg(), root / name, seed=3, callbacks=[stop_here]).fit(
                max_steps=11, progress=False)
    return full


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    docs = random_docs(60)
    full = full_and_cut(tmp_path, docs, stop=7)
    assert (tmp_path / "cut" / "checkpoints" / "step-0000004" / "trainer_state.json").exists()
    second = Trainer(tiny_lm(seed=99), docs, train_cfg(), tmp_path / "cut", seed=3)  # other weights: all from the checkpoint
    summary = second.fit(max_steps=11, progress=False)
    assert summary["resumed"]
    losses = lambda d: [(r["step"], r["loss"]) for r in read_log(d) if "loss" in r]  # noqa: E731
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    for a, b in zip(full.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_a_damaged_checkpoint_is_named_and_the_one_before_it_resumed(tmp_path):
    """A truncated newest checkpoint: a warning names it, the older one resumes, and the run ends
    with the uninterrupted run's weights. When every checkpoint is damaged, one error says so."""
    from slamlib.train.checkpoints import NoUsableCheckpoint

    docs = random_docs(60)
    full = full_and_cut(tmp_path, docs, stop=9, cuts=("cut", "all_damaged"))
    for name in ("cut", "all_damaged"):
        checkpoints = tmp_path / name / "checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["step-0000004", "step-0000008"]  # no partial left
        for step in ("step-0000008",) if name == "cut" else ("step-0000004", "step-0000008"):
            weights = checkpoints / step / "pytorch_model.bin"
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    second = Trainer(tiny_lm(seed=99), docs, train_cfg(), tmp_path / "cut", seed=3)
    with pytest.warns(UserWarning, match=r"cut/checkpoints/step-0000008 is damaged and is not resumed from \(.*\); "
                                         "resuming from the one before it"):
        summary = second.fit(max_steps=11, progress=False)
    assert summary["resumed"] and summary["steps"] == 11
    for a, b in zip(full.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)

    third = Trainer(tiny_lm(seed=99), docs, train_cfg(), tmp_path / "all_damaged", seed=3)
    with pytest.warns(UserWarning), pytest.raises(NoUsableCheckpoint, match=(
            r"all_damaged/checkpoints: no checkpoint can be read \(step-0000008, step-0000004 damaged\); "
            r"train again from the start with --restart")):
        third.fit(max_steps=11, progress=False)


def test_batches_collated_ahead_are_the_batches_collated_in_the_loop(tmp_path):
    """Background collation changes nothing: the same batches in the same order, across epoch
    boundaries (40 documents make a few steps an epoch), so the same losses and weights."""
    runs = {}
    for ahead in (0, 1, 3):
        trainer = Trainer(tiny_lm(), random_docs(40), train_cfg(prefetch=ahead), tmp_path / f"ahead{ahead}", seed=2)
        summary = trainer.fit(max_steps=9, progress=False)
        assert summary["epochs"] > 2 and trainer._pool is None and not trainer._ahead  # stopped at the end
        runs[ahead] = ([(r["step"], r["loss"], r["epoch"]) for r in read_log(tmp_path / f"ahead{ahead}") if "loss" in r],
                       [p.detach().clone() for p in trainer.model.parameters()])
    for ahead in (1, 3):
        assert runs[ahead][0] == runs[0][0]
        assert all(torch.equal(a, b) for a, b in zip(runs[ahead][1], runs[0][1]))


def test_a_step_can_leave_its_numbers_on_the_device(tmp_path):
    trainer = Trainer(tiny_lm(), random_docs(40), train_cfg(), tmp_path, seed=0)
    trainer.plan(budget=None, tokens=None, max_steps=5, started=0.0)
    record = trainer.train_step(read=False)
    assert isinstance(record["loss"], torch.Tensor) and isinstance(record["grad_norm"], torch.Tensor)
    read = trainer.read_record(record)
    assert isinstance(read["loss"], float) and math.isfinite(read["loss"]) and isinstance(read["grad_norm"], float)
    trainer._stop_prefetch()


def test_budget_and_token_plans(tmp_path):
    docs = random_docs(200)
    trainer = Trainer(tiny_lm(), docs, train_cfg(probe_steps=3), tmp_path / "budget", seed=0)
    plan = trainer.plan(budget="20s", tokens=None, max_steps=None, started=__import__("time").perf_counter())
    assert plan["by"] == "budget" and plan["max_steps"] >= 1 and plan["probe_seconds_per_step"] > 0
    # probing changed nothing: the first real step starts from the initial weights
    assert all(p.grad is None for p in trainer.model.parameters())
    trainer2 = Trainer(tiny_lm(), docs, train_cfg(), tmp_path / "tokens", seed=0)
    plan = trainer2.plan(budget=None, tokens=10_000, max_steps=None, started=0.0)
    assert plan["by"] == "tokens" and plan["max_steps"] == math.ceil(10_000 / plan["tokens_per_step"])


def test_a_budgeted_run_ends_its_schedule_when_the_budget_does(tmp_path):
    """On a simulated clock where every forward-backward pass takes 0.1 s: the probe's estimate,
    the correction at the end of warmup, and a cosine that ends exactly at the budget."""
    trainer = Trainer(tiny_lm(), random_docs(300), train_cfg(min_warmup_steps=5, warmup_ratio=0.0, eval_every=10**6),
                      tmp_path, seed=0)
    now = [0.0]
    trainer.clock = lambda: now[0]
    real = trainer._forward_backward

    def timed(*args):
        now[0] += 0.1
        return real(*args)

    trainer._forward_backward = timed
    summary = trainer.fit(budget="6s", progress=False)
    plan = summary["plan"]
    assert plan["probe_seconds_per_step"] == pytest.approx(0.105)  # median of the probe, plus 5% for the optimizer
    assert plan["max_steps_from_probe"] == int((6 - 0.3) / 0.105)  # 3 probe passes already spent 0.3 s
    assert plan["replanned_at"] == 5 and plan["measured_seconds_per_step"] == pytest.approx(0.1)
    assert summary["steps"] == plan["max_steps"] in (56, 57)  # 5 warmup steps + 5.2 s left / 0.1 s
    assert summary["seconds"] == pytest.approx(6.0, abs=0.11)
    assert 1e-4 <= read_log(tmp_path)[-1]["lr"] < 1.2e-4  # and the cosine is at its end


def _losses_after(cfg, tmp_path, steps=3):
    trainer = Trainer(tiny_lm(), random_docs(60), cfg, tmp_path, seed=1)
    trainer.fit(max_steps=steps, progress=False)
    return trainer, [r["loss"] for r in read_log(tmp_path) if "loss" in r]


@pytest.mark.parametrize("attention", ["sdpa", "varlen"])
def test_compiled_training_matches_eager(tmp_path, attention):
    eager, eager_losses = _losses_after(train_cfg(attention=attention), tmp_path / "eager")
    compiled, compiled_losses = _losses_after(train_cfg(compile=True, attention=attention), tmp_path / "compiled")
    assert compiled.step_model is not compiled.model  # it really ran compiled
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    for a, b in zip(eager.model.parameters(), compiled.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_gradient_checkpointing_changes_memory_not_results(tmp_path):
    plain, plain_losses = _losses_after(train_cfg(attention="varlen"), tmp_path / "plain")
    saved, saved_losses = _losses_after(train_cfg(attention="varlen", gradient_checkpointing=True), tmp_path / "ckpt")
    assert saved.model.is_activation_checkpointing and not plain.model.is_activation_checkpointing
    assert saved_losses == pytest.approx(plain_losses, rel=1e-5)
    for a, b in zip(plain.model.parameters(), saved.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_model_that_fails_to_compile_trains_eagerly(tmp_path, monkeypatch):
    def broken_compile(model, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    _, eager_losses = _losses_after(train_cfg(), tmp_path / "eager")
    with pytest.warns(UserWarning, match="torch.compile failed .*no C\\+\\+ compiler"):
        trainer, losses = _losses_after(train_cfg(compile=True), tmp_path / "fallback")
    assert trainer.step_model is trainer.model
    assert losses == eager_losses


def test_unit_documents_use_slamkit_ids(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp_path.joinpath("u").mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "units": pa.array([[0, 5, 3], [499]], pa.list_(pa.int32()))}),
                   tmp_path / "u" / "shard-00000.parquet")
    docs = unit_documents([tmp_path / "u"])
    assert [docs[i].tolist() for i in range(2)] == [[1, 2, 7, 5, 1], [1, 501, 1]]


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(tmp_path):
    """The same code path under DDP: 2 CPU processes (gloo), one global batch split between them."""
    docs = random_docs(80)
    np.save(tmp_path / "values.npy", docs.values)
    np.save(tmp_path / "offsets.npy", docs.offsets)
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import dataclasses, json, numpy as np, torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from slamlib.profiles import get_profile
from slamlib.train.packing import Documents
from slamlib.train.trainer import Trainer
torch.manual_seed(0)
config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=40, max_position_embeddings=256, use_cache=False)
docs = Documents(np.load({str(tmp_path / 'values.npy')!r}), np.load({str(tmp_path / 'offsets.npy')!r}))
cfg = dataclasses.replace(get_profile("tiny").train, context=64, batch_size=2, grad_accum=2, log_every=1,
                          min_warmup_steps=2, save_every=4, eval_every=100)
trainer = Trainer(Qwen2ForCausalLM(config), docs, cfg, {str(tmp_path / 'out')!r}, seed=0)
summary = trainer.fit(max_steps=8, progress=False)
if trainer.accelerator.is_main_process:
    print("SUMMARY", json.dumps(summary))
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.split("SUMMARY", 1)[1])
    assert summary["processes"] == 2 and summary["steps"] == 8
    losses = [r["loss"] for r in read_log(tmp_path / "out") if "loss" in r]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert (tmp_path / "out" / "checkpoints" / "step-0000004" / "trainer_state.json").exists()
