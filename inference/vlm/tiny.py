"""Tiny randomly initialised checkpoints of real VLM architectures.

Tests (and the GPU equality check in the bench) need real model classes, real image
processors and real chat templates without any download. These builders write a complete
folder (config, weights, tokenizer, processor, generation config) that the production
loader then reads like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .loader import make_processor

# A small corpus so the byte-level BPE learns some multi-byte merges, CJK included:
# incremental detokenisation must never emit half a character.
_CORPUS = [
    "The Submit button is at the bottom right of the form.",
    "Order ID 12345 shipped on Monday; total 42.50 EUR.",
    "点击右上角的设置按钮。订单已发货。",
    "Settings > Privacy > Notifications are turned off.",
    "Error: invalid email address. Please try again!",
] * 4

GLM_SPECIALS = [
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|image|>",
    "<|video|>",
    "<|begin_of_box|>",
    "<|end_of_box|>",
    "<think>",
    "</think>",
]

# Modelled on GLM-4.6V's template: "[gMASK]<sop>", role tags with no end-of-turn token,
# images as <|begin_of_image|><|image|><|end_of_image|>, and thinking switched off with
# "/nothink" on the user turn plus an empty <think></think> after <|assistant|>.
GLM_TEMPLATE = (
    "[gMASK]<sop>"
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}<|system|>{{ '\\n' }}"
    "{%- if m.content is string -%}{{ m.content }}{%- else -%}"
    "{%- for item in m.content -%}{%- if item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- elif m.role == 'user' -%}<|user|>{{ '\\n' }}"
    "{%- if m.content is string -%}{{ m.content }}{%- else -%}"
    "{%- for item in m.content -%}"
    "{%- if item.type == 'image' -%}<|begin_of_image|><|image|><|end_of_image|>"
    "{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if enable_thinking is defined and not enable_thinking -%}/nothink{%- endif -%}"
    "{%- elif m.role == 'assistant' -%}<|assistant|>{{ '\\n<think></think>\\n' }}"
    "{%- if m.content is string -%}{{ m.content }}{%- else -%}"
    "{%- for item in m.content -%}{%- if item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>"
    "{%- if enable_thinking is defined and not enable_thinking -%}{{ '\\n<think></think>\\n' }}"
    "{%- endif -%}{%- endif -%}"
)

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

QWEN_TEMPLATE = (
    "{%- for m in messages -%}<|im_start|>{{ m.role }}{{ '\\n' }}"
    "{%- if m.content is string -%}{{ m.content }}{%- else -%}"
    "{%- for item in m.content -%}"
    "{%- if item.type == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}"
)


def build_tokenizer(specials: list[str], chat_template: str, *, vocab_size: int = 400):
    """Byte-level BPE over a small corpus plus the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>" if "<|im_end|>" not in specials else "<|im_end|>",
        pad_token="<|endoftext|>",  # noqa: S106 - a token, not a password
    )
    fast.chat_template = chat_template
    return fast


def _randomise(model: torch.nn.Module, std: float, seed: int) -> None:
    # Wider than the usual 0.02 so that greedy choices are not near-ties: equality tests
    # between batched and lone runs must not hinge on the last bit of a float.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "layernorm" in name:
                continue
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def build_tiny_glm4v(folder: str | Path, *, seed: int = 0) -> Path:
    from transformers import GenerationConfig, Glm4vConfig, Glm4vForConditionalGeneration
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
    from transformers.models.glm4v.processing_glm4v import Glm4vProcessor
    from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor

    folder = Path(folder)
    tokenizer = build_tokenizer(GLM_SPECIALS, GLM_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GLM_SPECIALS}
    rope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "partial_rotary_factor": 0.5,
        "mrope_section": [2, 1, 1],  # sums to head_dim * 0.5 / 2
    }
    config = Glm4vConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": rope,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "image_size": 56,
        },
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
    )
    config.text_config.partial_rotary_factor = 0.5
    torch.manual_seed(seed)
    model = Glm4vForConditionalGeneration(config)
    _randomise(model, 0.15, seed)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    # Few visual tokens per image keep the CPU tests fast (<= 16 after the 2x2 merge).
    image_processor = Glm4vImageProcessorPil(
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16}
    )
    processor = make_processor(
        Glm4vProcessor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Glm4vVideoProcessor(),
        chat_template=GLM_TEMPLATE,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _qwen_video_processor():
    try:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    except ImportError:  # needs torchvision; a stand-in is fine, videos are never used
        return None
    return Qwen2VLVideoProcessor()


def build_tiny_qwen2vl(folder: str | Path, *, seed: int = 0) -> Path:
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

    folder = Path(folder)
    tokenizer = build_tokenizer(QWEN_SPECIALS, QWEN_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],  # sums to head_dim / 2
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    _randomise(model, 0.15, seed + 1)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=28 * 28 * 4,
        max_pixels=28 * 28 * 16,
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16},
    )
    tokenizer.image_token = "<|image_pad|>"  # noqa: S105 - a token, not a password
    tokenizer.video_token = "<|video_pad|>"  # noqa: S105
    processor = make_processor(
        Qwen2VLProcessor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=_qwen_video_processor(),
        chat_template=QWEN_TEMPLATE,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
