"""Run the lite engine over the rendered evaluation set and print one table.

    .venv/bin/python bench/lite_eval.py [--cache DIR] [--screens DIR] [--repeat N] [-v]

Correctness: the share of questions whose final answer contains every expected fact
(and no forbidden word), per language. Latency on a 1280x800 screenshot, through the
engine's public `generate()`: time to first token (request to first Token event, OCR
included) and decode speed, both as the model's own decode rate and as the rate at which
Token events reach the caller.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lite_evalset import CANNOT_MARKERS, CASES, Case, render_screens  # noqa: E402
from PIL import Image  # noqa: E402

from inference.lite.engine import build_lite_engine  # noqa: E402
from inference.lite.ocr import normalise  # noqa: E402
from inference.types import ChatTurn, Done, Error, GenerationRequest, Token  # noqa: E402

TARGETS = {"correct": 0.80, "ttft_s": 2.0, "tokens_per_s": 12.0}


def is_correct(case: Case, text: str) -> bool:
    if case.cannot:
        return any(marker in text for marker in CANNOT_MARKERS)
    if any(marker in text for marker in CANNOT_MARKERS):
        return False
    if not all(normalise(e) in normalise(text) for e in case.expect):
        return False
    for word in case.forbid:
        if word.isascii():
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE):
                return False
        elif word in text:
            return False
    return True


def ask(engine, request_id: str, image: Path, question: str) -> dict:
    size = Image.open(image).size
    request = GenerationRequest(
        request_id=request_id,
        turns=(ChatTurn("user", question, image_path=str(image), image_size=size),),
    )
    started = time.perf_counter()
    first = last = None
    tokens, boxes, done = 0, 0, None
    for event in engine.generate(request):
        now = time.perf_counter()
        if isinstance(event, Token):
            tokens += 1
            first = first if first is not None else now
            last = now
        elif isinstance(event, Done | Error):
            done = event
        else:
            boxes += 1
    stats = engine.last_stats
    return {
        "text": done.text if isinstance(done, Done) else f"<error: {done.message}>",
        "ttft": (first - started) if first else None,
        "stream_rate": (tokens - 1) / (last - first) if tokens > 1 and last > first else None,
        "model_rate": (stats.model_tokens / stats.decode_seconds)
        if stats and stats.decode_seconds
        else None,
        "source": stats.source if stats else "",
        "tokens": tokens,
        "boxes": boxes,
        "completion_tokens": done.usage.completion_tokens if isinstance(done, Done) else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", default=os.path.join(tempfile.gettempdir(), "glimpse-lite-smollm2")
    )
    parser.add_argument(
        "--screens", default=os.path.join(tempfile.gettempdir(), "glimpse-lite-evalset")
    )
    parser.add_argument("--repeat", type=int, default=3, help="latency runs per question")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    args = parser.parse_args()

    screens = render_screens(args.screens)
    engine = build_lite_engine(args.cache)
    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started

    results: list[tuple[Case, dict, bool]] = []
    for i, case in enumerate(CASES):
        result = ask(engine, f"eval-{i}", screens[case.screen], case.question)
        ok = is_correct(case, result["text"])
        results.append((case, result, ok))
        if args.verbose or not ok:
            mark = "ok " if ok else "BAD"
            print(
                f"{mark} [{case.screen}] {case.question}\n    -> {result['text']} ({result['source']})"
            )

    # Latency on the 1280x800 screenshot: every English question about it, repeated.
    latency_cases = [
        c for c in CASES if c.screen == "orders_en" and c.lang == "en" and not c.cannot
    ]
    runs = []
    for r in range(args.repeat):
        for j, case in enumerate(latency_cases):
            runs.append(ask(engine, f"lat-{r}-{j}", screens["orders_en"], case.question))
    model_runs = [x for x in runs if x["source"] == "model" and x["model_rate"]]
    ttft = statistics.median(x["ttft"] for x in runs if x["ttft"] is not None)
    # Answers the model words start later than template ones (prefill first): shown apart.
    model_ttft = statistics.median(x["ttft"] for x in model_runs if x["ttft"] is not None)
    model_rate = statistics.median(x["model_rate"] for x in runs if x["model_rate"])
    stream_rate = (
        statistics.median(x["stream_rate"] for x in model_runs if x["stream_rate"])
        if model_runs
        else 0.0
    )

    def share(lang: str | None) -> tuple[int, int]:
        picked = [ok for case, _, ok in results if lang is None or case.lang == lang]
        return sum(picked), len(picked)

    rows = []
    for label, lang in (("English", "en"), ("Chinese", "zh"), ("All", None)):
        good, total = share(lang)
        rows.append((f"correct: {label}", f"{good}/{total} = {good / total:.0%}", ">= 80%"))
    by_model = sum(1 for _, r, _ in results if r["source"] == "model")
    rows += [
        ("answers worded by SmolLM2 (guard passed)", f"{by_model}/{len(results)}", "-"),
        ("time to first token, 1280x800 (median)", f"{ttft:.2f} s", "< 2 s"),
        ("  of the answers SmolLM2 worded (median)", f"{model_ttft:.2f} s", "< 2 s"),
        ("decode, model (median)", f"{model_rate:.1f} tokens/s", ">= 12 tokens/s"),
        ("Token events to caller, model answers (median)", f"{stream_rate:.1f} events/s", "-"),
        ("engine load (OCR + SmolLM2, incl. warm-up)", f"{load_s:.1f} s", "-"),
        ("latency runs", f"{len(runs)} ({len(latency_cases)} questions x {args.repeat})", "-"),
        ("load average during run", " ".join(f"{x:.1f}" for x in os.getloadavg()), "-"),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print()
    print(f"Lite engine evaluation: {len(CASES)} questions over {len(screens)} screenshots, "
          f"{os.cpu_count()} CPU cores")  # fmt: skip
    print(f"{'metric':<{width}}  {'value':<{vwidth}}  target")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 14}")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {target}")
    good, total = share(None)
    met = good / total >= TARGETS["correct"] and max(ttft, model_ttft) < TARGETS["ttft_s"]
    met = met and model_rate >= TARGETS["tokens_per_s"]
    print(f"\ntargets {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
