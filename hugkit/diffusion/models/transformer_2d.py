"""``Transformer2DModel`` as the UNet uses it: a feature map in, GroupNorm, ``proj_in``, a stack of
``BasicTransformerBlock`` over the H*W tokens, ``proj_out``, plus the input (a residual).

``proj_in``/``proj_out`` are 1x1 convolutions (SD 1.x) or linear layers (``use_linear_projection``: SD 2.x, SDXL);
both give the same names and shapes diffusers' checkpoints have. Only the continuous-input form is implemented;
the discrete (VQ-Diffusion) and patched (DiT/PixArt) forms raise a clear error.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .attention import BasicTransformerBlock


class Transformer2DModel(nn.Module):
    """Spatial transformer over a ``(batch, in_channels, H, W)`` feature map.

    Arguments are those diffusers records in a ``Transformer2DModel`` config; ``num_attention_heads *
    attention_head_dim`` is the token width inside the blocks.
    """

    def __init__(
        self,
        num_attention_heads: int = 16,
        attention_head_dim: int = 88,
        in_channels: int | None = None,
        out_channels: int | None = None,
        num_layers: int = 1,
        dropout: float = 0.0,
        norm_num_groups: int = 32,
        cross_attention_dim: int | None = None,
        attention_bias: bool = False,
        sample_size: int | None = None,
        num_vector_embeds: int | None = None,
        patch_size: int | None = None,
        activation_fn: str = "geglu",
        num_embeds_ada_norm: int | None = None,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        double_self_attention: bool = False,
        upcast_attention: bool = False,
        norm_type: str = "layer_norm",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        attention_type: str = "default",
    ) -> None:
        super().__init__()
        if in_channels is None or num_vector_embeds is not None or patch_size is not None:
            raise ValueError(
                "Transformer2DModel supports continuous input only (in_channels set, num_vector_embeds and "
                f"patch_size None); got in_channels={in_channels}, num_vector_embeds={num_vector_embeds}, "
                f"patch_size={patch_size}."
            )
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.inner_dim = num_attention_heads * attention_head_dim
        self.use_linear_projection = use_linear_projection

        self.norm = nn.GroupNorm(num_groups=norm_num_groups, num_channels=in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, self.inner_dim)
        else:
            self.proj_in = nn.Conv2d(in_channels, self.inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                self.inner_dim,
                num_attention_heads,
                attention_head_dim,
                dropout=dropout,
                cross_attention_dim=cross_attention_dim,
                activation_fn=activation_fn,
                num_embeds_ada_norm=num_embeds_ada_norm,
                attention_bias=attention_bias,
                only_cross_attention=only_cross_attention,
                double_self_attention=double_self_attention,
                upcast_attention=upcast_attention,
                norm_type=norm_type,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
                attention_type=attention_type,
            )
            for _ in range(num_layers)
        )
        if use_linear_projection:
            self.proj_out = nn.Linear(self.inner_dim, self.out_channels)
        else:
            self.proj_out = nn.Conv2d(self.inner_dim, self.out_channels, kernel_size=1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if hidden_states.ndim != 4 or hidden_states.shape[1] != self.in_channels:
            raise ValueError(
                f"Transformer2DModel expects (batch, {self.in_channels}, height, width), "
                f"got shape {tuple(hidden_states.shape)}."
            )
        # Masks given as (batch, keys) with 1 = keep become additive biases (batch, 1, keys), as in diffusers.
        attention_mask = _mask_to_bias(attention_mask, hidden_states.dtype)
        encoder_attention_mask = _mask_to_bias(encoder_attention_mask, hidden_states.dtype)

        batch, _, height, width = hidden_states.shape
        residual = hidden_states
        hidden_states = _project_to_tokens(self.norm(hidden_states), self.proj_in)

        for block in self.transformer_blocks:
            hidden_states = block(
                hidden_states,
                attention_mask=attention_mask,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                cross_attention_kwargs=cross_attention_kwargs,
            )
        return _project_to_feature_map(hidden_states, self.proj_out, residual)


# proj_in / proj_out as matmuls on transposed views: the same numbers as diffusers' conv-1x1 (or linear) plus
# permute + reshape + .contiguous(), without the two layout copies, and proj_out adds the residual as it writes.
# Under autograd (training) the plain layers run instead.
def _has_plain_weight(layer: nn.Module) -> bool:
    """A float conv/linear layer (a quantized replacement has no .weight to multiply by: it runs as a module)."""
    return type(layer) in (nn.Conv2d, nn.Linear)


def _weight_2d(layer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    return layer.weight.reshape(layer.weight.shape[0], -1)  # a conv-1x1 weight (O, I, 1, 1) is a linear weight


def _project_to_tokens(x: torch.Tensor, layer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    """(B, C, H, W) feature map -> (B, H*W, inner) tokens through ``layer``."""
    if not x.is_contiguous() or torch.is_grad_enabled() or not _has_plain_weight(layer):  # out= has no autograd
        return _to_tokens(layer(x)) if isinstance(layer, nn.Conv2d) else layer(_to_tokens(x))
    batch, channels, height, width = x.shape
    weight = _weight_2d(layer)
    out = x.new_empty(batch, height * width, weight.shape[0])
    for b in range(batch):  # (C, H*W)^T @ W^T: BLAS reads the transposed operand in place
        if layer.bias is None:
            torch.mm(x[b].view(channels, -1).t(), weight.t(), out=out[b])
        else:
            torch.addmm(layer.bias, x[b].view(channels, -1).t(), weight.t(), out=out[b])
    return out


def _project_to_feature_map(tokens: torch.Tensor, layer: nn.Conv2d | nn.Linear, residual: torch.Tensor) -> torch.Tensor:
    """residual + ``layer``(tokens) laid out as the (B, C, H, W) residual."""
    batch, channels, height, width = residual.shape
    if (not residual.is_contiguous() or torch.is_grad_enabled() or not _has_plain_weight(layer)
            or _weight_2d(layer).shape[0] != channels):
        projected = (layer(_feature_map(tokens, height, width)) if isinstance(layer, nn.Conv2d)
                     else _feature_map(layer(tokens), height, width))
        return projected + residual
    weight = _weight_2d(layer)
    out = torch.empty_like(residual)
    for b in range(batch):  # W @ tokens^T + residual, written straight into the NCHW output
        torch.addmm(residual[b].view(channels, -1), weight, tokens[b].t(), out=out[b].view(channels, -1))
    if layer.bias is not None:
        out += layer.bias.view(1, channels, 1, 1)
    return out


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    batch, channels, height, width = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)


def _feature_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) (a channels-last view)."""
    batch, _, channels = x.shape
    return x.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def _mask_to_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None or mask.ndim != 2:
        return mask
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)
