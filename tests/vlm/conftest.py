"""Fixtures for the GPU-engine tests: plain pytest, no Django, no download.

Tiny randomly initialised GLM-4V and Qwen2-VL checkpoints are built once per session in a
temp folder and loaded through the production loader. Everything runs on the CPU in
float32, two threads, so the whole folder stays well under a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch = pytest.importorskip("torch")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-vlms")


@pytest.fixture(scope="session")
def glm_path(models_dir) -> str:
    from inference.vlm.tiny import build_tiny_glm4v

    return str(build_tiny_glm4v(models_dir / "glm4v"))


@pytest.fixture(scope="session")
def qwen_path(models_dir) -> str:
    from inference.vlm.tiny import build_tiny_qwen2vl

    return str(build_tiny_qwen2vl(models_dir / "qwen2vl"))


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> list[str]:
    """Four small screenshots of different sizes (different visual token counts)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("shots")
    paths = []
    for i, (w, h) in enumerate([(120, 90), (160, 100), (90, 140), (112, 112)]):
        rng = np.random.default_rng(i)
        path = folder / f"shot{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _engine(path: str, **kw):
    from inference.vlm.engine import VLMEngine

    engine = VLMEngine(path, device="cpu", max_batch=4, max_seq_len=512, **kw)
    engine.load()
    return engine


@pytest.fixture(scope="session")
def make_engine():
    made = []

    def make(path: str, **kw):
        engine = _engine(path, **kw)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture(scope="session")
def glm(glm_path, make_engine):
    return make_engine(glm_path)


@pytest.fixture(scope="session")
def qwen(qwen_path, make_engine):
    return make_engine(qwen_path)
