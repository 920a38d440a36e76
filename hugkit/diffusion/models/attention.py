"""Attention and the transformer block of Stable Diffusion's UNet (and the VAE's mid-block attention).

Weights are named as diffusers names them (``to_q``, ``to_k``, ``to_v``, ``to_out.0``, ``group_norm``,
``norm_cross``; ``ff.net.0.proj`` and ``ff.net.2`` in the feed-forward), so checkpoints load unchanged.
Attention runs through ``F.scaled_dot_product_attention``, which keeps its softmax accumulators in fp32, so
``upcast_attention`` / ``upcast_softmax`` are recorded for parity but need no extra casts (diffusers' default
processor does the same). ``set_attention_slice`` computes attention a few (batch x head) rows at a time, which
bounds peak memory for large images without changing the result.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention over tokens ``(batch, tokens, query_dim)`` or feature maps ``(batch, C, H, W)``.

    With ``encoder_hidden_states`` it is cross-attention (keys and values from the text), else self-attention.
    ``norm_num_groups`` adds a GroupNorm over channels before the projections, ``residual_connection`` adds the
    input back, and the result is divided by ``rescale_output_factor`` (both used by the VAE's attention).
    """

    def __init__(
        self,
        query_dim: int,
        cross_attention_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        bias: bool = False,
        upcast_attention: bool = False,
        upcast_softmax: bool = False,
        cross_attention_norm: str | None = None,
        cross_attention_norm_num_groups: int = 32,
        norm_num_groups: int | None = None,
        spatial_norm_dim: int | None = None,
        out_bias: bool = True,
        scale_qk: bool = True,
        eps: float = 1e-5,
        rescale_output_factor: float = 1.0,
        residual_connection: bool = False,
        out_dim: int | None = None,
        _from_deprecated_attn_block: bool = False,
    ) -> None:
        super().__init__()
        if spatial_norm_dim is not None:
            raise ValueError(
                f"Attention with spatial_norm_dim={spatial_norm_dim} (MoVQ's spatial norm) is not supported; "
                "Stable Diffusion models use spatial_norm_dim=None."
            )
        self.query_dim = query_dim
        self.heads = out_dim // dim_head if out_dim is not None else heads
        self.dim_head = dim_head
        self.inner_dim = out_dim if out_dim is not None else dim_head * heads
        self.out_dim = out_dim if out_dim is not None else query_dim
        self.is_cross_attention = cross_attention_dim is not None
        self.cross_attention_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.upcast_attention = upcast_attention
        self.upcast_softmax = upcast_softmax
        self.rescale_output_factor = rescale_output_factor
        self.residual_connection = residual_connection
        self.scale_qk = scale_qk
        self.scale = dim_head**-0.5 if scale_qk else 1.0
        self._from_deprecated_attn_block = _from_deprecated_attn_block
        # set_attention_slice splits the (batch * heads) rows; ``heads`` is the largest useful slice.
        self.sliceable_head_dim = heads
        self.slice_size: int | None = None

        self.group_norm = (
            nn.GroupNorm(num_groups=norm_num_groups, num_channels=query_dim, eps=eps, affine=True)
            if norm_num_groups is not None
            else None
        )
        if cross_attention_norm is None:
            self.norm_cross = None
        elif cross_attention_norm == "layer_norm":
            self.norm_cross = nn.LayerNorm(self.cross_attention_dim)
        elif cross_attention_norm == "group_norm":
            self.norm_cross = nn.GroupNorm(
                num_groups=cross_attention_norm_num_groups, num_channels=self.cross_attention_dim, eps=1e-5
            )
        else:
            raise ValueError(
                f"cross_attention_norm must be None, 'layer_norm' or 'group_norm', got {cross_attention_norm!r}."
            )

        self.to_q = nn.Linear(query_dim, self.inner_dim, bias=bias)
        self.to_k = nn.Linear(self.cross_attention_dim, self.inner_dim, bias=bias)
        self.to_v = nn.Linear(self.cross_attention_dim, self.inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(self.inner_dim, self.out_dim, bias=out_bias), nn.Dropout(dropout)])

    def set_attention_slice(self, slice_size: int | None) -> None:
        """Compute attention ``slice_size`` (batch x head) rows at a time (None: all at once)."""
        if slice_size is not None:
            if isinstance(slice_size, bool) or not isinstance(slice_size, int) or slice_size < 1:
                raise ValueError(f"slice_size must be a positive int or None, got {slice_size!r}.")
            if slice_size > self.sliceable_head_dim:
                raise ValueError(
                    f"slice_size {slice_size} is larger than this layer's {self.sliceable_head_dim} heads; "
                    f"pass at most {self.sliceable_head_dim}."
                )
        self.slice_size = slice_size

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **cross_attention_kwargs: Any,
    ) -> torch.Tensor:
        # diffusers' processors accept (and ignore) a deprecated LoRA ``scale``; anything else is a real option
        # hugkit does not have, so it must not be dropped silently.
        unknown = sorted(k for k in cross_attention_kwargs if k != "scale")
        if unknown:
            raise ValueError(
                f"Attention got unsupported cross_attention_kwargs {unknown}; hugkit's attention takes none "
                "(custom attention processors, IP-Adapter and GLIGEN are not supported)."
            )
        residual = hidden_states
        is_feature_map = hidden_states.ndim == 4
        if is_feature_map:
            batch, channels, height, width = hidden_states.shape
            if self.group_norm is not None:
                # GroupNorm over (B, C, H, W) equals GroupNorm over the (B, C, H*W) token view; doing it first
                # avoids a transpose there and back.
                hidden_states = self.group_norm(hidden_states)
            hidden_states = hidden_states.reshape(batch, channels, height * width).transpose(1, 2)
        elif hidden_states.ndim == 3:
            if self.group_norm is not None:
                hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        else:
            raise ValueError(
                f"Attention expects (batch, tokens, {self.query_dim}) or (batch, {self.query_dim}, height, width) "
                f"input, got shape {tuple(hidden_states.shape)}."
            )
        if hidden_states.shape[-1] != self.query_dim:
            raise ValueError(
                f"Attention expects {self.query_dim} input channels, got {hidden_states.shape[-1]} "
                f"(input shape {tuple(residual.shape)})."
            )

        if encoder_hidden_states is None:
            context = hidden_states
        else:
            if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[-1] != self.cross_attention_dim:
                raise ValueError(
                    f"encoder_hidden_states must be (batch, tokens, {self.cross_attention_dim}), got shape "
                    f"{tuple(encoder_hidden_states.shape)}; its width must match the model's cross_attention_dim."
                )
            context = encoder_hidden_states
            if isinstance(self.norm_cross, nn.GroupNorm):
                context = self.norm_cross(context.transpose(1, 2)).transpose(1, 2)
            elif self.norm_cross is not None:
                context = self.norm_cross(context)

        batch = hidden_states.shape[0]
        if context.shape[0] != batch:
            raise ValueError(
                f"encoder_hidden_states has batch {context.shape[0]} but the hidden states have batch {batch}; "
                "pass one text embedding per sample (repeat it for classifier-free guidance)."
            )
        query = self._split_heads(self.to_q(hidden_states))
        key = self._split_heads(self.to_k(context))
        value = self._split_heads(self.to_v(context))
        mask = self._prepare_mask(attention_mask, batch, query.shape[2], key.shape[2])

        out = self._attend(query, key, value, mask)
        out = out.transpose(1, 2).reshape(batch, -1, self.inner_dim)
        out = self.to_out[1](self.to_out[0](out))

        if is_feature_map:
            out = out.transpose(1, 2).reshape(batch, self.out_dim, height, width)
        if self.residual_connection:
            out = out + residual
        if self.rescale_output_factor != 1.0:
            out = out / self.rescale_output_factor
        return out

    # --- helpers -------------------------------------------------------------------------------
    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, heads * dim_head) -> (batch, heads, tokens, dim_head), a view."""
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.heads, -1).transpose(1, 2)

    def _prepare_mask(
        self, mask: torch.Tensor | None, batch: int, query_len: int, key_len: int
    ) -> torch.Tensor | None:
        """An additive bias (or boolean keep-mask) broadcastable to (batch, heads, queries, keys).

        Accepted, as diffusers' processors take them: (batch, 1 or queries, keys) or (batch * heads, ...)."""
        if mask is None:
            return None
        if mask.ndim == 2:
            mask = mask[:, None, :]
        if mask.ndim == 3:
            if mask.shape[0] == batch * self.heads and self.heads > 1:
                mask = mask.view(batch, self.heads, mask.shape[1], mask.shape[2])
            else:
                mask = mask[:, None]
        if mask.ndim != 4 or mask.shape[-1] != key_len or mask.shape[-2] not in (1, query_len):
            raise ValueError(
                f"attention mask of shape {tuple(mask.shape)} does not fit attention over {key_len} keys and "
                f"{query_len} queries; pass (batch, {key_len}) or a bias of shape (batch, 1, {key_len})."
            )
        if mask.dtype != torch.bool and mask.dtype != self.to_q.weight.dtype:
            mask = mask.to(self.to_q.weight.dtype)
        return mask

    def _attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        scale = None if self.scale_qk else 1.0
        if self.slice_size is None:
            return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)
        # Sliced: the same attention, ``slice_size`` (batch x head) rows at a time, to bound peak memory.
        batch, heads, tokens, _ = query.shape
        rows = batch * heads
        q = query.reshape(rows, 1, tokens, -1)
        k = key.reshape(rows, 1, key.shape[2], -1)
        v = value.reshape(rows, 1, value.shape[2], -1)
        m = None if mask is None else mask.expand(batch, heads, *mask.shape[2:]).reshape(rows, 1, *mask.shape[2:])
        out = q.new_empty(rows, 1, tokens, v.shape[-1])
        for start in range(0, rows, self.slice_size):
            stop = start + self.slice_size
            out[start:stop] = F.scaled_dot_product_attention(
                q[start:stop], k[start:stop], v[start:stop], attn_mask=None if m is None else m[start:stop], scale=scale
            )
        return out.view(batch, heads, tokens, -1)


class GEGLU(nn.Module):
    """Gated GELU: one projection to twice the width; the second half, through GELU, gates the first."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states, gate = self.proj(hidden_states).chunk(2, dim=-1)
        return hidden_states * F.gelu(gate)


class GELU(nn.Module):
    """A projection followed by GELU (exact, or the tanh approximation)."""

    def __init__(self, dim_in: int, dim_out: int, approximate: str = "none", bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)
        self.approximate = approximate

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(hidden_states), approximate=self.approximate)


class ApproximateGELU(nn.Module):
    """A projection followed by the sigmoid approximation of GELU, ``x * sigmoid(1.702 x)``."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.proj(hidden_states)
        return hidden_states * torch.sigmoid(1.702 * hidden_states)


_FEED_FORWARD_ACTIVATIONS = {
    "geglu": lambda d_in, d_out, bias: GEGLU(d_in, d_out, bias=bias),
    "gelu": lambda d_in, d_out, bias: GELU(d_in, d_out, bias=bias),
    "gelu-approximate": lambda d_in, d_out, bias: GELU(d_in, d_out, approximate="tanh", bias=bias),
    "geglu-approximate": lambda d_in, d_out, bias: ApproximateGELU(d_in, d_out, bias=bias),
}


# Tokens per chunk of the GEGLU feed-forward. Measured on a 2-core AVX-512 CPU (SD 1.5 sizes, batch 2): best or
# tied-best at 64x64, 32x32 and 16x16 latents, where fixed element budgets won at one size and lost at another.
_FF_CHUNK_TOKENS = 1024


class FeedForward(nn.Module):
    """``net.0`` (projection + activation), ``net.1`` (dropout), ``net.2`` (projection back)."""

    def __init__(
        self,
        dim: int,
        dim_out: int | None = None,
        mult: int = 4,
        dropout: float = 0.0,
        activation_fn: str = "geglu",
        final_dropout: bool = False,
        inner_dim: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation_fn not in _FEED_FORWARD_ACTIVATIONS:
            raise ValueError(
                f"FeedForward activation_fn {activation_fn!r} is not supported; "
                f"supported: {', '.join(_FEED_FORWARD_ACTIVATIONS)}."
            )
        inner_dim = int(dim * mult) if inner_dim is None else inner_dim
        dim_out = dim if dim_out is None else dim_out
        layers = [_FEED_FORWARD_ACTIVATIONS[activation_fn](dim, inner_dim, bias), nn.Dropout(dropout),
                  nn.Linear(inner_dim, dim_out, bias=bias)]
        if final_dropout:
            layers.append(nn.Dropout(dropout))
        self.net = nn.ModuleList(layers)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        fusable = isinstance(self.net[0], GEGLU) and type(self.net[0].proj) is nn.Linear and type(self.net[2]) is nn.Linear
        if fusable and not self.training and not torch.is_grad_enabled():  # quantized layers take the plain path
            return self._geglu_forward(hidden_states)
        for layer in self.net:
            hidden_states = layer(hidden_states)
        return hidden_states

    def _geglu_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The same GEGLU feed-forward, faster: the value and gate halves of ``proj`` are two matmuls on row views
        of its weight (no strided halves to read), the gate multiplies in place, and tokens go through in
        chunks so the 8x-wide intermediate stays in cache instead of making a round trip to memory (measured
        1.3-1.5x faster for this layer on CPU at 64x64 latents). Inference only: it multiplies in place."""
        proj, out_proj = self.net[0].proj, self.net[2]
        inner = out_proj.in_features
        w_value, w_gate = proj.weight[:inner], proj.weight[inner:]
        b_value, b_gate = (None, None) if proj.bias is None else (proj.bias[:inner], proj.bias[inner:])
        tokens = hidden_states.reshape(-1, hidden_states.shape[-1])
        out = tokens.new_empty(tokens.shape[0], out_proj.out_features)
        step = _FF_CHUNK_TOKENS
        for start in range(0, tokens.shape[0], step):
            chunk = tokens[start:start + step]
            value = F.linear(chunk, w_value, b_value).mul_(F.gelu(F.linear(chunk, w_gate, b_gate)))
            out[start:start + step] = F.linear(value, out_proj.weight, out_proj.bias)
        return out.view(*hidden_states.shape[:-1], out_proj.out_features)


class BasicTransformerBlock(nn.Module):
    """Pre-norm transformer block: self-attention, cross-attention to the text, GEGLU feed-forward, each with
    its own LayerNorm (``norm1``/``attn1``, ``norm2``/``attn2``, ``norm3``/``ff``) and a residual add.

    Only the LayerNorm variant Stable Diffusion uses is implemented; the adaptive norms (``ada_norm*``) and
    GLIGEN's gated attention raise a clear error.
    """

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        dropout: float = 0.0,
        cross_attention_dim: int | None = None,
        activation_fn: str = "geglu",
        num_embeds_ada_norm: int | None = None,
        attention_bias: bool = False,
        only_cross_attention: bool = False,
        double_self_attention: bool = False,
        upcast_attention: bool = False,
        norm_elementwise_affine: bool = True,
        norm_type: str = "layer_norm",
        norm_eps: float = 1e-5,
        final_dropout: bool = False,
        attention_type: str = "default",
        ff_inner_dim: int | None = None,
        ff_bias: bool = True,
        attention_out_bias: bool = True,
    ) -> None:
        super().__init__()
        if norm_type != "layer_norm" or num_embeds_ada_norm is not None:
            raise ValueError(
                f"BasicTransformerBlock supports norm_type='layer_norm' without num_embeds_ada_norm, got "
                f"norm_type={norm_type!r}, num_embeds_ada_norm={num_embeds_ada_norm!r}."
            )
        if attention_type != "default":
            raise ValueError(f"attention_type {attention_type!r} (GLIGEN) is not supported; use 'default'.")
        self.only_cross_attention = only_cross_attention
        attention = dict(heads=num_attention_heads, dim_head=attention_head_dim, dropout=dropout,
                         bias=attention_bias, upcast_attention=upcast_attention, out_bias=attention_out_bias)

        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.attn1 = Attention(dim, cross_attention_dim=cross_attention_dim if only_cross_attention else None,
                               **attention)
        if cross_attention_dim is not None or double_self_attention:
            self.norm2 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
            self.attn2 = Attention(dim, cross_attention_dim=None if double_self_attention else cross_attention_dim,
                                   **attention)
        else:
            self.norm2 = None
            self.attn2 = None
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn, final_dropout=final_dropout,
                              inner_dim=ff_inner_dim, bias=ff_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        kwargs = cross_attention_kwargs or {}
        # The first residual add makes a new tensor; later ones may reuse it (not under autograd).
        add = torch.add if torch.is_grad_enabled() else torch.Tensor.add_
        hidden_states = hidden_states + self.attn1(
            self.norm1(hidden_states),
            encoder_hidden_states=encoder_hidden_states if self.only_cross_attention else None,
            attention_mask=attention_mask,
            **kwargs,
        )
        if self.attn2 is not None:
            hidden_states = add(hidden_states, self.attn2(
                self.norm2(hidden_states),
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask,
                **kwargs,
            ))
        return add(hidden_states, self.ff(self.norm3(hidden_states)))
