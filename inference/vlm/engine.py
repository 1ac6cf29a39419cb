"""VLMEngine: continuous batching over one model, for many caller threads.

One scheduler thread owns the model. `generate` (called from many threads) prepares the
prompt in the caller's thread, enqueues the job on a bounded admission queue and yields
events from the job's own queue. At every step boundary the scheduler admits waiting jobs
(prefill into a free slot, first token out at once), then runs one decode step for all
running jobs together; a job leaves the batch the step it stops, is aborted, or runs out
of tokens, and its slot is reused by the next job.

Decode steps are queued one ahead: the step's inputs stay on the GPU (each step leaves the
next one's), so step t+1 is launched before step t's tokens are read. The host's work on
step t's tokens (stop checks, text events, slot moves) then runs while step t+1 runs on
the GPU, instead of leaving the GPU idle between steps (about 1 ms of a 9.8 ms step at 32
streams). A request that stops at step t has one more token computed in step t+1, which
is dropped.

Two backends behind the same loop contract:
- the slot path (`slots.SlotModel`): static KV cache + CUDA graphs, for GLM-4V and
  Qwen2-VL style models (3D rotary positions, `get_rope_index`);
- the fallback (`fallback.GenerateBatcher`): transformers' `generate` over windows of
  requests, for any other image-text-to-text model.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ..types import (
    Done,
    EngineEvent,
    EngineUnavailable,
    Error,
    GenerationRequest,
    SamplingParams,
    Usage,
)
from .loader import LoadedModel, load_model
from .prompt import (
    FeatureCache,
    ImageInput,
    PreparedPrompt,
    PromptBuilder,
    PromptError,
    stop_token_ids,
)
from .sampling import sample_rows, sample_tensor
from .slots import SlotModel, StepHandle, supports_fast_path
from .stream import OutputStream
from .vision import VisionHints, speed_up_vision

log = logging.getLogger(__name__)


@dataclass
class Job:
    request: GenerationRequest
    sampling: SamplingParams
    out: queue.SimpleQueue
    stream: OutputStream
    prompt: PreparedPrompt | None = None
    rope_pos: torch.Tensor | None = None
    rope_delta: int = 0
    slot: int = -1
    length: int = 0  # tokens in this job's cache slot
    next_token: int = -1
    generated: int = 0
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    done: bool = False
    # Tokens accepted but not yet turned into text events (see VLMEngine._accept).
    pending: list[int] = field(default_factory=list)
    stop_hit: bool = False  # a stop string ended the text; the job ends at the next token

    @property
    def request_id(self) -> str:
        return self.request.request_id


@dataclass
class Launched:
    """A decode step queued on the GPU: the job of each of its rows, at launch time."""

    jobs: list[Job]
    handle: StepHandle


class VLMEngine:
    name = "vlm"

    def __init__(
        self,
        model_id: str,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        max_batch: int = 32,
        max_seq_len: int = 8192,
        max_queue: int = 256,
        use_cuda_graphs: bool | None = None,
        fuse: bool | None = None,
        fast_path: bool = True,
        image_cache_size: int = 64,
        prefill_token_budget: int = 8192,
        prefill_batch: int = 16,
        prefill_group_tokens: int = 20480,
        ignore_eos: bool = False,
        seed: int | None = None,
        queue_ahead: bool = True,
        prepare_concurrency: int = 2,
    ):
        self.model_id = model_id
        self.model_name = model_id
        self.device = device
        self.dtype = dtype
        self.max_batch = max_batch
        self.max_seq_len = max_seq_len
        self.max_queue = max_queue
        self.use_cuda_graphs = use_cuda_graphs
        self.fuse = fuse
        self.want_fast_path = fast_path
        self.prefill_token_budget = prefill_token_budget
        self.prefill_batch = max(1, prefill_batch)
        # Prompts prefilled in one forward share its launches and fill the GPU better
        # (32 screenshot questions at once on an H200: 1,166 output tokens/s in groups of
        # 4, 1,567 in groups of 16); the token cap bounds the activations of one forward.
        self.prefill_group_tokens = max(1, prefill_group_tokens)
        self.vision_hints = VisionHints()
        self.vision_patches: list[str] = []
        # For benchmarks only: run every answer to max_new_tokens.
        self.ignore_eos = ignore_eos
        # Queue each decode step before reading the previous one's tokens (False: launch,
        # then wait for it, as a plain loop would; kept to measure the difference).
        self.queue_ahead = queue_ahead
        # Callers prepare their prompts (template, tokens, screenshot) this many at a time.
        # That work mostly holds the GIL: 32 callers preparing together shared it and all
        # finished together, about 250 ms after they came, the GPU idle until then. A few
        # at a time hand the scheduler the first within about 20 ms (two at a time let
        # image decoding, which releases the GIL, overlap the rest).
        self._preparing = threading.BoundedSemaphore(max(1, prepare_concurrency))
        self.features = FeatureCache(image_cache_size)
        self.generator: torch.Generator | None = None
        self.seed = seed

        self.loaded: LoadedModel | None = None
        self.prompts: PromptBuilder | None = None
        self.slots: SlotModel | None = None
        self.fallback: Any = None
        self.stop_ids: set[int] = set()
        self.fast_path_reason: str | None = None

        self._load_lock = threading.Lock()
        self._admission: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self._aborts: set[str] = set()
        self._aborts_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.waiting: deque[Job] = deque()
        self.active: list[Job] = []
        self.inflight: deque[Launched] = deque()  # decode steps queued, tokens not read yet
        self.steps = 0
        self.vision_runs = 0  # vision-encoder calls (the image cache saves these)
        # Seconds the scheduler spent in prefill and decode (each ends in a host sync, so
        # these are wall times of the GPU work plus its bookkeeping).
        self.prefill_s = 0.0
        self.decode_s = 0.0
        self.prefilled = 0
        self.fatal: str | None = None
        # Timings of recently finished requests (submit, first token, end, tokens), for
        # health() and the benchmark; bounded so a long-running worker does not grow.
        self.finished: deque[tuple[str, float, float | None, float, int, int]] = deque(maxlen=4096)
        # For benchmarks: a list to record (time, event, count) of the scheduler's phases
        # into ("submit", "prefill", "embedded", "prefilled", "launch", "collect"); None
        # records nothing.
        self.trace: list[tuple[float, str, int]] | None = None

    # --- Engine protocol ---

    def load(self) -> None:
        with self._load_lock:
            if self.loaded is not None:
                return
            self._attach(load_model(self.model_id, device=self.device, dtype=self.dtype))

    def attach(self, loaded: LoadedModel) -> None:
        """Serve an already loaded model (benchmarks build one directly on the GPU)."""
        with self._load_lock:
            if self.loaded is None:
                self._attach(loaded)

    def _attach(self, loaded: LoadedModel) -> None:
        self.stop_ids = stop_token_ids(loaded.model, loaded.tokenizer)
        self.prompts = PromptBuilder(
            loaded.processor, loaded.tokenizer, loaded.model, self.features
        )
        reason = supports_fast_path(loaded.model)
        if reason is None and not hasattr(getattr(loaded.model, "model", None), "get_rope_index"):
            reason = "image placement without get_rope_index is left to generate()"
        if not self.want_fast_path:
            reason = "disabled"
        self.fast_path_reason = reason
        if self.seed is not None:
            self.generator = torch.Generator(device=loaded.device).manual_seed(self.seed)
        try:
            if reason is None:
                self.slots = SlotModel(
                    loaded.model,
                    max_batch=self.max_batch,
                    max_seq_len=self.max_seq_len,
                    use_cuda_graphs=self.use_cuda_graphs,
                    fuse=self.fuse,
                )
            else:
                from .fallback import GenerateBatcher

                log.info("fast path off for %s: %s", self.model_id, reason)
                self.fallback = GenerateBatcher(self, loaded)
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineUnavailable(
                "Not enough GPU memory for the KV cache; lower max_batch or max_seq_len.",
                code="out_of_memory",
            ) from exc
        self.loaded = loaded
        if self.slots is not None:
            visual = getattr(getattr(loaded.model, "model", loaded.model), "visual", None)
            self.vision_patches = speed_up_vision(visual, self.vision_hints)
        if self.slots is not None and loaded.device.type == "cuda":
            largest = (self.prefill_batch, self.prefill_group_tokens // self.prefill_batch)
            self.slots.warmup_prefill(group=largest)
        self._thread = threading.Thread(target=self._run, name="vlm-scheduler", daemon=True)
        self._thread.start()

    def generate(self, request: GenerationRequest) -> Iterator[EngineEvent]:
        if self.loaded is None:
            self.load()
        if self.fatal:
            raise EngineUnavailable("The GPU engine stopped; restart the worker.")
        if self._admission.full():
            raise EngineUnavailable("The engine is busy; try again shortly.", code="overloaded")
        sampling = request.sampling.clamped()
        last = request.last_image
        job = Job(
            request=request,
            sampling=sampling,
            out=queue.SimpleQueue(),
            stream=OutputStream(
                self.loaded.tokenizer,
                stop=sampling.stop,
                image_size=last.image_size if last else None,
            ),
        )
        try:
            with self._preparing:
                self._prepare(job)
        except PromptError as exc:
            yield Error(message=str(exc), code="bad_request")
            return
        if self.trace is not None:
            self.trace.append((time.perf_counter(), "submit", 1))
        try:
            self._admission.put_nowait(job)
        except queue.Full:
            raise EngineUnavailable(
                "The engine is busy; try again shortly.", code="overloaded"
            ) from None
        self._wake.set()
        finished = False
        try:
            while True:
                event = job.out.get()
                yield event
                if isinstance(event, (Done, Error)):
                    finished = True
                    return
        finally:
            if not finished:  # the caller stopped listening: free the slot
                self.abort(request.request_id)

    def abort(self, request_id: str) -> None:
        with self._aborts_lock:
            self._aborts.add(request_id)
        self._wake.set()

    def health(self) -> dict:
        alive = self._thread is not None and self._thread.is_alive()
        info = {
            "ok": bool(self.loaded is not None and alive and not self.fatal),
            "engine": self.name,
            "model": self.model_id,
            "loaded": self.loaded is not None,
            "active": len(self.active),
            "queued": self._admission.qsize() + len(self.waiting),
            "steps": self.steps,
            "prefilled": self.prefilled,
            "prefill_s": round(self.prefill_s, 3),
            "decode_s": round(self.decode_s, 3),
            "fast_path": self.slots is not None,
            "vision_runs": self.vision_runs,
        }
        if self.loaded is not None:
            info["device"] = str(self.loaded.device)
        if self.fast_path_reason and self.loaded is not None:
            info["fast_path_off"] = self.fast_path_reason
        if self.slots is not None:
            info["cuda_graphs"] = len(self.slots.graphs)
            info["fused"] = self.slots.fused
            info["prefill_graphs"] = len(self.slots.prefill_graphs)
            info["vision"] = self.vision_patches
        if self.fatal:
            info["error"] = self.fatal
        return info

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- caller-thread work ---

    def _prepare(self, job: Job) -> None:
        if self.slots is None:
            return  # the fallback prepares whole windows itself
        prompt = self.prompts.prepare(job.request)
        if prompt.length + 1 >= self.max_seq_len:
            raise PromptError("The conversation is too long for this model.")
        job.prompt = prompt
        job.rope_pos, job.rope_delta = self.prompts.rope_positions(prompt)

    # --- scheduler thread ---

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        with torch.inference_mode():
            while not self._stop:
                try:
                    if self.fallback is not None:
                        self.fallback.step()
                    else:
                        self._step()
                except Exception as exc:  # noqa: BLE001 - a step must never kill the loop
                    log.exception("engine step failed")
                    self._fail_all(exc)

    def _take_new(self, block: bool) -> None:
        if block and not self.waiting and not self.active and not self.inflight:
            self._wake.wait(timeout=0.5)
        self._wake.clear()
        while True:
            try:
                self.waiting.append(self._admission.get_nowait())
            except queue.Empty:
                break

    def _pop_aborts(self) -> set[str]:
        with self._aborts_lock:
            ids, self._aborts = self._aborts, set()
        return ids

    def _handle_aborts(self) -> None:
        ids = self._pop_aborts()
        if not ids:
            return
        for job in [j for j in self.waiting if j.request_id in ids]:
            self.waiting.remove(job)
            self._finish(job, "abort")
        for job in [j for j in self.active if j.request_id in ids]:
            self._finish(job, "abort")

    def _step(self) -> None:
        self._take_new(block=True)
        self._handle_aborts()
        # Admit waiting jobs at this step boundary. While others decode, cap the prompt
        # tokens prefilled per step so their token rate does not stall for long.
        budget = self.prefill_token_budget if self.active else float("inf")
        while self.waiting and len(self.active) < self.max_batch and budget > 0:
            group: list[Job] = []
            group_tokens = 0
            while (
                self.waiting
                and len(group) < self.prefill_batch
                and len(self.active) + len(group) < self.max_batch
                and budget > 0
                and (
                    not group
                    or group_tokens + self.waiting[0].prompt.length <= self.prefill_group_tokens
                )
            ):
                job = self.waiting.popleft()
                budget -= job.prompt.length
                group_tokens += job.prompt.length
                group.append(job)
            self._prefill(group)
        if self.active or self.inflight:
            self._decode()

    def _encode_images(self, images: list[ImageInput]) -> None:
        """Run the vision encoder once, batched, for every screenshot not yet cached."""
        todo: dict[str, ImageInput] = {}
        for image in images:
            if image.key not in todo and self.features.features(image.key) is None:
                todo[image.key] = image
        if not todo:
            return
        batch = [
            img if img.pixel_values is not None else self.prompts.reload_image(img)
            for img in todo.values()
        ]
        device = self.loaded.device
        base = getattr(self.loaded.model, "model", self.loaded.model)
        visual_dtype = getattr(getattr(base, "visual", None), "dtype", self.loaded.dtype)
        grids = torch.cat([img.grid_thw for img in batch], dim=0)
        pixels = torch.cat([img.pixel_values.to(device) for img in batch])
        self.vision_runs += 1
        with self.vision_hints.use(grids):
            out = base.get_image_features(
                pixel_values=pixels.to(visual_dtype), image_grid_thw=grids.to(device)
            )
        pooled = getattr(out, "pooler_output", out)
        if isinstance(pooled, torch.Tensor):
            sizes = [int(g.prod()) // (self.prompts.merge**2) for g in grids]
            pooled = torch.split(pooled, sizes)
        for img, feats in zip(batch, pooled, strict=True):
            self.features.put(img.key, feats, img.grid_thw)

    def _features(self, image: ImageInput) -> torch.Tensor:
        cached = self.features.features(image.key)
        if cached is None:  # not cached, or evicted meanwhile: encode it now
            self._encode_images([image])
            cached = self.features.features(image.key)
        if cached is None:  # a cache of size 0 keeps nothing
            cached = self._encode_uncached(image)
        return cached

    def _encode_uncached(self, image: ImageInput) -> torch.Tensor:
        if image.pixel_values is None:
            image = self.prompts.reload_image(image)
        base = getattr(self.loaded.model, "model", self.loaded.model)
        visual_dtype = getattr(getattr(base, "visual", None), "dtype", self.loaded.dtype)
        self.vision_runs += 1
        with self.vision_hints.use(image.grid_thw):
            out = base.get_image_features(
                pixel_values=image.pixel_values.to(self.loaded.device, visual_dtype),
                image_grid_thw=image.grid_thw.to(self.loaded.device),
            )
        pooled = getattr(out, "pooler_output", out)
        return torch.cat(list(pooled)) if isinstance(pooled, (list, tuple)) else pooled

    def _embeds(self, prompt: PreparedPrompt) -> torch.Tensor:
        """The prompt's input embeddings, its images' features in their placeholders."""
        device = self.loaded.device
        ids = prompt.input_ids.to(device)
        embeds = self.slots.text.embed_tokens(ids)
        if prompt.images:
            feats = torch.cat([self._features(img) for img in prompt.images], dim=0)
            mask = (ids == self.prompts.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(mask, feats.to(embeds.dtype))
        return embeds

    def _prefill(self, jobs: list[Job]) -> None:
        """Prefill a group of new jobs in one forward into the next free slots."""
        for job in self.active:  # don't hold the running answers' last tokens meanwhile
            self._stream(job)
        started = time.perf_counter()
        if self.trace is not None:
            self.trace.append((started, "prefill", len(jobs)))
        try:
            self._prefill_group(jobs)
        finally:
            ended = time.perf_counter()
            self.prefill_s += ended - started
            self.prefilled += len(jobs)
            if self.trace is not None:
                self.trace.append((ended, "prefilled", len(jobs)))

    def _prefill_group(self, jobs: list[Job]) -> None:
        device = self.loaded.device
        try:
            self._encode_images([img for job in jobs for img in job.prompt.images])
            embeds = [self._embeds(job.prompt) for job in jobs]
            if self.trace is not None:  # copying the prompt ids waited for the encoder
                self.trace.append((time.perf_counter(), "embedded", len(jobs)))
            lengths = [job.prompt.length for job in jobs]
            width = max(lengths)
            batch = embeds[0].new_zeros((len(jobs), width, embeds[0].shape[-1]))
            positions = torch.zeros((3, len(jobs), width), dtype=torch.long)
            for i, (job, emb) in enumerate(zip(jobs, embeds, strict=True)):
                batch[i, : lengths[i]] = emb[0]
                positions[:, i, : lengths[i]] = job.rope_pos[:, 0]
            slot = len(self.active)
            logits = self.slots.prefill(slot, batch, positions.to(device), lengths)
        except (PromptError, torch.cuda.OutOfMemoryError, Exception) as exc:  # noqa: BLE001
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
                message, code = "Not enough GPU memory for this request.", "out_of_memory"
            elif isinstance(exc, PromptError):
                message, code = str(exc), "bad_request"
            else:
                log.exception("prefill failed for %s", [j.request_id for j in jobs])
                message, code = "The model failed on this request.", "engine_error"
            for job in jobs:
                self._error(job, message, code)
            return
        for i, job in enumerate(jobs):
            job.slot, job.length = slot + i, job.prompt.length
            self.active.append(job)
        tokens = self._sample(logits, jobs)
        # Their first decode inputs, before anything (a job that ends at once) moves rows.
        self.slots.write_rows(
            slot,
            tokens,
            [job.length + job.rope_delta for job in jobs],
            [job.length for job in jobs],
        )
        for job, token in zip(jobs, tokens, strict=True):
            self._accept(job, token)

    def _decode(self) -> None:
        started = time.perf_counter()
        try:
            if len(self.inflight) >= 2:
                self._collect()
            if self.active:
                self._launch()
            # Read the older step while the one just queued runs.
            if len(self.inflight) >= 2 or (
                self.inflight and (not self.active or not self.queue_ahead)
            ):
                self._collect()
        finally:
            self.decode_s += time.perf_counter() - started

    def _launch(self) -> None:
        jobs = list(self.active)
        sample = None
        if any(j.sampling.temperature > 0 for j in jobs):
            temps = [j.sampling.temperature for j in jobs]
            top_ps = [j.sampling.top_p for j in jobs]

            def sample(logits: torch.Tensor) -> torch.Tensor:
                return sample_tensor(logits, temps, top_ps, self.generator)

        handle = self.slots.launch(len(jobs), max(j.length for j in jobs), sample)
        # The step writes one more cache entry for every row; a job's length counts the
        # steps queued for it, so a slot move made before they ran still copies them.
        for job in jobs:
            job.length += 1
        self.inflight.append(Launched(jobs, handle))
        if self.trace is not None:
            self.trace.append((time.perf_counter(), "launch", len(jobs)))

    def _collect(self) -> None:
        """Take the oldest queued step's tokens: stream them or end the jobs."""
        launched = self.inflight.popleft()
        tokens = launched.handle.tokens()
        self.steps += 1
        if self.trace is not None:
            self.trace.append((time.perf_counter(), "collect", len(tokens)))
        for job, token in zip(launched.jobs, tokens, strict=True):
            if not job.done:  # a job that ended meanwhile: its row computed a spare token
                self._accept(job, token)

    def _sample(self, logits: torch.Tensor, jobs: list[Job]) -> list[int]:
        return sample_rows(
            logits,
            [j.sampling.temperature for j in jobs],
            [j.sampling.top_p for j in jobs],
            self.generator,
        )

    def _accept(self, job: Job, token: int, defer: bool = False) -> None:
        """A new token for a running job: stream it (now, or during the next step when
        `defer`), or end the job."""
        if job.done:
            return
        if job.stop_hit:
            # Its text ended in a stop string while this token was being computed.
            self._finish(job, "stop", by_string=True)
            return
        if job.first_token_at is None:
            job.first_token_at = time.perf_counter()
        job.generated += 1
        if token in self.stop_ids and not self.ignore_eos:
            self._finish(job, "stop")
            return
        job.pending.append(token)
        if not defer:
            self._stream(job)
        if job.stop_hit:
            self._finish(job, "stop", by_string=True)
        elif job.generated >= job.sampling.max_new_tokens:
            self._finish(job, "length")
        elif job.length + 1 >= self.max_seq_len:
            self._finish(job, "length")
        else:
            job.next_token = token

    def _stream(self, job: Job) -> None:
        """Turn the job's pending tokens into Token/Box events; note a stop-string hit."""
        for token in job.pending:
            if job.stop_hit:
                break
            events, stopped = job.stream.push(token)
            for event in events:
                job.out.put(event)
            job.stop_hit = stopped
        job.pending.clear()

    def _release(self, job: Job) -> None:
        """Free the job's slot; move the last active job into it to keep slots compacted.
        (Queued on the GPU after the steps in flight, so it moves what they wrote.)"""
        if job not in self.active:
            return
        index = self.active.index(job)
        last = self.active[-1]
        if last is not job:
            self.slots.copy_slot(last.slot, job.slot, last.length)
            self.slots.move_row(last.slot, job.slot)
            last.slot = job.slot
            self.active[index] = last
        else:
            self.slots.clear_row(job.slot)
        self.active.pop()

    def _finish(self, job: Job, reason: str, *, by_string: bool = False) -> None:
        if job.done:
            return
        if reason != "abort" and not by_string:
            self._stream(job)  # tokens before the end (they may hold a stop string)
            by_string = job.stop_hit
        job.pending.clear()
        job.done = True
        self._release(job)
        if reason != "abort":
            for event in job.stream.finish(stopped_by_string=by_string):
                job.out.put(event)
        prompt_tokens = job.prompt.length if job.prompt is not None else 0
        self.finished.append(
            (
                job.request_id,
                job.submitted,
                job.first_token_at,
                time.perf_counter(),
                prompt_tokens,
                job.generated,
            )
        )
        job.out.put(
            Done(
                text=job.stream.text,
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=job.generated),
                finish_reason=reason,
                engine=self.name,
            )
        )

    def _error(self, job: Job, message: str, code: str = "engine_error") -> None:
        if job.done:
            return
        job.pending.clear()
        job.done = True
        self._release(job)
        job.out.put(Error(message=message, code=code))

    def _fail_all(self, exc: BaseException) -> None:
        oom = isinstance(exc, torch.cuda.OutOfMemoryError)
        message = (
            "Not enough GPU memory; try again." if oom else "The model failed on this request."
        )
        self.inflight.clear()
        for job in list(self.active) + list(self.waiting):
            self._error(job, message, "out_of_memory" if oom else "engine_error")
        self.active.clear()
        self.waiting.clear()
        if oom:
            torch.cuda.empty_cache()


def build_vlm_engine(model_id: str, *, load: bool = False, **options: Any) -> VLMEngine:
    """The GPU engine for MODEL_ID (hub id or local folder); `options` are VLMEngine's
    keyword arguments. `load=True` loads at once; otherwise the first `load()` or
    `generate()` does."""
    engine = VLMEngine(model_id, **options)
    if load:
        engine.load()
    return engine
