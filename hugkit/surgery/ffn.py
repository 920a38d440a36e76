"""prune_ffn_: remove feed-forward (intermediate) neurons by weight magnitude, and record per-layer widths.

A neuron's score is the product of the L2 norms of its weights: its input row in each input projection (gate and
up for gated MLPs) and its column in the output projection. The lowest-scoring neurons go; with a gated MLP the
gate row, the up row and the down column of a neuron go together. Removing a neuron is exactly the dense model with
that neuron's output-projection column zeroed.

Config: when every layer ends up with the same width, the architecture's own field (``intermediate_size``,
DistilBERT's ``hidden_dim``, GPT-2's ``n_inner``) is set to it, and the checkpoint stays loadable by transformers.
When widths differ, ``config.intermediate_sizes`` lists one width per layer; ``from_pretrained`` builds each layer
with its width (hugkit only: transformers has no per-layer field).

An encoder-decoder (BART) prunes one stack per call (``stack="encoder"|"decoder"``); each stack's width has its own
field (``encoder_ffn_dim``, ``decoder_ffn_dim``), and ``intermediate_sizes`` is keyed by stack
(``{"decoder": [37, 30, 37]}``) for the stacks whose widths differ.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Mapping

import torch
from torch import nn

from .layout import SINGLE, BlockLayout, blocks_of, is_multi_stack, layout_of, resolve_stack, stacks_of
from .projections import in_features, keep_inputs, keep_outputs

PER_LAYER_FIELD = "intermediate_sizes"


def ffn_width(block: nn.Module, layout: BlockLayout) -> int:
    return in_features(block.get_submodule(layout.ffn_out), transposed=layout.transposed)


def prune_ffn_(
    model: nn.Module, amount: float | int | Mapping[int, float | int], *, stack: str | None = None
) -> nn.Module:
    """Remove FFN neurons in place. ``amount``: a fraction in [0, 1) of each layer's neurons, a number of neurons
    per layer, or ``{layer: fraction or number}`` for chosen layers. An encoder-decoder needs ``stack="encoder"`` or
    ``"decoder"``. Returns ``model``."""
    stack = resolve_stack(model, stack, "prune_ffn_")
    layout = layout_of(model, stack)
    blocks = blocks_of(model, stack)
    where = f"the {stack}" if stack else "the model"
    per_layer = dict(amount) if isinstance(amount, Mapping) else {i: amount for i in range(len(blocks))}
    keep: dict[int, torch.Tensor] = {}
    for layer, how_many in per_layer.items():  # validate every layer before changing any
        if not isinstance(layer, Integral) or not 0 <= layer < len(blocks):
            raise ValueError(f"prune_ffn_: layer {layer!r} does not exist; {where} has layers 0..{len(blocks) - 1}.")
        width = ffn_width(blocks[layer], layout)
        removed = _count(how_many, width, layer)
        if removed:
            keep[layer] = _strongest(blocks[layer], layout, width - removed)
    for layer, index in keep.items():
        resize_ffn(blocks[layer], layout, index)
    record_ffn_sizes(model)
    return model


def resize_ffn(block: nn.Module, layout: BlockLayout, index: torch.Tensor) -> None:
    """Keep the FFN neurons ``index`` of one block."""
    for path in layout.ffn_in:
        keep_outputs(block.get_submodule(path), index, transposed=layout.transposed, path=path)
    keep_inputs(block.get_submodule(layout.ffn_out), index, transposed=layout.transposed, path=layout.ffn_out)


def record_ffn_sizes(model: nn.Module) -> None:
    """Write the FFN widths into the config: per stack, the architecture's field when uniform, else
    ``intermediate_sizes`` (a list for a single-stack model, ``{stack: list}`` for an encoder-decoder)."""
    config = model.config
    uneven = {}
    for stack, layout in stacks_of(model).items():
        widths = [ffn_width(block, layout) for block in blocks_of(model, stack)]
        if len(set(widths)) == 1:
            setattr(config, layout.intermediate_field, widths[0])
        else:
            uneven[stack] = widths
    if not uneven:
        config.__dict__.pop(PER_LAYER_FIELD, None)
    else:
        setattr(config, PER_LAYER_FIELD, uneven if is_multi_stack(model) else uneven[SINGLE])


def ffn_widths_from_config(model: nn.Module) -> dict[str, list[int]]:
    """config.intermediate_sizes as {stack: widths} (stacks of uniform width are absent)."""
    raw = getattr(model.config, PER_LAYER_FIELD, None)
    if not raw:
        return {}
    stacks = stacks_of(model)
    if SINGLE in stacks:
        by_stack = {SINGLE: raw}
    elif isinstance(raw, Mapping) and set(raw) <= set(stacks):
        by_stack = dict(raw)
    else:
        raise ValueError(
            f"config.{PER_LAYER_FIELD} of a {model.config.model_type} model maps a stack "
            f"({', '.join(repr(s) for s in stacks)}) to one FFN width per layer; found {raw!r}. "
            "Re-save the model with save_pretrained after prune_ffn_."
        )
    for stack, widths in by_stack.items():
        count = len(blocks_of(model, stack))
        if not isinstance(widths, list) or len(widths) < count:
            name = f"{PER_LAYER_FIELD}[{stack!r}]" if stack else PER_LAYER_FIELD
            raise ValueError(
                f"config.{name} should list one FFN width per layer ({count}), found {widths!r}. "
                "Re-save the model with save_pretrained after prune_ffn_."
            )
    return by_stack


def _count(how_many: float | int, width: int, layer: int) -> int:
    if isinstance(how_many, bool) or not isinstance(how_many, Real):
        raise TypeError(f"prune_ffn_: amount for layer {layer} should be a fraction or a count, found {how_many!r}.")
    if isinstance(how_many, Integral):
        removed = int(how_many)
    elif 0.0 <= how_many < 1.0:
        removed = round(how_many * width)
    else:
        raise ValueError(
            f"prune_ffn_: a fraction must be in [0, 1), found {how_many} for layer {layer}; "
            "pass an int to remove a number of neurons."
        )
    if not 0 <= removed < width:
        raise ValueError(
            f"prune_ffn_: layer {layer} has {width} FFN neurons, so between 0 and {width - 1} can be removed; "
            f"asked to remove {removed}."
        )
    return removed


def _strongest(block: nn.Module, layout: BlockLayout, count: int) -> torch.Tensor:
    """Indices (ascending) of the ``count`` highest-scoring neurons."""
    in_dim, out_dim = (0, 1) if layout.transposed else (1, 0)
    score = None
    with torch.no_grad():
        for path in layout.ffn_in:
            norms = block.get_submodule(path).weight.float().norm(dim=in_dim)
            score = norms if score is None else score * norms
        score = score * block.get_submodule(layout.ffn_out).weight.float().norm(dim=out_dim)
    order = torch.argsort(score, descending=True, stable=True)[:count]
    return order.sort().values
