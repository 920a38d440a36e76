"""Model surgery: cut layers, attention heads and FFN neurons, resize the vocabulary; the config follows.

    from hugkit import drop_layers_, prune_heads_, prune_ffn_
    drop_layers_(model, keep=range(6)); prune_heads_(model, {0: [1, 2]}); prune_ffn_(model, 0.25)
    model.resize_token_embeddings(50304)
    model.save_pretrained("small")  # reloads with the same shapes: the config records every change

One block protocol for every architecture: ``layout.py`` holds one row per ``model_type`` naming the block list,
the attention module (and the attribute holding its head counts), the q/k/v (or fused qkv) and output projections,
and the FFN input (gate/up) and output (down) projections. The operations are written once against that
description. A table rather than a method on each model: the names are the checkpoints' own, the model files stay
about their forward math, and an architecture is supported by adding one row, including files owned by others.

Each operation changes the modules in place, validates the whole request before changing anything, and writes the
config in the same call (``num_hidden_layers``, ``pruned_heads``, FFN widths, ``layer_types``). ``from_pretrained``
replays ``pruned_heads`` and per-layer FFN widths on the meta device before reading weights (``rebuild.py``).
"""

from .drop import drop_layers_
from .ffn import prune_ffn_
from .heads import prune_heads_

__all__ = ["drop_layers_", "prune_heads_", "prune_ffn_"]
