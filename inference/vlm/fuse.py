"""Fuse the small element-wise pieces of the text decoder with torch.compile.

Why: inside a CUDA graph there is no launch overhead left, but every kernel still costs a
few microseconds. transformers' RMSNorm (cast to float32, square, mean, rsqrt, multiply,
cast back, scale: about six kernels, four norms a layer in GLM-4V) and the rotary
embedding (slicing, rotating, concatenating: about a dozen) add up to well over a
thousand tiny kernels per decode step, about as long as reading the weights. Compiled,
each becomes one or two Triton kernels computing the same float32 maths.

On a GPU with Triton, the gated product and the two rotary helpers go one step further,
to the hand-written kernels of kernels.py (the compiled versions ran at a fifth of the
memory bandwidth in prefill); the compiled versions stay behind them for any input the
kernels do not take.

Only these small, shape-generic functions are compiled (once, with dynamic shapes, shared
by all layers), never the layers themselves, so compilation takes seconds, not minutes,
and the matrix products stay on cuBLAS. Anything that fails to compile keeps the eager
version: this is an optimisation, never a requirement.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch

from . import kernels

log = logging.getLogger(__name__)

ROTARY_FUNCTIONS = ("apply_rotary_pos_emb",)
# Compiled without a probe (their shapes are the vision tower's); a failure at run time
# falls back to the eager function for good.
UNPROBED_FUNCTIONS = ("apply_rotary_pos_emb_vision",)


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """`up * silu(gate)` of a gated MLP in one kernel instead of two and an intermediate
    tensor (silu's output is rounded to the input dtype first, as eager rounds it)."""
    return up * torch.nn.functional.silu(gate.float()).to(gate.dtype)


def rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The Llama-style RMSNorm of transformers (GLM-4V, Qwen2), as a plain function.

    A function of tensors, not a module method, so one compiled version serves all the
    model's norms (a compiled method is specialised per module instance).
    """
    dtype = hidden.dtype
    h = hidden.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


class _WithFallback:
    """Call the compiled function; on any compile-time failure use the eager one for good."""

    def __init__(self, compiled: Any, eager: Any, name: str):
        self.compiled, self.eager, self.name = compiled, eager, name
        self._glimpse_fused = True
        self._glimpse_label = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception:  # noqa: BLE001 - e.g. too many shape variants
                log.exception("compiled %s failed; using the eager version", self.name)
                self.compiled = None
        return self.eager(*args, **kwargs)


def _compiled(fn: Any) -> Any:
    # Each distinct case (batch 1 or more, one token or many, dtype) is one compiled entry;
    # dynamo's default limit of 8 is too tight once two models share a process.
    config = torch._dynamo.config
    config.recompile_limit = max(getattr(config, "recompile_limit", 8), 64)
    config.cache_size_limit = max(getattr(config, "cache_size_limit", 8), 64)
    return _WithFallback(torch.compile(fn, dynamic=True, fullgraph=True), fn, fn.__name__)


def _close(got: Any, expected: Any) -> None:
    pairs = zip(got, expected, strict=True) if isinstance(got, tuple) else [(got, expected)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


@torch.inference_mode()
def fuse_small_ops(
    text_model: Any, device: torch.device, dtype: torch.dtype, extra: Any = None
) -> list[str]:
    """Compile RMSNorms (of `text_model` and of `extra`, e.g. the vision tower) and the
    text rotary helper; return what was fused. Probes run in inference mode, like the
    engine, so the compiled entries they create are the ones the engine reuses."""
    fused: list[str] = []
    modules = list(text_model.modules()) + (list(extra.modules()) if extra is not None else [])
    norms = [
        m
        for m in modules
        if type(m).__name__.endswith("RMSNorm")
        and hasattr(m, "variance_epsilon")
        and m.weight.dtype == dtype
    ]
    if norms:
        fused_norm = _compiled(rms_norm)
        try:
            # Several shapes, as decode and prefill will use them, and the same maths as
            # the model's own norm (a norm of another kind fails here and stays eager).
            for shape in ((2, 3), (1, 1), (4, 1), (1, 7)):
                probe = torch.randn(*shape, norms[0].weight.shape[0], device=device, dtype=dtype)
                _close(
                    fused_norm(probe, norms[0].weight, norms[0].variance_epsilon), norms[0](probe)
                )
        except Exception:  # noqa: BLE001 - keep eager on any compile trouble
            log.exception("RMSNorm did not compile; keeping it eager")
        else:
            for norm in norms:
                # An instance attribute: only this model's norms change.
                norm.forward = _norm_forward(fused_norm, norm)
            fused.append(f"{len(norms)} RMSNorm")
    fused.extend(_fuse_gated_mlps(modules, device, dtype))
    fused.extend(_fuse_qkv(text_model, device, dtype))
    attn = text_model.layers[0].self_attn
    module = sys.modules.get(type(attn).__module__)
    for name in ROTARY_FUNCTIONS:
        fn = getattr(module, name, None)
        if fn is None:
            continue
        if getattr(fn, "_glimpse_fused", False):  # an earlier model of this family did it
            fused.append(getattr(fn, "_glimpse_label", name))
            continue
        compiled = _compiled(fn)
        heads, kv_heads = attn.config.num_attention_heads, attn.config.num_key_value_heads
        head_dim = getattr(attn, "head_dim", attn.config.hidden_size // heads)
        try:
            for batch, length in ((2, 3), (1, 1), (4, 1), (1, 7)):
                q = torch.randn(batch, heads, length, head_dim, device=device, dtype=dtype)
                k = torch.randn(batch, kv_heads, length, head_dim, device=device, dtype=dtype)
                pos = torch.arange(length, device=device).view(1, 1, -1).expand(3, batch, -1)
                cos, sin = text_model.rotary_emb(q, pos)
                _close(compiled(q, k, cos, sin), fn(q, k, cos, sin))
        except Exception:  # noqa: BLE001
            log.exception("%s did not compile; keeping it eager", name)
            continue
        # The attention code looks the helper up in its module at call time. This swaps it
        # for every model of this family in the process, with the same maths.
        text_kernel = _with_kernel(kernels.rope_text, compiled, name)
        if _probe_rotary(text_kernel, fn, text_model, heads, kv_heads, head_dim, device, dtype):
            setattr(module, name, text_kernel)
        else:
            setattr(module, name, compiled)
        fused.append(getattr(module, name)._glimpse_label)
    for name in UNPROBED_FUNCTIONS:
        fn = getattr(module, name, None)
        if fn is None:
            continue
        if not getattr(fn, "_glimpse_fused", False):
            compiled = _compiled(fn)
            vision_kernel = _with_kernel(kernels.rope_vision, compiled, name)
            if _probe_vision_rotary(vision_kernel, fn, device, dtype):
                setattr(module, name, vision_kernel)
            else:
                setattr(module, name, compiled)
        fused.append(getattr(getattr(module, name), "_glimpse_label", name))
    return fused


def _with_kernel(kernel: Any, fallback: Any, name: str) -> Any:
    """Call the Triton kernel where it takes the inputs (it returns None where not),
    else the compiled function."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if not kwargs or kwargs == {"unsqueeze_dim": 1}:
            out = kernel(*args)
            if out is not None:
                return out
        return fallback(*args, **kwargs)

    call._glimpse_fused = True
    call._glimpse_label = f"{name} (Triton)"
    call.__name__ = name
    call.eager = getattr(fallback, "eager", fallback)  # the model's own function
    return call


def _probe_rotary(fn, eager, text_model, heads, kv_heads, head_dim, device, dtype) -> bool:
    """The kernel version must give the model's own rotary on the model's layout: q and k
    as transposed views of [b, L, heads, D] projections."""
    if not kernels.usable(torch.empty(0, device=device), name="rope_text"):
        return False
    try:
        for batch, length in ((2, 3), (1, 1), (4, 1), (1, 130)):
            q = torch.randn(batch, length, heads, head_dim, device=device, dtype=dtype)
            k = torch.randn(batch, length, kv_heads, head_dim, device=device, dtype=dtype)
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            pos = torch.arange(length, device=device).view(1, 1, -1).expand(3, batch, -1)
            cos, sin = text_model.rotary_emb(q, pos)
            _close(fn(q, k, cos, sin), eager(q, k, cos, sin))
    except Exception:  # noqa: BLE001 - keep the compiled version
        log.exception("the rotary kernel differs from the model's rotary; not used")
        return False
    return True


def _probe_vision_rotary(fn, eager, device, dtype) -> bool:
    if not kernels.usable(torch.empty(0, device=device), name="rope_vision"):
        return False
    try:
        for seq, heads, head_dim in ((5, 3, 32), (64, 12, 128)):
            qkv = torch.randn(seq, 3, heads, head_dim, device=device, dtype=dtype)
            q, k, _ = qkv.permute(1, 0, 2, 3).unbind(0)
            half = torch.randn(seq, head_dim // 2, device=device)
            angles = torch.cat((half, half), dim=-1)
            _close(fn(q, k, angles.cos(), angles.sin()), eager(q, k, angles.cos(), angles.sin()))
    except Exception:  # noqa: BLE001 - keep the compiled version
        log.exception("the vision rotary kernel differs from the model's; not used")
        return False
    return True


def _children(module: Any) -> set[str]:
    return {name for name, _ in module.named_children()}


def _is_silu(fn: Any) -> bool:
    return isinstance(fn, torch.nn.SiLU) or type(fn).__name__ == "SiLUActivation"


def _fuse_gated_mlps(modules: list[Any], device: torch.device, dtype: torch.dtype) -> list[str]:
    """SiLU-gated MLPs in their two layouts: one `gate_up_proj` split in halves (the
    GLM-4V text decoder) or separate `gate_proj` and `up_proj` (its vision tower)."""
    # Only modules made of exactly these parts: a module with more (GLM-4V's patch merger
    # projects and normalises first) does more in its forward than the gated product.
    packed = [
        m
        for m in modules
        if _children(m) == {"gate_up_proj", "down_proj", "activation_fn"}
        and _is_silu(m.activation_fn)
    ]
    split = [
        m
        for m in modules
        if _children(m) == {"gate_proj", "up_proj", "down_proj", "act_fn"} and _is_silu(m.act_fn)
    ]
    if not packed and not split:
        return []
    fused_fn = _compiled(silu_mul)
    try:
        _probe_gated(fused_fn, device, dtype)
    except Exception:  # noqa: BLE001 - keep eager on any compile trouble or mismatch
        log.exception("gated MLP did not fuse; keeping it eager")
        return []
    label = "gated MLP"
    if kernels.usable(torch.empty(0, device=device), name="silu_mul"):
        with_kernel = _with_kernel(kernels.silu_mul, fused_fn, "silu_mul")
        try:
            _probe_gated(with_kernel, device, dtype)
        except Exception:  # noqa: BLE001 - keep the compiled version
            log.exception("the gated-product kernel differs; keeping the compiled one")
        else:
            fused_fn, label = with_kernel, "gated MLP (Triton)"
    for mlp in packed:
        mlp.forward = _packed_mlp_forward(fused_fn, mlp)
    for mlp in split:
        mlp.forward = _split_mlp_forward(fused_fn, mlp)
    return [f"{len(packed) + len(split)} {label}"]


def _probe_gated(fn: Any, device: torch.device, dtype: torch.dtype) -> None:
    for rows in (1, 3, 7):
        packed = torch.randn(rows, 2 * 1100, device=device, dtype=dtype)
        gate, up = packed.chunk(2, dim=-1)  # as the packed MLP calls it: two halves
        _close(fn(gate, up), up * torch.nn.functional.silu(gate))
        gate, up = gate.contiguous(), up.contiguous()
        _close(fn(gate, up), up * torch.nn.functional.silu(gate))


def _packed_mlp_forward(fused_fn: Any, mlp: Any) -> Any:
    def forward(hidden: torch.Tensor) -> torch.Tensor:
        gate, up = mlp.gate_up_proj(hidden).chunk(2, dim=-1)
        return mlp.down_proj(fused_fn(gate, up))

    return forward


def _split_mlp_forward(fused_fn: Any, mlp: Any) -> Any:
    def forward(hidden: torch.Tensor) -> torch.Tensor:
        return mlp.down_proj(fused_fn(mlp.gate_proj(hidden), mlp.up_proj(hidden)))

    return forward


def _norm_forward(fused_norm: Any, norm: Any) -> Any:
    weight, eps = norm.weight, norm.variance_epsilon

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        return fused_norm(hidden, weight, eps)

    return forward


# --- q, k and v projections as one matrix product ---


class _JointProjection:
    """The q, k and v projections of one attention layer as one matrix product.

    Why: at decode the k and v projections of GLM-4.6V (4096 -> 256 each, 2 MB of weights)
    each took a 4.7 us split-K product plus its reduction kernel for half a microsecond of
    memory traffic; in one product with q they cost about what their bytes do. Each
    module keeps its own weight, as a view into the joint one (no second copy), and its
    own forward for any other caller; q's forward computes all three and leaves k's and
    v's parts for them, handed over only for the same input tensor.
    """

    def __init__(self, parts: list[Any]):
        self.sizes = [p.out_features for p in parts]
        with torch.inference_mode(False), torch.no_grad():
            self.weight = torch.cat([p.weight for p in parts])
            has_bias = parts[0].bias is not None
            self.bias = torch.cat([p.bias for p in parts]) if has_bias else None
            for i, p in enumerate(parts):
                start = sum(self.sizes[:i])
                p.weight.data = self.weight[start : start + self.sizes[i]]
                if has_bias:
                    p.bias.data = self.bias[start : start + self.sizes[i]]
        self.pending: tuple[torch.Tensor, ...] | None = None

    def lead(self, hidden: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.linear(hidden, self.weight, self.bias)
        query, key, value = out.split(self.sizes, dim=-1)
        self.pending = (hidden, key, value)
        return query

    def part(self, index: int, module: Any, hidden: torch.Tensor) -> torch.Tensor:
        pending = self.pending
        if pending is not None and pending[0] is hidden:
            if index == 2:
                self.pending = None  # the input is not held past the layer
            return pending[index]
        return torch.nn.functional.linear(hidden, module.weight, module.bias)


def _joinable(attn: Any, dtype: torch.dtype) -> list[Any] | None:
    parts = [getattr(attn, name, None) for name in ("q_proj", "k_proj", "v_proj")]
    if not all(isinstance(p, torch.nn.Linear) for p in parts):
        return None
    if len({p.in_features for p in parts}) != 1 or any(p.weight.dtype != dtype for p in parts):
        return None
    if len({p.bias is None for p in parts}) != 1:
        return None
    return parts


def _fuse_qkv(text_model: Any, device: torch.device, dtype: torch.dtype) -> list[str]:
    """Join q/k/v of each text attention layer (the vision tower has one qkv already)."""
    layers = [getattr(layer, "self_attn", None) for layer in text_model.layers]
    groups = [_joinable(attn, dtype) for attn in layers if attn is not None]
    if not groups or any(g is None for g in groups):
        return []
    try:
        _probe_joint(groups[0], device, dtype)
    except Exception:  # noqa: BLE001 - keep the separate products
        log.exception("joint q/k/v projection differs; keeping separate products")
        return []
    for parts in groups:
        _join(parts)
    return [f"{len(groups)} joint q/k/v projection"]


def _join(parts: list[Any]) -> _JointProjection:
    joint = _JointProjection(parts)
    parts[0].forward = joint.lead
    for index in (1, 2):
        parts[index].forward = _part_forward(joint, index, parts[index])
    return joint


def _part_forward(joint: _JointProjection, index: int, module: Any) -> Any:
    def forward(hidden: torch.Tensor) -> torch.Tensor:
        return joint.part(index, module, hidden)

    return forward


def _probe_joint(parts: list[Any], device: torch.device, dtype: torch.dtype) -> None:
    """On copies of one layer's projections: the joint product's parts equal each
    projection's own (the same weights; a matrix product of another width may round
    differently, hence the tolerance). Made outside inference mode, as model weights are."""
    with torch.inference_mode(False), torch.no_grad():
        copies = []
        for p in parts:
            c = torch.nn.Linear(p.in_features, p.out_features, bias=p.bias is not None)
            copies.append(c.to(device=device, dtype=dtype))
        hidden = torch.randn(3, parts[0].in_features, device=device, dtype=dtype)
        expected = [c(hidden) for c in copies]
        _join(copies)
        got = [c(hidden) for c in copies]
        _close(tuple(got), tuple(expected))
        # Another input than the lead's: each part computes its own.
        other = torch.randn_like(hidden)
        own = torch.nn.functional.linear(other, copies[1].weight, copies[1].bias)
        _close(copies[1](other), own)


# --- GLM-4 layers: norm, residual add and the next norm in one kernel ---

SANDWICH = (
    "input_layernorm",
    "post_self_attn_layernorm",
    "post_attention_layernorm",
    "post_mlp_layernorm",
)


def layer_runners(layers: list[Any], device: torch.device, dtype: torch.dtype) -> list[Any]:
    """For GLM-4 style decoder layers (a norm on the output of attention and of the MLP as
    well as before each): a function per layer that runs it as the model does, with the
    norm of a branch's output, the residual add and the norm after it in one kernel
    (kernels.add_rms_norm). At decode each of those was a kernel of its own reading and
    writing one 8 KB row per token (about 2 us each, six a layer). Empty if the layers are
    of another kind; the engine then calls the layers themselves."""
    runners = []
    for layer in layers:
        norms = [getattr(layer, name, None) for name in SANDWICH]
        if not all(_plain_norm(n, dtype) for n in norms) or not hasattr(layer, "mlp"):
            return []
        if len({n.variance_epsilon for n in norms}) != 1 or not hasattr(layer, "self_attn"):
            return []
        runners.append(_SandwichRunner(layer, norms))
    try:
        _probe_add_norm(runners[0].norms if runners else None, device, dtype)
    except Exception:  # noqa: BLE001 - keep the layers' own forward
        log.exception("fused norm and residual add differ; calling the layers themselves")
        return []
    return runners


def _plain_norm(norm: Any, dtype: torch.dtype) -> bool:
    return (
        norm is not None
        and type(norm).__name__.endswith("RMSNorm")
        and hasattr(norm, "variance_epsilon")
        and getattr(norm, "weight", None) is not None
        and norm.weight.dtype == dtype
    )


class _SandwichRunner:
    def __init__(self, layer: Any, norms: list[Any]):
        self.layer, self.norms = layer, norms
        self.eps = norms[0].variance_epsilon

    def __call__(self, hidden: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        layer, (first, after_attn, before_mlp, after_mlp) = self.layer, self.norms
        residual = hidden
        hidden, _ = layer.self_attn(hidden_states=first(hidden), **kwargs)
        pair = kernels.add_rms_norm(
            hidden, residual, after_attn.weight, before_mlp.weight, self.eps
        )
        if pair is None:  # the layer's own order of operations
            residual = residual + after_attn(hidden)
            hidden = before_mlp(residual)
        else:
            residual, hidden = pair
        hidden = layer.mlp(hidden)
        pair = kernels.add_rms_norm(hidden, residual, after_mlp.weight, None, self.eps)
        return residual + after_mlp(hidden) if pair is None else pair[0]


def _probe_add_norm(norms: list[Any] | None, device: torch.device, dtype: torch.dtype) -> None:
    """The kernel against the model's own norms and add, where the kernel runs."""
    if norms is None or not kernels.usable(torch.empty(0, device=device), name="add_rms_norm"):
        return
    _, after_attn, before_mlp, _ = norms
    eps = after_attn.variance_epsilon
    for shape in ((1, 1), (4, 1), (1, 7)):
        x = torch.randn(*shape, after_attn.weight.shape[0], device=device, dtype=dtype)
        residual = torch.randn_like(x) * 4
        total = residual + after_attn(x)
        got = kernels.add_rms_norm(x, residual, after_attn.weight, before_mlp.weight, eps)
        _close(got, (total, before_mlp(total)))
