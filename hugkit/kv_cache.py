"""Key/value caches for decoders, and the attention masks that go with them.

Two self-attention caches share one small interface (``update``, ``get_seq_length``, ``max_cache_len``,
``reorder_cache``):

- ``StaticCache`` preallocates ``(batch, kv_heads, max_cache_len, head_dim)`` per layer (kv_heads may differ by
  layer after head pruning) and writes new keys in place at ``cache_position``. Shapes never change between decode steps, so a decode step can be ``torch.compile``d
  (or captured in a CUDA graph) without recompiling; generation uses it.
- ``DynamicCache`` grows by concatenation; it is what ``model(..., use_cache=True)`` returns when no cache was
  passed, like transformers.

An encoder-decoder wraps one of them in ``EncoderDecoderCache``, which adds the cross-attention keys and values:
they depend only on the encoder output, so they are computed on the first decoder call and reused by every step.

A slot of the cache is a *cache index* (0, 1, 2, ... in the order tokens were fed), not a position id: with left
padding the two differ. Causality and sliding windows are defined on cache indices, as transformers does.
"""

from __future__ import annotations

import torch


class DynamicCache:
    """Per-layer keys and values that grow along the sequence axis."""

    max_cache_len = None

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(
        self, layer_idx: int, key: torch.Tensor, value: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx == len(self.keys):
            self.keys.append(key)
            self.values.append(value)
        else:
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key], dim=2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value], dim=2)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def reorder_cache(self, rows: torch.Tensor) -> None:
        """Row ``i`` continues old row ``rows[i]`` (beam search keeps the best beams)."""
        self.keys = [k.index_select(0, rows.to(k.device)) for k in self.keys]
        self.values = [v.index_select(0, rows.to(v.device)) for v in self.values]

    def kv_length(self, new_tokens: int) -> int:
        """How many key slots attention sees once ``new_tokens`` more are written."""
        return self.get_seq_length() + new_tokens

    def __len__(self) -> int:
        return len(self.keys)


class StaticCache:
    """Preallocated keys and values: ``update`` writes at ``cache_position`` and returns the whole buffers.

    Attention then runs over all ``max_cache_len`` slots; slots not yet written are masked out (see
    ``causal_mask``), which keeps every shape fixed from the first decode step to the last.
    """

    def __init__(
        self,
        *,
        num_layers: int,
        batch_size: int,
        num_kv_heads: int | list[int],
        head_dim: int,
        max_cache_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        # One head count per layer where head pruning left layers with different counts.
        heads = [num_kv_heads] * num_layers if isinstance(num_kv_heads, int) else list(num_kv_heads)
        if len(heads) != num_layers:
            raise ValueError(f"num_kv_heads lists {len(heads)} layers, but num_layers is {num_layers}.")
        shapes = [(batch_size, n, max_cache_len, head_dim) for n in heads]
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for shape in shapes]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for shape in shapes]
        self.max_cache_len = max_cache_len
        # Tokens written so far; kept on the host so reading it never synchronises with the device.
        self.seen_tokens = 0

    @classmethod
    def for_model(cls, model, batch_size: int, max_cache_len: int) -> "StaticCache":
        """A cache shaped for ``model`` (any hugkit causal LM: it reports ``kv_cache_shape()``)."""
        num_layers, num_kv_heads, head_dim = model.kv_cache_shape()
        return cls(
            num_layers=num_layers, batch_size=batch_size, num_kv_heads=num_kv_heads, head_dim=head_dim,
            max_cache_len=max_cache_len, dtype=model.dtype, device=model.device,
        )

    def update(
        self, layer_idx: int, key: torch.Tensor, value: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if cache_position is None:
            raise ValueError("StaticCache.update needs cache_position: the slots to write the new keys into.")
        self.keys[layer_idx].index_copy_(2, cache_position, key)
        self.values[layer_idx].index_copy_(2, cache_position, value)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self) -> int:
        return self.seen_tokens

    def kv_length(self, new_tokens: int) -> int:
        if self.seen_tokens + new_tokens > self.max_cache_len:
            raise ValueError(
                f"The static KV cache holds {self.max_cache_len} tokens, but {self.seen_tokens} are stored and "
                f"{new_tokens} more were fed. Build the cache with a larger max_cache_len."
            )
        return self.max_cache_len

    def reset(self) -> None:
        for tensor in (*self.keys, *self.values):
            tensor.zero_()
        self.seen_tokens = 0

    def reorder_cache(self, rows: torch.Tensor) -> None:
        """Row ``i`` continues old row ``rows[i]``; in place, so the buffers keep their identity for compiled steps."""
        for tensor in (*self.keys, *self.values):
            tensor.copy_(tensor.index_select(0, rows.to(tensor.device)))

    def __len__(self) -> int:
        return len(self.keys)


class EncoderDecoderCache:
    """The decoder's self-attention cache (static or dynamic) plus the cross-attention keys/values per layer.

    A decoder layer calls ``update`` for its self-attention (delegated to ``self_attention_cache``) and
    ``cross_attention(layer_idx, compute)`` for its cross-attention: ``compute()`` (the k/v projections of the
    encoder output, returning ``(key, value)``) runs on the first call only. Everything that reads the sequence
    length (``get_seq_length``, ``kv_length``, ``max_cache_len``, ``seen_tokens``) refers to the self-attention
    cache, so ``decoder_inputs`` and ``causal_mask`` treat both kinds alike.
    """

    def __init__(self, self_attention_cache: "StaticCache | DynamicCache | None" = None) -> None:
        self.self_attention_cache = self_attention_cache if self_attention_cache is not None else DynamicCache()
        self.cross_keys: dict[int, torch.Tensor] = {}
        self.cross_values: dict[int, torch.Tensor] = {}

    @classmethod
    def for_model(cls, model, batch_size: int, max_cache_len: int) -> "EncoderDecoderCache":
        """A static self-attention cache shaped by ``model.kv_cache_shape()`` (the decoder's layers, heads, head size)."""
        return cls(StaticCache.for_model(model, batch_size, max_cache_len))

    # --- self-attention: delegated ----------------------------------------------------------------
    def update(
        self, layer_idx: int, key: torch.Tensor, value: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.self_attention_cache.update(layer_idx, key, value, cache_position)

    def get_seq_length(self) -> int:
        return self.self_attention_cache.get_seq_length()

    def kv_length(self, new_tokens: int) -> int:
        return self.self_attention_cache.kv_length(new_tokens)

    @property
    def max_cache_len(self) -> int | None:
        return self.self_attention_cache.max_cache_len

    @property
    def seen_tokens(self) -> int:
        return self.self_attention_cache.get_seq_length()

    @seen_tokens.setter
    def seen_tokens(self, value: int) -> None:
        self.self_attention_cache.seen_tokens = value

    def __len__(self) -> int:
        return len(self.self_attention_cache)

    # --- cross-attention: computed once -------------------------------------------------------------
    def cross_attention(self, layer_idx: int, compute) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's cross-attention ``(key, value)``: from the cache, or ``compute()`` stored on first use."""
        if layer_idx not in self.cross_keys:
            self.cross_keys[layer_idx], self.cross_values[layer_idx] = compute()
        return self.cross_keys[layer_idx], self.cross_values[layer_idx]

    def reorder_cache(self, rows: torch.Tensor) -> None:
        """Reorder the self-attention rows. Cross-attention rows are not moved: beam search reorders within each
        input's group of beams, whose encoder outputs (and so cross keys/values) are identical."""
        self.self_attention_cache.reorder_cache(rows)


def _self_attention_cache(cache):
    return getattr(cache, "self_attention_cache", cache)


def causal_mask(
    keep: torch.Tensor | None,
    cache_position: torch.Tensor,
    kv_length: int,
    dtype: torch.dtype,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """Additive attention mask ``(batch or 1, 1, queries, kv_length)``: 0 where a query may look, dtype-min elsewhere.

    ``keep`` is the 2-D padding mask over key slots (1 = token, 0 = padding), at least ``kv_length`` long or None.
    A query at cache index ``q`` sees key ``k`` when ``k <= q``, the key is not padding, and, with a sliding
    window ``w``, ``k > q - w``. Only tensor ops: no host synchronisation, fixed shapes for fixed inputs.
    A finite minimum (not -inf) keeps rows that see nothing (padding queries) free of NaN.
    """
    slots = torch.arange(kv_length, device=cache_position.device)
    allowed = slots[None, :] <= cache_position[:, None]
    if sliding_window is not None:
        allowed = allowed & (slots[None, :] > cache_position[:, None] - sliding_window)
    allowed = allowed[None, None]
    if keep is not None:
        allowed = allowed & keep[:, None, None, :kv_length].bool()
    mask = torch.zeros(allowed.shape, dtype=dtype, device=cache_position.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids from a left-padded mask, as transformers' generate makes them (padding gets position 1)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill_(attention_mask == 0, 1)


def decoder_inputs(
    cache: StaticCache | DynamicCache | None,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    cache_position: torch.Tensor | None,
    length: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Fill in what a decoder forward needs: ``(cache_position, position_ids, keep mask, kv_length)``.

    ``attention_mask`` covers past and new tokens (transformers' convention). When ``cache_position`` is None the
    slots follow the tokens already cached and a static cache's count advances here; a caller that passes
    ``cache_position`` (the generation loop, or a compiled decode step) keeps that count itself, so nothing here
    reads a Python counter that would make ``torch.compile`` recompile every step.
    """
    if cache_position is None:
        past = cache.get_seq_length() if cache is not None else 0
        cache_position = torch.arange(past, past + length, device=device)
        if isinstance(_self_attention_cache(cache), StaticCache):
            cache.kv_length(length)  # raises when the cache would overflow
            cache.seen_tokens += length
    if cache is None:
        kv_length = length
    elif cache.max_cache_len is not None:
        kv_length = cache.max_cache_len
    else:
        kv_length = cache.get_seq_length() + length
    keep = attention_mask
    if position_ids is None:
        position_ids = positions_from_mask(keep)[:, -length:] if keep is not None else cache_position[None]
    if keep is not None and keep.shape[-1] < kv_length:
        keep = torch.nn.functional.pad(keep, (0, kv_length - keep.shape[-1]))
    return cache_position, position_ids, keep, kv_length
