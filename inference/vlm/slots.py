"""The fast path: a static, slot-based KV cache and a decode step over all slots at once.

Why: `generate` with a dynamic cache is launch-bound (about 94 ms a step for the
GLM-4.6V-Flash shape on an H100, against a 5.5 ms floor for reading the weights). Here the
text decoder's own layers (transformers modules, so the maths stays the model's) run over
one preallocated cache tensor:

    kv[layer, k|v, slot, kv_head, position, head_dim]

Each running request owns a slot; slots hold different lengths, so one decode step serves
requests at different positions. Active requests are kept compacted in slots 0..n-1 so
that a step over a batch bucket of b >= n slots is a fixed-shape computation that a CUDA
graph can replay: one graph per (batch bucket, attended-length bucket), captured on first
use. Inputs go in and logits come out through static buffers.

Attention for these layers is swapped for `slot_attention` (registered in transformers'
AttentionInterface) only while this module runs them; the vision tower and the fallback
path keep SDPA. Grouped-query heads are handled by folding the query heads of one KV head
into the query-length axis, so the cache is never expanded (a 16x copy at this shape).

Which models: any image-text-to-text model whose text decoder is a transformers model with
`embed_tokens`, `layers`, `norm` and `rotary_emb`, whose attention goes through the
attention interface and writes the cache through `cache.update` (GLM-4V/4.1V/4.5V/4.6V,
Qwen2-VL, Qwen2.5-VL, and llama/mistral-style decoders of LLaVA-like models). Models with
3D multimodal rotary positions (mrope) get them from the model's own `get_rope_index`.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import torch
import torch.nn.functional as F

from . import kernels

log = logging.getLogger(__name__)

ATTN_NAME = "glimpse_slots"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128)
MIN_LEN_BUCKET = 256
# Single-prompt prefills are padded to a multiple of this and replayed from a CUDA graph
# per padded length (captured on first use), up to PREFILL_GRAPH_MAX tokens.
PREFILL_BUCKET = 128
PREFILL_GRAPH_MAX = 4096


def slot_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over slot-cache views. Returns [batch, q_len, heads, head_dim] like HF's.

    query: [b, heads, q, d]; key/value: [b, kv_heads, Lk, d] (views into the slot cache).
    """
    b, heads, q_len, d = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else 1.0 / math.sqrt(d)
    if q_len == 1:
        # Decode on a GPU: one Triton pass over each slot's visible cache (kernels.py).
        out = kernels.decode_attention(query, key, value, attention_mask, scale)
        if out is not None:
            return out.view(b, 1, heads, d), None
        # Otherwise fold each KV head's query heads into the query-length axis so GQA
        # needs no copy of the cache; the mask holds each slot's own length.
        group = heads // kv_heads
        qg = query.reshape(b, kv_heads, group, d)
        scores = torch.matmul(qg, key.transpose(-1, -2)).float() * scale
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = torch.softmax(scores, dim=-1).to(value.dtype)
        out = torch.matmul(probs, value)  # [b, kv_heads, group, d]
        return out.reshape(b, heads, 1, d).transpose(1, 2), None
    # Prefill: causal over the new tokens. With nothing cached before them this is exactly
    # transformers' own SDPA attention (its GQA handling and kernel choice included).
    if key.shape[2] == q_len:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, None, scaling=scale, is_causal=True, dropout=0.0
        )
    # New tokens after cached ones (a reused prefix): bottom-right causal mask.
    if kv_heads != heads:
        key = key.repeat_interleave(heads // kv_heads, dim=1)
        value = value.repeat_interleave(heads // kv_heads, dim=1)
    k_len = key.shape[2]
    rows = torch.arange(q_len, device=query.device)[:, None] + (k_len - q_len)
    cols = torch.arange(k_len, device=query.device)[None, :]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=cols <= rows, scale=scale)
    return out.transpose(1, 2), None


_registered = False


def _register_attention() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTN_NAME, slot_attention)
        _registered = True


class SlotCache:
    """Duck-typed transformers Cache: `update` writes into the slot tensor, returns views.

    Three modes, set before each forward: prefill (slots slot..slot+n-1, tokens
    start..start+L), static prefill (one prompt from position 0 into the slot that a device
    tensor names, so a CUDA graph can replay it for any slot) and decode (slots 0..b-1, one
    token each, at each slot's own length).
    """

    def __init__(self, kv: torch.Tensor):
        self.kv = kv
        self.mode = "decode"
        self.slot = 0
        self.slot_index: torch.Tensor | None = None  # [1], static prefill's slot
        self.start = 0
        self.rows: torch.Tensor | None = None
        self.lens: torch.Tensor | None = None
        self.span = 0  # attended length in decode

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        k_buf = self.kv[layer_idx, 0]
        v_buf = self.kv[layer_idx, 1]
        if self.mode == "static_prefill":
            # Nothing is cached before these tokens, so attention needs only the new keys.
            width = key_states.shape[2]
            k_buf[:, :, :width].index_copy_(0, self.slot_index, key_states)
            v_buf[:, :, :width].index_copy_(0, self.slot_index, value_states)
            return key_states, value_states
        if self.mode == "prefill":
            # Slots slot..slot+n-1, right-padded prompts: padding lands past each prompt's
            # end, where the decode mask ignores it and the next tokens overwrite it.
            s, start, n = self.slot, self.start, key_states.shape[0]
            end = start + key_states.shape[2]
            k_buf[s : s + n, :, start:end] = key_states
            v_buf[s : s + n, :, start:end] = value_states
            return k_buf[s : s + n, :, :end], v_buf[s : s + n, :, :end]
        b = key_states.shape[0]
        if not kernels.kv_write(k_buf, v_buf, key_states, value_states, self.lens):
            # Advanced indices around a slice: k_buf[rows, :, lens] is [b, kv_heads, d].
            k_buf[self.rows, :, self.lens] = key_states[:, :, 0]
            v_buf[self.rows, :, self.lens] = value_states[:, :, 0]
        return k_buf[:b, :, : self.span], v_buf[:b, :, : self.span]

    # Some layers ask the cache these; a slot cache has no single answer, and they are
    # only used for mask building, which this path does itself.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


def find_text_model(model: Any) -> Any:
    base = getattr(model, "model", model)
    for name in ("language_model", "text_model"):
        text = getattr(base, name, None)
        if text is not None and hasattr(text, "layers"):
            return text
    raise TypeError("no text decoder found")


def supports_fast_path(model: Any) -> str | None:
    """None if the slot path can run this model, else the reason it cannot."""
    try:
        text = find_text_model(model)
    except TypeError as exc:
        return str(exc)
    for attr in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(text, attr):
            return f"text decoder has no {attr}"
    attn = getattr(text.layers[0], "self_attn", None)
    if attn is None:
        return "decoder layer has no self_attn"
    try:
        src = inspect.getsource(type(attn).forward)
    except (OSError, TypeError):
        return "attention source not readable"
    uses_interface = "get_interface" in src or "ALL_ATTENTION_FUNCTIONS" in src
    if ".update(" not in src or not uses_interface:
        return "attention does not use the attention interface and cache.update"
    if model.get_output_embeddings() is None:
        return "no output embeddings"
    return None


def _group_backends(device: torch.device) -> list[Any] | None:
    if device.type != "cuda":
        return None
    from torch.nn.attention import SDPBackend

    # Flash for bf16/fp16; the others only where flash cannot run (float32).
    return [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def _bucket(n: int, buckets: tuple[int, ...]) -> int:
    for b in buckets:
        if b >= n:
            return b
    return buckets[-1]


class StepHandle:
    """A queued decode step: where its tokens will land on the host, and when."""

    def __init__(self, buffer: torch.Tensor, event: Any, n: int):
        self.buffer, self.event, self.n = buffer, event, n

    def tokens(self) -> list[int]:
        """The step's next token of each row; waits for the step (and only for it)."""
        if self.event is not None:
            self.event.synchronize()
        return self.buffer[: self.n].tolist()


class SlotModel:
    """Owns the slot cache and runs prefill / decode forwards. Single-threaded use only."""

    def __init__(
        self,
        model: Any,
        *,
        max_batch: int,
        max_seq_len: int,
        use_cuda_graphs: bool | None = None,
        fuse: bool | None = None,
    ):
        _register_attention()
        self.model = model
        self.text = find_text_model(model)
        self.lm_head = model.get_output_embeddings()
        self.config = self.text.config
        self.device = self.lm_head.weight.device
        self.dtype = self.lm_head.weight.dtype
        self.layers = list(self.text.layers)
        attn = self.layers[0].self_attn
        heads = self.config.num_attention_heads
        kv_heads = getattr(self.config, "num_key_value_heads", None) or heads
        head_dim = getattr(attn, "head_dim", None) or self.config.hidden_size // heads
        self.max_batch = max_batch
        self.max_seq_len = max_seq_len
        self.batch_buckets = tuple(b for b in BATCH_BUCKETS if b < max_batch) + (max_batch,)
        # Attended-length buckets at 1x and 1.5x powers of two (256, 384, 512, 768, ...):
        # a step attends over its bucket, so a coarser ladder reads up to twice the KV
        # that the requests hold (a 1,260-token screenshot chat in a 2,048 bucket).
        lens, n = [], MIN_LEN_BUCKET
        while n < max_seq_len:
            lens.extend(b for b in (n, n * 3 // 2) if b < max_seq_len)
            n *= 2
        self.len_buckets = tuple(lens) + (max_seq_len,)
        self.kv = torch.zeros(
            (len(self.layers), 2, max_batch, kv_heads, max_seq_len, head_dim),
            dtype=self.dtype,
            device=self.device,
        )
        self.cache = SlotCache(self.kv)
        params = inspect.signature(self.layers[0].forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.mrope = hasattr(getattr(model, "model", model), "get_rope_index")
        # Decode inputs of each row (= slot), kept on the device: token id, rotary position,
        # write position (= cached length). A step leaves the next step's inputs here
        # itself (its greedy token, both positions + 1, for rows below `dev_n`), so steps
        # can be queued back to back without the host (see `launch`).
        self.dev_in = torch.zeros((3, max_batch), dtype=torch.long, device=self.device)
        self.dev_n = torch.zeros((), dtype=torch.long, device=self.device)
        self.rows_active = 0  # the value last written to dev_n
        self.pinned = self.device.type == "cuda"
        # Two host buffers and events for the tokens of the steps in flight (at most two).
        self.host_tokens = [torch.zeros(max_batch, dtype=torch.long) for _ in range(2)]
        self.events: list[Any] = [None, None]
        if self.pinned:
            self.host_tokens = [t.pin_memory() for t in self.host_tokens]
            self.events = [torch.cuda.Event(), torch.cuda.Event()]
        self.launches = 0
        self.rows = torch.arange(max_batch, device=self.device)
        self.positions = torch.arange(max_seq_len, device=self.device)
        vocab = self.lm_head.weight.shape[0]
        self.logits = torch.zeros((max_batch, vocab), dtype=torch.float32, device=self.device)
        if use_cuda_graphs is None:
            use_cuda_graphs = self.device.type == "cuda"
        self.use_cuda_graphs = use_cuda_graphs and self.device.type == "cuda"
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self.graph_pool = torch.cuda.graph_pool_handle() if self.use_cuda_graphs else None
        # Static prefill: a single prompt, padded to a bucket, through fixed buffers. On a
        # GPU each padded length is a CUDA graph: a prefill of one screenshot question is
        # otherwise bound by Python launching ~2,000 kernels (59 ms on an H200 for 33 ms of
        # GPU work at the GLM-4.6V-Flash shape). Off the GPU it runs eagerly, the same maths.
        self.static_prefill = True
        self.prefill_graph_max = min(PREFILL_GRAPH_MAX, max_seq_len)
        self.prefill_graphs: dict[int, torch.cuda.CUDAGraph] = {}
        # A group of several prompts is one eager forward, right-padded to its longest
        # prompt. True: the prompts one after another through the single-prompt graphs
        # instead (no shape is ever new to them), kept to compare: on an H200 a group of
        # eight screenshot questions took 260 ms of GPU that way against 237 to 255 ms as
        # one forward, and 32 users back to back got 1,558 against 1,634 output tokens/s.
        self.each_prompt_static = False
        # The group forward's attention backends. PyTorch's own choice on an H200 is
        # cuDNN, which builds a plan for every new shape (group size x prompt length):
        # 40 to 50 ms the first time each, so most groups of real traffic, whose prompt
        # lengths vary, would pay it. Flash attention has no per-shape set-up and cost
        # about 2 ms more for a group of eight.
        self.group_backends: list[Any] | None = _group_backends(self.device)
        self.pf_embeds: torch.Tensor | None = None
        self.fused: list[str] = []
        # How _run_layers calls each layer: the layer itself, or fuse.py's runner of it.
        self.layer_calls: list[Any] = list(self.layers)
        if fuse if fuse is not None else self.device.type == "cuda":
            from .fuse import fuse_small_ops, layer_runners

            visual = getattr(getattr(model, "model", model), "visual", None)
            self.fused = fuse_small_ops(self.text, self.device, self.dtype, visual)
            runners = layer_runners(self.layers, self.device, self.dtype)
            if runners:
                self.layer_calls = runners
                self.fused.append(f"{len(runners)} norm + residual add + norm")

    @property
    def cache_bytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()

    # --- running the model's own layers with the slot attention ---

    def _run_layers(self, hidden: torch.Tensor, position_ids: torch.Tensor, mask) -> torch.Tensor:
        cos_sin = self.text.rotary_emb(hidden, position_ids)
        previous = self.config._attn_implementation
        self.config._attn_implementation = ATTN_NAME
        try:
            for layer in self.layer_calls:
                out = layer(
                    hidden,
                    attention_mask=mask,
                    position_ids=None,
                    use_cache=True,
                    position_embeddings=cos_sin,
                    **{self.cache_kw: self.cache},
                )
                hidden = out[0] if isinstance(out, tuple) else out
        finally:
            self.config._attn_implementation = previous
        return self.text.norm(hidden)

    @torch.inference_mode()
    def prefill(
        self,
        slot: int,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        lengths: list[int] | None = None,
    ) -> torch.Tensor:
        """Write n prompts into slots slot..slot+n-1; return each one's last-token logits.

        inputs_embeds: [n, L, hidden], right-padded to the longest prompt; position_ids:
        [3, n, L] (mrope) or [n, L]; lengths: each prompt's real length (default L).
        Several prompts in one forward share its launches; the causal mask alone keeps
        them apart, since padding only ever comes after a prompt's own tokens.
        """
        n, total = inputs_embeds.shape[0], inputs_embeds.shape[1]
        lengths = list(lengths or [total] * n)
        widths = [_round_up(length, PREFILL_BUCKET) for length in lengths]
        if self.static_prefill and max(widths) <= self.prefill_graph_max:
            if n == 1:
                return self._prefill_static(
                    slot, inputs_embeds, position_ids, lengths[0], widths[0]
                )
            if self.each_prompt_static:
                return self._prefill_each(slot, inputs_embeds, position_ids, lengths, widths)
        return self._prefill_forward(slot, inputs_embeds, position_ids, lengths)

    def _prefill_each(
        self,
        slot: int,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        lengths: list[int],
        widths: list[int],
    ) -> torch.Tensor:
        """A group's prompts one after another through the single-prompt graphs, queued
        back to back (nothing here waits for the GPU)."""
        vocab = self.logits.shape[1]
        out = torch.empty((len(lengths), vocab), dtype=torch.float32, device=self.device)
        for i, (length, width) in enumerate(zip(lengths, widths, strict=True)):
            row = position_ids[:, i : i + 1] if self.mrope else position_ids[i : i + 1]
            logits = self._prefill_static(slot + i, inputs_embeds[i : i + 1], row, length, width)
            out[i].copy_(logits[0])  # before the next prompt's replay overwrites it
        return out

    def _prefill_forward(
        self,
        slot: int,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        lengths: list[int],
    ) -> torch.Tensor:
        """The group in one eager forward, right-padded to its longest prompt."""
        n = inputs_embeds.shape[0]
        self.cache.mode, self.cache.slot, self.cache.start = "prefill", slot, 0
        try:
            if self.group_backends is None:
                hidden = self._run_layers(inputs_embeds, position_ids, None)
            else:
                from torch.nn.attention import sdpa_kernel

                with sdpa_kernel(self.group_backends):
                    hidden = self._run_layers(inputs_embeds, position_ids, None)
        finally:
            self.cache.mode = "decode"
        last = torch.tensor(lengths, device=hidden.device) - 1
        rows = torch.arange(n, device=hidden.device)
        return self.lm_head(hidden[rows, last]).float()

    def _static_buffers(self) -> None:
        if self.pf_embeds is not None:
            return
        width, hidden = self.prefill_graph_max, self.config.hidden_size
        kw = {"device": self.device}
        self.pf_embeds = torch.zeros((1, width, hidden), dtype=self.dtype, **kw)
        shape = (3, 1, width) if self.mrope else (1, width)
        self.pf_pos = torch.zeros(shape, dtype=torch.long, **kw)
        self.pf_slot = torch.zeros(1, dtype=torch.long, **kw)
        self.pf_last = torch.zeros(1, dtype=torch.long, **kw)
        self.pf_logits = torch.zeros((1, self.logits.shape[1]), dtype=torch.float32, **kw)

    def _prefill_static(
        self,
        slot: int,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        length: int,
        width: int,
    ) -> torch.Tensor:
        self._static_buffers()
        self.pf_embeds[0, :length].copy_(inputs_embeds[0, :length])
        # Padding comes after the prompt: causal attention keeps it from touching the
        # prompt, and what it writes past the prompt's end in the slot is masked at decode
        # and overwritten by the answer's tokens.
        self.pf_embeds[0, length:width].zero_()
        self.pf_pos[..., :length].copy_(position_ids[..., :length])
        self.pf_slot.fill_(slot)
        self.pf_last.fill_(length - 1)
        if not self.use_cuda_graphs:
            self._prefill_static_forward(width)
            return self.pf_logits
        graph = self.prefill_graphs.get(width)
        if graph is None:
            try:
                graph = self._capture_prefill(width)
            except RuntimeError:
                log.exception("CUDA graph capture of prefill failed; prefilling eagerly")
                self.static_prefill = False
                torch.cuda.synchronize()
                self._prefill_static_forward(width)
                return self.pf_logits
        graph.replay()
        return self.pf_logits

    def _prefill_static_forward(self, width: int) -> None:
        self.cache.mode, self.cache.slot_index = "static_prefill", self.pf_slot
        try:
            hidden = self._run_layers(self.pf_embeds[:, :width], self.pf_pos[..., :width], None)
        finally:
            self.cache.mode = "decode"
        last = hidden[0].index_select(0, self.pf_last)
        self.pf_logits.copy_(self.lm_head(last).float())

    def _capture_prefill(self, width: int) -> torch.cuda.CUDAGraph:
        # As for decode graphs: warm up on a side stream (it computes what the replay will,
        # into the same free slot), then capture into the shared pool.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._prefill_static_forward(width)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.graph_pool):
            self._prefill_static_forward(width)
        self.prefill_graphs[width] = graph
        log.info("captured prefill graph width=%d", width)
        return graph

    @torch.inference_mode()
    def copy_slot(self, src: int, dst: int, length: int) -> None:
        """Move a request's cache to another slot (to keep active slots compacted)."""
        if src != dst and length > 0:
            self.kv[:, :, dst, :, :length] = self.kv[:, :, src, :, :length]

    def _decode_forward(self, b: int, span: int) -> None:
        ids, pos, lens = self.dev_in[0, :b], self.dev_in[1, :b], self.dev_in[2, :b]
        hidden = self.text.embed_tokens(ids)[:, None, :]
        if self.mrope:
            position_ids = pos.view(1, b, 1).expand(3, b, 1)
        else:
            position_ids = pos.view(b, 1)
        visible = self.positions[:span][None, :] <= lens[:, None]
        mask = torch.zeros((b, span), dtype=torch.float32, device=self.device)
        mask = mask.masked_fill(~visible, float("-inf")).view(b, 1, 1, span)
        self.cache.rows, self.cache.lens, self.cache.span = self.rows[:b], lens, span
        hidden = self._run_layers(hidden, position_ids, mask)
        self.logits[:b].copy_(self.lm_head(hidden[:, 0]).float())
        # The next step's inputs: this step's greedy token (sampled rows are overwritten
        # after the step), one position further, for the active rows only; padding rows
        # keep writing at their own free slot's same position.
        self.dev_in[0, :b] = self.logits[:b].argmax(dim=-1)
        self.dev_in[1:, :b] += (self.rows[:b] < self.dev_n).long()

    # --- decode steps: inputs live on the device, steps are queued ahead ---

    def write_rows(
        self, start: int, tokens: list[int], rope_pos: list[int], lengths: list[int]
    ) -> None:
        """Set the decode inputs of rows start.. (requests that were just prefilled)."""
        rows = torch.tensor([tokens, rope_pos, lengths], dtype=torch.long)
        if self.pinned:  # from the caching pinned pool: safe to free before the copy ran
            rows = rows.pin_memory()
        self.dev_in[:, start : start + len(tokens)].copy_(rows, non_blocking=True)

    def move_row(self, src: int, dst: int) -> None:
        """Row src's inputs go to row dst (its request moved slots); src becomes padding."""
        if src != dst:
            self.dev_in[:, dst] = self.dev_in[:, src]
        self.clear_row(src)

    def clear_row(self, row: int) -> None:
        self.dev_in[:, row] = 0

    @torch.inference_mode()
    def launch(self, n: int, longest: int, sample: Any = None) -> StepHandle:
        """Queue one decode step for rows 0..n-1 (longest: the most entries any of them
        has cached); returns at once. The step reads the inputs on the device, so the next
        one can be queued before this one's tokens reach the host. `sample(logits)`, if
        given, returns the next tokens of all n rows (for requests that sample)."""
        b = _bucket(n, self.batch_buckets)
        span = _bucket(longest + 1, self.len_buckets)
        if n != self.rows_active:
            self.dev_n.fill_(n)
            self.rows_active = n
        self._replay(b, span)
        if sample is not None:
            self.dev_in[0, :n] = sample(self.logits[:n])
        index = self.launches % 2
        self.launches += 1
        buffer = self.host_tokens[index]
        buffer[:n].copy_(self.dev_in[0, :n], non_blocking=self.pinned)
        event = self.events[index]
        if event is not None:
            event.record()
        return StepHandle(buffer, event, n)

    def _replay(self, b: int, span: int) -> None:
        if not self.use_cuda_graphs:
            self._decode_forward(b, span)
            return
        graph = self.graphs.get((b, span))
        if graph is None:
            try:
                graph = self._capture(b, span)
            except RuntimeError:
                # A model whose layers cannot be captured still works, only slower.
                log.exception("CUDA graph capture failed; decoding without graphs")
                self.use_cuda_graphs = False
                torch.cuda.synchronize()
                self._decode_forward(b, span)
                return
        graph.replay()

    @torch.inference_mode()
    def decode(self, tokens: list[int], rope_pos: list[int], lengths: list[int]) -> torch.Tensor:
        """One step for slots 0..n-1 with these inputs, waited for; returns logits [n, vocab]
        (a view, valid until the next step). For benchmarks and tests: the engine queues
        steps with `launch`."""
        n = len(tokens)
        self.dev_in.zero_()
        self.write_rows(0, tokens, rope_pos, lengths)
        self.launch(n, max(lengths)).tokens()
        return self.logits[:n]

    def _capture(self, b: int, span: int) -> torch.cuda.CUDAGraph:
        # Warm up on a side stream first (cuBLAS handles, lazy buffers, Triton compiles). The
        # warm-up step computes what the replay will, and writes the same cache entries; it
        # also advances the device inputs, which are put back before the replay reads them.
        saved = self.dev_in.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._decode_forward(b, span)
        torch.cuda.current_stream().wait_stream(stream)
        self.dev_in.copy_(saved)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.graph_pool):
            self._decode_forward(b, span)
        self.graphs[(b, span)] = graph
        log.info("captured decode graph batch=%d span=%d", b, span)
        return graph

    @torch.inference_mode()
    def warmup_prefill(self, group: tuple[int, int] | None = None) -> None:
        """Run prefills of one and of two short prompts (slots must be idle), so that any
        compilation for those shapes happens now and not in a user's first request; then,
        if given, one group forward of `group` = (prompts, tokens each), the largest the
        scheduler forms: the allocator then holds blocks large enough for any group
        (the first group of a size otherwise took about 20 ms longer, allocating)."""
        hidden = self.config.hidden_size
        for n in (1, 2):
            embeds = torch.randn((n, 16, hidden), device=self.device, dtype=self.dtype)
            positions = torch.arange(16, device=self.device).view(1, 1, 16).expand(3, n, 16)
            if not self.mrope:
                positions = positions[0]
            self.prefill(0, embeds, positions, [16, 9][:n])
            if n > 1:  # the eager group forward too
                self._prefill_forward(0, embeds, positions, [16, 9])
        if group is not None:
            n, length = min(group[0], self.max_batch), min(group[1], self.max_seq_len)
            embeds = torch.randn((n, length, hidden), device=self.device, dtype=self.dtype)
            positions = torch.arange(length, device=self.device).view(1, 1, -1)
            positions = positions.expand(3, n, -1) if self.mrope else positions[0].expand(n, -1)
            self._prefill_forward(0, embeds, positions, [length] * n)

    @torch.inference_mode()
    def warmup(self, batches: tuple[int, ...] | None = None, spans: tuple[int, ...] = ()) -> None:
        """Capture graphs ahead of traffic (slots must be idle: it writes at position 0)."""
        if not self.use_cuda_graphs:
            return
        for b in batches or self.batch_buckets:
            for span in spans or self.len_buckets[:3]:
                if (b, span) not in self.graphs and self.use_cuda_graphs:
                    self.dev_in.zero_()
                    self.dev_n.zero_()
                    self.rows_active = 0
                    try:
                        self._capture(b, span)
                    except RuntimeError:
                        log.exception("CUDA graph capture failed; decoding without graphs")
                        self.use_cuda_graphs = False
