"""Building blocks shared by several architectures: activations, the padding mask and attention, packing of
padded batches, and input checks. (The task heads and their losses are in ``task_heads.py``.)

Only what more than one model file needs lives here; everything architecture-specific stays in its model file.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

# --- activations ---------------------------------------------------------------------------------
# Plain functions (they hold no weights), spelled and computed as transformers' ACT2FN entries so that
# a config's ``hidden_act`` gives bit-for-bit the same numbers.

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation, written out as the original BERT/GPT code did (matches transformers' gelu_new)."""
    return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def gelu_pytorch_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


ACT2FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # exact (erf)
    "gelu_python": gelu_python,
    "gelu_new": gelu_new,
    "gelu_fast": gelu_fast,
    "gelu_pytorch_tanh": gelu_pytorch_tanh,
    "quick_gelu": quick_gelu,
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": _linear,
}


def get_activation(name: str | Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation a config names (``hidden_act``/``activation``); a callable is returned unchanged."""
    if callable(name):
        return name
    try:
        return ACT2FN[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {name!r} in the model config (hidden_act/activation). "
            f"Supported: {', '.join(sorted(ACT2FN))}."
        ) from None


# --- attention -----------------------------------------------------------------------------------


def padding_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Turn a 2-D keep/pad mask (1 = token, 0 = padding) into an additive mask for attention, or None.

    Built once per forward and shared by every layer. Returns None when nothing is padded, so attention runs
    unmasked (the fastest kernels). Otherwise returns a ``(batch, 1, 1, keys)`` tensor in ``dtype`` holding 0 for
    tokens and the most negative finite value for padding. A sequence that is entirely padding gets no mask at
    all (its outputs are meaningless either way): a row of only masked scores would make softmax produce NaN.
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask should have shape (batch_size, sequence_length), found shape {tuple(attention_mask.shape)}."
        )
    keep = attention_mask.bool()
    # One host check per forward (not per layer): an unpadded batch skips masking entirely.
    if bool(keep.all()):
        return None
    keep = keep | ~keep.any(dim=-1, keepdim=True)
    mask = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    mask.masked_fill_(~keep, torch.finfo(dtype).min)
    return mask[:, None, None, :]


class PackedBatch:
    """The real (non-padding) tokens of a padded batch, as rows of a flat ``(tokens, ...)`` tensor.

    The linear layers (nearly all of an encoder's work) then skip padding; attention unpacks its inputs back to
    ``(batch, length, ...)`` for the masked kernel. Padding positions are never computed, so this is only used
    where their outputs are never returned (heads that read the first token).
    """

    def __init__(self, keep: torch.Tensor) -> None:
        self.batch, self.length = keep.shape
        self.index = keep.reshape(-1).nonzero().squeeze(1)
        lengths = keep.sum(dim=1)
        self.first = torch.cumsum(lengths, dim=0) - lengths  # packed row of each sequence's position 0

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.batch * self.length, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros((self.batch * self.length, *x.shape[1:]))
        out.index_copy_(0, self.index, x)
        return out.view(self.batch, self.length, *x.shape[1:])


# Packing costs about 1% of the forward in gathers and scatters (measured, DistilBERT-base, batch 32), so it
# pays from a few percent of padding on.
_MIN_PADDING_TO_PACK = 0.05


def pack_for_first_token(attention_mask: torch.Tensor | None) -> PackedBatch | None:
    """A PackedBatch when padding is worth skipping and every sequence starts with a real token, else None."""
    if attention_mask is None:
        return None
    keep = attention_mask.bool()
    real = int(keep.sum())
    if real > (1.0 - _MIN_PADDING_TO_PACK) * keep.numel() or not bool(keep[:, 0].all()):
        return None
    return PackedBatch(keep)


def first_tokens(hidden_states: torch.Tensor, packing: PackedBatch | None) -> torch.Tensor:
    """The position-0 hidden state of each sequence, as ``(batch, 1, hidden)``."""
    if packing is None:
        return hidden_states[:, :1]
    return hidden_states.index_select(0, packing.first).unsqueeze(1)


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    dropout_p: float = 0.0,
    output_attentions: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention over ``(batch, heads, seq, head_dim)`` tensors.

    Returns the context as ``(batch, seq, heads * head_dim)`` and, only when ``output_attentions`` is set, the
    attention probabilities ``(batch, heads, seq, seq)`` (that path multiplies out the scores itself, since
    the fused kernel never materialises them).
    """
    batch, heads, length, head_dim = query.shape
    if output_attentions:
        scores = torch.matmul(query, key.transpose(-1, -2)) * (head_dim**-0.5)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(F.dropout(probs, p=dropout_p) if dropout_p else probs, value)
    else:
        probs = None
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout_p)
    return context.transpose(1, 2).reshape(batch, length, heads * head_dim), probs


# --- input checks --------------------------------------------------------------------------------


def check_inputs(
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    *,
    max_length: int,
    hidden_size: int,
) -> tuple[int, int]:
    """Validate the usual encoder inputs once per forward; return (batch_size, sequence_length).

    ``max_length`` is the longest sequence the position embeddings can index.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError(
            "Pass exactly one of input_ids or inputs_embeds "
            f"(got {'both' if input_ids is not None else 'neither'})."
        )
    if input_ids is not None:
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(
                f"input_ids should be a torch.Tensor of token ids, found {type(input_ids).__name__}. "
                "Call the tokenizer with return_tensors='pt'."
            )
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(
                f"input_ids should hold integer token ids (torch.long), found dtype {input_ids.dtype}. "
                "Token ids come from the tokenizer; embeddings go in inputs_embeds."
            )
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids should have shape (batch_size, sequence_length), found shape {tuple(input_ids.shape)}. "
                "For a single sequence add a batch dimension (input_ids[None]) or use return_tensors='pt'."
            )
        batch, length = input_ids.shape
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != hidden_size:
            raise ValueError(
                f"inputs_embeds should have shape (batch_size, sequence_length, {hidden_size}), "
                f"found shape {tuple(inputs_embeds.shape)}."
            )
        batch, length = inputs_embeds.shape[:2]
    if length > max_length:
        raise ValueError(
            f"The input has {length} tokens, but this model accepts at most {max_length} "
            f"(max_position_embeddings). Truncate it, e.g. tokenizer(..., truncation=True, max_length={max_length})."
        )
    if attention_mask is not None and tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"attention_mask should have shape (batch_size, sequence_length) = {(batch, length)}, "
            f"found {tuple(attention_mask.shape)}."
        )
    return batch, length
