"""Where each architecture keeps its transformer blocks, attention projections and feed-forward projections.

One small literal table, keyed by ``model_type`` like ``auto.MODEL_TABLE``. The module names in it are the checkpoint
names (Hugging Face spelling), so they cannot drift from the model files without every surgery test failing, and an
architecture whose file someone else owns is supported by adding a row here rather than by editing that file.

Most models have one stack of blocks, each with one attention module. An encoder-decoder (BART) has two named stacks,
``"encoder"`` and ``"decoder"``, and its decoder blocks have two attention modules (``self_attn`` and
``encoder_attn``): its row maps each stack name to a ``BlockLayout``, and every operation then takes ``stack=``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

SINGLE = ""  # the stack name of a model with one stack of blocks (it takes no stack= argument)


@dataclass(frozen=True)
class AttentionLayout:
    """One attention module of a block: paths relative to the block. Projections are ``nn.Linear`` (weight
    ``[out, in]``) unless the block layout says ``transposed`` (GPT-2's Conv1D, weight ``[in, out]``)."""

    module: str  # the module that owns the head counts used in forward (its last name is the attention's name)
    heads_attr: str  # its attribute: number of query heads
    head_dim_attr: str  # its attribute: width of one head
    out: str  # attention output projection: its input features are heads x head_dim
    query: str = ""
    key: str = ""
    value: str = ""
    qkv: str = ""  # one fused projection, output features [q heads | k heads | v heads] (GPT-2's c_attn)
    kv_heads_attr: str = ""  # attribute with the number of key/value heads, for grouped-query attention
    kv_heads_field: str = ""  # the config field of the original key/value head count
    # More projections laid out by head like the query, pruned with it where the block has them (DeBERTa's
    # relative-position projections).
    extra_head_outputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.module.rpartition(".")[2]


@dataclass(frozen=True)
class BlockLayout:
    """One stack of blocks: ``layers`` is relative to the base model; every other path is relative to one block."""

    layers: str
    attentions: tuple[AttentionLayout, ...]  # the first is the one prune_heads_ prunes unless told otherwise
    ffn_in: tuple[str, ...]  # projections whose output features are the FFN neurons (gate and up for gated MLPs)
    ffn_out: str  # projection whose input features are the FFN neurons
    intermediate_field: str  # the config field of the (uniform) FFN width
    layers_field: str = "num_hidden_layers"  # the config field of the number of blocks
    heads_field: str = "num_attention_heads"  # the config field of the original number of query heads
    transposed: bool = False
    per_layer_attrs: tuple[str, ...] = ()  # lists on the base model with one entry per block (cut with the blocks)

    def attention_named(self, name: str) -> AttentionLayout:
        return next(a for a in self.attentions if a.name == name)


_BERT = BlockLayout(
    layers="encoder.layer",
    attentions=(AttentionLayout(
        module="attention.self", heads_attr="num_attention_heads", head_dim_attr="attention_head_size",
        query="attention.self.query", key="attention.self.key", value="attention.self.value",
        out="attention.output.dense",
    ),),
    ffn_in=("intermediate.dense",), ffn_out="output.dense", intermediate_field="intermediate_size",
)

_DISTILBERT = BlockLayout(
    layers="transformer.layer",
    attentions=(AttentionLayout(
        module="attention", heads_attr="n_heads", head_dim_attr="head_dim",
        query="attention.q_lin", key="attention.k_lin", value="attention.v_lin", out="attention.out_lin",
    ),),
    ffn_in=("ffn.lin1",), ffn_out="ffn.lin2", intermediate_field="hidden_dim",
)

_GPT2 = BlockLayout(
    layers="h",
    attentions=(AttentionLayout(
        module="attn", heads_attr="num_heads", head_dim_attr="head_dim", qkv="attn.c_attn", out="attn.c_proj",
    ),),
    ffn_in=("mlp.c_fc",), ffn_out="mlp.c_proj", intermediate_field="n_inner",
    transposed=True,
)

_LLAMA = BlockLayout(
    layers="layers",
    attentions=(AttentionLayout(
        module="self_attn", heads_attr="num_heads", head_dim_attr="head_dim",
        kv_heads_attr="num_kv_heads", kv_heads_field="num_key_value_heads",
        query="self_attn.q_proj", key="self_attn.k_proj", value="self_attn.v_proj", out="self_attn.o_proj",
    ),),
    ffn_in=("mlp.gate_proj", "mlp.up_proj"), ffn_out="mlp.down_proj", intermediate_field="intermediate_size",
    per_layer_attrs=("layer_windows",),
)

_DEBERTA_V2 = BlockLayout(
    layers="encoder.layer",
    attentions=(AttentionLayout(
        module="attention.self", heads_attr="num_attention_heads", head_dim_attr="attention_head_size",
        query="attention.self.query_proj", key="attention.self.key_proj", value="attention.self.value_proj",
        extra_head_outputs=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
        out="attention.output.dense",
    ),),
    ffn_in=("intermediate.dense",), ffn_out="output.dense", intermediate_field="intermediate_size",
)


def _bart_attention(name: str) -> AttentionLayout:
    return AttentionLayout(
        module=name, heads_attr="num_heads", head_dim_attr="head_dim",
        query=f"{name}.q_proj", key=f"{name}.k_proj", value=f"{name}.v_proj", out=f"{name}.out_proj",
    )


_BART = {
    "encoder": BlockLayout(
        layers="encoder.layers", attentions=(_bart_attention("self_attn"),),
        ffn_in=("fc1",), ffn_out="fc2", intermediate_field="encoder_ffn_dim",
        layers_field="encoder_layers", heads_field="encoder_attention_heads",
    ),
    "decoder": BlockLayout(
        layers="decoder.layers", attentions=(_bart_attention("self_attn"), _bart_attention("encoder_attn")),
        ffn_in=("fc1",), ffn_out="fc2", intermediate_field="decoder_ffn_dim",
        layers_field="decoder_layers", heads_field="decoder_attention_heads",
    ),
}

LAYOUTS: dict[str, BlockLayout | dict[str, BlockLayout]] = {
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
    "bart": _BART,
}


def stacks_of(model: nn.Module) -> dict[str, BlockLayout]:
    """Stack name -> layout: ``{SINGLE: layout}`` for a model with one stack of blocks."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LAYOUTS:
        raise NotImplementedError(
            f"Model surgery does not know the layout of {type(model).__name__} (model_type {model_type!r}). "
            f"Supported model types: {', '.join(sorted(LAYOUTS))}."
        )
    row = LAYOUTS[model_type]
    return dict(row) if isinstance(row, dict) else {SINGLE: row}


def is_multi_stack(model: nn.Module) -> bool:
    return SINGLE not in stacks_of(model)


def resolve_stack(model: nn.Module, stack: str | None, operation: str) -> str:
    """The stack an operation works on: ``stack`` checked against the model's stacks (None for one stack)."""
    names = [name for name in stacks_of(model) if name != SINGLE]
    if not names:
        if stack is not None:
            raise ValueError(
                f"{operation}: {type(model).__name__} has a single stack of layers, so it takes no stack= argument; "
                f"found stack={stack!r}. Call {operation}(model, ...) without it."
            )
        return SINGLE
    choices = " or ".join(f"stack={name!r}" for name in names)
    if stack is None:
        raise ValueError(
            f"{operation}: {type(model).__name__} has {len(names)} stacks of layers ({', '.join(names)}), "
            f"each numbered from 0; say which one with {choices}, e.g. {operation}(model, ..., stack={names[-1]!r})."
        )
    if stack not in names:
        raise ValueError(f"{operation}: {type(model).__name__} has no stack {stack!r}; pass {choices}.")
    return stack


def layout_of(model: nn.Module, stack: str = SINGLE) -> BlockLayout:
    return stacks_of(model)[stack]


def blocks_of(model: nn.Module, stack: str = SINGLE) -> nn.ModuleList:
    """The transformer blocks of one stack of ``model`` (a base model or a model with a task head)."""
    base = getattr(model, "base_model", model)
    return base.get_submodule(layout_of(model, stack).layers)


def num_blocks(model: nn.Module, stack: str = SINGLE) -> int:
    return len(blocks_of(model, stack))
