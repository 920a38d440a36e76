"""The VAE's encoder and decoder towers and the blocks they are made of.

``Encoder``: conv_in -> DownEncoderBlock2D x N (resnets, then a stride-2 conv except in the last) -> mid block
(resnet, self-attention, resnet) -> GroupNorm -> SiLU -> conv_out. ``Decoder`` mirrors it with UpDecoderBlock2D
(one more resnet per block, nearest x2 + conv). Module names are diffusers' (``down_blocks.0.resnets.1``,
``down_blocks.0.downsamplers.0.conv``, ``mid_block.attentions.0.to_q``, ``up_blocks.0.upsamplers.0.conv``...).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .resnet import Downsample2D, ResnetBlock2D, Upsample2D


def _block_type(name: str, expected: str, field: str) -> None:
    # diffusers accepts a "UNetRes" prefix on block type names and strips it.
    if name.removeprefix("UNetRes") != expected:
        raise ValueError(
            f"{field} entry {name!r} is not supported; hugkit's AutoencoderKL builds {expected!r} blocks "
            "(the Stable Diffusion VAE layout)."
        )


class DownEncoderBlock2D(nn.Module):
    """``num_layers`` resnets without time embedding, then (unless last) a stride-2 conv padded right/bottom."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        add_downsample: bool = True,
        downsample_padding: int = 1,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=in_channels if i == 0 else out_channels,
                out_channels=out_channels,
                temb_channels=None,
                eps=resnet_eps,
                groups=resnet_groups,
                non_linearity=resnet_act_fn,
            )
            for i in range(num_layers)
        )
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, use_conv=True, padding=downsample_padding, name="op")])
            if add_downsample
            else None
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
        return hidden_states


class UpDecoderBlock2D(nn.Module):
    """``num_layers`` resnets, then (unless last) nearest x2 upsampling and a 3x3 conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        add_upsample: bool = True,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=in_channels if i == 0 else out_channels,
                out_channels=out_channels,
                temb_channels=None,
                eps=resnet_eps,
                groups=resnet_groups,
                non_linearity=resnet_act_fn,
            )
            for i in range(num_layers)
        )
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True)]) if add_upsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states)
        return hidden_states


class UNetMidBlock2D(nn.Module):
    """resnet, then ``num_layers`` x (self-attention over all pixels, resnet). ``add_attention=False`` keeps
    only the resnets (diffusers' ``mid_block_add_attention``); ``attentions`` then holds no modules."""

    def __init__(
        self,
        in_channels: int,
        temb_channels: int | None = None,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        add_attention: bool = True,
        attention_head_dim: int | None = None,
        output_scale_factor: float = 1.0,
    ) -> None:
        super().__init__()
        attention_head_dim = attention_head_dim or in_channels
        self.add_attention = add_attention

        def resnet() -> ResnetBlock2D:
            return ResnetBlock2D(
                in_channels=in_channels,
                out_channels=in_channels,
                temb_channels=temb_channels,
                eps=resnet_eps,
                groups=resnet_groups,
                non_linearity=resnet_act_fn,
                output_scale_factor=output_scale_factor,
            )

        self.resnets = nn.ModuleList([resnet() for _ in range(num_layers + 1)])
        # diffusers stores None placeholders when attention is off; they hold no weights, so an empty list suffices.
        self.attentions = nn.ModuleList(
            [
                Attention(
                    in_channels,
                    heads=in_channels // attention_head_dim,
                    dim_head=attention_head_dim,
                    rescale_output_factor=output_scale_factor,
                    eps=resnet_eps,
                    norm_num_groups=resnet_groups,
                    residual_connection=True,
                    bias=True,
                    upcast_softmax=True,
                    _from_deprecated_attn_block=True,
                )
                for _ in range(num_layers)
            ]
            if add_attention
            else []
        )

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, temb)
        for i, resnet in enumerate(self.resnets[1:]):
            if self.add_attention:
                hidden_states = self.attentions[i](hidden_states)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) -> moments (B, 2 * out_channels, H / 2**(N-1), W / 2**(N-1)) with ``double_z``."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: Sequence[str] = ("DownEncoderBlock2D",),
        block_out_channels: Sequence[int] = (64,),
        layers_per_block: int = 2,
        norm_num_groups: int = 32,
        act_fn: str = "silu",
        double_z: bool = True,
        mid_block_add_attention: bool = True,
    ) -> None:
        super().__init__()
        for name in down_block_types:
            _block_type(name, "DownEncoderBlock2D", "down_block_types")
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, stride=1, padding=1)
        self.down_blocks = nn.ModuleList()
        previous = block_out_channels[0]
        for i, channels in enumerate(block_out_channels):
            self.down_blocks.append(
                DownEncoderBlock2D(
                    previous,
                    channels,
                    num_layers=layers_per_block,
                    resnet_act_fn=act_fn,
                    resnet_groups=norm_num_groups,
                    add_downsample=i < len(block_out_channels) - 1,
                    downsample_padding=0,  # the original VAE pads right/bottom only
                )
            )
            previous = channels
        self.mid_block = UNetMidBlock2D(
            block_out_channels[-1],
            resnet_act_fn=act_fn,
            resnet_groups=norm_num_groups,
            add_attention=mid_block_add_attention,
            attention_head_dim=block_out_channels[-1],
        )
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(block_out_channels[-1], 2 * out_channels if double_z else out_channels, 3, padding=1)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        sample = self.conv_in(sample)
        for block in self.down_blocks:
            sample = block(sample)
        sample = self.mid_block(sample)
        return self.conv_out(F.silu(self.conv_norm_out(sample), inplace=not torch.is_grad_enabled()))


class Decoder(nn.Module):
    """Latents (B, in_channels, h, w) -> image (B, out_channels, h * 2**(N-1), w * 2**(N-1))."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        up_block_types: Sequence[str] = ("UpDecoderBlock2D",),
        block_out_channels: Sequence[int] = (64,),
        layers_per_block: int = 2,
        norm_num_groups: int = 32,
        act_fn: str = "silu",
        mid_block_add_attention: bool = True,
    ) -> None:
        super().__init__()
        for name in up_block_types:
            _block_type(name, "UpDecoderBlock2D", "up_block_types")
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[-1], kernel_size=3, stride=1, padding=1)
        self.mid_block = UNetMidBlock2D(
            block_out_channels[-1],
            resnet_act_fn=act_fn,
            resnet_groups=norm_num_groups,
            add_attention=mid_block_add_attention,
            attention_head_dim=block_out_channels[-1],
        )
        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        previous = reversed_channels[0]
        for i, channels in enumerate(reversed_channels):
            self.up_blocks.append(
                UpDecoderBlock2D(
                    previous,
                    channels,
                    num_layers=layers_per_block + 1,
                    resnet_act_fn=act_fn,
                    resnet_groups=norm_num_groups,
                    add_upsample=i < len(block_out_channels) - 1,
                )
            )
            previous = channels
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=1e-6)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, 3, padding=1)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        sample = self.mid_block(self.conv_in(sample))
        for block in self.up_blocks:
            sample = block(sample)
        return self.conv_out(F.silu(self.conv_norm_out(sample), inplace=not torch.is_grad_enabled()))
