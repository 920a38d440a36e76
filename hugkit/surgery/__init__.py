"""Model surgery: cut layers, attention heads and FFN neurons, resize the vocabulary; the config follows.

    from hugkit import drop_layers_, prune_heads_, prune_ffn_
    drop_layers_(model, keep=range(6)); prune_heads_(model, {0: [1, 2]}); prune_ffn_(model, 0.25)
    model.resize_token_embeddings(50304)
    model.save_pretrained("small")  # reloads with the same shapes: the config records every change

    # An encoder-decoder (BART) names the stack, and the attention module where a block has several:
    drop_layers_(bart, keep=[0, 2], stack="decoder")
    prune_heads_(bart, {0: [1]}, stack="decoder", attention="encoder_attn")
    prune_ffn_(bart, 0.25, stack="encoder")

One block protocol for every architecture: ``layout.py`` holds one row per ``model_type`` naming the block list,
the attention module (and the attribute holding its head counts), the q/k/v (or fused qkv) and output projections,
and the FFN input (gate/up) and output (down) projections. An encoder-decoder's row holds one such description per
named stack ("encoder", "decoder"), and a block may have several attention modules (BART's decoder: ``self_attn`` and
``encoder_attn``). The operations are written once against that description. A table rather than a method on each
model: the names are the checkpoints' own, the model files stay about their forward math, and an architecture is
supported by adding one row, including files owned by others.

Each operation changes the modules in place, validates the whole request before changing anything, and writes the
config in the same call (``num_hidden_layers``, ``pruned_heads``, FFN widths, ``layer_types``; per stack for an
encoder-decoder: ``encoder_layers``/``decoder_layers``, ``encoder_ffn_dim``/``decoder_ffn_dim``, ``pruned_heads``
keyed by ``"stack.attention"``, ``intermediate_sizes`` keyed by stack). ``from_pretrained`` replays ``pruned_heads``
and per-layer FFN widths on the meta device before reading weights (``rebuild.py``).
"""

from .drop import drop_layers_
from .ffn import prune_ffn_
from .heads import prune_heads_

__all__ = ["drop_layers_", "prune_heads_", "prune_ffn_"]
