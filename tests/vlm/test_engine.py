"""VLMEngine on tiny random GLM-4V and Qwen2-VL models, on the CPU.

The slot path (static cache, continuous batching) must compute what transformers'
generate computes, whatever else shares the batch.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch
from PIL import Image

from inference.types import (
    Box,
    ChatTurn,
    Done,
    EngineUnavailable,
    GenerationRequest,
    SamplingParams,
    Token,
)

PROMPTS = ["Where is Submit?", "Read the order id.", "Any errors on screen?", "Describe it."]


def req(rid, shot, text="Where is Submit?", **sampling):
    sampling.setdefault("max_new_tokens", 16)
    return GenerationRequest(
        rid, (ChatTurn("user", text, shot, (1280, 960)),), SamplingParams(**sampling)
    )


def run(engine, request):
    return list(engine.generate(request))


def hf_generate(engine, request, n):
    """transformers' own greedy generate on the same prompt: the reference."""
    lm = engine.loaded
    msgs = engine.prompts.messages(request)
    text = lm.processor.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    image = Image.open(request.last_image.image_path).convert("RGB")
    enc = lm.processor(text=[text], images=[image], return_tensors="pt")
    with torch.inference_mode():
        out = lm.model.generate(**enc, max_new_tokens=n, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def engine_ids(engine, request):
    """Token ids the engine produced (re-tokenising text is lossy, so capture ids)."""
    ids = []
    original = engine._accept

    def spy(job, token, **kw):
        if job.request_id == request.request_id:
            ids.append(token)
        original(job, token, **kw)

    engine._accept = spy
    try:
        events = run(engine, request)
    finally:
        del engine._accept
    return ids, events


@pytest.mark.parametrize("family", ["glm", "qwen"])
def test_streams_tokens_then_done(family, request, shots):
    engine = request.getfixturevalue(family)
    events = run(engine, req(f"{family}-stream", shots[0], max_new_tokens=12))
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) >= 2
    done = events[-1]
    assert isinstance(done, Done) and done.engine == "vlm"
    assert done.text == "".join(t.text for t in tokens)
    assert done.usage.prompt_tokens > 20  # the screenshot's visual tokens are counted
    assert 1 <= done.usage.completion_tokens <= 12


@pytest.mark.parametrize("family", ["glm", "qwen"])
def test_greedy_output_equals_transformers_generate(family, request, shots):
    engine = request.getfixturevalue(family)
    r = req(f"{family}-hf", shots[1], max_new_tokens=10)
    ids, events = engine_ids(engine, r)
    reference = hf_generate(engine, r, 10)
    # generate stops at the same eos ids; compare what both produced.
    assert ids == reference[: len(ids)]
    assert len(ids) == len(reference) or ids[-1] in engine.stop_ids


@pytest.mark.parametrize("family", ["glm", "qwen"])
def test_batched_and_joining_runs_equal_lone_runs(family, request, shots):
    engine = request.getfixturevalue(family)
    reqs = [
        req(f"{family}-b{i}", shots[i], PROMPTS[i], max_new_tokens=[20, 7, 13, 24][i])
        for i in range(4)
    ]
    alone = [run(engine, r)[-1].text for r in reqs]
    results: dict[str, str] = {}

    def one(r):
        results[r.request_id] = run(engine, r)[-1].text

    threads = [threading.Thread(target=one, args=(r,)) for r in reqs[:3]]
    for t in threads:
        t.start()
    # The fourth joins while the others are decoding.
    deadline = time.time() + 10
    while engine.steps == 0 and time.time() < deadline:
        time.sleep(0.001)
    steps_before = engine.steps
    late = threading.Thread(target=one, args=(reqs[3],))
    late.start()
    for t in threads + [late]:
        t.join(timeout=60)
    assert [results[r.request_id] for r in reqs] == alone
    assert engine.steps > steps_before


def test_abort_frees_the_slot_within_a_few_steps(glm_path, make_engine, shots):
    engine = make_engine(glm_path, ignore_eos=True)
    r = req("abort-me", shots[0], max_new_tokens=400)
    stream = engine.generate(r)
    first = next(stream)
    assert isinstance(first, (Token, Box))
    engine.abort("abort-me")
    rest = list(stream)
    done = rest[-1]
    assert isinstance(done, Done) and done.finish_reason == "abort"
    assert done.usage.completion_tokens < 400
    assert engine.active == []
    engine.abort("never-seen")  # harmless
    # The engine carries on with the next request.
    assert run(engine, req("after-abort", shots[1], max_new_tokens=5))[-1].finish_reason == "length"


def test_closing_the_stream_aborts_the_request(glm_path, make_engine, shots):
    engine = make_engine(glm_path, ignore_eos=True)
    stream = engine.generate(req("walk-away", shots[0], max_new_tokens=400))
    next(stream)
    stream.close()
    deadline = time.time() + 10
    while engine.active and time.time() < deadline:
        time.sleep(0.01)
    assert engine.active == []


def test_stop_token_ends_the_answer(glm, shots):
    r = req("stop-tok", shots[2], max_new_tokens=12)
    ids, _ = engine_ids(glm, r)
    assert len(ids) >= 4
    stop = ids[3]
    k = ids.index(stop)
    glm.stop_ids.add(stop)
    try:
        ids2, events = engine_ids(glm, req("stop-tok-2", shots[2], max_new_tokens=12))
    finally:
        glm.stop_ids.discard(stop)
    done = events[-1]
    assert done.finish_reason == "stop"
    assert ids2 == ids[: k + 1]
    assert done.usage.completion_tokens == k + 1


def test_stop_string_cuts_the_text(glm, shots):
    full = run(glm, req("stop-str", shots[3], max_new_tokens=16))[-1].text
    clean = full.replace("\ufffd", "")
    assert len(clean) >= 6
    stop = clean[3:6]
    events = run(glm, req("stop-str-2", shots[3], max_new_tokens=16, stop=(stop,)))
    done = events[-1]
    assert done.finish_reason == "stop"
    assert done.text == full[: full.index(stop)]
    assert stop not in "".join(e.text for e in events if isinstance(e, Token))


def test_stop_string_in_a_batch_leaves_the_others_untouched(glm, shots):
    """A stop string is found while the next step already runs (text events are made during
    the GPU step): the stopped answer drops that token, and the answer sharing the batch
    (whose cache slot moves when the other leaves) goes on as if alone."""
    full = run(glm, req("bs-a", shots[3], max_new_tokens=16))[-1].text
    clean = full.replace("\ufffd", "")
    stop = clean[4:7]
    other = req("bs-b", shots[0], PROMPTS[1], max_new_tokens=20)
    other_alone = run(glm, other)[-1].text
    results = {}

    def one(r):
        results[r.request_id] = run(glm, r)[-1]

    stopped = req("bs-c", shots[3], max_new_tokens=16, stop=(stop,))
    threads = [threading.Thread(target=one, args=(r,)) for r in (other, stopped)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results["bs-c"].finish_reason == "stop"
    assert results["bs-c"].text == full[: full.index(stop)]
    assert results["bs-b"].text == other_alone


def test_sampling_runs_and_is_reproducible_with_a_seed(glm_path, make_engine, shots):
    a = make_engine(glm_path, seed=7)
    b = make_engine(glm_path, seed=7)
    r = req("sample", shots[0], max_new_tokens=12, temperature=0.9, top_p=0.8)
    assert run(a, r)[-1].text == run(b, r)[-1].text


def test_thinking_switch_follows_the_glm_template(glm, shots):
    off = glm.prompts.render(req("t0", shots[0]))
    on = glm.prompts.render(req("t1", shots[0], thinking=True))
    assert off.endswith("<|assistant|>\n<think></think>\n") and "/nothink" in off
    assert on.endswith("<|assistant|>") and "/nothink" not in on


def test_follow_up_reuses_the_screenshot_features(glm_path, make_engine, shots):
    cached = make_engine(glm_path)
    uncached = make_engine(glm_path, image_cache_size=0)
    first = req("f1", shots[1], max_new_tokens=6)
    answer = run(cached, first)[-1].text
    follow = GenerationRequest(
        "f2",
        (
            ChatTurn("user", "Where is Submit?", shots[1], (1280, 960)),
            ChatTurn("assistant", answer),
            ChatTurn("user", "And the cancel button?"),
        ),
        SamplingParams(max_new_tokens=8),
    )
    runs = cached.vision_runs
    out = run(cached, follow)[-1]
    assert cached.vision_runs == runs  # the vision encoder did not run again
    assert out.text == run(uncached, follow)[-1].text
    assert out.usage.prompt_tokens > run(cached, first)[-1].usage.prompt_tokens


def test_fallback_generate_path_matches_the_slot_path(glm_path, make_engine, glm, shots):
    slow = make_engine(glm_path, fast_path=False)
    assert slow.health()["fast_path"] is False
    reqs = [req(f"fb{i}", shots[i], PROMPTS[i], max_new_tokens=8) for i in range(2)]
    expected = [run(glm, r)[-1].text for r in reqs]
    results: dict[str, str] = {}

    def one(r):
        results[r.request_id] = run(slow, r)[-1].text

    threads = [threading.Thread(target=one, args=(r,)) for r in reqs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [results[r.request_id] for r in reqs] == expected


def test_full_admission_queue_is_refused(glm_path, shots):
    from inference.vlm.engine import VLMEngine

    engine = VLMEngine(glm_path, device="cpu", max_batch=2, max_seq_len=256, max_queue=1)
    engine.load()
    engine.close()  # no scheduler: the queue stays full
    engine._admission.put_nowait(object())
    with pytest.raises(EngineUnavailable) as err:
        next(engine.generate(req("too-many", shots[0])))
    assert err.value.code == "overloaded"


def test_unreadable_screenshot_is_an_error_event(glm, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    events = run(glm, req("bad", str(bad)))
    assert len(events) == 1 and events[0].type == "error"
    assert "screenshot" in events[0].message


def test_health_reports_the_engine(glm):
    health = glm.health()
    assert health["ok"] is True and health["engine"] == "vlm"
    assert health["fast_path"] is True and health["device"] == "cpu"


def test_missing_model_folder_is_a_clear_error(tmp_path):
    from inference.vlm.engine import build_vlm_engine

    with pytest.raises(EngineUnavailable) as err:
        build_vlm_engine(str(tmp_path / "no-such-model"), device="cpu", load=True)
    assert "does not exist" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineUnavailable) as err:
        build_vlm_engine(str(empty), device="cpu", load=True)
    assert "config.json" in str(err.value)


def test_unreachable_hub_is_a_clear_error(monkeypatch):
    from inference.vlm.engine import build_vlm_engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EngineUnavailable) as err:
        build_vlm_engine("glimpse-test/not-a-cached-model", device="cpu", load=True)
    assert "MODEL_ID" in str(err.value)
    assert err.value.code == "model_unavailable"


def test_vision_tower_without_host_syncs_matches_the_original(glm, glm_path, shots):
    """Two screenshots encoded in one batch (the multi-image split) and one alone give the
    features the unpatched model gives."""
    from inference.vlm.loader import load_model

    assert any("vision attention" in p for p in glm.health()["vision"])
    reference = load_model(glm_path, device="cpu", dtype=torch.float32).model.model
    images = [glm.prompts.prepare(req(f"v{i}", shots[i])).images[0] for i in (0, 2)]
    # Screenshots seen by earlier tests come back without pixels (their features are
    # cached); this test needs the pixels.
    images = [
        img if img.pixel_values is not None else glm.prompts.reload_image(img) for img in images
    ]
    grids = torch.cat([img.grid_thw for img in images])
    pixels = torch.cat([img.pixel_values for img in images])
    with torch.inference_mode():
        expected = reference.get_image_features(pixel_values=pixels, image_grid_thw=grids)
        expected_alone = reference.get_image_features(
            pixel_values=images[1].pixel_values, image_grid_thw=images[1].grid_thw
        )
        base = glm.loaded.model.model
        for _ in range(2):  # the second pass takes the position table kept per grid
            with glm.vision_hints.use(grids):
                got = base.get_image_features(pixel_values=pixels, image_grid_thw=grids)
            with glm.vision_hints.use(images[1].grid_thw):
                alone = base.get_image_features(
                    pixel_values=images[1].pixel_values, image_grid_thw=images[1].grid_thw
                )
            for a, b in zip(got.pooler_output, expected.pooler_output, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(
                alone.pooler_output[0], expected_alone.pooler_output[0], rtol=1e-4, atol=1e-4
            )
        # The position tables are kept per screenshot size: a batch in the other order (and
        # one with a size twice) is put together from them.
        order = [1, 0, 1]
        grids2 = torch.cat([images[i].grid_thw for i in order])
        pixels2 = torch.cat([images[i].pixel_values for i in order])
        expected2 = reference.get_image_features(pixel_values=pixels2, image_grid_thw=grids2)
        with glm.vision_hints.use(grids2):
            got2 = base.get_image_features(pixel_values=pixels2, image_grid_thw=grids2)
        for a, b in zip(got2.pooler_output, expected2.pooler_output, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_single_prompt_prefill_pads_to_a_bucket_and_matches_the_grouped_one(glm, shots):
    """The static single-prompt prefill (a CUDA graph on a GPU) pads the prompt; its next
    token logits equal those of the plain prefill of the same prompt."""
    slots = glm.slots
    prompt = glm.prompts.prepare(req("pad", shots[3]))
    pos, _ = glm.prompts.rope_positions(prompt)
    assert prompt.length % 128 != 0  # so padding is really exercised
    with torch.inference_mode():
        glm._encode_images(prompt.images)
        embeds = glm._embeds(prompt)
        static = slots.prefill(3, embeds, pos).clone()
        cached = slots.kv[:, :, 3, :, : prompt.length].clone()
        slots.static_prefill = False
        try:
            plain = slots.prefill(3, embeds, pos)
        finally:
            slots.static_prefill = True
        torch.testing.assert_close(static, plain, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            cached, slots.kv[:, :, 3, :, : prompt.length], rtol=1e-4, atol=1e-4
        )


def test_group_prefill_prompt_by_prompt_matches_the_group_forward(glm, shots):
    """A group of prompts of different lengths, as one right-padded forward (the default)
    and one by one through the single-prompt path: the same logits and cache entries."""
    slots = glm.slots
    prompts = [glm.prompts.prepare(req(f"grp{i}", shots[i])) for i in (0, 2)]
    with torch.inference_mode():
        glm._encode_images([img for p in prompts for img in p.images])
        embeds = [glm._embeds(p) for p in prompts]
        lengths = [p.length for p in prompts]
        width = max(lengths)
        batch = embeds[0].new_zeros((2, width, embeds[0].shape[-1]))
        positions = torch.zeros((3, 2, width), dtype=torch.long)
        for i, (p, emb) in enumerate(zip(prompts, embeds, strict=True)):
            batch[i, : lengths[i]] = emb[0]
            positions[:, i, : lengths[i]] = glm.prompts.rope_positions(p)[0][:, 0]
        grouped = slots.prefill(1, batch, positions, lengths).clone()
        cached = [slots.kv[:, :, 1 + i, :, : lengths[i]].clone() for i in range(2)]
        slots.each_prompt_static = True
        try:
            each = slots.prefill(1, batch, positions, lengths)
        finally:
            slots.each_prompt_static = False
        torch.testing.assert_close(each, grouped, rtol=1e-4, atol=1e-4)
        for i in range(2):
            torch.testing.assert_close(
                slots.kv[:, :, 1 + i, :, : lengths[i]], cached[i], rtol=1e-4, atol=1e-4
            )


def test_fused_small_ops_give_the_same_answers(glm_path, make_engine, glm, shots):
    """The GPU default (RMSNorm, rotary and gated-MLP pieces compiled into single kernels,
    q/k/v projections as one product, the layers run by fuse.py's runners) forced on
    here: the same greedy answers as the model's own modules."""
    fused = make_engine(glm_path, fuse=True)
    names = " ".join(fused.health()["fused"])
    assert "RMSNorm" in names and "gated MLP" in names and "apply_rotary_pos_emb" in names
    assert "joint q/k/v" in names and "norm + residual add + norm" in names
    for i in (0, 2):
        r = req(f"fused{i}", shots[i], PROMPTS[i], max_new_tokens=10)
        assert run(fused, r)[-1].text == run(glm, r)[-1].text


def test_decode_steps_queued_ahead_give_the_same_answers(glm_path, make_engine, glm, shots):
    """The default engine queues each decode step before reading the previous one's tokens
    (a request that stops has one spare token computed and dropped); launching and waiting
    step by step gives the same answers, stops and lengths included."""
    plain = make_engine(glm_path, queue_ahead=False)
    reqs = [req(f"qa{i}", shots[i], PROMPTS[i], max_new_tokens=[5, 11, 8][i]) for i in range(3)]
    for r in reqs:
        a, b = run(glm, r)[-1], run(plain, r)[-1]
        assert (a.text, a.finish_reason, a.usage) == (b.text, b.finish_reason, b.usage)
