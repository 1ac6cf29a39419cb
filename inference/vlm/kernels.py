"""Triton kernels for the GPU engine's element-wise ops and its decode attention.

Why hand-written: the pieces torch.compile fuses for us (fuse.py) compile with dynamic
shapes, so every element's row and column come from integer divisions by run-time sizes,
and the compiled kernels ran at a fifth of the memory bandwidth on an H200 (prefill of a
screenshot question: gated MLP product 55 us a layer for 95 MB, text rotary 46 us for
20 MB, vision rotary 69 us for 53 MB). Here each program handles whole rows (one token's
heads, one MLP row's block), so no per-element division is left. Decode attention was six
kernels a layer (two matrix products, casts, mask, softmax, two cache writes); here it is
one pass over the cache in fixed chunks and a small combine.

Every kernel computes the maths of the op it replaces; each has a plain torch version
here (`*_reference`) that states that maths, runs on the CPU and is what the tests
compare the kernel with. Nothing here is required: without Triton or a GPU the callers
keep their own code.

Batch invariance (batched greedy answers must equal lone ones): every kernel treats each
row (token, or cache slot in decode) on its own, with the same blocking whatever else is
in the batch. Decode attention splits the cache at fixed positions (CHUNK) and skips
chunks the row cannot see, so a row's result does not depend on the batch size nor on
the attended-length bucket the step happens to use.
"""

from __future__ import annotations

import os

import torch

try:  # Triton ships with PyTorch's CUDA builds; a CPU-only install has none.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None
    tl = None

# Triton's interpreter runs the kernels on CPU tensors (slowly): for testing without a GPU.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Switches read at call time (the benchmark turns kernels off to compare; CUDA graphs
# captured meanwhile keep what they captured).
ENABLED = {
    "silu_mul": True,
    "rope_text": True,
    "rope_vision": True,
    "decode_attention": True,
    "kv_write": True,
    "add_rms_norm": True,
}

# Decode attention: the cache is read in chunks of CHUNK positions (one program each),
# BLOCK_N positions per inner step.
CHUNK = 256
BLOCK_N = 64


def usable(*tensors: torch.Tensor, name: str | None = None) -> bool:
    """Whether the kernels can run on these tensors (Triton present, GPU or interpreter)."""
    if triton is None or (name is not None and not ENABLED.get(name, False)):
        return False
    return all(t.is_cuda or INTERPRET for t in tensors)


def _pow2(n: int, least: int = 1) -> int:
    return max(least, 1 << (max(1, n) - 1).bit_length())


def _as_rows(cols: int, *tensors: torch.Tensor) -> list[torch.Tensor] | None:
    """Each tensor viewed as [rows, cols] with unit column stride, without a copy (the
    halves of a packed [..., 2I] tensor do); None where one of them cannot be."""
    try:
        rows = [t.view(-1, cols) for t in tensors]
    except RuntimeError:
        return None
    return rows if all(r.stride(1) == 1 for r in rows) else None


# --- gated MLP: up * silu(gate) ---


def silu_mul_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu in float32, rounded to the input dtype, then the product in that dtype (the
    eager `up * act(gate)` rounds the same way)."""
    return up * torch.nn.functional.silu(gate.float()).to(gate.dtype)


if triton is not None:

    @triton.jit
    def _silu_mul_kernel(g_ptr, u_ptr, o_ptr, g_stride, u_stride, n_cols, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        keep = cols < n_cols
        g = tl.load(g_ptr + row * g_stride + cols, mask=keep, other=0.0).to(tl.float32)
        u = tl.load(u_ptr + row * u_stride + cols, mask=keep, other=0.0).to(tl.float32)
        dtype = o_ptr.dtype.element_ty
        act = (g / (1.0 + tl.exp(-g))).to(dtype).to(tl.float32)
        tl.store(o_ptr + row * n_cols + cols, (u * act).to(dtype), mask=keep)


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor | None:
    """`up * silu(gate)`, or None where the kernel does not fit (the caller then runs its
    own code); gate and up may be the two halves of one packed projection."""
    cols = gate.shape[-1]
    if not usable(gate, up, name="silu_mul") or gate.shape != up.shape or cols == 0:
        return None
    if gate.dtype != up.dtype:
        return None
    rows_of = _as_rows(cols, gate, up)
    if rows_of is None:
        return None
    g2, u2 = rows_of
    out = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
    rows = g2.shape[0]
    if rows:
        block = 1024
        grid = (rows, triton.cdiv(cols, block))
        _silu_mul_kernel[grid](g2, u2, out, g2.stride(0), u2.stride(0), cols, BLOCK=block)
    return out


# --- GLM-4 layers: a norm on each branch's output, the residual add, the next norm ---


def rms_norm_reference(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' Llama-style RMSNorm: float32 statistics, rounded to the input dtype,
    then scaled by the weight in that dtype."""
    h = hidden.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(hidden.dtype)


def add_rms_norm_reference(x, residual, w1, w2, eps):
    """(residual + norm(x)·w1, norm(that sum)·w2); w2 None: (the sum, None)."""
    total = residual + rms_norm_reference(x, w1, eps)
    return total, (None if w2 is None else rms_norm_reference(total, w2, eps))


if triton is not None:

    @triton.jit
    def _add_rms_norm_kernel(
        x_ptr,
        r_ptr,
        w1_ptr,
        w2_ptr,
        sum_ptr,
        out_ptr,
        x_stride,
        r_stride,
        n_cols,
        eps,
        SECOND: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        keep = cols < n_cols
        dtype = sum_ptr.dtype.element_ty
        x = tl.load(x_ptr + row * x_stride + cols, mask=keep, other=0.0).to(tl.float32)
        rstd = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        w1 = tl.load(w1_ptr + cols, mask=keep, other=0.0).to(tl.float32)
        # Rounded where eager rounds: the normalised row, its product with the weight, the sum.
        normed = (w1 * (x * rstd).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
        res = tl.load(r_ptr + row * r_stride + cols, mask=keep, other=0.0).to(tl.float32)
        total = (res + normed).to(dtype)
        tl.store(sum_ptr + row * n_cols + cols, total, mask=keep)
        if SECOND:
            t = total.to(tl.float32)
            rstd2 = tl.rsqrt(tl.sum(t * t, axis=0) / n_cols + eps)
            w2 = tl.load(w2_ptr + cols, mask=keep, other=0.0).to(tl.float32)
            out = (w2 * (t * rstd2).to(dtype).to(tl.float32)).to(dtype)
            tl.store(out_ptr + row * n_cols + cols, out, mask=keep)


def add_rms_norm(x, residual, w1, w2, eps):
    """`add_rms_norm_reference` in one pass over the rows (one program a token), or None
    where the kernel does not fit (the caller then runs the norms and the add itself)."""
    cols = x.shape[-1]
    weights = [w1] if w2 is None else [w1, w2]
    if not usable(x, residual, *weights, name="add_rms_norm") or residual.shape != x.shape:
        return None
    if residual.dtype != x.dtype or any(w.shape != (cols,) or w.dtype != x.dtype for w in weights):
        return None
    if cols == 0 or cols > 16384 or any(w.stride(0) != 1 for w in weights):
        return None
    rows_of = _as_rows(cols, x, residual)
    if rows_of is None:
        return None
    x2, r2 = rows_of
    total = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    out = torch.empty_like(total) if w2 is not None else total
    rows = x2.shape[0]
    if rows:
        block = _pow2(cols)
        _add_rms_norm_kernel[(rows,)](
            x2,
            r2,
            w1,
            w1 if w2 is None else w2,
            total,
            out,
            x2.stride(0),
            r2.stride(0),
            cols,
            float(eps),
            SECOND=w2 is not None,
            BLOCK=block,
            num_warps=8 if block >= 2048 else 4,
        )
    return total, (None if w2 is None else out)


# --- text rotary (GLM-4V: interleaved pairs, on the first part of each head) ---


def rope_text_reference(q, k, cos, sin):
    """GLM-4V's text rotary: pairs (2i, 2i+1) of the first cos.shape[-1] channels rotate,
    the rest pass; every product and sum is rounded to the input dtype (eager's order)."""

    def one(x):
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)
        r = c.shape[-1]
        x_rot, x_pass = x[..., :r], x[..., r:]
        turned = torch.stack((-x_rot[..., 1::2], x_rot[..., 0::2]), dim=-1).flatten(-2)
        return torch.cat([x_rot * c + turned * s, x_pass], dim=-1)

    return one(q), one(k)


if triton is not None:

    @triton.jit
    def _rope_text_rows(
        x_ptr,
        o_ptr,
        ce,
        co,
        se,
        so,
        b,
        pos,
        seq,
        heads,
        sxb,
        sxh,
        sxl,
        D: tl.constexpr,
        R,
        BH: tl.constexpr,
    ):
        h = tl.arange(0, BH)[:, None]
        d = tl.arange(0, D)[None, :]
        rows = h < heads
        x = tl.load(x_ptr + b * sxb + pos * sxl + h * sxh + d, mask=rows, other=0.0)
        x = x.to(tl.float32)
        # Pairs (2i, 2i+1) rotate: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s), each product and
        # sum rounded to the dtype as eager rounds them. Split in registers: whole rows
        # load as wide vectors (a gather of each partner did not).
        xe, xo = tl.split(tl.reshape(x, (BH, D // 2, 2)))
        dtype = o_ptr.dtype.element_ty
        even = (xe * ce).to(dtype).to(tl.float32) - (xo * se).to(dtype).to(tl.float32)
        odd = (xo * co).to(dtype).to(tl.float32) + (xe * so).to(dtype).to(tl.float32)
        out = tl.reshape(tl.join(even, odd), (BH, D))
        out = tl.where(d < R, out, x)
        tl.store(o_ptr + ((b * heads + h) * seq + pos) * D + d, out.to(dtype), mask=rows)

    @triton.jit
    def _rope_text_kernel(
        q_ptr,
        k_ptr,
        cos_ptr,
        sin_ptr,
        qo_ptr,
        ko_ptr,
        seq,
        q_heads,
        k_heads,
        sqb,
        sqh,
        sql,
        skb,
        skh,
        skl,
        scb,
        scl,
        R,
        D: tl.constexpr,
        BHQ: tl.constexpr,
        BHK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        b = (pid // seq).to(tl.int64)
        pos = (pid % seq).to(tl.int64)
        d = tl.arange(0, D)[None, :]
        rot = d < R
        c = tl.load(cos_ptr + b * scb + pos * scl + d, mask=rot, other=1.0).to(tl.float32)
        s = tl.load(sin_ptr + b * scb + pos * scl + d, mask=rot, other=0.0).to(tl.float32)
        ce, co = tl.split(tl.reshape(c, (1, D // 2, 2)))
        se, so = tl.split(tl.reshape(s, (1, D // 2, 2)))
        _rope_text_rows(
            q_ptr, qo_ptr, ce, co, se, so, b, pos, seq, q_heads, sqb, sqh, sql, D, R, BHQ
        )
        _rope_text_rows(
            k_ptr, ko_ptr, ce, co, se, so, b, pos, seq, k_heads, skb, skh, skl, D, R, BHK
        )


def _rope_text_fits(q, k, cos, sin) -> bool:
    if q.dim() != 4 or k.dim() != 4 or cos.dim() != 3 or cos.shape != sin.shape:
        return False
    b, _, seq, d = q.shape
    r = cos.shape[-1]
    return (
        k.shape[0] == b
        and k.shape[2] == seq
        and k.shape[3] == d
        and d == _pow2(d)
        and r % 2 == 0
        and r <= d
        and cos.shape[0] in (1, b)
        and cos.shape[1] == seq
        and q.dtype == k.dtype == cos.dtype == sin.dtype
        and q.stride(-1) == k.stride(-1) == cos.stride(-1) == sin.stride(-1) == 1
        and cos.stride() == sin.stride()
    )


def rope_text(q, k, cos, sin):
    """Returns contiguous [b, heads, L, D] tensors, like the eager concatenation."""
    if not usable(q, k, cos, sin, name="rope_text") or not _rope_text_fits(q, k, cos, sin):
        return None
    b, q_heads, seq, d = q.shape
    k_heads = k.shape[1]
    qo = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    ko = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    if b * seq:
        _rope_text_kernel[(b * seq,)](
            q,
            k,
            cos,
            sin,
            qo,
            ko,
            seq,
            q_heads,
            k_heads,
            q.stride(0),
            q.stride(1),
            q.stride(2),
            k.stride(0),
            k.stride(1),
            k.stride(2),
            cos.stride(0) if cos.shape[0] == b and b > 1 else 0,
            cos.stride(1),
            cos.shape[-1],
            D=d,
            BHQ=_pow2(q_heads),
            BHK=_pow2(k_heads),
        )
    return qo, ko


# --- vision rotary (GLM-4V vision tower: halves rotate, float32 maths) ---


def rope_vision_reference(q, k, cos, sin):
    """q, k: [seq, heads, D]; cos, sin: [seq, D]. In float32, rounded back at the end."""

    def one(x):
        xf = x.float()
        half = xf.shape[-1] // 2
        turned = torch.cat((-xf[..., half:], xf[..., :half]), dim=-1)
        c, s = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
        return (xf * c + turned * s).to(x.dtype)

    return one(q), one(k)


if triton is not None:

    @triton.jit
    def _rope_vision_rows(
        x_ptr, o_ptr, c1, c2, s1, s2, pos, heads, sxs, sxh, D: tl.constexpr, BH: tl.constexpr
    ):
        # Halves rotate: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s), in float32. Each half is
        # loaded and stored as one contiguous run.
        half = D // 2
        h = tl.arange(0, BH)[:, None]
        d = tl.arange(0, D // 2)[None, :]
        rows = h < heads
        base = x_ptr + pos * sxs + h * sxh
        x1 = tl.load(base + d, mask=rows, other=0.0).to(tl.float32)
        x2 = tl.load(base + half + d, mask=rows, other=0.0).to(tl.float32)
        out = o_ptr + (pos * heads + h) * D + d
        dtype = o_ptr.dtype.element_ty
        tl.store(out, (x1 * c1 - x2 * s1).to(dtype), mask=rows)
        tl.store(out + half, (x2 * c2 + x1 * s2).to(dtype), mask=rows)

    @triton.jit
    def _rope_vision_kernel(
        q_ptr,
        k_ptr,
        cos_ptr,
        sin_ptr,
        qo_ptr,
        ko_ptr,
        heads,
        sqs,
        sqh,
        sks,
        skh,
        scs,
        D: tl.constexpr,
        BH: tl.constexpr,
    ):
        pos = tl.program_id(0).to(tl.int64)
        half = D // 2
        d = tl.arange(0, D // 2)[None, :]
        c1 = tl.load(cos_ptr + pos * scs + d).to(tl.float32)
        c2 = tl.load(cos_ptr + pos * scs + half + d).to(tl.float32)
        s1 = tl.load(sin_ptr + pos * scs + d).to(tl.float32)
        s2 = tl.load(sin_ptr + pos * scs + half + d).to(tl.float32)
        _rope_vision_rows(q_ptr, qo_ptr, c1, c2, s1, s2, pos, heads, sqs, sqh, D, BH)
        _rope_vision_rows(k_ptr, ko_ptr, c1, c2, s1, s2, pos, heads, sks, skh, D, BH)


def rope_vision(q, k, cos, sin):
    """Returns contiguous [seq, heads, D] tensors, or None where the kernel does not fit."""
    if not usable(q, k, cos, sin, name="rope_vision"):
        return None
    if q.dim() != 3 or q.shape != k.shape or cos.dim() != 2 or cos.shape != sin.shape:
        return None
    seq, heads, d = q.shape
    if (
        cos.shape != (seq, d)
        or d != _pow2(d)
        or q.dtype != k.dtype
        or q.stride(-1) != 1
        or k.stride(-1) != 1
        or cos.stride() != sin.stride()
        or cos.stride(-1) != 1
    ):
        return None
    qo = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    ko = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    if seq:
        _rope_vision_kernel[(seq,)](
            q,
            k,
            cos,
            sin,
            qo,
            ko,
            heads,
            q.stride(0),
            q.stride(1),
            k.stride(0),
            k.stride(1),
            cos.stride(0),
            D=d,
            BH=_pow2(heads),
        )
    return qo, ko


# --- decode: writing one token's keys and values into the slot cache ---

if triton is not None:

    @triton.jit
    def _kv_write_kernel(
        k_ptr,
        v_ptr,
        kc_ptr,
        vc_ptr,
        lens_ptr,
        kv_heads,
        skb,
        skh,
        svb,
        svh,
        scb,
        sch,
        scn,
        D: tl.constexpr,
        BH: tl.constexpr,
    ):
        b = tl.program_id(0).to(tl.int64)
        h = tl.arange(0, BH)[:, None]
        d = tl.arange(0, D)[None, :]
        rows = h < kv_heads
        at = tl.load(lens_ptr + b).to(tl.int64)
        dst = b * scb + h * sch + at * scn + d
        k = tl.load(k_ptr + b * skb + h * skh + d, mask=rows)
        v = tl.load(v_ptr + b * svb + h * svh + d, mask=rows)
        tl.store(kc_ptr + dst, k, mask=rows)
        tl.store(vc_ptr + dst, v, mask=rows)


def kv_write(k_cache, v_cache, key, value, lens) -> bool:
    """k_cache[i, :, lens[i]] = key[i, :, 0] (and v) for every row i; False if not done.

    k_cache, v_cache: [slots, kv_heads, positions, D] (the same strides); key, value:
    [b, kv_heads, 1, D]; lens: [b] (int64, on the device)."""
    if not usable(k_cache, key, name="kv_write"):
        return False
    b, kv_heads, one, d = key.shape
    if (
        one != 1
        or value.shape != key.shape
        or k_cache.stride() != v_cache.stride()
        or k_cache.stride(-1) != 1
        or key.stride(-1) != 1
        or value.stride(-1) != 1
        or d != _pow2(d)
        or k_cache.dtype != key.dtype
    ):
        return False
    _kv_write_kernel[(b,)](
        key,
        value,
        k_cache,
        v_cache,
        lens,
        kv_heads,
        key.stride(0),
        key.stride(1),
        value.stride(0),
        value.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        D=d,
        BH=_pow2(kv_heads),
    )
    return True


# --- decode attention over the slot cache ---


def decode_attention_reference(query, key, value, mask, scale):
    """query [b, heads, 1, D]; key/value [b, kv_heads, span, D]; mask [b, 1, 1, span]
    (0 or -inf). Softmax in float32; grouped query heads share their KV head."""
    b, heads, _, d = query.shape
    kv_heads = key.shape[1]
    qg = query.reshape(b, kv_heads, heads // kv_heads, d).float()
    scores = torch.matmul(qg, key.float().transpose(-1, -2)) * scale + mask.view(b, 1, 1, -1)
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, value.float())
    return out.reshape(b, heads, d).to(query.dtype)


if triton is not None:

    @triton.jit
    def _decode_attn_chunk_kernel(
        q_ptr,
        k_ptr,
        v_ptr,
        mask_ptr,
        po_ptr,
        pm_ptr,
        pl_ptr,
        span,
        scale,
        n_chunks,
        sqb,
        sqh,
        skb,
        skh,
        skn,
        svb,
        svh,
        svn,
        smb,
        G: tl.constexpr,
        BG: tl.constexpr,
        D: tl.constexpr,
        CHUNK: tl.constexpr,
        BLOCK: tl.constexpr,
        IEEE: tl.constexpr,
    ):
        b = tl.program_id(0).to(tl.int64)
        kh = tl.program_id(1).to(tl.int64)
        chunk = tl.program_id(2)
        kv_heads = tl.num_programs(1)
        g = tl.arange(0, BG)
        d = tl.arange(0, D)
        q = tl.load(
            q_ptr + b * sqb + (kh * G + g)[:, None] * sqh + d[None, :],
            mask=(g < G)[:, None],
            other=0.0,
        )
        m_i = tl.full([BG], float("-inf"), tl.float32)
        l_i = tl.zeros([BG], tl.float32)
        acc = tl.zeros([BG, D], tl.float32)
        start = chunk * CHUNK
        for step in range(0, CHUNK // BLOCK):
            n = start + step * BLOCK + tl.arange(0, BLOCK)
            inside = n < span
            add = tl.load(mask_ptr + b * smb + n, mask=inside, other=float("-inf"))
            # Blocks the row cannot see are skipped, not multiplied by zero: what a row
            # computes depends on its own length only, not on the span of this step.
            if tl.max(add, axis=0) > float("-inf"):
                k = tl.load(
                    k_ptr + b * skb + kh * skh + n[:, None] * skn + d[None, :],
                    mask=inside[:, None],
                    other=0.0,
                )
                if IEEE:
                    s = tl.dot(q, tl.trans(k), input_precision="ieee")
                else:
                    s = tl.dot(q, tl.trans(k))
                s = s * scale + add[None, :]
                m_new = tl.maximum(m_i, tl.max(s, axis=1))
                p = tl.exp(s - m_new[:, None])
                alpha = tl.exp(m_i - m_new)
                l_i = l_i * alpha + tl.sum(p, axis=1)
                v = tl.load(
                    v_ptr + b * svb + kh * svh + n[:, None] * svn + d[None, :],
                    mask=inside[:, None],
                    other=0.0,
                )
                if IEEE:
                    pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
                else:
                    pv = tl.dot(p.to(v.dtype), v)
                acc = acc * alpha[:, None] + pv
                m_i = m_new
        part = (b * kv_heads + kh) * n_chunks + chunk
        tl.store(po_ptr + (part * BG + g)[:, None] * D + d[None, :], acc)
        tl.store(pm_ptr + part * BG + g, m_i)
        tl.store(pl_ptr + part * BG + g, l_i)

    @triton.jit
    def _decode_attn_combine_kernel(
        po_ptr,
        pm_ptr,
        pl_ptr,
        o_ptr,
        sob,
        soh,
        N_CHUNKS: tl.constexpr,
        G: tl.constexpr,
        BG: tl.constexpr,
        D: tl.constexpr,
    ):
        b = tl.program_id(0).to(tl.int64)
        kh = tl.program_id(1).to(tl.int64)
        kv_heads = tl.num_programs(1)
        g = tl.arange(0, BG)
        d = tl.arange(0, D)
        first = (b * kv_heads + kh) * N_CHUNKS
        top = tl.full([BG], float("-inf"), tl.float32)
        for c in range(0, N_CHUNKS):
            top = tl.maximum(top, tl.load(pm_ptr + (first + c) * BG + g))
        top = tl.where(top == float("-inf"), 0.0, top)  # only padding query rows
        total = tl.zeros([BG], tl.float32)
        acc = tl.zeros([BG, D], tl.float32)
        for c in range(0, N_CHUNKS):
            part = first + c
            # A chunk the row cannot see has m = -inf, l = 0, acc = 0: it adds exact zeros.
            w = tl.exp(tl.load(pm_ptr + part * BG + g) - top)
            total += tl.load(pl_ptr + part * BG + g) * w
            acc += tl.load(po_ptr + (part * BG + g)[:, None] * D + d[None, :]) * w[:, None]
        out = acc / tl.where(total == 0.0, 1.0, total)[:, None]
        tl.store(
            o_ptr + b * sob + (kh * G + g)[:, None] * soh + d[None, :],
            out.to(o_ptr.dtype.element_ty),
            mask=(g < G)[:, None],
        )


def decode_attention(query, key, value, mask, scale) -> torch.Tensor | None:
    """Attention of one new token per slot over the slot cache; [b, heads, D], or None
    where the kernel does not fit (the caller then runs its own code).

    query [b, heads, 1, D]; key, value [b, kv_heads, span, D] (views into the cache);
    mask [b, 1, 1, span] float32, 0 where visible and -inf elsewhere."""
    if not usable(query, key, value, name="decode_attention") or mask is None:
        return None
    b, heads, one, d = query.shape
    kv_heads, span = key.shape[1], key.shape[2]
    if (
        one != 1
        or heads % kv_heads
        or value.shape != key.shape
        or d != _pow2(d)
        or d < 16
        or mask.dtype != torch.float32
        or mask.numel() != b * span
        or query.stride(-1) != 1
        or key.stride(-1) != 1
        or value.stride(-1) != 1
        or query.dtype != key.dtype
    ):
        return None
    mask2 = mask.reshape(b, span)
    if mask2.stride(-1) != 1:
        return None
    group = heads // kv_heads
    bg = _pow2(group, 16)
    n_chunks = triton.cdiv(span, CHUNK)
    dev = query.device
    po = torch.empty((b, kv_heads, n_chunks, bg, d), dtype=torch.float32, device=dev)
    pm = torch.empty((b, kv_heads, n_chunks, bg), dtype=torch.float32, device=dev)
    pl = torch.empty((b, kv_heads, n_chunks, bg), dtype=torch.float32, device=dev)
    out = torch.empty((b, heads, d), dtype=query.dtype, device=dev)
    ieee = query.dtype == torch.float32
    _decode_attn_chunk_kernel[(b, kv_heads, n_chunks)](
        query,
        key,
        value,
        mask2,
        po,
        pm,
        pl,
        span,
        float(scale),
        n_chunks,
        query.stride(0),
        query.stride(1),
        key.stride(0),
        key.stride(1),
        key.stride(2),
        value.stride(0),
        value.stride(1),
        value.stride(2),
        mask2.stride(0),
        G=group,
        BG=bg,
        D=d,
        CHUNK=CHUNK,
        BLOCK=BLOCK_N,
        IEEE=ieee,
    )
    _decode_attn_combine_kernel[(b, kv_heads)](
        po, pm, pl, out, out.stride(0), out.stride(1), N_CHUNKS=n_chunks, G=group, BG=bg, D=d
    )
    return out
