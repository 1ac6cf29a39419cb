"""The offline "lite" engine: OCR + a structured reading of the screen + SmolLM2 phrasing.

It is the embedded default of the platform and the fallback when the GPU engine is down,
so it runs on a couple of CPU cores with models that ship inside Python wheels. The answer
content is decided deterministically from what OCR and pixels show (`reading`, `answer`);
the small language model only phrases those facts, under a guard (`phrasing`).

Import `build_lite_engine` from `inference.lite.engine`; this package init stays light so
that importing `inference.lite.reading` in a test does not pull in torch.
"""
