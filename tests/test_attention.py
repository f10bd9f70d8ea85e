import dataclasses

import numpy as np
import pytest
import torch

from slamlib.train import attention
from slamlib.train.attention import VARLEN, document_ids, varlen_attention_forward
from slamlib.train.packing import Documents, collate, pack


def per_document(query, key, value, cu, scale):
    """Each document on its own: causal attention over its tokens only (the definition)."""
    batch, heads, length, dim = query.shape
    flat = lambda t: t.transpose(1, 2).reshape(batch * length, t.shape[1], dim)  # noqa: E731
    q, k, v = flat(query), flat(key), flat(value)
    groups = heads // key.shape[1]
    out = torch.empty_like(q)
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))
        ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
        out[start:end] = torch.nn.functional.scaled_dot_product_attention(
            qs, ks, vs, is_causal=True, scale=scale).transpose(0, 1)
    return out.view(batch, length, heads, dim)


def packed_inputs(seed, batch=3, length=40, heads=4, kv_heads=2, dim=8):
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    docs = Documents.from_lists([list(range(int(rng.integers(2, 25)))) for _ in range(12)])
    rows = pack(docs.lengths, np.arange(len(docs)), length)[:batch]
    packed = collate(docs, rows, length)
    q = torch.randn(len(rows), heads, length, dim, generator=gen, dtype=torch.float64)
    k = torch.randn(len(rows), kv_heads, length, dim, generator=gen, dtype=torch.float64)
    v = torch.randn(len(rows), kv_heads, length, dim, generator=gen, dtype=torch.float64)
    return q, k, v, packed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_varlen_reference_is_attention_within_each_document(seed):
    q, k, v, packed = packed_inputs(seed)
    cu = packed["cu_seq_lens"]
    want = per_document(q, k, v, cu, 0.3)
    from_bounds, _ = varlen_attention_forward(None, q, k, v, None, scaling=0.3, cu_seq_lens_q=cu)
    from_positions, _ = varlen_attention_forward(None, q, k, v, None, scaling=0.3,
                                                 position_ids=packed["position_ids"])
    torch.testing.assert_close(from_bounds, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(from_positions, want, rtol=1e-12, atol=1e-12)


def test_document_ids_agree_between_bounds_and_positions():
    _, _, _, packed = packed_inputs(4)
    batch, length = packed["input_ids"].shape
    a = document_ids(batch, length, "cpu", cu_seq_lens=packed["cu_seq_lens"])
    b = document_ids(batch, length, "cpu", position_ids=packed["position_ids"])
    # the same partition: row-local numbering from positions, global numbering from bounds
    assert torch.equal(a - a[:, :1], b)
    assert int(a.max()) + 1 == len(packed["cu_seq_lens"]) - 1


def test_the_kernel_path_flattens_and_restores_the_batch(monkeypatch):
    """A kernel sees one stream of (tokens, heads, dim) and the boundaries; what it returns goes
    back to (batch, L, heads, dim). Checked with a per-document kernel written here."""
    q, k, v, packed = packed_inputs(5)
    calls = []

    def kernel(qf, kf, vf, cu, max_len, scale):
        calls.append((qf.shape, kf.shape, cu.dtype, max_len))
        batch = len(cu) - 1
        out = torch.empty_like(qf)
        for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
            qs, ks, vs = (t[start:end].transpose(0, 1) for t in (qf, kf, vf))
            groups = qs.shape[0] // ks.shape[0]
            ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
            out[start:end] = torch.nn.functional.scaled_dot_product_attention(
                qs, ks, vs, is_causal=True, scale=scale).transpose(0, 1)
        assert batch >= len(packed["input_ids"])
        return out

    monkeypatch.setattr(attention, "_kernel", lambda query: kernel)
    out, _ = varlen_attention_forward(None, q, k, v, None, scaling=0.25, cu_seq_lens_q=packed["cu_seq_lens"],
                                      max_length_q=40)
    b, h, n, d = q.shape
    assert calls == [((b * n, h, d), (b * n, k.shape[1], d), torch.int32, 40)]
    torch.testing.assert_close(out, per_document(q, k, v, packed["cu_seq_lens"], 0.25))


def test_cached_generation_is_refused_with_a_clear_error():
    q = torch.randn(1, 4, 1, 8)
    k = torch.randn(1, 2, 6, 8)
    with pytest.raises(NotImplementedError, match="sdpa"):
        varlen_attention_forward(None, q, k, k, None)


def test_the_cpu_groups_documents_and_no_cuda_kernel_without_a_gpu():
    assert attention._kernel(torch.zeros(1, 2, 3, 8)) is attention.grouped_attention
    if not torch.cuda.is_available():
        assert attention.cuda_kernel_name() is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_attention_matches_each_document_alone_with_gradients(seed):
    """The CPU kernel pads documents into length classes; values and all three gradients match
    attention over each document alone (documents from 1 token to longer than one class)."""
    q, k, v, packed = packed_inputs(seed, batch=3, length=70)
    cu = packed["cu_seq_lens"]
    assert len(set(torch.diff(cu).tolist())) > 3
    for t in (q, k, v):
        t.requires_grad_(True)
    want = per_document(q, k, v, cu, 0.3)
    got, _ = varlen_attention_forward(None, q, k, v, None, scaling=0.3, cu_seq_lens_q=cu)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad((want * weights).sum(), (q, k, v)),
                    torch.autograd.grad((got * weights).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # one class per padded length: a 1-token and a 32-token document share one call
    one = torch.randn(33, 2, 4, dtype=torch.float64)
    out = attention.grouped_attention(one, one[:, :1], one[:, :1], torch.tensor([0, 1, 33], dtype=torch.int32), 32, 1.0)
    torch.testing.assert_close(out[0], one[0, :1].expand(2, 4))  # a lone token attends to itself only


def test_training_chooses_its_attention_and_saves_a_plain_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM

    from slamlib.model import init_speech_lm, save_speech_lm
    from slamlib.profiles import get_profile
    from slamlib.train.trainer import Trainer

    profile = get_profile("tiny")
    assert attention.choose("auto", "cpu") == VARLEN and attention.choose("sdpa", "cpu") == "sdpa"
    model = init_speech_lm(profile.model, 20, init="random")
    assert model.config._attn_implementation == "sdpa"  # what transformers loads by default
    rng = np.random.default_rng(0)
    docs = Documents.from_lists([[1, *rng.integers(2, 22, int(rng.integers(5, 30))).tolist(), 1] for _ in range(60)])
    cfg = dataclasses.replace(profile.train, attention="varlen", context=64, batch_size=4, grad_accum=1,
                              budget=None, save_every=10**6, log_every=1)
    trainer = Trainer(model, docs, cfg, tmp_path / "run", seed=0)
    assert model.config._attn_implementation == VARLEN
    trainer.fit(max_steps=3, progress=False)
    save_speech_lm(model, tmp_path / "m")
    assert VARLEN not in (tmp_path / "m" / "config.json").read_text()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert loaded.config._attn_implementation != VARLEN
    ids = torch.tensor([[1, 5, 7, 9, 1]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, loaded(input_ids=ids).logits, rtol=1e-4, atol=1e-5)
