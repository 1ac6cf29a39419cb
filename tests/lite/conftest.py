"""Fixtures for the lite engine tests: plain pytest, no Django.

The real OCR and SmolLM2 are loaded once per session. The converted model is cached in a
shared folder under the temp dir (override with GLIMPSE_LITE_CACHE), so only the first run
on a machine pays the ~15 s GGUF conversion.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(scope="session")
def lite_cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "glimpse-lite-smollm2"
    return Path(os.environ.get("GLIMPSE_LITE_CACHE", default))


@pytest.fixture(scope="session")
def engine(lite_cache_dir):
    from inference.lite.engine import build_lite_engine

    eng = build_lite_engine(lite_cache_dir)
    eng.load()
    assert eng.phraser.loaded, eng.health()
    return eng


@pytest.fixture(scope="session")
def screens(tmp_path_factory):
    from lite_evalset import SCREENS

    folder = tmp_path_factory.mktemp("screens")
    paths = {}
    for name in ("orders_en", "settings_zh", "login_en"):
        paths[name] = folder / f"{name}.png"
        SCREENS[name]().save(paths[name])
    return paths
