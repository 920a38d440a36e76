"""drop_layers_: keep a subset of the transformer blocks, renumbered 0..k-1, with the config rewritten to match.

Everything indexed by layer moves with the blocks: ``num_hidden_layers``, ``config.pruned_heads`` (re-keyed),
per-layer FFN widths, ``layer_types`` (Qwen's sliding/full pattern is written out explicitly, since the
``max_window_layers`` rule would give a different pattern for the renumbered layers), the base model's per-layer
lists (sliding windows), and each block's ``layer_idx`` (its slot in the KV cache).

An encoder-decoder (BART) cuts one stack per call (``stack="encoder"|"decoder"``); that stack's layer count field
(``encoder_layers``, ``decoder_layers``) and its records follow, the other stack is untouched.
"""

from __future__ import annotations

from numbers import Integral
from typing import Iterable

from torch import nn

from .ffn import record_ffn_sizes
from .heads import record_pruned_heads
from .layout import SINGLE, blocks_of, layout_of, resolve_stack


def drop_layers_(
    model: nn.Module,
    keep: Iterable[int] | None = None,
    *,
    drop: Iterable[int] | None = None,
    stack: str | None = None,
) -> nn.Module:
    """Keep the blocks ``keep`` (or remove the blocks ``drop``), in their original order. An encoder-decoder needs
    ``stack="encoder"`` or ``"decoder"``. Returns ``model``."""
    if (keep is None) == (drop is None):
        raise TypeError("drop_layers_ takes exactly one of keep= or drop=, e.g. drop_layers_(model, keep=range(6)).")
    stack = resolve_stack(model, stack, "drop_layers_")
    layout = layout_of(model, stack)
    blocks = blocks_of(model, stack)
    count = len(blocks)
    where = f"the {stack}" if stack else "the model"
    chosen = _indices(keep if keep is not None else drop, count, "keep" if keep is not None else "drop", where)
    kept = chosen if keep is not None else [i for i in range(count) if i not in set(chosen)]
    if not kept:
        raise ValueError(f"drop_layers_ would remove all {count} layers of {where}; keep at least one.")
    config = model.config
    if getattr(config, "scale_attn_by_inverse_layer_idx", False) and kept != list(range(len(kept))):
        raise NotImplementedError(
            "This GPT-2 config has scale_attn_by_inverse_layer_idx=True: each layer's attention scale depends on its "
            "index, so only a prefix of the layers can be kept (e.g. keep=range(k))."
        )

    layer_types = _layer_types(model) if stack == SINGLE else None
    base = getattr(model, "base_model", model)
    parent_path, _, name = layout.layers.rpartition(".")
    parent = base.get_submodule(parent_path) if parent_path else base
    setattr(parent, name, nn.ModuleList(blocks[i] for i in kept))
    for new_index, block in enumerate(getattr(parent, name)):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    for attr in layout.per_layer_attrs:
        values = getattr(base, attr, None)
        if isinstance(values, list):
            setattr(base, attr, [values[i] for i in kept])

    setattr(config, layout.layers_field, len(kept))
    if layer_types is not None:
        config.layer_types = [layer_types[i] for i in kept]
    record_pruned_heads(model)
    record_ffn_sizes(model)
    return model


def _indices(values: Iterable[int], count: int, what: str, where: str) -> list[int]:
    if isinstance(values, Integral):
        raise TypeError(f"drop_layers_: {what}= takes a list or range of layer indices, e.g. {what}=[{values}].")
    indices = list(values)
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, Integral) or not 0 <= i < count]
    if bad:
        raise ValueError(
            f"drop_layers_: layer {bad[0]!r} in {what}= does not exist; {where} has layers 0..{count - 1}."
        )
    if len(set(indices)) != len(indices):
        raise ValueError(f"drop_layers_: {what}= lists a layer twice: {indices}.")
    return sorted(int(i) for i in indices)


def _layer_types(model: nn.Module) -> list[str] | None:
    """The full per-layer attention pattern when the config has a ``layer_types`` field, else None."""
    config = model.config
    if "layer_types" not in config.__dict__:
        return None
    if config.layer_types:
        return list(config.layer_types)
    windows = getattr(getattr(model, "base_model", model), "layer_windows", None)
    if windows is None:
        return None
    return ["sliding_attention" if window is not None else "full_attention" for window in windows]
