"""CPU per request of Django's stock ASGI handler against glimpse/http_handler.py, in one
process with no server and no network: what the handler itself costs a request.

Each request is a GET (default /healthz) sent straight to the handler's ASGI callable;
rounds alternate between the two handlers so that a slow moment of the machine hits both.

Usage:
    .venv/bin/python bench/http_handler.py [--path /healthz] [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glimpse.settings")


async def request(app, path: str) -> None:
    from tests.asgi_http import asgi_get

    status = await asgi_get(app, path)
    if status != 200:
        raise SystemExit(f"{path} answered {status}")


async def cpu_per_request(app, path: str, requests: int) -> float:
    """Process CPU (every thread) per request, in microseconds, after a warm-up."""
    for _ in range(200):
        await request(app, path)
    started = time.process_time()
    for _ in range(requests):
        await request(app, path)
    return (time.process_time() - started) / requests * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup(set_prefix=False)
    from django.core.handlers.asgi import ASGIHandler

    from glimpse.http_handler import ReusedThreadASGIHandler

    handlers = {"django": ASGIHandler(), "glimpse": ReusedThreadASGIHandler()}
    figures = {name: [] for name in handlers}
    for _ in range(args.rounds):
        for name, app in handlers.items():
            figures[name].append(asyncio.run(cpu_per_request(app, args.path, args.requests)))
    for name, values in figures.items():
        runs = " / ".join(f"{v:.0f}" for v in values)
        print(f"{name:8s} GET {args.path}: CPU per request {runs} us")
    ratio = statistics.median(figures["glimpse"]) / statistics.median(figures["django"])
    print(f"glimpse / django (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
