"""Building blocks shared by several architectures: activations, the padding mask, attention.

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
