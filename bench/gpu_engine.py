"""Benchmark of the GPU engine (inference.vlm) at the GLM-4.6V-Flash shape.

Run on a GPU machine (not a test):

    PYTHONUNBUFFERED=1 python3 bench/gpu_engine.py [--quick] [--out DIR]

What it does, in one process:
1. versions, GPU name, measured copy bandwidth and bf16 matmul rate (the two ceilings);
2. correctness on the GPU with a tiny random GLM-4V in float32 (TF32 off): the engine's
   greedy output equals transformers' generate, and batched/continuous runs (one request
   joining mid-decode) equal the same requests run alone;
3. a random-weight model of the exact GLM-4.6V-Flash shape (Glm4vConfig() defaults,
   partial_rotary_factor 0.5, bf16) built directly on the GPU, a 1024x768 screenshot and
   about 50 prompt tokens, 128 answer tokens forced: one burst of 32 at once first
   (reported as "first burst after start": the prefill group sizes it forms are new to
   the process), then single stream, 8 and 32 at once, 32 staggered, 32 users back to
   back; the plain transformers generate() baseline at batch 1;
4. one table, each figure also as a fraction of its hardware floor.

Flags for working on the engine (none of them changes the default runs): --trace records
the scheduler's timeline of the 32-at-once runs (when requests arrive, each prefill
group, the decode step period; under each run's "trace"); --ab measures, in this
process, 32 at once without queueing decode steps ahead and with other limits on
concurrent prompt preparation, and the Triton kernels' phase timings off and on;
--sched-ab repeats 32 at once under several GIL switch intervals and preparation
limits; --runs picks a subset of the runs.

Random weights: the tokens are meaningless, only the shapes and the timing matter. The
tokenizer is a small locally built one whose special-token ids are written into the
config, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.types import ChatTurn, Done, GenerationRequest, SamplingParams  # noqa: E402
from inference.vlm import kernels  # noqa: E402
from inference.vlm.engine import VLMEngine  # noqa: E402
from inference.vlm.loader import LoadedModel, make_processor  # noqa: E402
from inference.vlm.tiny import GLM_SPECIALS, GLM_TEMPLATE, build_tiny_glm4v, build_tokenizer  # noqa: E402

QUESTION = (
    "Look at this screenshot of the order page. Which button submits the form, where is it, "
    "and is there any error message shown next to the email field? Answer briefly please."
)
NEW_TOKENS = 128


def log(*args):
    print(*args, flush=True)


# --- ceilings ---


def ceilings() -> dict:
    x = torch.empty(2 * 1024**3 // 2, dtype=torch.bfloat16, device="cuda").normal_()
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        y.copy_(x)
    end.record()
    torch.cuda.synchronize()
    copy_bw = 2 * x.numel() * 2 * 10 / (start.elapsed_time(end) / 1e3)  # read + write
    del x, y
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    flops = 2 * 8192**3 * 10 / (start.elapsed_time(end) / 1e3)
    del a, b
    torch.cuda.empty_cache()
    return {"copy_bytes_per_s": copy_bw, "bf16_flops": flops}


# --- correctness on the GPU with a tiny model ---


def tiny_checks(tmp: Path, device: str = "cuda") -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    folder = build_tiny_glm4v(tmp / "tiny-glm")
    shots = []
    for i in range(4):
        path = tmp / f"tiny{i}.png"
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (90 + 20 * i, 120, 3), dtype=np.uint8)).save(path)
        shots.append(str(path))
    prompts = ["Where is Submit?", "Read the order id.", "Any errors?", "Describe the page."]
    reqs = [
        GenerationRequest(
            f"t{i}",
            (ChatTurn("user", prompts[i], shots[i], (1280, 960)),),
            # Different lengths, so jobs finish at different steps and slots get compacted.
            SamplingParams(max_new_tokens=[24, 9, 17, 30][i]),
        )
        for i in range(4)
    ]
    engine = VLMEngine(str(folder), device=device, dtype=torch.float32, max_batch=4)
    engine.load()
    alone = [list(engine.generate(r))[-1].text for r in reqs]
    # Together: three at once, the fourth joins once the others are decoding.
    results: dict[str, str] = {}

    def run(r):
        results[r.request_id] = list(engine.generate(r))[-1].text

    threads = [threading.Thread(target=run, args=(r,)) for r in reqs[:3]]
    for t in threads:
        t.start()
    time.sleep(0.05)
    late = threading.Thread(target=run, args=(reqs[3],))
    late.start()
    for t in threads + [late]:
        t.join()
    together = [results[r.request_id] for r in reqs]
    # transformers' own generate on the same inputs (checks the slot path against HF).
    lm = engine.loaded
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompts[0]}]}]
    text = lm.processor.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    enc = lm.processor(
        text=[text], images=[Image.open(shots[0]).convert("RGB")], return_tensors="pt"
    )
    enc = {k: v.to(device) for k, v in enc.items()}
    out = lm.model.generate(**enc, max_new_tokens=24, do_sample=False)
    hf_text = lm.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=False)
    engine.close()
    torch.backends.cuda.matmul.allow_tf32 = True
    return {
        "batched_equals_alone": together == alone,
        "engine_equals_hf_generate": hf_text.startswith(alone[0]) and bool(alone[0]),
        "graphs": engine.health().get("cuda_graphs"),
        "alone": alone,
        "together": together,
        "hf": hf_text,
    }


# --- the GLM-4.6V-Flash shape ---


def build_full(small: bool = False) -> LoadedModel:
    from transformers import GenerationConfig, Glm4vConfig, Glm4vForConditionalGeneration

    tokenizer = build_tokenizer(GLM_SPECIALS, GLM_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GLM_SPECIALS}
    config = Glm4vConfig()
    if small:  # a dry run of this script on a CPU machine
        config = Glm4vConfig(
            text_config={
                "hidden_size": 256,
                "intermediate_size": 512,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
            },
            vision_config={
                "depth": 2,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_heads": 2,
                "out_hidden_size": 256,
            },
        )
    config.text_config.partial_rotary_factor = 0.5
    config.text_config.rope_parameters["partial_rotary_factor"] = 0.5
    # The real vocabulary stays 151,552 wide; only the special ids point into our tokenizer.
    config.image_token_id = ids["<|image|>"]
    config.video_token_id = ids["<|video|>"]
    config.image_start_token_id = ids["<|begin_of_image|>"]
    config.image_end_token_id = ids["<|end_of_image|>"]
    config.video_start_token_id = ids["<|begin_of_video|>"]
    config.video_end_token_id = ids["<|end_of_video|>"]
    config._attn_implementation = "sdpa"
    t0 = time.perf_counter()
    device = "cpu" if small else "cuda"
    torch.set_default_dtype(torch.float32 if small else torch.bfloat16)
    with torch.device(device):
        model = Glm4vForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)
    model.eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|endoftext|>"], ids["<|user|>"]], pad_token_id=ids["<|endoftext|>"]
    )
    log(f"built the full-shape model on the GPU in {time.perf_counter() - t0:.1f} s")
    try:
        from transformers.models.glm4v.image_processing_glm4v import Glm4vImageProcessor

        image_processor = Glm4vImageProcessor()
    except Exception:  # noqa: BLE001 - no torchvision: the PIL one
        from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

        image_processor = Glm4vImageProcessorPil()
    from transformers.models.glm4v.processing_glm4v import Glm4vProcessor

    processor = make_processor(
        Glm4vProcessor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GLM_TEMPLATE,
    )
    return LoadedModel(
        model=model,
        processor=processor,
        tokenizer=tokenizer,
        device=torch.device(device),
        dtype=torch.float32 if small else torch.bfloat16,
        model_id="random GLM-4.6V-Flash shape",
    )


def screenshot(path: Path, seed: int) -> str:
    """A synthetic 1024x768 UI screenshot (bars, buttons, text), different for every seed.

    Flat areas and text compress and decode like a real screenshot does; random noise
    would make PNG decoding alone cost ~20 ms and overstate time to first token.
    """
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (1024, 768), tuple(int(v) for v in rng.integers(225, 255, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 1024, 56), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
    for row in range(24):
        y = 80 + row * 27
        x = int(rng.integers(20, 200))
        words = " ".join(f"field{int(v)}" for v in rng.integers(0, 10**6, 6))
        draw.text((x, y), f"Order {seed}-{row}: {words}", fill=(20, 20, 20))
        if row % 5 == 0:
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            draw.rectangle((800, y - 4, 990, y + 18), fill=colour, outline=(0, 0, 0))
            draw.text((820, y), "Submit", fill=(255, 255, 255))
    image.save(path)
    return str(path)


def request(i: int, shot: str) -> GenerationRequest:
    return GenerationRequest(
        f"r{i}",
        (ChatTurn("user", QUESTION, shot, (2048, 1536)),),
        SamplingParams(max_new_tokens=NEW_TOKENS),
    )


def run_load(
    engine: VLMEngine, reqs: list[GenerationRequest], gap_s: float = 0.0, trace: bool = False
) -> dict:
    """Submit requests (all at once, or one every gap_s) and time them."""
    start_index = len(engine.finished)
    engine.trace = [] if trace else None
    errors: list[str] = []

    def one(r):
        events = list(engine.generate(r))
        if not isinstance(events[-1], Done):
            errors.append(repr(events[-1]))

    threads = [threading.Thread(target=one, args=(r,)) for r in reqs]
    before = (engine.prefill_s, engine.decode_s, engine.steps)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
        if gap_s:
            time.sleep(gap_s)
    for t in threads:
        t.join()
    t_end = time.perf_counter()
    wall = t_end - t0
    rows = list(engine.finished)[start_index:]
    ttft = [r[2] - r[1] for r in rows]
    tpot = [(r[3] - r[2]) / max(1, r[5] - 1) for r in rows]
    tokens = sum(r[5] for r in rows)
    extra = {}
    if trace:
        extra["trace"] = trace_summary(engine.trace, t0, t_end)
        engine.trace = None
    return {
        **extra,
        "n": len(reqs),
        "errors": errors,
        "wall_s": wall,
        "ttft_p50_ms": 1e3 * statistics.median(ttft),
        "ttft_p95_ms": 1e3 * float(np.percentile(ttft, 95)),
        "tpot_ms": 1e3 * statistics.mean(tpot),
        "out_tok_s": tokens / wall,
        "req_s": len(rows) / wall,
        "prefill_s": engine.prefill_s - before[0],
        "decode_s": engine.decode_s - before[1],
        "decode_step_ms": 1e3 * (engine.decode_s - before[1]) / max(1, engine.steps - before[2]),
        "prompt_tokens": rows[0][4],
        "completion_tokens": rows[0][5],
    }


def run_sustained(
    engine: VLMEngine,
    shots: list[str],
    clients: int,
    per_client: int,
    first_id: int,
    trace: bool = False,
) -> dict:
    """Closed loop: `clients` users, each asking again as soon as an answer ends (every
    question about a new screenshot). The steady state of a busy server: prefills of new
    requests join the batch while the others decode."""
    start_index = len(engine.finished)
    counter = iter(range(first_id, first_id + clients * per_client))
    lock = threading.Lock()
    errors: list[str] = []

    def user():
        for _ in range(per_client):
            with lock:
                i = next(counter)
            events = list(engine.generate(request(i, shots[i % len(shots)])))
            if not isinstance(events[-1], Done):
                errors.append(repr(events[-1]))

    before = (engine.prefill_s, engine.decode_s, engine.steps)
    threads = [threading.Thread(target=user) for _ in range(clients)]
    engine.trace = [] if trace else None
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_end = time.perf_counter()
    wall = t_end - t0
    rows = list(engine.finished)[start_index:]
    ttft = [r[2] - r[1] for r in rows]
    tokens = sum(r[5] for r in rows)
    steps = engine.steps - before[2]
    extra = {}
    if trace:
        extra["trace"] = trace_summary(engine.trace, t0, t_end)
        engine.trace = None
    return {
        **extra,
        "n": len(rows),
        "errors": errors,
        "wall_s": wall,
        "ttft_p50_ms": 1e3 * statistics.median(ttft),
        "ttft_p95_ms": 1e3 * float(np.percentile(ttft, 95)),
        "tpot_ms": 1e3 * statistics.mean((r[3] - r[2]) / max(1, r[5] - 1) for r in rows),
        "out_tok_s": tokens / wall,
        "req_s": len(rows) / wall,
        "prefill_s": engine.prefill_s - before[0],
        "decode_s": engine.decode_s - before[1],
        "decode_step_ms": 1e3 * (engine.decode_s - before[1]) / max(1, steps),
        "prompt_tokens": rows[0][4],
        "completion_tokens": rows[0][5],
    }


def hf_baseline(loaded: LoadedModel, shot: str) -> dict:
    """Plain transformers generate(), batch 1, dynamic cache: TTFT and per-token time."""
    lm = loaded
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = lm.processor.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    enc = lm.processor(text=[text], images=[Image.open(shot).convert("RGB")], return_tensors="pt")
    enc = {k: v.to(lm.device) for k, v in enc.items()}

    def timed(n):
        sync()
        t = time.perf_counter()
        lm.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        sync()
        return time.perf_counter() - t

    timed(2)
    first = statistics.median([timed(1) for _ in range(3)])
    longer = timed(33)
    return {"ttft_ms": 1e3 * first, "tpot_ms": 1e3 * (longer - first) / 32}


def timed_ms(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def phases(engine: VLMEngine, shot: str, dry: bool, profile: bool = True) -> dict:
    """Where the time of one request goes, with the scheduler idle (slots are free)."""
    slots, prompts = engine.slots, engine.prompts
    req = request(500, shot)
    out: dict = {"prepare_ms": timed_ms(lambda: prompts.prepare(req))}
    prompt = prompts.prepare(req)
    pos, _ = prompts.rope_positions(prompt)
    out["rope_index_ms"] = timed_ms(lambda: prompts.rope_positions(prompt))
    base = engine.loaded.model.model
    image = prompt.images[0]
    if image.pixel_values is None:
        image = prompts.reload_image(image)
    dev = engine.loaded.device
    with torch.inference_mode():
        pixels = image.pixel_values.to(dev, engine.loaded.dtype)
        grid = image.grid_thw.to(dev)

        def encode():
            # As the engine calls it: with the grid known on the host.
            with engine.vision_hints.use(image.grid_thw):
                return base.get_image_features(pixel_values=pixels, image_grid_thw=grid)

        out["vision_ms"] = timed_ms(encode)
        feats = engine._features(image)
        ids = prompt.input_ids.to(dev)
        emb = slots.text.embed_tokens(ids).masked_scatter(
            (ids == prompts.image_token_id).unsqueeze(-1), feats.to(engine.loaded.dtype)
        )
        pos = pos.to(dev)
        out["prefill_ms"] = timed_ms(lambda: slots.prefill(0, emb, pos))
        out["hf_text_forward_ms"] = timed_ms(
            lambda: slots.text(inputs_embeds=emb, position_ids=pos, use_cache=False)
        )
        for b in (1, 8, 32):
            out[f"raw_step_b{b}_ms"] = timed_ms(
                lambda b=b: slots.decode([5] * b, [1200] * b, [1200] * b), repeat=20
            )
        if not dry and profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                slots.prefill(0, emb, pos)
                sync()
            table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14)
            out["prefill_profile"] = table
            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                encode()
                sync()
            out["vision_profile"] = prof.key_averages().table(
                sort_by="cuda_time_total", row_limit=14
            )
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    slots.decode([5] * 32, [1200] * 32, [1200] * 32)
                sync()
            out["decode_profile"] = prof.key_averages().table(
                sort_by="cuda_time_total", row_limit=10
            )
    return out


def trace_summary(trace: list[tuple[float, str, int]], t0: float, t_end: float) -> dict:
    """Where the wall time of one run went, from the engine's trace (times in ms from the
    first request's submission)."""
    rel = [(1e3 * (t - t0), what, n) for t, what, n in trace]
    submits = [t for t, what, _ in rel if what == "submit"]
    starts = [(t, n) for t, what, n in rel if what == "prefill"]
    ends = [t for t, what, _ in rel if what == "prefilled"]
    collects = [t for t, what, _ in rel if what == "collect"]
    launches = [t for t, what, _ in rel if what == "launch"]
    embedded = [t for t, what, _ in rel if what == "embedded"]
    groups = [
        {"start_ms": round(a, 1), "ms": round(b - a, 1), "n": n}
        for (a, n), b in zip(starts, ends, strict=False)
    ]
    for group in groups:  # until the prompts' embeddings were ready (the vision encoder)
        start, end = group["start_ms"], group["start_ms"] + group["ms"]
        inside = [t for t in embedded if start <= t <= end]
        if inside:
            group["embed_ms"] = round(inside[0] - start, 1)
    # Decode step periods: between consecutive collects with no prefill in between.
    periods = []
    for a, b in zip(collects, collects[1:], strict=False):
        if not any(a < g["start_ms"] < b for g in groups):
            periods.append(b - a)
    prefill_ms = sum(g["ms"] for g in groups)
    return {
        "first_submit_ms": round(min(submits), 1) if submits else None,
        "last_submit_ms": round(max(submits), 1) if submits else None,
        "groups": groups,
        "prefill_total_ms": round(prefill_ms, 1),
        "first_launch_ms": round(launches[0], 1) if launches else None,
        "last_collect_ms": round(collects[-1], 1) if collects else None,
        "end_ms": round(1e3 * (t_end - t0), 1),
        "steps": len(collects),
        "step_period_ms_p50": round(statistics.median(periods), 3) if periods else None,
        "step_period_ms_p90": round(float(np.percentile(periods, 90)), 3) if periods else None,
        "steps_between_groups": len(collects) - len(periods),
    }


def sched_ab(engine: VLMEngine, shots: list[str]) -> dict:
    """32 at once under each (GIL switch interval, concurrent preparations), interleaved so
    drift hits every configuration alike."""
    configs = [("5ms_prep1", 0.005, 1), ("20ms_prep1", 0.02, 1), ("5ms_prep2", 0.005, 2)]
    configs += [("5ms_prep4", 0.005, 4)]
    out: dict = {name: [] for name, _, _ in configs}
    interval = sys.getswitchinterval()
    semaphore = engine._preparing
    first = 0
    for rep in range(3):
        for name, switch, prep in configs:
            if rep == 2 and name == "5ms_prep4":
                continue
            sys.setswitchinterval(switch)
            engine._preparing = threading.BoundedSemaphore(prep)
            reqs = [request(2000 + first + i, shots[first + i]) for i in range(32)]
            first += 32
            r = run_load(engine, reqs, trace=True)
            out[name].append(
                {
                    "out_tok_s": round(r["out_tok_s"], 1),
                    "ttft_p95_ms": round(r["ttft_p95_ms"]),
                    "prefill_ms": r["trace"]["prefill_total_ms"],
                    "last_submit_ms": r["trace"]["last_submit_ms"],
                    "groups": [(g["n"], g["ms"]) for g in r["trace"]["groups"]],
                }
            )
    sys.setswitchinterval(interval)
    engine._preparing = semaphore
    return out


def prefill_ab(engine: VLMEngine, shots: list[str]) -> dict:
    """32 at once and 32 users back to back, interleaved: a group's prompts as one eager
    forward with flash attention (the default), the same with PyTorch's own attention
    choice (cuDNN), and one by one through the single-prompt graphs."""
    modes = ("forward_flash", "forward_cudnn", "each")
    out: dict = {mode: [] for mode in modes}
    first = 0
    default = engine.slots.group_backends

    def use(mode: str) -> None:
        engine.slots.each_prompt_static = mode == "each"
        engine.slots.group_backends = None if mode == "forward_cudnn" else default

    for _ in range(2):
        for mode in modes:
            use(mode)
            reqs = [request(6000 + first + i, shots[first + i]) for i in range(32)]
            first += 32
            r = run_load(engine, reqs, trace=True)
            out[mode].append(_ab_row(r))
    for mode in modes:
        use(mode)
        r = run_sustained(engine, shots[first : first + 96], 32, 3, 7000 + first, trace=True)
        first += 96
        out[mode + "_sustained"] = _ab_row(r)
    use("forward_flash")
    return out


def _ab_row(r: dict) -> dict:
    return {
        "out_tok_s": round(r["out_tok_s"], 1),
        "ttft_p95_ms": round(r["ttft_p95_ms"]),
        "prefill_ms": r["trace"]["prefill_total_ms"],
        "wall_ms": round(1e3 * r["wall_s"]),
        "steps": r["trace"]["steps"],
        "step_period_ms_p50": r["trace"]["step_period_ms_p50"],
        "groups": [(g["n"], g["ms"], g.get("embed_ms")) for g in r["trace"]["groups"]],
    }


def probe_prefill(engine: VLMEngine, shots: list[str]) -> dict:
    """What a group size costs the eager group forward the first time it is met, with
    PyTorch's default attention backend (cuDNN here) and with flash attention alone; then
    GPU profiles of a group of eight as one forward and prompt by prompt. Only meaningful
    where the process has not formed such groups before (r3 ran it after the default
    runs while those prefilled prompt by prompt)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    slots = engine.slots
    jobs = [engine.prompts.prepare(request(8000 + i, shots[i])) for i in range(8)]
    images = [p.images[0] for p in jobs]
    out: dict = {}
    with torch.inference_mode():
        t = time.perf_counter()
        engine._encode_images(images[:1])
        sync()
        out["vision_n1_first_ms"] = 1e3 * (time.perf_counter() - t)
        t = time.perf_counter()
        engine._encode_images(images[1:8])
        sync()
        out["vision_n7_first_ms"] = 1e3 * (time.perf_counter() - t)
        embeds = [engine._embeds(p) for p in jobs]
        positions = [engine.prompts.rope_positions(p)[0] for p in jobs]
        batch = torch.cat(embeds)
        pos = torch.cat(positions, dim=1).to("cuda")
        lengths = [p.length for p in jobs]

        def forward(n):
            return lambda: slots._prefill_forward(0, batch[:n], pos[:, :n], lengths[:n])

        def each(n):
            return lambda: slots.prefill(0, batch[:n], pos[:, :n], lengths[:n])

        flash = [SDPBackend.FLASH_ATTENTION]
        plan = [
            ("forward_n2_flash", 2, flash),
            ("forward_n2_flash_again", 2, flash),
            ("forward_n3_default", 3, None),
            ("forward_n3_default_again", 3, None),
            ("forward_n4_flash", 4, flash),
            ("forward_n4_default", 4, None),
            ("forward_n4_default_again", 4, None),
            ("forward_n8_default", 8, None),
            ("forward_n8_default_again", 8, None),
            ("forward_n8_flash", 8, flash),
            ("forward_n8_flash_again", 8, flash),
        ]
        for name, n, backends in plan:
            sync()
            t = time.perf_counter()
            if backends is None:
                forward(n)()
            else:
                with sdpa_kernel(backends):
                    forward(n)()
            sync()
            out[name + "_ms"] = 1e3 * (time.perf_counter() - t)
        for name in ("each_n8", "each_n8_again", "each_n8_third"):
            out[name + "_ms"] = timed_ms(each(8), repeat=1)
        for name, fn in (("forward_n8", forward(8)), ("each_n8", each(8))):
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                sync()
            out[name + "_profile"] = prof.key_averages().table(
                sort_by="cuda_time_total", row_limit=12
            )
    return out


def set_kernels(engine: VLMEngine, on: bool) -> None:
    """Switch the Triton kernels; graphs captured before keep theirs, so drop them."""
    for name in kernels.ENABLED:
        kernels.ENABLED[name] = on
    engine.slots.graphs.clear()
    engine.slots.prefill_graphs.clear()


def kernel_ab(engine: VLMEngine, shot: str) -> dict:
    """Prefill, vision and decode-step times with the Triton kernels off, then on."""
    out = {}
    for on in (False, True):
        set_kernels(engine, on)
        engine.slots.warmup(batches=(1, 32), spans=(1536,))
        ph = phases(engine, shot, dry=False, profile=False)
        out["on" if on else "off"] = {
            k: ph[k] for k in ("vision_ms", "prefill_ms", "raw_step_b1_ms", "raw_step_b32_ms")
        }
    return out


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the tiny-model checks")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--max-seq-len", type=int, default=8192)
    parser.add_argument("--dry-run", action="store_true", help="small model on the CPU")
    parser.add_argument("--trace", action="store_true", help="timeline of the c32 run")
    parser.add_argument(
        "--ab", action="store_true", help="also measure with the kernels / queueing ahead off"
    )
    parser.add_argument(
        "--sched-ab",
        action="store_true",
        help="32 at once, repeated, under several GIL switch intervals and prepare limits",
    )
    parser.add_argument(
        "--prefill-ab",
        action="store_true",
        help="32 at once and back to back, groups prefilled prompt by prompt or as one forward",
    )
    parser.add_argument(
        "--probe-prefill",
        action="store_true",
        help="first-time cost of group sizes in one forward, by attention backend",
    )
    parser.add_argument(
        "--runs",
        default="c1,c1_cached_image,c8,c32,c32_staggered,c32_sustained,hf",
        help="comma-separated subset of the runs",
    )
    parser.add_argument(
        "--prefill-batches",
        type=int,
        nargs="*",
        default=[],
        help="also run 32 at once with these prefill group sizes",
    )
    args = parser.parse_args()
    import transformers

    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except FileNotFoundError:
        gpu = "no GPU (dry run)"
    log(f"GPU: {gpu}; torch {torch.__version__}; transformers {transformers.__version__}")
    report: dict = {
        "gpu": gpu,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    dry = args.dry_run or not torch.cuda.is_available()
    report["ceilings"] = ceil = (
        {"copy_bytes_per_s": 3.0e12, "bf16_flops": 8.0e14} if dry else ceilings()
    )
    log(
        f"copy {ceil['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 {ceil['bf16_flops'] / 1e12:.0f} TFLOP/s"
    )
    tmp = Path(tempfile.mkdtemp())
    if not args.quick:
        report["tiny"] = tiny = tiny_checks(tmp, "cpu" if dry else "cuda")
        log(
            "tiny checks:",
            json.dumps(
                {
                    k: tiny[k]
                    for k in ("batched_equals_alone", "engine_equals_hf_generate", "graphs")
                }
            ),
        )

    loaded = build_full(small=dry)
    model = loaded.model
    text_model = model.model.language_model
    weight_bytes = param_bytes(text_model) - param_bytes(text_model.embed_tokens)
    weight_bytes += param_bytes(model.lm_head)
    vision_params = sum(p.numel() for p in model.model.visual.parameters())
    text_params = weight_bytes // 2
    # Every timed request asks about a screenshot not seen before (the vision encoder runs),
    # except the one run that measures a follow-up about the same screenshot.
    # (--prefill-ab takes 480 from 368 on, --probe-prefill 8 from 900 on)
    shots = [screenshot(tmp / f"shot{i}.png", i) for i in range(908)]
    runs = set(args.runs.split(","))

    engine = VLMEngine("bench", max_batch=32, max_seq_len=args.max_seq_len, ignore_eos=True)
    t0 = time.perf_counter()
    engine.attach(loaded)
    log(
        f"engine ready in {time.perf_counter() - t0:.1f} s, fused: {engine.slots.fused}, "
        f"vision: {engine.vision_patches}"
    )
    prompt = engine.prompts.prepare(request(0, shots[0]))
    t0 = time.perf_counter()
    for i in range(5):
        engine.prompts.prepare(request(0, shots[70 + i]))
    prepare_ms = 1e3 * (time.perf_counter() - t0) / 5
    log(f"prompt preparation in the caller thread (template, tokens, image): {prepare_ms:.1f} ms")
    visual = int(prompt.images[0].grid_thw.prod()) // 4
    log(f"prompt: {prompt.length} tokens, {visual} of them visual")
    t0 = time.perf_counter()
    engine.slots.warmup(batches=(1, 8, 32) if dry else None, spans=(1536, 2048))
    log(f"captured {len(engine.slots.graphs)} decode graphs in {time.perf_counter() - t0:.1f} s")
    run_load(engine, [request(1000, shots[79])])  # warm prefill kernels and caches
    run_load(engine, [request(1001 + i, shots[76 + i]) for i in range(3)])  # batched prefill
    # One burst of 32 before the timed runs: the prefill groups it forms (sizes up to 8)
    # meet their shapes for the first time here (allocator growth, per-shape library
    # set-up), as a running server has long done. Timed too, reported on its own.
    first_burst = run_load(
        engine, [request(3000 + i, shots[336 + i]) for i in range(32)], trace=args.trace
    )
    log("c32, first burst after start", first_burst)
    report["phases"] = ph = phases(engine, shots[78], dry)
    for key, value in ph.items():
        log(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}:\n{value}")
    if not dry:
        torch.cuda.reset_peak_memory_stats()

    results = {"c32_first_burst": first_burst}
    if "c1" in runs:
        results["c1"] = min(
            (run_load(engine, [request(i, shots[i])]) for i in range(3)),
            key=lambda r: r["wall_s"],
        )
        log("c1", results["c1"])
    if "c1_cached_image" in runs:
        results["c1_cached_image"] = run_load(engine, [request(100, shots[0])])
        log("c1 cached image", results["c1_cached_image"])
    if "c8" in runs:
        results["c8"] = run_load(engine, [request(10 + i, shots[3 + i]) for i in range(8)])
        log("c8", results["c8"])
    if "c32" in runs:
        results["c32"] = run_load(
            engine, [request(20 + i, shots[11 + i]) for i in range(32)], trace=args.trace
        )
        log("c32", results["c32"])
    if "c32_staggered" in runs:
        results["c32_staggered"] = run_load(
            engine, [request(60 + i, shots[43 + i]) for i in range(32)], gap_s=0.1
        )
        log("c32 staggered (one every 100 ms)", results["c32_staggered"])
    if "c32_sustained" in runs:
        results["c32_sustained"] = run_sustained(
            engine, shots[80:176], 32, 3, 200, trace=args.trace
        )
        log("c32 sustained (32 users, 3 questions each)", results["c32_sustained"])
    if args.ab and not dry:
        engine.queue_ahead = False
        results["c32_no_queue_ahead"] = run_load(
            engine, [request(500 + i, shots[240 + i]) for i in range(32)], trace=args.trace
        )
        log("c32 without queueing decode steps ahead", results["c32_no_queue_ahead"])
        engine.queue_ahead = True
        semaphore = engine._preparing
        engine._preparing = threading.BoundedSemaphore(32)
        results["c32_prepare_together"] = run_load(
            engine, [request(580 + i, shots[304 + i]) for i in range(32)], trace=args.trace
        )
        log("c32 with 32 callers preparing at once", results["c32_prepare_together"])
        engine._preparing = semaphore
        report["kernel_ab"] = kernel_ab(engine, shots[78])
        log("kernels off/on", report["kernel_ab"])
        # (32 at once with the kernels off is not measured: the compiled versions they
        # replace then compile for shapes they never saw, seconds inside the run.)
        set_kernels(engine, True)
        engine.slots.warmup(spans=(1536, 2048))
        run_load(engine, [request(9001, shots[77])])  # the prefill graph, captured anew
        engine._preparing = threading.BoundedSemaphore(1)
        results["c32_prepare_one_at_a_time"] = run_load(
            engine, [request(540 + i, shots[272 + i]) for i in range(32)], trace=args.trace
        )
        log("c32 with callers preparing one at a time", results["c32_prepare_one_at_a_time"])
        engine._preparing = semaphore
    if args.probe_prefill and not dry:
        report["probe_prefill"] = probe = probe_prefill(engine, shots[900:])
        for key, value in probe.items():
            log(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}:\n{value}")
    if args.prefill_ab and not dry:
        report["prefill_ab"] = prefill_ab(engine, shots[368:])
        log("prefill A/B", json.dumps(report["prefill_ab"], indent=1))
    if args.sched_ab and not dry:
        report["sched_ab"] = sched_ab(engine, shots[368:])
        log("scheduling A/B", json.dumps(report["sched_ab"], indent=1))
    default_prefill_batch = engine.prefill_batch
    for k, pb in enumerate(args.prefill_batches[:2]):
        engine.prefill_batch = pb
        key = f"c32_prefill_batch_{pb}"
        results[key] = run_load(
            engine, [request(400 + 40 * k + i, shots[176 + 32 * k + i]) for i in range(32)]
        )
        log(key, results[key])
    engine.prefill_batch = default_prefill_batch
    report["health"] = engine.health()
    log("engine health", report["health"])
    peak = 0 if dry else torch.cuda.max_memory_allocated()
    engine.close()
    if "hf" in runs:
        results["hf_generate_b1"] = hf_baseline(loaded, shots[0])
        log("hf generate b1", results["hf_generate_b1"])

    # Floors: decode reads every text weight once a step; prefill is compute.
    bw, flops = ceil["copy_bytes_per_s"], ceil["bf16_flops"]
    step_floor = weight_bytes / bw
    patches = int(prompt.images[0].grid_thw.prod())
    prefill_flops = 2 * text_params * prompt.length + 2 * vision_params * patches
    prefill_floor = prefill_flops / flops
    report.update(
        results=results,
        weight_bytes=weight_bytes,
        decode_step_floor_ms=1e3 * step_floor,
        prefill_floor_ms=1e3 * prefill_floor,
        prompt_tokens=prompt.length,
        prepare_ms=prepare_ms,
        peak_gpu_bytes=peak,
        kv_cache_bytes=engine.slots.cache_bytes,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_engine.json").write_text(json.dumps(report, indent=2, default=str))

    def row(name, r, conc):
        floor_tok_s = conc / (step_floor + 0)  # weights read once per step serve the batch
        return (
            f"| {name} | {r['ttft_p50_ms']:.0f} | {r['ttft_p95_ms']:.0f} | {r['tpot_ms']:.1f} | "
            f"{r['out_tok_s']:.0f} | {r['req_s']:.2f} | "
            f"{100 * prefill_floor * 1e3 / r['ttft_p50_ms']:.0f}% | "
            f"{100 * r['out_tok_s'] / floor_tok_s:.0f}% |"
        )

    log("")
    log(f"GPU: {gpu}")
    log(
        f"floors: decode step {1e3 * step_floor:.2f} ms ({weight_bytes / 1e9:.1f} GB of text "
        f"weights at {bw / 1e12:.2f} TB/s measured copy); prefill of {prompt.length} tokens "
        f"{1e3 * prefill_floor:.1f} ms at {flops / 1e12:.0f} TFLOP/s measured"
    )
    log(
        "| run | TTFT p50 ms | TTFT p95 ms | ms/token/stream | output tok/s | req/s | "
        "prefill floor/TTFT | tok/s vs floor |"
    )
    log("|---|---|---|---|---|---|---|---|")
    names = [
        ("c1", "engine, 1 stream", 1),
        ("c1_cached_image", "engine, 1 stream, cached screenshot", 1),
        ("c8", "engine, 8 at once", 8),
        ("c32", "engine, 32 at once", 32),
        ("c32_first_burst", "engine, 32 at once, first burst after start", 32),
        ("c32_staggered", "engine, 32 staggered 100 ms", 32),
        ("c32_sustained", "engine, 32 users back to back", 32),
        ("c32_no_queue_ahead", "engine, 32 at once, steps not queued ahead", 32),
        ("c32_prepare_one_at_a_time", "engine, 32 at once, callers preparing one at a time", 32),
        ("c32_prepare_together", "engine, 32 at once, callers preparing together", 32),
    ] + [
        (f"c32_prefill_batch_{pb}", f"engine, 32 at once, prefill groups of {pb}", 32)
        for pb in args.prefill_batches[:2]
    ]
    for key, name, conc in names:
        if key in results:
            log(row(name, results[key], conc))
    if "hf_generate_b1" in results:
        hf = results["hf_generate_b1"]
        log(
            f"| transformers generate, batch 1 | {hf['ttft_ms']:.0f} | - | {hf['tpot_ms']:.1f} | "
            f"{1e3 / hf['tpot_ms']:.0f} | - | {100 * prefill_floor * 1e3 / hf['ttft_ms']:.0f}% | "
            f"{100 * (1e3 / hf['tpot_ms']) * step_floor:.0f}% |"
        )
    log(
        f"peak GPU memory {peak / 2**30:.1f} GiB (KV cache {engine.slots.cache_bytes / 2**30:.1f} GiB)"
    )


if __name__ == "__main__":
    main()
