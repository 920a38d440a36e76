"""prune_heads_: remove attention heads, with transformers v4's numbering and config record.

Heads are numbered as in the *original* model (0 .. num_attention_heads - 1) however many were pruned before, as
transformers v4's ``prune_heads`` did: each attention module remembers its pruned set (``pruned_heads``), a head
pruned twice is pruned once, and ``config.pruned_heads`` ({layer: [heads]}) records the union so that
``from_pretrained`` rebuilds the same shapes before it reads the weights.

An encoder-decoder (BART) says which stack (``stack="encoder"|"decoder"``) and, in decoder blocks, which attention
(``attention="self_attn"`` by default, or ``"encoder_attn"``, the cross-attention); its record is keyed by both:
``{"decoder.encoder_attn": {layer: [heads]}, ...}``. The original head count is the stack's config field
(``encoder_attention_heads``, ``decoder_attention_heads``), which pruning never changes.

Grouped-query attention (Llama, Mistral, Qwen with num_key_value_heads < num_attention_heads): query heads
``g*j .. g*j + g-1`` (g = heads per group) share key/value head ``j``. A request is accepted when every group either
loses all its query heads (its key/value head goes too) or loses the same number as every other remaining group, so
the remaining query heads still divide evenly over the remaining key/value heads. Anything else is an error that
says so; nothing is changed then. Pruning every head of a layer is an error too (drop the layer instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from .layout import SINGLE, AttentionLayout, BlockLayout, blocks_of, layout_of, resolve_stack, stacks_of
from .projections import head_rows, keep_inputs, keep_outputs


@dataclass
class _HeadPlan:
    keep_query: list[int]  # positions in the module's current layout
    keep_kv: list[int]
    pruned: set[int]  # original head numbers pruned once this plan is applied


def original_head_counts(model: nn.Module, layout: BlockLayout, attention: AttentionLayout) -> tuple[int, int]:
    """(query heads, key/value heads) of an unpruned layer of one stack, from the config."""
    config = model.config
    heads = getattr(config, layout.heads_field)
    kv_heads = getattr(config, attention.kv_heads_field, None) if attention.kv_heads_field else None
    return heads, kv_heads or heads


def record_key(stack: str, attention: AttentionLayout) -> str:
    """The key of one attention's entry in a multi-stack config.pruned_heads, e.g. "decoder.encoder_attn"."""
    return f"{stack}.{attention.name}"


def pruned_heads_from_config(model: nn.Module) -> dict[tuple[str, str], dict[int, list[int]]]:
    """config.pruned_heads as {(stack, attention name): {layer: [heads]}} with int layers (JSON makes them strings).
    A single-stack model's record is ``{layer: [heads]}``; a multi-stack model's is keyed by ``record_key``."""
    raw = getattr(model.config, "pruned_heads", None) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"config.pruned_heads should map layer -> list of heads, found {type(raw).__name__}: {raw!r}.")
    stacks = stacks_of(model)
    if SINGLE in stacks:
        return {(SINGLE, stacks[SINGLE].attentions[0].name): _layers(raw, "config.pruned_heads")} if raw else {}
    known = {record_key(stack, a): (stack, a.name) for stack, layout in stacks.items() for a in layout.attentions}
    out = {}
    for key, per_layer in raw.items():
        if key not in known or not isinstance(per_layer, Mapping):
            raise ValueError(
                f"config.pruned_heads of a {model.config.model_type} model maps 'stack.attention' to "
                f"{{layer: [heads]}}, with keys among {', '.join(repr(k) for k in known)}; found {key!r}: {per_layer!r}. "
                "Re-save the model with save_pretrained after prune_heads_."
            )
        out[known[key]] = _layers(per_layer, f"config.pruned_heads[{key!r}]")
    return out


def _layers(raw: Mapping, where: str) -> dict[int, list[int]]:
    try:
        return {int(layer): sorted(int(h) for h in heads) for layer, heads in raw.items()}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} should map layer -> list of heads (ints), found {dict(raw)!r}.") from error


def prune_heads_(
    model: nn.Module,
    heads_to_prune: Mapping[int, Iterable[int]],
    *,
    stack: str | None = None,
    attention: str | None = None,
) -> nn.Module:
    """Remove attention heads in place: ``{layer: [head, ...]}`` in original head numbering. Returns ``model``.

    An encoder-decoder needs ``stack="encoder"`` or ``"decoder"``; ``attention`` picks the attention module of a
    block that has several (BART decoder: ``"self_attn"``, the default, or ``"encoder_attn"``)."""
    if not isinstance(heads_to_prune, Mapping):
        raise TypeError(
            f"prune_heads_ expects a dict {{layer: [heads]}}, e.g. {{0: [1, 2]}}; found {type(heads_to_prune).__name__}."
        )
    stack = resolve_stack(model, stack, "prune_heads_")
    layout = layout_of(model, stack)
    target = _attention(layout, stack, attention)
    blocks = blocks_of(model, stack)
    where = f"the {stack}" if stack else "the model"
    num_heads, num_kv = original_head_counts(model, layout, target)
    plans: dict[int, _HeadPlan] = {}
    for layer, heads in heads_to_prune.items():  # validate every layer before changing any
        if not isinstance(layer, int) or not 0 <= layer < len(blocks):
            raise ValueError(f"prune_heads_: layer {layer!r} does not exist; {where} has layers 0..{len(blocks) - 1}.")
        heads = list(heads)
        bad = [h for h in heads if not isinstance(h, int) or not 0 <= h < num_heads]
        if bad:
            raise ValueError(
                f"prune_heads_: layer {layer} has no head {bad[0]!r}; its heads are numbered 0..{num_heads - 1} "
                "(original numbering, before any pruning)."
            )
        module = blocks[layer].get_submodule(target.module)
        already = set(getattr(module, "pruned_heads", ()))
        plans[layer] = _plan(layer, num_heads, num_kv, already, already | set(heads))
    for layer, plan in plans.items():
        _apply(blocks[layer], layout, target, plan)
    record_pruned_heads(model)
    return model


def _attention(layout: BlockLayout, stack: str, name: str | None) -> AttentionLayout:
    if name is None:
        return layout.attentions[0]
    names = [a.name for a in layout.attentions]
    if name not in names:
        blocks = f"{stack} blocks" if stack else "the model's blocks"
        raise ValueError(
            f"prune_heads_: {blocks} have no attention {name!r}; their attention modules are "
            f"{', '.join(repr(n) for n in names)}."
        )
    return layout.attention_named(name)


def record_pruned_heads(model: nn.Module) -> None:
    """Write config.pruned_heads from the modules (called after any surgery that moves or prunes heads)."""
    record: dict = {}
    for stack, layout in stacks_of(model).items():
        blocks = blocks_of(model, stack)
        for attention in layout.attentions:
            per_layer = {}
            for i, block in enumerate(blocks):
                pruned = getattr(block.get_submodule(attention.module), "pruned_heads", None)
                if pruned:
                    per_layer[i] = sorted(pruned)
            if stack == SINGLE:
                record.update(per_layer)
            elif per_layer:
                record[record_key(stack, attention)] = per_layer
    model.config.pruned_heads = record


def _plan(layer: int, num_heads: int, num_kv: int, already: set[int], pruned: set[int]) -> _HeadPlan:
    if len(pruned) >= num_heads:
        raise ValueError(
            f"prune_heads_: pruning heads {sorted(pruned - already)} of layer {layer} would leave it no attention head "
            f"(it has {num_heads}{f', {len(already)} already pruned' if already else ''}). Keep at least one head, "
            f"or remove the whole layer with drop_layers_(model, drop=[{layer}])."
        )
    group = num_heads // num_kv
    members = [range(j * group, (j + 1) * group) for j in range(num_kv)]
    lost = [sum(h in pruned for h in heads) for heads in members]
    left = sorted({group - n for n in lost if n < group})
    if len(left) > 1:
        raise ValueError(
            f"prune_heads_: layer {layer} uses grouped-query attention: {num_heads} query heads share {num_kv} key/value "
            f"heads in groups of {group} (heads 0..{group - 1} use key/value head 0, and so on). Pruning "
            "must remove whole groups, or the same number of query heads from every remaining group; this request "
            f"leaves groups of different sizes {left}."
        )
    current_query = [h for h in range(num_heads) if h not in already]
    current_kv = [j for j in range(num_kv) if not all(h in already for h in members[j])]
    return _HeadPlan(
        keep_query=[i for i, h in enumerate(current_query) if h not in pruned],
        keep_kv=[i for i, j in enumerate(current_kv) if lost[j] < group],
        pruned=pruned,
    )


def _apply(block: nn.Module, layout: BlockLayout, target: AttentionLayout, plan: _HeadPlan) -> None:
    attention = block.get_submodule(target.module)
    transposed = layout.transposed
    head_dim = getattr(attention, target.head_dim_attr)
    query_index = head_rows(plan.keep_query, head_dim)
    if target.qkv:  # fused [q | k | v]: one head's rows at the same place in each third
        width = getattr(attention, target.heads_attr) * head_dim
        fused = torch.cat([query_index, query_index + width, query_index + 2 * width])
        keep_outputs(block.get_submodule(target.qkv), fused, transposed=transposed, path=target.qkv)
    else:
        kv_index = head_rows(plan.keep_kv, head_dim) if target.kv_heads_attr else query_index
        keep_outputs(block.get_submodule(target.query), query_index, transposed=transposed, path=target.query)
        keep_outputs(block.get_submodule(target.key), kv_index, transposed=transposed, path=target.key)
        keep_outputs(block.get_submodule(target.value), kv_index, transposed=transposed, path=target.value)
    for path in target.extra_head_outputs:
        parent, _, name = path.rpartition(".")
        extra = getattr(block.get_submodule(parent), name, None)
        if extra is not None:
            keep_outputs(extra, query_index, transposed=transposed, path=path)
    keep_inputs(block.get_submodule(target.out), query_index, transposed=transposed, path=target.out)
    setattr(attention, target.heads_attr, len(plan.keep_query))
    if target.kv_heads_attr:
        setattr(attention, target.kv_heads_attr, len(plan.keep_kv))
    attention.pruned_heads = set(plan.pruned)
