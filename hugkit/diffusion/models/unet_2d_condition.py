"""``UNet2DConditionModel``: the denoiser of Stable Diffusion 1.x, 2.x and XL (and LCM distillations of them).

The config is diffusers' (same fields, defaults and meaning), so a ``unet/config.json`` and its
``diffusion_pytorch_model.safetensors`` load without renaming. One legacy quirk is kept on purpose: in these
configs ``attention_head_dim`` is the number of attention *heads* per block (the head width is
``channels // attention_head_dim``), and ``num_attention_heads`` must stay None — exactly as diffusers reads them.

Fields for variants no Stable Diffusion checkpoint uses (class embeddings, Kandinsky's added embeddings, fourier
time embeddings, dual cross-attention, GLIGEN, ...) raise a clear error naming the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ...outputs import ModelOutput
from ..configuration import register_to_config
from ..modeling import ModelMixin
from .attention import Attention
from .embeddings import TimestepEmbedding, Timesteps
from .resnet import get_activation
from .unet_blocks import get_down_block, get_mid_block, get_up_block

logger = logging.getLogger(__name__)


@dataclass
class UNet2DConditionOutput(ModelOutput):
    sample: Optional[torch.Tensor] = None


# Fields hugkit does not implement, with the one value it accepts (diffusers' default).
_UNSUPPORTED_FIELDS = {
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "dual_cross_attention": False,
    "class_embed_type": None,
    "num_class_embeds": None,
    "class_embeddings_concat": False,
    "time_embedding_type": "positional",
    "attention_type": "default",
    "num_attention_heads": None,
}


class UNet2DConditionModel(ModelMixin):
    """A conditional UNet: noisy latents, a timestep and text embeddings in; the predicted noise (or v) out."""

    @register_to_config
    def __init__(
        self,
        sample_size: int | tuple[int, int] | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: Sequence[str] = (
            "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D",
        ),
        mid_block_type: str | None = "UNetMidBlock2DCrossAttn",
        up_block_types: Sequence[str] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        only_cross_attention: bool | Sequence[bool] = False,
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        layers_per_block: int | Sequence[int] = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        dropout: float = 0.0,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int | Sequence[int] = 1280,
        transformer_layers_per_block: int | Sequence[int] | Sequence[Sequence[int]] = 1,
        reverse_transformer_layers_per_block: Sequence[Sequence[int]] | None = None,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        attention_head_dim: int | Sequence[int] = 8,
        num_attention_heads: int | Sequence[int] | None = None,
        dual_cross_attention: bool = False,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        resnet_skip_time_act: bool = False,
        resnet_out_scale_factor: float = 1.0,
        time_embedding_type: str = "positional",
        time_embedding_dim: int | None = None,
        time_embedding_act_fn: str | None = None,
        timestep_post_act: str | None = None,
        time_cond_proj_dim: int | None = None,
        conv_in_kernel: int = 3,
        conv_out_kernel: int = 3,
        projection_class_embeddings_input_dim: int | None = None,
        attention_type: str = "default",
        class_embeddings_concat: bool = False,
        mid_block_only_cross_attention: bool | None = None,
        cross_attention_norm: str | None = None,
        addition_embed_type_num_heads: int = 64,
    ) -> None:
        super().__init__()
        # resnet_skip_time_act, resnet_out_scale_factor, mid_block_only_cross_attention, cross_attention_norm and
        # addition_embed_type_num_heads only reach block types hugkit does not build (Simple*/ResnetDownsample*,
        # text embeddings); diffusers ignores them for these blocks too, so they are accepted and recorded.
        given = dict(encoder_hid_dim=encoder_hid_dim, encoder_hid_dim_type=encoder_hid_dim_type,
                     dual_cross_attention=dual_cross_attention, class_embed_type=class_embed_type,
                     num_class_embeds=num_class_embeds, class_embeddings_concat=class_embeddings_concat,
                     time_embedding_type=time_embedding_type, attention_type=attention_type,
                     num_attention_heads=num_attention_heads)
        bad = {name: value for name, value in given.items() if value != _UNSUPPORTED_FIELDS[name]}
        if bad:
            details = ", ".join(f"{k}={v!r} (supported: {_UNSUPPORTED_FIELDS[k]!r})" for k, v in bad.items())
            hint = (" In UNet configs the number of heads is given by `attention_head_dim` (diffusers' legacy "
                    "naming), as diffusers also requires." if "num_attention_heads" in bad else "")
            raise ValueError(f"UNet2DConditionModel: unsupported config values: {details}.{hint}")
        if addition_embed_type not in (None, "text_time"):
            raise ValueError(
                f"UNet2DConditionModel: addition_embed_type={addition_embed_type!r} is not supported; "
                "use None or 'text_time' (SDXL)."
            )
        if norm_num_groups is None:
            raise ValueError("UNet2DConditionModel: norm_num_groups=None is not supported; set the number of groups.")

        num_blocks = len(down_block_types)
        self._check_config(down_block_types, up_block_types, only_cross_attention, block_out_channels,
                           layers_per_block, cross_attention_dim, transformer_layers_per_block,
                           reverse_transformer_layers_per_block, attention_head_dim)
        heads = _per_block(attention_head_dim, num_blocks)  # diffusers' legacy naming: these are head counts
        cross_dims = _per_block(cross_attention_dim, num_blocks)
        layers = _per_block(layers_per_block, num_blocks)
        transformer_layers = _per_block(transformer_layers_per_block, num_blocks)
        cross_only = _per_block(only_cross_attention, num_blocks)

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], conv_in_kernel, padding=(conv_in_kernel - 1) // 2)

        # Time embedding: sinusoidal features of the timestep, then an MLP (LCM adds a guidance condition).
        time_embed_dim = time_embedding_dim or block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim, act_fn=act_fn,
                                                post_act_fn=timestep_post_act, cond_proj_dim=time_cond_proj_dim)
        self.encoder_hid_proj = None
        self.class_embedding = None
        if addition_embed_type == "text_time":
            # SDXL: pooled text embedding + sinusoidal features of the size/crop "time ids", through an MLP.
            if addition_time_embed_dim is None or projection_class_embeddings_input_dim is None:
                raise ValueError(
                    "addition_embed_type='text_time' needs addition_time_embed_dim and "
                    "projection_class_embeddings_input_dim in the config."
                )
            self.add_time_proj = Timesteps(addition_time_embed_dim, flip_sin_to_cos, freq_shift)
            self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)
        self.time_embed_act = get_activation(time_embedding_act_fn) if time_embedding_act_fn is not None else None

        block_kwargs = dict(temb_channels=time_embed_dim, resnet_eps=norm_eps, resnet_act_fn=act_fn,
                            resnet_groups=norm_num_groups, use_linear_projection=use_linear_projection,
                            upcast_attention=upcast_attention, resnet_time_scale_shift=resnet_time_scale_shift,
                            dual_cross_attention=dual_cross_attention, dropout=dropout)
        self.down_blocks = nn.ModuleList()
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            self.down_blocks.append(get_down_block(
                block_type, num_layers=layers[i], transformer_layers_per_block=transformer_layers[i],
                in_channels=input_channel, out_channels=output_channel, add_downsample=i < num_blocks - 1,
                cross_attention_dim=cross_dims[i], num_attention_heads=heads[i],
                downsample_padding=downsample_padding, only_cross_attention=cross_only[i], **block_kwargs,
            ))

        self.mid_block = get_mid_block(
            mid_block_type, in_channels=block_out_channels[-1], output_scale_factor=mid_block_scale_factor,
            transformer_layers_per_block=transformer_layers[-1], num_attention_heads=heads[-1],
            cross_attention_dim=cross_dims[-1], **block_kwargs,
        )

        reversed_channels = list(reversed(block_out_channels))
        reversed_transformer_layers = (list(reversed(transformer_layers)) if reverse_transformer_layers_per_block is None
                                       else list(reverse_transformer_layers_per_block))
        self.num_upsamplers = 0
        self.up_blocks = nn.ModuleList()
        output_channel = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            is_final = i == num_blocks - 1
            prev_output_channel, output_channel = output_channel, reversed_channels[i]
            input_channel = reversed_channels[min(i + 1, num_blocks - 1)]
            self.num_upsamplers += 0 if is_final else 1
            self.up_blocks.append(get_up_block(
                block_type, num_layers=layers[::-1][i] + 1, transformer_layers_per_block=reversed_transformer_layers[i],
                in_channels=input_channel, out_channels=output_channel, prev_output_channel=prev_output_channel,
                add_upsample=not is_final, resolution_idx=i, cross_attention_dim=cross_dims[::-1][i],
                num_attention_heads=heads[::-1][i], only_cross_attention=cross_only[::-1][i], **block_kwargs,
            ))

        self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[0], num_groups=norm_num_groups, eps=norm_eps)
        self.conv_act = get_activation(act_fn)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, conv_out_kernel,
                                  padding=(conv_out_kernel - 1) // 2)

    @staticmethod
    def _check_config(down_block_types: Sequence[str], up_block_types: Sequence[str],
                      only_cross_attention: Any, block_out_channels: Sequence[int], layers_per_block: Any,
                      cross_attention_dim: Any, transformer_layers_per_block: Any,
                      reverse_transformer_layers_per_block: Any, attention_head_dim: Any) -> None:
        n = len(down_block_types)
        if len(up_block_types) != n:
            raise ValueError(f"down_block_types ({n}) and up_block_types ({len(up_block_types)}) must have the same "
                             f"length; got {list(down_block_types)} and {list(up_block_types)}.")
        per_block = dict(block_out_channels=block_out_channels, only_cross_attention=only_cross_attention,
                         attention_head_dim=attention_head_dim, cross_attention_dim=cross_attention_dim,
                         layers_per_block=layers_per_block, transformer_layers_per_block=transformer_layers_per_block)
        for name, value in per_block.items():
            if isinstance(value, (list, tuple)) and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries but there are {n} down blocks "
                                 f"({list(down_block_types)}); give one per block or a single value.")
        nested = isinstance(transformer_layers_per_block, (list, tuple)) and any(
            isinstance(v, (list, tuple)) for v in transformer_layers_per_block)
        if nested and reverse_transformer_layers_per_block is None:
            raise ValueError("transformer_layers_per_block given per layer (a tuple of tuples) describes an "
                             "asymmetric UNet; also set reverse_transformer_layers_per_block for the up blocks.")

    # --- attention options ---------------------------------------------------------------------------------------
    def _attention_layers(self) -> list[Attention]:
        return [m for m in self.modules() if isinstance(m, Attention)]

    def set_attention_slice(self, slice_size: str | int | Sequence[int | None] | None = "auto") -> None:
        """Compute attention in slices to save memory: ``"auto"`` halves each layer's heads, ``"max"`` does one
        (batch x head) row at a time, an int sets that slice everywhere, a list sets one per attention layer,
        None turns slicing off. The output does not change."""
        layers = self._attention_layers()
        if slice_size == "auto":
            # diffusers computes heads // 2, which is 0 for one-head layers and then fails; 1 is the intent.
            sizes: list[int | None] = [max(1, layer.sliceable_head_dim // 2) for layer in layers]
        elif slice_size == "max":
            sizes = [1] * len(layers)
        elif slice_size is None or isinstance(slice_size, int):
            sizes = [slice_size] * len(layers)
        elif isinstance(slice_size, (list, tuple)):
            if len(slice_size) != len(layers):
                raise ValueError(f"Got {len(slice_size)} slice sizes but this UNet has {len(layers)} attention "
                                 "layers; pass one per layer, a single int, 'auto', 'max' or None.")
            sizes = list(slice_size)
        else:
            raise ValueError(f"slice_size must be 'auto', 'max', an int, a list of ints or None; got {slice_size!r}.")
        for layer, size in zip(layers, sizes):
            layer.set_attention_slice(size)

    def set_default_attn_processor(self) -> None:
        """Plain (unsliced) attention everywhere, as diffusers' method of this name restores."""
        self.set_attention_slice(None)

    # --- forward -------------------------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        down_block_additional_residuals: Sequence[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        down_intrablock_additional_residuals: Sequence[torch.Tensor] | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        """Predict the noise (or v) in ``sample`` (batch, in_channels, H, W) at ``timestep`` given
        ``encoder_hidden_states`` (batch, tokens, cross_attention_dim). ``class_labels`` is accepted and ignored,
        as diffusers ignores it for UNets without a class embedding.

        ``down_block_additional_residuals`` + ``mid_block_additional_residual`` are ControlNet outputs added to
        the skip connections; ``down_intrablock_additional_residuals`` are T2I-Adapter features.
        """
        self._check_inputs(sample, encoder_hidden_states)
        # The output is resized to the skips' sizes when H or W is not a multiple of the total upsampling factor.
        overall_up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(dim % overall_up_factor != 0 for dim in sample.shape[-2:])

        # Masks (batch, keys) with 1 = keep become additive biases (batch, 1, keys).
        if attention_mask is not None and attention_mask.ndim == 2:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if encoder_attention_mask is not None and encoder_attention_mask.ndim == 2:
            encoder_attention_mask = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)

        if self.config.center_input_sample:
            sample = 2 * sample - 1.0

        emb = self.time_embedding(self._time_features(sample, timestep), timestep_cond)
        if self.config.addition_embed_type == "text_time":
            emb = emb + self._text_time_embedding(added_cond_kwargs, emb.dtype)
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)

        is_controlnet = down_block_additional_residuals is not None and mid_block_additional_residual is not None
        if down_block_additional_residuals is not None and not is_controlnet:
            raise ValueError(
                "down_block_additional_residuals without mid_block_additional_residual: ControlNet passes both; "
                "for T2I-Adapter features use down_intrablock_additional_residuals."
            )
        adapter_residuals = list(down_intrablock_additional_residuals or [])
        attn_kwargs = dict(encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask,
                           cross_attention_kwargs=cross_attention_kwargs, encoder_attention_mask=encoder_attention_mask)

        sample = self.conv_in(sample)
        skips: list[torch.Tensor] = [sample]
        for block in self.down_blocks:
            if block.has_cross_attention:
                extra = {"additional_residuals": adapter_residuals.pop(0)} if adapter_residuals else {}
                sample, states = block(sample, emb, **attn_kwargs, **extra)
            else:
                sample, states = block(sample, emb)
                if adapter_residuals:
                    sample = sample + adapter_residuals.pop(0)
            skips.extend(states)

        if is_controlnet:
            residuals = list(down_block_additional_residuals)
            if len(residuals) != len(skips):
                raise ValueError(f"down_block_additional_residuals has {len(residuals)} tensors but this UNet has "
                                 f"{len(skips)} skip connections; pass the ControlNet output for this UNet.")
            skips = [skip + residual for skip, residual in zip(skips, residuals)]

        if self.mid_block is not None:
            sample = self.mid_block(sample, emb, **attn_kwargs)
            if adapter_residuals and sample.shape == adapter_residuals[0].shape:
                sample = sample + adapter_residuals.pop(0)
        if is_controlnet:
            sample = sample + mid_block_additional_residual

        for i, block in enumerate(self.up_blocks):
            count = len(block.resnets)
            block_skips, skips = tuple(skips[-count:]), skips[:-count]
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            if block.has_cross_attention:
                sample = block(sample, block_skips, emb, upsample_size=upsample_size, **attn_kwargs)
            else:
                sample = block(sample, block_skips, emb, upsample_size=upsample_size)

        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        if not return_dict:
            return (sample,)
        return UNet2DConditionOutput(sample=sample)

    # --- forward helpers -----------------------------------------------------------------------------------------
    def _check_inputs(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> None:
        in_channels = self.config.in_channels
        if not isinstance(sample, torch.Tensor) or sample.ndim != 4 or sample.shape[1] != in_channels:
            shape = tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
            raise ValueError(f"sample must be a (batch, {in_channels}, height, width) tensor, got {shape}.")
        if not isinstance(encoder_hidden_states, torch.Tensor) or encoder_hidden_states.ndim != 3:
            shape = (tuple(encoder_hidden_states.shape) if isinstance(encoder_hidden_states, torch.Tensor)
                     else type(encoder_hidden_states).__name__)
            raise ValueError(f"encoder_hidden_states must be a (batch, tokens, width) tensor, got {shape}.")
        widths = _per_block(self.config.cross_attention_dim, 1)
        if encoder_hidden_states.shape[-1] not in widths:
            raise ValueError(
                f"encoder_hidden_states has width {encoder_hidden_states.shape[-1]}, but this UNet's "
                f"cross_attention_dim is {self.config.cross_attention_dim}; use the text encoder this UNet was "
                "trained with."
            )
        if encoder_hidden_states.shape[0] != sample.shape[0]:
            raise ValueError(
                f"encoder_hidden_states has batch {encoder_hidden_states.shape[0]} but sample has batch "
                f"{sample.shape[0]}; pass one text embedding per sample."
            )

    def _time_features(self, sample: torch.Tensor, timestep: torch.Tensor | float | int) -> torch.Tensor:
        """The sinusoidal timestep features, one row per sample, in the sample's dtype."""
        batch = sample.shape[0]
        if isinstance(timestep, torch.Tensor):
            timesteps = timestep.to(sample.device)
            if timesteps.ndim == 0:
                timesteps = timesteps[None]
        elif isinstance(timestep, (int, float)) and not isinstance(timestep, bool):
            # As diffusers: float64 for a python float (int64 for an int) so the features round identically.
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            if sample.device.type in ("mps", "npu"):
                dtype = torch.float32 if dtype is torch.float64 else torch.int32
            timesteps = torch.tensor([timestep], dtype=dtype, device=sample.device)
        else:
            raise ValueError(f"timestep must be a number or a tensor, got {type(timestep).__name__}.")
        if timesteps.ndim != 1 or timesteps.shape[0] not in (1, batch):
            raise ValueError(
                f"timestep must be a number, a 0-d tensor or a 1-d tensor of length 1 or {batch} (the batch), "
                f"got shape {tuple(timesteps.shape)}."
            )
        return self.time_proj(timesteps.expand(batch)).to(sample.dtype)

    def _text_time_embedding(self, added_cond_kwargs: dict[str, torch.Tensor] | None, dtype: torch.dtype) -> torch.Tensor:
        """SDXL's added embedding from the pooled text embedding and the six size/crop time ids."""
        needed = ("text_embeds", "time_ids")
        missing = [k for k in needed if not added_cond_kwargs or k not in added_cond_kwargs]
        if missing:
            raise ValueError(
                f"This UNet has addition_embed_type='text_time' (SDXL) and needs added_cond_kwargs with "
                f"{list(needed)}; missing {missing}. Pass added_cond_kwargs={{'text_embeds': pooled_prompt_embeds, "
                "'time_ids': add_time_ids}."
            )
        text_embeds, time_ids = added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]
        expected = self.config.projection_class_embeddings_input_dim
        batch = text_embeds.shape[0] if text_embeds.ndim == 2 else 0
        time_width = time_ids.numel() * self.config.addition_time_embed_dim // batch if batch else 0
        if not batch or time_ids.numel() % batch or text_embeds.shape[-1] + time_width != expected:
            raise ValueError(
                f"added_cond_kwargs do not fit this UNet: text_embeds {tuple(text_embeds.shape)} (want (batch, "
                f"width)) and time_ids {tuple(time_ids.shape)} (want (batch, n)) must give width + "
                f"n * {self.config.addition_time_embed_dim} = projection_class_embeddings_input_dim = {expected}."
            )
        time_embeds = self.add_time_proj(time_ids.flatten()).reshape(batch, -1)
        return self.add_embedding(torch.cat([text_embeds, time_embeds], dim=-1).to(dtype))


def _per_block(value: Any, count: int) -> list[Any]:
    """A per-block list from a config value given once (int/bool) or per block (list/tuple)."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * count
