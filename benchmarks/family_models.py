"""Tiny random-initialised models of the families users bring (Llama, Qwen2, Qwen3, Gemma-3, Mistral), built
from their transformers configs with GPT-2's real tokenizer (the shared data's vocabulary and merges, no pad
token, as Llama's and GPT-2's ship) in each family's chat format: its turn tokens added as special tokens, its
end-of-turn token among the generation config's end tokens, and for Llama a tokenizer that adds its
begin-of-text token, as Llama 3's does. The model-family tests and the offline GPU kit's post-training check
use them (the hub cannot be reached from either)."""

from __future__ import annotations

import json
from pathlib import Path

# head_dim 32: a size vLLM's CPU attention kernels support; 2 query heads sharing 1 key/value head (GQA)
SHAPE = dict(
    vocab_size=50257,  # GPT-2's
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=64,
    bos_token_id=50256,
    eos_token_id=50256,
)


def family_config(family: str):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    return {
        "llama": lambda: LlamaConfig(**SHAPE, tie_word_embeddings=True),
        "qwen2": lambda: Qwen2Config(**SHAPE, tie_word_embeddings=True),
        "qwen3": lambda: Qwen3Config(**SHAPE, head_dim=32, tie_word_embeddings=True),  # q/k norms
        # sliding-window layers every few layers, its own attention scaling, untied head
        "gemma3": lambda: Gemma3TextConfig(**SHAPE, head_dim=32, sliding_window=16, query_pre_attn_scalar=32),
        "mistral": lambda: MistralConfig(**SHAPE, sliding_window=16),
    }[family]()


FAMILIES = ["llama", "qwen2", "qwen3", "gemma3", "mistral"]

# Each family's chat format, written here after the instruct models' own templates (the hub cannot be reached):
# its turn tokens (added as special tokens), the token that ends an assistant turn, the Jinja template.
CHATML = (
    ["<|im_start|>", "<|im_end|>"],
    "<|im_end|>",
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
)
# Gemma and Mistral have no system turn: the system text opens the first user turn
SYSTEM_FIRST = "{% set system = messages[0]['content'] + '\n\n' if messages[0]['role'] == 'system' else '' %}"
CHAT = {
    "llama": (  # Llama 3
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "<|eot_id|>",
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
    ),
    "qwen2": CHATML,
    "qwen3": CHATML,
    "gemma3": (
        ["<start_of_turn>", "<end_of_turn>"],
        "<end_of_turn>",
        "{{ bos_token }}" + SYSTEM_FIRST + "{% for m in messages if m['role'] != 'system' %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{{ system if loop.first else '' }}{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    ),
    "mistral": (
        ["[INST]", "[/INST]"],
        "<|endoftext|>",  # the end of text ends a turn
        "{{ bos_token }}" + SYSTEM_FIRST + "{% for m in messages if m['role'] != 'system' %}"
        "{% if m['role'] == 'user' %}[INST] {{ system if loop.first else '' }}{{ m['content'] }}[/INST]"
        "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}",
    ),
}
# 2-digit sums asked as a chat: a system turn, the problem as the user's turn, the sum as the assistant's
CHAT_SUMS = {
    "name": "chat-sums",
    "data": {"generator": "addition"},
    "prompt": "{prompt}",
    "chat_template": True,
    "system": "Add.",
    "rewards": [{"kind": "exact", "extract": "^\\s*(\\d{3})"}],
    "max_completion_tokens": 4,
}


def build_model(family: str, data: Path, out: Path) -> Path:
    """A random-initialised model of the family, saved as a Hugging Face folder with GPT-2's tokenizer in the
    family's chat format."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2TokenizerFast

    fixtures = data / "cs336-a1-fixtures"
    merges = (fixtures / "gpt2_merges.txt").read_text().splitlines()
    tokenizer = GPT2TokenizerFast(
        vocab=json.loads((fixtures / "gpt2_vocab.json").read_text()),
        merges=[tuple(m.split()) for m in merges if m and not m.startswith("#version")],
        add_bos_token=family == "llama",
    )
    special, end_of_turn, template = CHAT[family]
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.chat_template = template
    config = family_config(family)
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = sorted({SHAPE["eos_token_id"], tokenizer.convert_tokens_to_ids(end_of_turn)})
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
