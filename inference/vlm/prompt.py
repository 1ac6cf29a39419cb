"""From a GenerationRequest to model inputs: chat template, tokens, images, stop tokens.

This runs in the caller's thread (one per request), not in the scheduler thread that owns
the GPU, so tokenising and resizing screenshots for new requests overlaps with decoding
the running ones. The vision encoder itself runs in the scheduler (it needs the model);
its output is cached here by image content, so a follow-up question about the same
screenshot skips both the image preprocessing and the encoder.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from ..types import GenerationRequest

# End-of-turn markers of the chat templates we know. Whichever of them is a single token in
# the model's vocabulary stops generation, alongside generation_config's eos ids: GLM ends
# an answer by starting the next turn (<|user|>), Qwen with <|im_end|>.
END_OF_TURN_TOKENS = (
    "<|user|>",
    "<|observation|>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_utterance>",
    "<|end|>",
)


class PromptError(Exception):
    """The request cannot be turned into model inputs (e.g. an unreadable screenshot)."""


@dataclass
class ImageInput:
    key: str  # content hash: equal screenshots share the cached vision features
    path: str
    pixel_values: torch.Tensor | None  # None when the features are already cached
    grid_thw: torch.Tensor  # [1, 3]


@dataclass
class PreparedPrompt:
    input_ids: torch.Tensor  # [1, L] on CPU
    mm_token_type_ids: torch.Tensor  # [1, L]: 1 where an image token stands
    images: list[ImageInput] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])


class FeatureCache:
    """Bounded LRU of vision-encoder outputs (on the model's device), keyed by content."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[torch.Tensor | None, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def grid(self, key: str) -> torch.Tensor | None:
        with self._lock:
            item = self._items.get(key)
            return None if item is None else item[1]

    def features(self, key: str) -> torch.Tensor | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, features: torch.Tensor, grid: torch.Tensor) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = (features, grid)
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in eos if isinstance(eos, (list, tuple)) else [eos]:
        if isinstance(value, int):
            ids.add(value)
    if isinstance(getattr(tokenizer, "eos_token_id", None), int):
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab:
            ids.add(vocab[token])
    return ids


def _image_key(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha1(fh.read(), usedforsecurity=False).hexdigest()
    except OSError as exc:
        raise PromptError("The screenshot could not be read.") from exc


def _decode_image(path: str) -> Any:
    from PIL import Image

    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError) as exc:
        raise PromptError("The screenshot could not be read.") from exc
    return image.convert("RGB")


def _open_image(path: str) -> tuple[Any, str]:
    return _decode_image(path), _image_key(path)


class PromptBuilder:
    """Chat template + tokenizer + image processor of one loaded model."""

    def __init__(self, processor: Any, tokenizer: Any, model: Any, cache: FeatureCache):
        self.processor = processor
        self.tokenizer = tokenizer
        self.image_processor = getattr(processor, "image_processor", None)
        self.cache = cache
        self.image_token = getattr(processor, "image_token", None)
        self.image_token_id = getattr(model.config, "image_token_id", None)
        self.merge = int(getattr(self.image_processor, "merge_size", 1) or 1)
        self.template = getattr(processor, "chat_template", None) or getattr(
            tokenizer, "chat_template", None
        )
        self.base = getattr(model, "model", model)
        self.device = getattr(model, "device", None)
        self._pil = type(self.image_processor).__name__.endswith("Pil")
        self._rope_takes_types = "mm_token_type_ids" in _params(self.base, "get_rope_index")

    @staticmethod
    def messages(request: GenerationRequest) -> list[dict]:
        out = []
        for turn in request.turns:
            content: list[dict] = []
            if turn.image_path:
                content.append({"type": "image"})
            content.append({"type": "text", "text": turn.text})
            out.append({"role": turn.role, "content": content})
        return out

    def render(self, request: GenerationRequest) -> str:
        # enable_thinking is GLM's (and Qwen3's) switch; templates without it ignore it.
        return self.tokenizer.apply_chat_template(
            self.messages(request),
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=request.sampling.thinking,
        )

    def _image(self, path: str) -> ImageInput:
        # Hash first: a screenshot already seen needs neither decoding nor resizing.
        key = _image_key(path)
        grid = self.cache.grid(key)
        if grid is not None:
            return ImageInput(key=key, path=path, pixel_values=None, grid_thw=grid)
        return self.process_image(_decode_image(path), key, path)

    def process_image(self, image: Any, key: str, path: str) -> ImageInput:
        enc = None
        if self.device is not None and self.device.type == "cuda" and not self._pil:
            # The torchvision-backed processors resize and normalise on the GPU when asked:
            # a 1024x768 screenshot then costs about a millisecond instead of tens on the CPU.
            # On a stream of this thread's own: on the default stream the work (and the
            # wait for it) would queue behind the prefill the scheduler is running, so
            # requests arriving together missed the next prefill group.
            stream = _side_stream(self.device)
            try:
                with torch.cuda.stream(stream):
                    enc = self.image_processor(
                        images=[image], return_tensors="pt", device=self.device
                    )
                    # Copied on this stream too (a copy on the default stream would wait).
                    enc["image_grid_thw"] = enc["image_grid_thw"].cpu()
                stream.synchronize()  # the pixels are ready before the job is queued
                # The scheduler reads them on the default stream; the allocator must not
                # hand their memory back to this stream before that work is done.
                enc["pixel_values"].record_stream(torch.cuda.default_stream(self.device))
            except (TypeError, ValueError):
                self._pil = True
                enc = None
        if enc is None:
            enc = self.image_processor(images=[image], return_tensors="pt")
        # The grid stays on the CPU: rotary positions are computed there.
        return ImageInput(
            key=key,
            path=path,
            pixel_values=enc["pixel_values"],
            grid_thw=enc["image_grid_thw"].cpu(),
        )

    def reload_image(self, image: ImageInput) -> ImageInput:
        """Pixels again for an image whose cached features were evicted meanwhile."""
        pil, key = _open_image(image.path)
        return self.process_image(pil, key, image.path)

    def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        text = self.render(request)
        images = [self._image(t.image_path) for t in request.turns if t.image_path]
        if images:
            # Expand each image placeholder to the number of visual tokens of its image,
            # which is what the processor does, minus re-reading cached screenshots.
            parts = text.split(self.image_token)
            if len(parts) - 1 != len(images):
                raise PromptError("The chat template did not place the screenshot.")
            pieces = [parts[0]]
            for image, part in zip(images, parts[1:], strict=True):
                count = int(image.grid_thw.prod()) // (self.merge * self.merge)
                pieces.append(self.image_token * count + part)
            text = "".join(pieces)
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        types = (ids == self.image_token_id).long() if images else torch.zeros_like(ids)
        return PreparedPrompt(input_ids=ids, mm_token_type_ids=types, images=images)

    def rope_positions(self, prompt: PreparedPrompt) -> tuple[torch.Tensor, int]:
        """3D rotary positions [3, 1, L] and the offset later text positions carry."""
        ids = prompt.input_ids
        if not prompt.images:
            pos = torch.arange(ids.shape[1]).view(1, 1, -1).expand(3, 1, -1)
            return pos, 0
        grid = torch.cat([image.grid_thw for image in prompt.images], dim=0)
        kwargs: dict[str, Any] = {"input_ids": ids, "image_grid_thw": grid}
        if self._rope_takes_types:
            kwargs["mm_token_type_ids"] = prompt.mm_token_type_ids
        pos, delta = self.base.get_rope_index(**kwargs)
        return pos, int(delta.view(-1)[0])


_streams = threading.local()


def _side_stream(device: Any) -> Any:
    stream = getattr(_streams, "stream", None)
    if stream is None:
        # High priority: the GPU schedules its few small kernels ahead of the blocks still
        # waiting in a prefill's large matrix products, so a screenshot is ready in about a
        # millisecond while the scheduler prefills, not after the prefill's kernels drain.
        stream = _streams.stream = torch.cuda.Stream(device=device, priority=-1)
    return stream


def _params(obj: Any, name: str) -> set[str]:
    import inspect

    fn = getattr(obj, name, None)
    if fn is None:
        return set()
    return set(inspect.signature(fn).parameters)
