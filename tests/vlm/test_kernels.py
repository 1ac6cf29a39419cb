"""The Triton kernels of inference/vlm/kernels.py against the ops they replace.

On the CPU the reference functions (the kernels' stated maths, which the engine does not
use there) are checked against transformers' own GLM-4V ops. The kernels themselves need
Triton and a GPU, or Triton's interpreter (TRITON_INTERPRET=1 with Triton installed, which
runs them on CPU tensors); otherwise those tests are skipped.
"""

from __future__ import annotations

import pytest
import torch

from inference.vlm import kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_kernels = pytest.mark.skipif(
    not kernels.usable(torch.empty(0, device=DEVICE)),
    reason="needs Triton with a GPU, or TRITON_INTERPRET=1 with Triton installed",
)
DTYPES = [torch.bfloat16, torch.float32]


def glm_op(name):
    """transformers' own function (fuse.py may have swapped a faster one into the module)."""
    from transformers.models.glm4v import modeling_glm4v

    fn = getattr(modeling_glm4v, name)
    return getattr(fn, "eager", fn)


def text_rotary_inputs(batch, seq, heads=8, kv_heads=2, d=32, rotary=16, dtype=torch.bfloat16):
    # As the model makes them: q and k transposed views of [b, L, heads, D] projections.
    q = torch.randn(batch, seq, heads, d, device=DEVICE).to(dtype).transpose(1, 2)
    k = torch.randn(batch, seq, kv_heads, d, device=DEVICE).to(dtype).transpose(1, 2)
    angles = torch.randn(batch, seq, rotary // 2, device=DEVICE).repeat_interleave(2, dim=-1)
    return q, k, angles.cos().to(dtype), angles.sin().to(dtype)


def vision_rotary_inputs(seq, heads=3, d=32, dtype=torch.bfloat16):
    qkv = torch.randn(seq, 3, heads, d, device=DEVICE).to(dtype)
    q, k, _ = qkv.permute(1, 0, 2, 3).unbind(0)
    half = torch.randn(seq, d // 2, device=DEVICE)
    angles = torch.cat((half, half), dim=-1)
    return q, k, angles.cos(), angles.sin()


# --- the stated maths is the model's maths (CPU) ---


@pytest.mark.parametrize("dtype", DTYPES)
def test_text_rotary_reference_is_glm_rotary(dtype):
    q, k, cos, sin = (t.cpu() for t in text_rotary_inputs(2, 5, dtype=dtype))
    expected = glm_op("apply_rotary_pos_emb")(q, k, cos, sin)
    for got, want in zip(kernels.rope_text_reference(q, k, cos, sin), expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vision_rotary_reference_is_glm_vision_rotary(dtype):
    q, k, cos, sin = (t.cpu() for t in vision_rotary_inputs(7, dtype=dtype))
    expected = glm_op("apply_rotary_pos_emb_vision")(q, k, cos, sin)
    for got, want in zip(kernels.rope_vision_reference(q, k, cos, sin), expected, strict=True):
        assert torch.equal(got, want)


def test_silu_mul_reference_is_the_eager_gated_product():
    x = torch.randn(3, 4, 64).to(torch.bfloat16)
    gate, up = x.chunk(2, dim=-1)
    assert torch.equal(kernels.silu_mul_reference(gate, up), up * torch.nn.functional.silu(gate))


def glm_norm(width, dtype, eps=1e-5):
    from transformers.models.glm4v.modeling_glm4v import Glm4vRMSNorm

    norm = Glm4vRMSNorm(width, eps=eps).to(DEVICE, dtype)
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.3)
    return norm


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_rms_norm_reference_is_the_glm_layer_order(dtype):
    """A GLM-4 layer: norm of the branch's output, residual add, the next norm."""
    after, before = (glm_norm(48, dtype).cpu() for _ in range(2))
    x, residual = torch.randn(2, 3, 48).to(dtype), torch.randn(2, 3, 48).to(dtype)
    with torch.no_grad():
        total = residual + after(x)
        want = (total, before(total))
        got = kernels.add_rms_norm_reference(x, residual, after.weight, before.weight, 1e-5)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_decode_attention_reference_is_softmax_attention():
    b, heads, kv_heads, span, d = 3, 8, 2, 20, 16
    q = torch.randn(b, heads, 1, d)
    k, v = torch.randn(b, kv_heads, span, d), torch.randn(b, kv_heads, span, d)
    lens = torch.tensor([0, 7, 19])
    mask = torch.zeros(b, span).masked_fill(torch.arange(span)[None] > lens[:, None], -torch.inf)
    got = kernels.decode_attention_reference(q, k, v, mask.view(b, 1, 1, span), d**-0.5)
    for i in range(b):
        n = int(lens[i]) + 1
        kk = k[i, :, :n].repeat_interleave(heads // kv_heads, 0)
        vv = v[i, :, :n].repeat_interleave(heads // kv_heads, 0)
        want = torch.nn.functional.scaled_dot_product_attention(q[i], kk, vv)
        torch.testing.assert_close(got[i], want[:, 0], rtol=1e-5, atol=1e-5)


def test_without_triton_or_gpu_the_callers_keep_their_code():
    cpu = torch.zeros(1)
    if kernels.usable(cpu):
        pytest.skip("Triton's interpreter is on: the kernels do run on CPU tensors")
    assert kernels.rope_text(cpu, cpu, cpu, cpu) is None
    assert kernels.rope_vision(cpu, cpu, cpu, cpu) is None
    assert kernels.decode_attention(cpu, cpu, cpu, cpu, 1.0) is None
    assert not kernels.kv_write(cpu, cpu, cpu, cpu, cpu)
    assert kernels.silu_mul(cpu, cpu) is None
    assert kernels.add_rms_norm(cpu, cpu, cpu, None, 1e-5) is None


# --- the kernels (GPU or interpreter) ---


def close(got, want, dtype):
    # Two roundings of the dtype: an intermediate rounded one ulp apart (exp and FMA
    # differ from the reference's) moves the result by up to two. (Triton's interpreter
    # also rounds float32 to bfloat16 towards zero, where the GPU rounds to nearest.)
    tol = 1e-5 if dtype == torch.float32 else 1.6e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_mul_kernel_on_packed_halves(dtype):
    x = torch.randn(2, 5, 2 * 1100, device=DEVICE).to(dtype) * 3
    gate, up = x.chunk(2, dim=-1)
    got = kernels.silu_mul(gate, up)
    assert got.shape == gate.shape and got.is_contiguous()
    close(got, kernels.silu_mul_reference(gate, up), dtype)
    split = kernels.silu_mul(gate.contiguous(), up.contiguous())
    assert torch.equal(split, got)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 5])
def test_add_rms_norm_kernel(dtype, rows):
    w1, w2 = (glm_norm(1000, dtype).weight.detach() for _ in range(2))
    x = torch.randn(rows, 1, 1000, device=DEVICE).to(dtype) * 3
    residual = torch.randn(rows, 1, 1000, device=DEVICE).to(dtype)
    got = kernels.add_rms_norm(x, residual, w1, w2, 1e-5)
    want = kernels.add_rms_norm_reference(x, residual, w1, w2, 1e-5)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.is_contiguous()
        close(a, b, dtype)
    total, none = kernels.add_rms_norm(x, residual, w1, None, 1e-5)
    assert none is None and torch.equal(total, got[0])
    # One row alone gives the bits it gives in the batch (batched = alone).
    alone = kernels.add_rms_norm(x[:1], residual[:1], w1, w2, 1e-5)
    assert torch.equal(alone[1], got[1][:1])


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,seq", [(1, 9), (3, 1), (2, 4)])
def test_text_rotary_kernel(dtype, batch, seq):
    q, k, cos, sin = text_rotary_inputs(batch, seq, dtype=dtype)
    got = kernels.rope_text(q, k, cos, sin)
    want = kernels.rope_text_reference(q, k, cos, sin)
    for a, b in zip(got, want, strict=True):
        assert a.is_contiguous() and a.shape == b.shape
        close(a, b, dtype)
    # Positions shared by the batch (cos of batch 1) broadcast like the eager op.
    q, k, cos, sin = text_rotary_inputs(batch, seq, dtype=dtype)
    cos, sin = cos[:1], sin[:1]
    for a, b in zip(
        kernels.rope_text(q, k, cos, sin), kernels.rope_text_reference(q, k, cos, sin), strict=True
    ):
        close(a, b, dtype)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_vision_rotary_kernel(dtype):
    q, k, cos, sin = vision_rotary_inputs(37, dtype=dtype)
    for a, b in zip(
        kernels.rope_vision(q, k, cos, sin),
        kernels.rope_vision_reference(q, k, cos, sin),
        strict=True,
    ):
        assert a.is_contiguous()
        close(a, b, dtype)


@needs_kernels
def test_kv_write_kernel_writes_each_slot_at_its_length():
    cache = torch.randn(2, 4, 2, 40, 16, device=DEVICE)  # [k|v, slots, kv_heads, pos, D]
    expected = cache.clone()
    key = torch.randn(3, 2, 1, 16, device=DEVICE)
    value = torch.randn(3, 2, 1, 16, device=DEVICE)
    lens = torch.tensor([5, 0, 39], device=DEVICE)
    rows = torch.arange(3, device=DEVICE)
    expected[0][rows, :, lens] = key[:, :, 0]
    expected[1][rows, :, lens] = value[:, :, 0]
    assert kernels.kv_write(cache[0], cache[1], key, value, lens)
    assert torch.equal(cache, expected)


def attention_case(b, span, lens, dtype, heads=8, kv_heads=2, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, heads, 1, d, generator=g).to(dtype).to(DEVICE)
    cache = torch.randn(2, b, kv_heads, 700, d, generator=g).to(dtype).to(DEVICE)
    lens = torch.tensor(lens, device=DEVICE)
    visible = torch.arange(span, device=DEVICE)[None] <= lens[:, None]
    mask = torch.zeros(b, span, device=DEVICE).masked_fill(~visible, float("-inf"))
    return q, cache[0, :, :, :span], cache[1, :, :, :span], mask.view(b, 1, 1, span)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_attention_kernel(dtype):
    if kernels.INTERPRET and dtype == torch.bfloat16:
        pytest.skip("Triton's interpreter multiplies bfloat16 matrices wrongly (3.6)")
    q, k, v, mask = attention_case(4, 600, [0, 255, 256, 599], dtype)
    got = kernels.decode_attention(q, k, v, mask, 32**-0.5)
    want = kernels.decode_attention_reference(q, k, v, mask, 32**-0.5)
    close(got, want, dtype)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_attention_row_does_not_depend_on_batch_or_span(dtype):
    """What batched greedy = unbatched rests on: a row's output is bit-identical alone, in a
    batch, and over a longer attended-length bucket."""
    q, k, v, mask = attention_case(3, 640, [100, 300, 20], dtype)
    batched = kernels.decode_attention(q, k, v, mask, 0.2)
    for i in range(3):
        alone = kernels.decode_attention(
            q[i : i + 1], k[i : i + 1], v[i : i + 1], mask[i : i + 1], 0.2
        )
        assert torch.equal(alone[0], batched[i])
    short = kernels.decode_attention(q, k[:, :, :384], v[:, :, :384], mask[..., :384], 0.2)
    assert torch.equal(short, batched)
