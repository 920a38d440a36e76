"""Rebuild a surgically changed model's shapes from its config, before the weights are read.

``from_pretrained`` builds the model from the config on the meta device, then calls ``apply_config_structure``:
per-layer FFN widths (``intermediate_sizes``) and pruned heads (``pruned_heads``) are applied to the still-empty
modules, stack by stack for an encoder-decoder, so the checkpoint's smaller tensors fit. Entries for layers beyond
a stack's layer count (``num_hidden_layers`` lowered at load time to read fewer layers) are dropped from the config.
"""

from __future__ import annotations

import torch
from torch import nn

from .ffn import PER_LAYER_FIELD, ffn_widths_from_config, ffn_width, record_ffn_sizes, resize_ffn
from .heads import prune_heads_, pruned_heads_from_config
from .layout import SINGLE, blocks_of, layout_of


def needs_rebuild(config) -> bool:
    return bool(getattr(config, "pruned_heads", None) or getattr(config, PER_LAYER_FIELD, None))


def apply_config_structure(model: nn.Module) -> None:
    config = model.config
    widths_by_stack = ffn_widths_from_config(model)
    for stack, widths in widths_by_stack.items():
        layout = layout_of(model, stack)
        for block, width in zip(blocks_of(model, stack), widths):
            if ffn_width(block, layout) != width:
                resize_ffn(block, layout, torch.arange(int(width)))  # values come from the checkpoint
    if widths_by_stack:
        record_ffn_sizes(model)
    pruned = pruned_heads_from_config(model)
    config.pruned_heads = {}
    for (stack, attention), per_layer in pruned.items():
        count = len(blocks_of(model, stack))
        per_layer = {layer: heads for layer, heads in per_layer.items() if layer < count}
        if per_layer:
            prune_heads_(model, per_layer, stack=None if stack == SINGLE else stack, attention=attention)
