"""The generic path: transformers' `generate` over windows of requests.

For image-text-to-text models the slot path does not cover. Waiting requests with the
same sampling settings are batched into one left-padded `generate` call (a window); new
requests wait for the next window. A streamer hands each step's tokens to the per-request
pipelines, and a per-row stopping criterion ends rows that stopped, ran out of tokens or
were aborted, so they no longer count as unfinished.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from .prompt import PromptError, _open_image

if TYPE_CHECKING:
    from .engine import Job, VLMEngine


class _RowStreamer:
    """transformers BaseStreamer protocol: put(token ids of this step), end()."""

    def __init__(self, on_step):
        self.on_step = on_step
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        self.on_step(value.view(-1).tolist())

    def end(self) -> None:
        pass


class GenerateBatcher:
    def __init__(self, engine: VLMEngine, loaded: Any):
        self.engine = engine
        self.loaded = loaded
        self.processor = loaded.processor
        self.window: list[Job] = []

    def step(self) -> None:
        engine = self.engine
        engine._take_new(block=True)
        engine._handle_aborts()
        if not engine.waiting:
            return
        first = engine.waiting[0]
        key = (first.sampling.temperature, first.sampling.top_p)
        batch = [
            j for j in list(engine.waiting) if (j.sampling.temperature, j.sampling.top_p) == key
        ][: engine.max_batch]
        for job in batch:
            engine.waiting.remove(job)
        self._run(batch)

    def _inputs(self, jobs: list[Job]) -> tuple[dict, list[Job]]:
        texts, images, ok = [], [], []
        for job in jobs:
            try:
                text = self.engine.prompts.render(job.request)
                for turn in job.request.turns:
                    if turn.image_path:
                        images.append(_open_image(turn.image_path)[0])
            except PromptError as exc:
                self.engine._error(job, str(exc), "bad_request")
                continue
            texts.append(text)
            ok.append(job)
        tokenizer = self.loaded.tokenizer
        tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        enc = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        return {k: v.to(self.loaded.device) for k, v in enc.items()}, ok

    def _run(self, jobs: list[Job]) -> None:
        engine = self.engine
        inputs, jobs = self._inputs(jobs)
        if not jobs:
            return
        mask = inputs.get("attention_mask")
        for i, job in enumerate(jobs):
            job.length = int(mask[i].sum()) if mask is not None else inputs["input_ids"].shape[1]
            # Usage reports the prompt length; the fallback keeps no PreparedPrompt.
            job.prompt = _PromptLength(job.length)
        live = [True] * len(jobs)

        def on_step(tokens: list[int]) -> None:
            aborted = engine._pop_aborts()
            for i, (job, token) in enumerate(zip(jobs, tokens, strict=False)):
                if not live[i]:
                    continue
                if job.request_id in aborted:
                    live[i] = False
                    engine._finish(job, "abort")
                    continue
                engine._accept(job, token)
                if job.done:
                    live[i] = False

        from transformers import StoppingCriteria, StoppingCriteriaList

        class RowsDone(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.tensor([not x for x in live], device=input_ids.device)

        sampling = jobs[0].sampling
        do_sample = sampling.temperature > 0
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max(j.sampling.max_new_tokens for j in jobs),
            "do_sample": do_sample,
            "streamer": _RowStreamer(on_step),
            "stopping_criteria": StoppingCriteriaList([RowsDone()]),
        }
        if do_sample:
            gen_kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if engine.ignore_eos:
            gen_kwargs["min_new_tokens"] = gen_kwargs["max_new_tokens"]
        started = time.perf_counter()
        try:
            self.loaded.model.generate(**inputs, **gen_kwargs)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            for job in jobs:
                engine._error(job, "Not enough GPU memory for this request.", "out_of_memory")
            return
        del started
        for i, job in enumerate(jobs):
            if live[i]:
                engine._finish(job, "length")


class _PromptLength:
    def __init__(self, length: int):
        self.length = length
