"""Where each architecture keeps its transformer blocks, attention projections and feed-forward projections.

One small literal table, keyed by ``model_type`` like ``auto.MODEL_TABLE``. The module names in it are the checkpoint
names (Hugging Face spelling), so they cannot drift from the model files without every surgery test failing, and an
architecture whose file someone else owns is supported by adding a row here rather than by editing that file.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class BlockLayout:
    """Paths (dotted attribute names) of the pieces surgery reshapes.

    ``layers`` is relative to the base model; every other path is relative to one block. Projections are
    ``nn.Linear`` (weight ``[out, in]``) unless ``transposed`` (GPT-2's Conv1D, weight ``[in, out]``).
    """

    layers: str
    attention: str  # the module that owns the head counts used in forward
    heads_attr: str  # its attribute: number of query heads
    head_dim_attr: str  # its attribute: width of one head
    out: str  # attention output projection: its input features are heads x head_dim
    ffn_in: tuple[str, ...]  # projections whose output features are the FFN neurons (gate and up for gated MLPs)
    ffn_out: str  # projection whose input features are the FFN neurons
    intermediate_field: str  # the config field of the (uniform) FFN width
    query: str = ""
    key: str = ""
    value: str = ""
    qkv: str = ""  # one fused projection, output features [q heads | k heads | v heads] (GPT-2's c_attn)
    kv_heads_attr: str = ""  # attribute with the number of key/value heads, for grouped-query attention
    kv_heads_field: str = ""  # the config field of the original key/value head count
    # More projections laid out by head like the query, pruned with it where the block has them (DeBERTa's
    # relative-position projections).
    extra_head_outputs: tuple[str, ...] = ()
    transposed: bool = False
    per_layer_attrs: tuple[str, ...] = ()  # lists on the base model with one entry per block (cut with the blocks)


_BERT = BlockLayout(
    layers="encoder.layer",
    attention="attention.self", heads_attr="num_attention_heads", head_dim_attr="attention_head_size",
    query="attention.self.query", key="attention.self.key", value="attention.self.value",
    out="attention.output.dense",
    ffn_in=("intermediate.dense",), ffn_out="output.dense", intermediate_field="intermediate_size",
)

_DISTILBERT = BlockLayout(
    layers="transformer.layer",
    attention="attention", heads_attr="n_heads", head_dim_attr="head_dim",
    query="attention.q_lin", key="attention.k_lin", value="attention.v_lin", out="attention.out_lin",
    ffn_in=("ffn.lin1",), ffn_out="ffn.lin2", intermediate_field="hidden_dim",
)

_GPT2 = BlockLayout(
    layers="h",
    attention="attn", heads_attr="num_heads", head_dim_attr="head_dim",
    qkv="attn.c_attn", out="attn.c_proj",
    ffn_in=("mlp.c_fc",), ffn_out="mlp.c_proj", intermediate_field="n_inner",
    transposed=True,
)

_LLAMA = BlockLayout(
    layers="layers",
    attention="self_attn", heads_attr="num_heads", head_dim_attr="head_dim",
    kv_heads_attr="num_kv_heads", kv_heads_field="num_key_value_heads",
    query="self_attn.q_proj", key="self_attn.k_proj", value="self_attn.v_proj", out="self_attn.o_proj",
    ffn_in=("mlp.gate_proj", "mlp.up_proj"), ffn_out="mlp.down_proj", intermediate_field="intermediate_size",
    per_layer_attrs=("layer_windows",),
)

_DEBERTA_V2 = BlockLayout(
    layers="encoder.layer",
    attention="attention.self", heads_attr="num_attention_heads", head_dim_attr="attention_head_size",
    query="attention.self.query_proj", key="attention.self.key_proj", value="attention.self.value_proj",
    extra_head_outputs=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
    out="attention.output.dense",
    ffn_in=("intermediate.dense",), ffn_out="output.dense", intermediate_field="intermediate_size",
)

LAYOUTS: dict[str, BlockLayout] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "distilbert": _DISTILBERT,
    "deberta-v2": _DEBERTA_V2,
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
}


def layout_of(model: nn.Module) -> BlockLayout:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LAYOUTS:
        raise NotImplementedError(
            f"Model surgery does not know the layout of {type(model).__name__} (model_type {model_type!r}). "
            f"Supported model types: {', '.join(sorted(LAYOUTS))}."
        )
    return LAYOUTS[model_type]


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of ``model`` (a base model or a model with a task head)."""
    base = getattr(model, "base_model", model)
    return base.get_submodule(layout_of(model).layers)


def num_blocks(model: nn.Module) -> int:
    return len(blocks_of(model))
