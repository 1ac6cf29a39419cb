"""Take the host round trips out of the GLM-4V vision tower.

Why: transformers' vision attention (outside flash-attn) splits the packed patches of a
batch per image with `lengths.tolist()`, a device-to-host copy in each of its 24 layers.
Every copy waits for the GPU to drain, so the CPU cannot queue the next layer's kernels
ahead and the encoder runs at the speed of its Python, not of the GPU (48 ms for one
1024x768 screenshot on an H200, of which 20 ms is GPU work). Its position embeddings are
also re-interpolated (bicubic, float32) for every image, although they depend only on
the image's grid.

The engine knows each image's grid on the host before it calls the encoder, so it hands
the grids over (`VisionHints.use`) and the patched modules need no device-to-host copy:
the attention splits by the host lengths, and the interpolated position embeddings are
kept per image grid (and put together for a batch of images). The maths is the model's own (the same projections, rotary helper and
SDPA per image); a probe compares the patched attention with the original on random
input before anything is swapped, and without hints the original behaviour remains.
"""

from __future__ import annotations

import logging
import sys
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Vision attention classes whose forward is the packed-patches layout reproduced below.
ATTENTION_CLASSES = {"Glm4vVisionAttention", "Glm4vMoeVisionAttention"}
EMBEDDING_CLASSES = {"Glm4vVisionEmbeddings", "Glm4vMoeVisionEmbeddings"}
POSITION_CACHE_SIZE = 16


class VisionHints:
    """Host-side facts about the batch the encoder is running (set by the one scheduler
    thread around each encoder call)."""

    def __init__(self) -> None:
        self.grids: tuple[tuple[int, int, int], ...] | None = None

    @property
    def lengths(self) -> list[int] | None:
        if self.grids is None:
            return None
        return [t * h * w for t, h, w in self.grids]

    @contextmanager
    def use(self, grid_thw: torch.Tensor) -> Iterator[None]:
        self.grids = tuple(tuple(int(v) for v in row) for row in grid_thw.tolist())
        try:
            yield
        finally:
            self.grids = None


def _attention_forward(attn: Any, hints: VisionHints) -> Any:
    module = sys.modules[type(attn).__module__]

    def forward(
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        seq = hidden_states.shape[0]
        q, k, v = (
            attn.qkv(hidden_states)
            .reshape(seq, 3, attn.num_heads, -1)
            .permute(1, 0, 2, 3)
            .unbind(0)
        )
        cos, sin = position_embeddings
        # Looked up at call time: fuse.py may have swapped in a compiled version.
        q, k = module.apply_rotary_pos_emb_vision(q, k, cos, sin)
        q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # [1, heads, seq, d]
        if cu_seqlens.shape[0] == 2:
            lengths = [seq]  # one image: nothing to split, and nothing to ask the GPU
        else:
            lengths = hints.lengths
            if lengths is None or sum(lengths) != seq:
                lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        outputs = [
            F.scaled_dot_product_attention(qi, ki, vi, scale=attn.scaling)
            for qi, ki, vi in zip(
                q.split(lengths, dim=2),
                k.split(lengths, dim=2),
                v.split(lengths, dim=2),
                strict=True,
            )
        ]
        out = torch.cat(outputs, dim=2).transpose(1, 2).reshape(seq, -1).contiguous()
        return attn.proj(out)

    return forward


def _embeddings_forward(embeddings: Any, hints: VisionHints) -> Any:
    original = embeddings.forward
    kept: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def forward(hidden, lengths, image_shapes, h_coords, w_coords) -> torch.Tensor:
        grids = hints.grids
        if grids is None or torch.is_grad_enabled():
            return original(hidden, lengths, image_shapes, h_coords, w_coords)
        if sum(t * h * w for t, h, w in grids) != hidden.shape[0]:
            return original(hidden, lengths, image_shapes, h_coords, w_coords)
        # One table per grid, not per batch of grids: a prefill group of 8 screenshots of
        # one size then reuses the table of one (each patch's interpolation depends only
        # on its own image's grid and coordinates).
        tables, start = [], 0
        for i, (t, h, w) in enumerate(grids):
            n = t * h * w
            key = ((t, h, w), hidden.dtype, hidden.device)
            table = kept.get(key)
            if table is None:
                # The original adds its interpolated table to its input; from zeros, that
                # is the table itself, rounded to the weights' dtype exactly as it would be.
                table = original(
                    torch.zeros_like(hidden[start : start + n]),
                    lengths[i : i + 1],
                    image_shapes[i : i + 1],
                    h_coords[start : start + n],
                    w_coords[start : start + n],
                )
                kept[key] = table
                while len(kept) > POSITION_CACHE_SIZE:
                    kept.popitem(last=False)
            kept.move_to_end(key)
            tables.append(table)
            start += n
        return hidden + (tables[0] if len(tables) == 1 else torch.cat(tables))

    return forward


@torch.inference_mode()
def _probe(attn: Any, patched: Any, hints: VisionHints) -> None:
    """The patched attention must match the original on two packed images."""
    param = next(attn.parameters())
    device, dtype = param.device, param.dtype
    head_dim = attn.head_dim
    grids = torch.tensor([[1, 4, 6], [1, 2, 4]])
    seq = int(grids.prod(-1).sum())
    hidden = torch.randn(seq, attn.qkv.in_features, device=device, dtype=dtype)
    angles = torch.randn(seq, head_dim, device=device, dtype=torch.float32)
    rotary = (angles.cos(), angles.sin())
    cu = torch.tensor([0, 24, seq], device=device, dtype=torch.int32)
    expected = attn.forward(hidden, cu_seqlens=cu, position_embeddings=rotary)
    with hints.use(grids):
        got = patched(hidden, cu_seqlens=cu, position_embeddings=rotary)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


def speed_up_vision(visual: Any, hints: VisionHints) -> list[str]:
    """Patch the vision tower's attention and position embeddings (instance attributes:
    only this model changes); return what was patched."""
    if visual is None:
        return []
    done: list[str] = []
    attentions = [m for m in visual.modules() if type(m).__name__ in ATTENTION_CLASSES]
    if attentions:
        try:
            _probe(attentions[0], _attention_forward(attentions[0], hints), hints)
        except Exception:  # noqa: BLE001 - an unfamiliar variant keeps its own forward
            log.exception("vision attention differs from the expected layout; left as is")
        else:
            for attn in attentions:
                attn.forward = _attention_forward(attn, hints)
            done.append(f"{len(attentions)} vision attention without host syncs")
    embeddings = getattr(visual, "embeddings", None)
    if embeddings is not None and type(embeddings).__name__ in EMBEDDING_CLASSES:
        embeddings.forward = _embeddings_forward(embeddings, hints)
        done.append("vision position embeddings kept per grid")
    return done
