"""Load an image-text-to-text model and its processor, with readable failures.

`MODEL_ID` is a hub id or a local folder. Failures an operator can fix (a missing folder,
no network, not enough GPU memory) become `EngineUnavailable` with one clear sentence;
anything else is a bug and keeps its traceback in the worker log.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..types import EngineUnavailable

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (…ForConditionalGeneration)
    processor: Any  # a transformers ProcessorMixin
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    model_id: str

    @property
    def model_type(self) -> str:
        return getattr(self.model.config, "model_type", "")


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype:
        return getattr(torch, dtype)
    # bf16 on GPU halves the bytes each decode step reads; CPUs here have no fast bf16.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _offline(model_id: str) -> bool:
    if Path(model_id).exists():
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _attn_implementation() -> str:
    """flash-attn when installed (vision tower, fallback path), else SDPA. The slot path
    installs its own attention on the text layers either way."""
    try:
        importlib.import_module("flash_attn")
    except ImportError:
        return "sdpa"
    return "flash_attention_2"


def _explain(model_id: str, exc: BaseException) -> EngineUnavailable:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text.lower():
        return EngineUnavailable(
            f"Not enough GPU memory to load the model {model_id!r}; use a larger GPU or a "
            "smaller model.",
            code="out_of_memory",
        )
    lowered = text.lower()
    if any(
        s in lowered for s in ("connection", "offline", "couldn't connect", "timed out", "network")
    ):
        return EngineUnavailable(
            f"The model {model_id!r} is not in the local cache and the model hub cannot be "
            "reached; download it first or set MODEL_ID to a local folder.",
            code="model_unavailable",
        )
    return EngineUnavailable(
        f"The model {model_id!r} could not be found or is incomplete (no config or weights); "
        "check MODEL_ID.",
        code="model_unavailable",
    )


def _looks_like_missing(exc: BaseException) -> bool:
    lowered = str(exc).lower()
    return isinstance(exc, (OSError, FileNotFoundError, ValueError)) and any(
        s in lowered
        for s in (
            "does not appear to have",
            "not a local folder",
            "no such file",
            "can't load",
            "couldn't connect",
            "offline",
            "not found",
            "repository not found",
            "is not a valid model identifier",
            "unrecognized model",
            "connection",
        )
    )


def _video_processor_for(processor_cls: type) -> Any:
    """The video processor of a processor's model family, or None if it cannot be built.

    Processors of video-capable families (GLM-4V, Qwen2-VL) insist on a video processor,
    and `AutoProcessor` refuses to build one without torchvision even though images never
    need it. The class lives next to the processor: models/<x>/video_processing_<x>.py.
    """
    module = processor_cls.__module__  # transformers.models.glm4v.processing_glm4v
    family = module.rsplit(".", 1)[0]
    name = module.rsplit(".", 1)[1].replace("processing_", "video_processing_", 1)
    try:
        mod = importlib.import_module(f"{family}.{name}")
    except ImportError:
        return None
    for attr in dir(mod):
        obj = getattr(mod, attr)
        if (
            isinstance(obj, type)
            and attr.endswith("VideoProcessor")
            and obj.__module__ == mod.__name__
        ):
            try:
                return obj()
            except Exception:  # noqa: BLE001 - a stand-in for videos we never process
                return None
    return None


def _processor_from_parts(model_id: str, config: Any, **kw: Any) -> Any:
    """Build the processor from tokenizer + image processor + video processor.

    Needed where torchvision is missing (these CPU machines): `AutoProcessor` then fails
    on the video processor of GLM-4V / Qwen2-VL although screenshots are plain images.
    """
    from transformers import AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    tokenizer = AutoTokenizer.from_pretrained(model_id, **kw)
    image_processor = AutoImageProcessor.from_pretrained(model_id, **kw)
    cls_name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
    if not cls_name:
        raise EngineUnavailable(
            f"No processor is known for model type {config.model_type!r}.",
            code="model_unavailable",
        )
    import transformers

    processor_cls = getattr(transformers, cls_name)
    video_processor = _video_processor_for(processor_cls)
    chat_template = getattr(tokenizer, "chat_template", None)
    template_file = Path(model_id) / "chat_template.jinja"
    if template_file.exists():
        chat_template = template_file.read_text()
    return make_processor(
        processor_cls,
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template,
    )


def make_processor(
    processor_cls: type,
    *,
    image_processor: Any,
    tokenizer: Any,
    video_processor: Any = None,
    chat_template: str | None = None,
) -> Any:
    """Instantiate a processor class even where torchvision is missing.

    ProcessorMixin checks each part against the class registered for its modality, and
    without torchvision the video lookup itself fails (the registry is a placeholder), so
    a lenient subclass skips the check for the video part only.
    """
    if video_processor is None:
        # Needs no torchvision and is never used for images; the processor insists on one.
        from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor

        video_processor = Glm4vVideoProcessor()

    def lenient_check(self: Any, argument_name: str, argument: Any) -> Any:
        if "video" in argument_name:
            return type(argument)
        return processor_cls.check_argument_for_proper_class(self, argument_name, argument)

    kwargs = {"image_processor": image_processor, "tokenizer": tokenizer}
    if "video_processor" in processor_cls.get_attributes():
        kwargs["video_processor"] = video_processor
    try:
        return processor_cls(chat_template=chat_template, **kwargs)
    except (AttributeError, TypeError):
        lenient = type(
            processor_cls.__name__,
            (processor_cls,),
            {
                "check_argument_for_proper_class": lenient_check,
                "__module__": processor_cls.__module__,
            },
        )
        return lenient(chat_template=chat_template, **kwargs)


def load_processor(model_id: str, config: Any, **kw: Any) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_id, **kw)
    except (ImportError, TypeError, ValueError, AttributeError) as exc:
        # torchvision missing shows up as an ImportError or as a None class being called.
        log.info("AutoProcessor failed (%s); building the processor from its parts", exc)
        return _processor_from_parts(model_id, config, **kw)


def load_model(
    model_id: str,
    *,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForImageTextToText

    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    local = Path(model_id).expanduser()
    # A hub id is "org/name"; anything else that names no existing folder is a typo'd path.
    looks_like_path = model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1
    if looks_like_path and not local.exists():
        raise EngineUnavailable(
            f"The model folder {model_id!r} does not exist; check MODEL_ID.",
            code="model_unavailable",
        )
    if local.is_dir() and not (local / "config.json").exists():
        raise EngineUnavailable(
            f"The model folder {model_id!r} has no config.json; check MODEL_ID.",
            code="model_unavailable",
        )
    kw: dict[str, Any] = {"local_files_only": _offline(model_id)}
    try:
        config = AutoConfig.from_pretrained(model_id, **kw)
        processor = load_processor(model_id, config, **kw)
        attn = _attn_implementation()
        try:
            model = AutoModelForImageTextToText.from_pretrained(
                model_id, dtype=torch_dtype, attn_implementation=attn, **kw
            )
        except (ImportError, ValueError):
            if attn == "sdpa":
                raise
            # flash-attn installed but not usable for this model or GPU: SDPA always is.
            model = AutoModelForImageTextToText.from_pretrained(
                model_id, dtype=torch_dtype, attn_implementation="sdpa", **kw
            )
        model.to(dev)
        model.eval()
    except EngineUnavailable:
        raise
    except torch.cuda.OutOfMemoryError as exc:
        raise _explain(model_id, exc) from exc
    except Exception as exc:  # noqa: BLE001 - sorted into readable causes below
        if _looks_like_missing(exc) or "out of memory" in str(exc).lower():
            raise _explain(model_id, exc) from exc
        raise
    tokenizer = getattr(processor, "tokenizer", processor)
    return LoadedModel(
        model=model,
        processor=processor,
        tokenizer=tokenizer,
        device=dev,
        dtype=torch_dtype,
        model_id=model_id,
    )
