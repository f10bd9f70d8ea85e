"""Attention over packed documents without a dense mask: one variable-length ("varlen") call.

A packed row holds several documents, and a token may attend only to the earlier tokens of its
own document. transformers' `sdpa` path expresses that with a (batch, 1, L, L) block-diagonal
mask built from the restarting `position_ids`; with a mask, PyTorch cannot use its FlashAttention
kernel, computes every masked-out block anyway, and finding the documents costs a device-to-host
sync on every forward pass.

`VARLEN` ("slamlib_varlen") is an attention implementation registered with transformers that
takes the documents' boundaries instead: `cu_seq_lens_q` / `cu_seq_lens_k`, the cumulative token
counts of the documents over the flattened batch, which `slamlib.train.packing.collate` computes on the
host. The batch is viewed as one stream of (tokens, heads, head_dim) and handed to a varlen
kernel that skips everything between documents:

- on a CUDA GPU (compute capability 8.0 or later, bf16 or fp16): `flash_attn_varlen_func` when the
  flash-attn package is installed, else `torch.nn.attention.varlen.varlen_attn` (FlashAttention-2
  inside PyTorch 2.10 and later, nothing to install);
- on a CPU: the documents are grouped by length (padded to a multiple of 32 tokens) and each
  group is one causal `scaled_dot_product_attention` call, so that nothing between documents is
  computed (packed rows of 512 holding ~80-token documents: about a sixth of the dense work);
- elsewhere (float32 on a GPU, older GPUs): an exact reference, one `scaled_dot_product_attention`
  call with the block-diagonal causal mask, built from the boundaries (or from `position_ids`).

No attention mask is built for this implementation, so it serves full sequences only: training
and scoring, packed or right-padded. Generation with a KV cache is refused with a clear error
(load the saved model, which uses transformers' default attention, to generate).
"""

from __future__ import annotations

from typing import Callable

import torch

from slamlib.device import VARLEN, Capabilities, attention_kernel, flash_attn_varlen, torch_varlen


def register() -> str:
    """Make `VARLEN` a valid `attn_implementation` for transformers models; returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    return VARLEN


GROUP_MULTIPLE = 32  # the CPU kernel pads each document to a multiple of this many tokens


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                      scale: float) -> torch.Tensor:
    """Causal attention within documents on the CPU, with varlen kernels' signature: (tokens,
    heads, dim) in and out, `cu` the documents' boundaries (on the host).

    Documents of similar length are padded (with zero vectors, after their last token, where a
    causal mask keeps every real query from seeing them) into one (documents, heads, length, dim)
    batch per length class, and each class is one causal sdpa call. The outputs of real tokens are
    gathered back into the stream's order; padded positions are dropped (their gradients are zero).
    """
    n, heads, dim = q.shape
    bounds = cu.tolist()
    classes: dict[int, list[tuple[int, int]]] = {}
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end > start:
            padded = -(-(end - start) // GROUP_MULTIPLE) * GROUP_MULTIPLE
            classes.setdefault(padded, []).append((start, end - start))
    zero = lambda t: torch.cat([t, t.new_zeros(1, *t.shape[1:])])  # noqa: E731: index n is a zero row
    qz, kz, vz = zero(q), zero(k), zero(v)
    outputs, where = [], []
    for padded, docs in classes.items():
        starts = torch.tensor([s for s, _ in docs]).unsqueeze(1)
        lengths = torch.tensor([length for _, length in docs]).unsqueeze(1)
        offsets = torch.arange(padded).unsqueeze(0)
        real = offsets < lengths
        index = torch.where(real, starts + offsets, n)  # (documents, padded)
        grouped = [t[index].transpose(1, 2) for t in (qz, kz, vz)]  # (documents, heads, padded, dim)
        out = torch.nn.functional.scaled_dot_product_attention(
            *grouped, is_causal=True, scale=scale, enable_gqa=k.shape[1] != heads).transpose(1, 2)
        outputs.append(out[real])
        where.append(index[real])
    order = torch.empty(n, dtype=torch.long)
    order[torch.cat(where)] = torch.arange(n)
    return torch.cat(outputs)[order]


def cuda_kernel_name() -> str | None:
    """Which varlen kernel CUDA inputs would use here ("flash_attn", "torch") or None."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0):
        return None
    if flash_attn_varlen() is not None:
        return "flash_attn"
    return "torch" if torch_varlen() is not None else None


def choose(choice: str, device, capabilities=None) -> str:
    """The attention implementation for training on `device`: `choice`, where "varlen" names
    this module's, and "auto" the fastest exact one for packed documents there, chosen from the
    device's capabilities (`slamlib.device.attention_kernel`; `capabilities` to pretend another)."""
    if choice == "varlen":
        return register()
    if choice != "auto":
        return choice
    return attention_kernel(capabilities or Capabilities.detect(device))


def _kernel(query: torch.Tensor) -> Callable | None:
    """The varlen kernel for these inputs, or None where only the reference applies."""
    if query.device.type == "cpu":
        return grouped_attention
    if not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16) or query.shape[-1] % 8:
        return None
    name = cuda_kernel_name()
    return {"flash_attn": flash_attn_varlen, "torch": torch_varlen}[name]() if name else None


def document_ids(batch: int, length: int, device, cu_seq_lens: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, length) document index of every token: from the boundaries over the flattened
    batch, or where they are not given, from position_ids (a new document where they do not
    count up by one), or else one document per row."""
    if cu_seq_lens is not None:
        flat = torch.arange(batch * length, device=device)
        return torch.searchsorted(cu_seq_lens.to(device=device, dtype=torch.long)[1:], flat, right=True).view(batch, length)
    if position_ids is not None:
        positions = position_ids.expand(batch, -1).to(device)
        starts = torch.diff(positions, prepend=positions[:, :1] - 1, dim=-1) != 1
        return starts.cumsum(-1)
    return torch.zeros(batch, length, dtype=torch.long, device=device)


def boundaries(batch: int, length: int, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """`cu_seq_lens` over the flattened batch from position_ids (a new document where they do
    not count up by one), or one document per row without them."""
    if position_ids is None:
        return torch.arange(0, (batch + 1) * length, length, dtype=torch.int32)
    positions = position_ids.expand(batch, -1).cpu()
    starts = torch.diff(positions, prepend=positions[:, :1] - 1, dim=-1) != 1
    starts[:, 0] = True  # every row starts a document
    flat = torch.nonzero(starts.reshape(-1)).squeeze(1)
    return torch.cat([flat, torch.tensor([batch * length])]).to(torch.int32)


def reference_attention(query, key, value, docs: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention within documents: (batch, heads, L, dim) in, (batch, L, heads, dim) out."""
    length = query.shape[2]
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    causal = torch.ones(length, length, dtype=torch.bool, device=query.device).tril()
    mask = (docs[:, :, None] == docs[:, None, :]) & causal
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None], scale=scale)
    return out.transpose(1, 2).contiguous()


def varlen_attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, scaling: float | None = None,
                             dropout: float = 0.0, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: (batch, heads, L, dim) in, (batch, L, heads, dim) out."""
    batch, heads, length, dim = query.shape
    if key.shape[2] != length:
        raise NotImplementedError(
            f"{VARLEN} attends within full sequences only (got {length} queries for {key.shape[2]} keys, as "
            "in cached generation): use attn_implementation='sdpa' to generate")
    if dropout:
        raise NotImplementedError(f"{VARLEN} has no attention dropout")
    scale = scaling if scaling is not None else dim**-0.5
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None and query.device.type == "cpu":
        cu = boundaries(batch, length, kwargs.get("position_ids"))
    kernel = _kernel(query) if cu is not None else None
    if kernel is not None:
        flat = lambda t: t.transpose(1, 2).reshape(batch * length, t.shape[1], dim)  # noqa: E731
        max_len = int(kwargs.get("max_length_q") or length)
        out = kernel(flat(query), flat(key), flat(value), cu.to(query.device, torch.int32), max_len, scale)
        return out.view(batch, length, heads, dim), None
    docs = document_ids(batch, length, query.device, cu, kwargs.get("position_ids"))
    return reference_attention(query, key, value, docs, scale), None


register()
