"""Convolutional building blocks shared by the UNet and the VAE: ``ResnetBlock2D``, ``Downsample2D``, ``Upsample2D``.

Attribute names follow diffusers (``norm1``, ``conv1``, ``time_emb_proj``, ``norm2``, ``dropout``, ``conv2``,
``conv_shortcut``; the resamplers keep their convolution in ``conv``) so checkpoints load without renaming.
Only the variants Stable Diffusion 1.x/2.x/XL and their VAEs use are implemented; the others (FIR kernels,
transposed convolutions, up/down inside a resnet) raise a clear error instead of silently doing something else.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "swish": F.silu,
    "silu": F.silu,
    "mish": F.mish,
    "gelu": F.gelu,
    "relu": F.relu,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation a diffusers config names (``act_fn``, ``non_linearity``); case-insensitive as in diffusers."""
    fn = _ACTIVATIONS.get(name.lower()) if isinstance(name, str) else None
    if fn is None:
        raise ValueError(f"Unknown activation {name!r}; supported: {', '.join(sorted(_ACTIVATIONS))}.")
    return fn


# Activations that can overwrite their input; used when no autograd graph is being recorded.
_HAS_INPLACE = (F.silu, F.mish, F.relu)


def _activate(fn: Callable[..., torch.Tensor], x: torch.Tensor, inplace: bool) -> torch.Tensor:
    return fn(x, inplace=True) if inplace and fn in _HAS_INPLACE else fn(x)


def _check_channels(x: torch.Tensor, channels: int, module: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{module} expects a (batch, {channels}, height, width) tensor, got shape {tuple(x.shape)}; "
            f"pass a 4-D NCHW tensor with {channels} channels."
        )


class ResnetBlock2D(nn.Module):
    """GroupNorm -> act -> conv3x3 (+ time embedding) -> GroupNorm -> act -> dropout -> conv3x3, plus a skip.

    ``temb_channels=None`` (the VAE) drops the time projection. ``time_embedding_norm="default"`` adds the projected
    embedding before ``norm2``; ``"scale_shift"`` projects to twice the channels and applies ``x * (1 + scale) +
    shift`` after ``norm2``. The skip is a 1x1 ``conv_shortcut`` when channels change (or ``use_in_shortcut``);
    diffusers' ``conv_shortcut`` flag is accepted but, as there, the shortcut is always 1x1.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int | None = None,
        conv_shortcut: bool = False,
        dropout: float = 0.0,
        temb_channels: int | None = 512,
        groups: int = 32,
        groups_out: int | None = None,
        pre_norm: bool = True,
        eps: float = 1e-6,
        non_linearity: str = "swish",
        skip_time_act: bool = False,
        time_embedding_norm: str = "default",
        output_scale_factor: float = 1.0,
        use_in_shortcut: bool | None = None,
        up: bool = False,
        down: bool = False,
        conv_shortcut_bias: bool = True,
        conv_2d_out_channels: int | None = None,
    ) -> None:
        super().__init__()
        if time_embedding_norm not in ("default", "scale_shift"):
            raise ValueError(
                f"ResnetBlock2D supports time_embedding_norm 'default' or 'scale_shift', got {time_embedding_norm!r}."
            )
        if up or down:
            raise ValueError("ResnetBlock2D with up=True/down=True is not supported; use Upsample2D/Downsample2D.")
        out_channels = in_channels if out_channels is None else out_channels
        final_channels = conv_2d_out_channels or out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.use_conv_shortcut = conv_shortcut
        self.time_embedding_norm = time_embedding_norm
        self.skip_time_act = skip_time_act
        self.output_scale_factor = output_scale_factor
        self.nonlinearity = get_activation(non_linearity)

        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if temb_channels is None:
            self.time_emb_proj = None
        else:
            proj_channels = 2 * out_channels if time_embedding_norm == "scale_shift" else out_channels
            self.time_emb_proj = nn.Linear(temb_channels, proj_channels)
        self.norm2 = nn.GroupNorm(groups if groups_out is None else groups_out, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, final_channels, kernel_size=3, stride=1, padding=1)

        self.use_in_shortcut = in_channels != final_channels if use_in_shortcut is None else use_in_shortcut
        self.conv_shortcut = (
            nn.Conv2d(in_channels, final_channels, kernel_size=1, stride=1, padding=0, bias=conv_shortcut_bias)
            if self.use_in_shortcut
            else None
        )

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        _check_channels(input_tensor, self.in_channels, "ResnetBlock2D")
        # Without autograd (inference) the activations and the residual add overwrite fresh intermediates: the
        # same arithmetic, but no new full-size buffers, which matters at VAE resolutions.
        inplace = not torch.is_grad_enabled()
        hidden = self.conv1(_activate(self.nonlinearity, self.norm1(input_tensor), inplace))

        if temb is not None:
            if self.time_emb_proj is None:
                raise ValueError("This ResnetBlock2D was built with temb_channels=None; call it without `temb`.")
            if not self.skip_time_act:
                temb = self.nonlinearity(temb)
            temb = self.time_emb_proj(temb)[:, :, None, None]
        elif self.time_embedding_norm == "scale_shift":
            raise ValueError("ResnetBlock2D with time_embedding_norm='scale_shift' needs `temb`; got None.")

        if self.time_embedding_norm == "default":
            if temb is not None:
                hidden = hidden.add_(temb) if inplace else hidden + temb
            hidden = self.norm2(hidden)
        else:
            scale, shift = temb.chunk(2, dim=1)
            hidden = self.norm2(hidden) * (1 + scale) + shift

        hidden = self.conv2(self.dropout(_activate(self.nonlinearity, hidden, inplace)))
        skip = self.conv_shortcut(input_tensor) if self.conv_shortcut is not None else input_tensor
        # skip + hidden, as diffusers adds them (float addition is commutative, so add_ gives the same bits).
        out = hidden.add_(skip) if inplace else skip + hidden
        if self.output_scale_factor != 1.0:
            out = out.div_(self.output_scale_factor) if inplace else out / self.output_scale_factor
        return out


class Downsample2D(nn.Module):
    """Halve height and width: a stride-2 3x3 ``conv`` (``use_conv``) or 2x2 average pooling.

    With ``padding=0`` the input is padded by one pixel on the right and bottom only, as the original
    Stable Diffusion VAE encoder does (diffusers' VAE uses this; the UNet uses ``padding=1``).
    """

    def __init__(
        self,
        channels: int,
        use_conv: bool = False,
        out_channels: int | None = None,
        padding: int = 1,
        name: str = "conv",
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.padding = padding
        self.name = name
        if name not in ("conv", "op"):
            raise ValueError(
                f"Downsample2D name must be 'conv' or 'op' (both store the layer as `conv`), got {name!r}."
            )
        if use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, kernel_size, stride=2, padding=padding, bias=bias)
        else:
            if self.out_channels != channels:
                raise ValueError(
                    f"Downsample2D without a convolution cannot change channels ({channels} -> {self.out_channels}); "
                    "pass use_conv=True or out_channels=None."
                )
            self.conv = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        _check_channels(hidden_states, self.channels, "Downsample2D")
        if self.use_conv and self.padding == 0:
            hidden_states = F.pad(hidden_states, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(hidden_states)


class Upsample2D(nn.Module):
    """Double height and width by nearest-neighbour interpolation (or resize to ``output_size``), then an optional
    3x3 ``conv``. ``interpolate=False`` skips the resize (some checkpoints only convolve here)."""

    def __init__(
        self,
        channels: int,
        use_conv: bool = False,
        use_conv_transpose: bool = False,
        out_channels: int | None = None,
        name: str = "conv",
        kernel_size: int | None = None,
        padding: int = 1,
        bias: bool = True,
        interpolate: bool = True,
    ) -> None:
        super().__init__()
        if use_conv_transpose:
            raise ValueError(
                "Upsample2D with use_conv_transpose=True is not supported (no Stable Diffusion model uses it)."
            )
        if name != "conv":
            raise ValueError(f"Upsample2D name must be 'conv', got {name!r}.")
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.use_conv_transpose = False
        self.name = name
        self.interpolate = interpolate
        self.conv = (
            nn.Conv2d(channels, self.out_channels, kernel_size or 3, padding=padding, bias=bias) if use_conv else None
        )

    def forward(self, hidden_states: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        _check_channels(hidden_states, self.channels, "Upsample2D")
        if self.interpolate:
            # Nearest-neighbour only copies values, so bf16 needs no fp32 detour on torch >= 2.1 (hugkit needs 2.4).
            # The channels-last nearest kernel fails on large batches or outputs, so those go contiguous first.
            if hidden_states.shape[0] >= 64 or hidden_states.numel() * 4 > 2**31:
                hidden_states = hidden_states.contiguous()
            if output_size is None:
                hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
            else:
                hidden_states = F.interpolate(hidden_states, size=tuple(output_size), mode="nearest")
        if self.conv is not None:
            hidden_states = self.conv(hidden_states)
        return hidden_states
