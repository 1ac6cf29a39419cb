"""The engine boundary: the web side (views, consumers, services, the API, the inference
client and the Celery task's caller) never imports torch or the model libraries; only the
worker side of inference/ does. Checked in a fresh interpreter, where nothing else has
imported them first."""

from __future__ import annotations

import subprocess
import sys

from .servers import REPO

WEB_SIDE = [
    "glimpse.asgi",
    "glimpse.urls",
    "assistant.views",
    "assistant.consumers",
    "assistant.services",
    "api.urls",
    "api.views.chat",
    "api.views.completions",
    "review.views",
    "ops.views",
    "inference.client",
    "inference.runner",
    "inference.tasks",
    "inference.embedded",
]
HEAVY = ["torch", "transformers", "onnxruntime", "rapidocr_onnxruntime", "accelerate"]


def test_web_side_never_imports_the_model_libraries():
    code = (
        "import django, importlib, os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'glimpse.settings')\n"
        "django.setup()\n"
        f"for name in {WEB_SIDE!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "RUN_STARTUP_TASKS": "0", "HOME": "/tmp"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
