"""The GPU engine: transformers image-text-to-text models with continuous batching.

Worker side only (imports torch). `build_vlm_engine(MODEL_ID)` gives an engine that
implements `inference.engine.Engine`.
"""

from .engine import VLMEngine, build_vlm_engine

__all__ = ["VLMEngine", "build_vlm_engine"]
