"""Rebuild a surgically changed model's shapes from its config, before the weights are read.

``from_pretrained`` builds the model from the config on the meta device, then calls ``apply_config_structure``:
per-layer FFN widths (``intermediate_sizes``) and pruned heads (``pruned_heads``) are applied to the still-empty
modules, so the checkpoint's smaller tensors fit. Entries for layers beyond ``num_hidden_layers`` (lowered at load
time to read fewer layers) are dropped from the config.
"""

from __future__ import annotations

import torch
from torch import nn

from .ffn import PER_LAYER_FIELD, ffn_width, record_ffn_sizes, resize_ffn
from .heads import prune_heads_, pruned_heads_from_config
from .layout import blocks_of, layout_of


def needs_rebuild(config) -> bool:
    return bool(getattr(config, "pruned_heads", None) or getattr(config, PER_LAYER_FIELD, None))


def apply_config_structure(model: nn.Module) -> None:
    config = model.config
    layout = layout_of(model)
    blocks = blocks_of(model)
    widths = getattr(config, PER_LAYER_FIELD, None)
    if widths:
        if not isinstance(widths, list) or len(widths) < len(blocks):
            raise ValueError(
                f"config.{PER_LAYER_FIELD} should list one FFN width per layer ({len(blocks)}), found {widths!r}. "
                "Re-save the model with save_pretrained after prune_ffn_."
            )
        for block, width in zip(blocks, widths):
            if ffn_width(block, layout) != width:
                resize_ffn(block, layout, torch.arange(int(width)))  # values come from the checkpoint
        record_ffn_sizes(model)
    pruned = {layer: heads for layer, heads in pruned_heads_from_config(config).items() if layer < len(blocks)}
    config.pruned_heads = {}
    if pruned:
        prune_heads_(model, pruned)
