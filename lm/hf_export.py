"""Our checkpoint ⇄ a Hugging Face `LlamaForCausalLM` folder (the bridge to the ecosystem).

Parameter names map 1:1; the only transform is RoPE's layout: we rotate interleaved
pairs (x[2i], x[2i+1]), HF rotates halves (x[i], x[i+d/2]). Permuting the rows of q_proj
and k_proj within each head turns one into the other (the same permutation Meta →
HF conversion uses), so logits agree exactly up to float rounding.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from einops import rearrange
from torch import Tensor

from lm.model import ModelConfig, TransformerLM
from lm.tokenizer import ENDOFTEXT


def hf_name_map(num_layers: int) -> dict[str, str]:
    names = {
        "token_embeddings.weight": "model.embed_tokens.weight",
        "ln_final.weight": "model.norm.weight",
        "lm_head.weight": "lm_head.weight",
    }
    for i in range(num_layers):
        ours, theirs = f"layers.{i}.", f"model.layers.{i}."
        names.update(
            {
                ours + "attn.q_proj.weight": theirs + "self_attn.q_proj.weight",
                ours + "attn.k_proj.weight": theirs + "self_attn.k_proj.weight",
                ours + "attn.v_proj.weight": theirs + "self_attn.v_proj.weight",
                ours + "attn.output_proj.weight": theirs + "self_attn.o_proj.weight",
                ours + "ffn.w1.weight": theirs + "mlp.gate_proj.weight",
                ours + "ffn.w3.weight": theirs + "mlp.up_proj.weight",
                ours + "ffn.w2.weight": theirs + "mlp.down_proj.weight",
                ours + "ln1.weight": theirs + "input_layernorm.weight",
                ours + "ln2.weight": theirs + "post_attention_layernorm.weight",
            }
        )
    return names


def interleaved_to_halves(w: Tensor, num_heads: int) -> Tensor:
    """Rows of a q/k projection: per head, pairs (2i, 2i+1) → (i, i + d/2)."""
    return rearrange(w, "(h d two) c -> (h two d) c", h=num_heads, two=2)


# transformers loads its classes lazily, and two threads doing the first lazy import at once
# (a sweep's points exporting on a thread pool) got "cannot import name 'GenerationConfig'"
_TRANSFORMERS_IMPORT = threading.Lock()


def halves_to_interleaved(w: Tensor, num_heads: int) -> Tensor:
    return rearrange(w, "(h two d) c -> (h d two) c", h=num_heads, two=2)


def llama_config(c: ModelConfig, eos_id: int | None):
    with _TRANSFORMERS_IMPORT:
        from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        intermediate_size=c.d_ff,
        num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads,
        num_key_value_heads=c.num_heads,
        max_position_embeddings=c.context_length,
        rms_norm_eps=1e-5,
        rope_theta=c.rope_theta,
        tie_word_embeddings=c.tie_embeddings,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        torch_dtype="float32",
    )


def to_hf_state_dict(model: TransformerLM) -> dict[str, Tensor]:
    c = model.config
    names = hf_name_map(c.num_layers)
    out = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and c.tie_embeddings:
            continue
        if k.endswith(("attn.q_proj.weight", "attn.k_proj.weight")):
            v = interleaved_to_halves(v, c.num_heads)
        out[names[k]] = v.detach().cpu().contiguous()
    return out


def export_hf(model: TransformerLM, tokenizer_dir: Path | None, out_dir: Path) -> Path:
    """Write config.json, model.safetensors, tokenizer files and generation_config.json."""
    from safetensors.torch import save_file

    with _TRANSFORMERS_IMPORT:
        from transformers import GenerationConfig, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    eos_id = None
    if tokenizer_dir is not None:
        specials = json.loads((Path(tokenizer_dir) / "special_tokens.json").read_text())
        tok = PreTrainedTokenizerFast(
            tokenizer_file=str(Path(tokenizer_dir) / "tokenizer.json"),
            eos_token=ENDOFTEXT,
            bos_token=ENDOFTEXT,
            pad_token=ENDOFTEXT,
            additional_special_tokens=[s for s in specials if s != ENDOFTEXT],
        )
        tok.model_max_length = model.config.context_length
        tok.save_pretrained(out_dir)
        eos_id = tok.convert_tokens_to_ids(ENDOFTEXT)
    cfg = llama_config(model.config, eos_id)
    cfg.architectures = ["LlamaForCausalLM"]
    cfg.save_pretrained(out_dir)
    save_file(to_hf_state_dict(model), out_dir / "model.safetensors", metadata={"format": "pt"})
    GenerationConfig(
        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=True, temperature=1.0
    ).save_pretrained(out_dir)
    return out_dir


def import_hf(hf_dir: Path, attn_impl: str = "reference") -> TransformerLM:
    """Load a Llama-architecture HF folder (ours or any MHA Llama) into our model."""
    from safetensors.torch import load_file

    cfg = json.loads((Path(hf_dir) / "config.json").read_text())
    if cfg.get("num_key_value_heads", cfg["num_attention_heads"]) != cfg["num_attention_heads"]:
        raise ValueError(f"{hf_dir}: grouped-query attention is not supported by lmforge's model")
    c = ModelConfig(
        vocab_size=cfg["vocab_size"],
        context_length=cfg["max_position_embeddings"],
        d_model=cfg["hidden_size"],
        num_layers=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"],
        d_ff=cfg["intermediate_size"],
        rope_theta=cfg.get("rope_theta", 10_000.0),
        tie_embeddings=cfg.get("tie_word_embeddings", False),
        attn_impl=attn_impl,
    )
    model = TransformerLM(c)
    theirs = {}
    for f in sorted(Path(hf_dir).glob("*.safetensors")):
        theirs.update(load_file(f))
    state = {}
    for ours, name in hf_name_map(c.num_layers).items():
        if name == "lm_head.weight" and c.tie_embeddings:
            continue
        w = theirs[name]
        if ours.endswith(("attn.q_proj.weight", "attn.k_proj.weight")):
            w = halves_to_interleaved(w, c.num_heads)
        state[ours] = w.float()
    model.load_state_dict(state, strict=not c.tie_embeddings)
    return model


def save_as_lmforge_checkpoint(hf_dir: Path, out: Path) -> bool:
    """Convert a tuned HF folder back to our checkpoint format (Llama MHA models only); False when the folder is
    another architecture (e.g. GQA), whose HF folder is then the checkpoint."""
    from lm.checkpoint import write_weights

    try:
        model = import_hf(hf_dir)
    except (ValueError, KeyError):
        return False  # not a plain Llama (e.g. GQA): the HF folder is the checkpoint
    write_weights(model, out, {"step": 0, "tokens": 0, "source": str(hf_dir)})
    return True
