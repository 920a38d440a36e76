"""CLIP: the text encoder (Stable Diffusion's prompt encoder), the vision encoder (its safety checker), and both
joined with projections, with transformers' module names so checkpoints load as they are.

Reads top to bottom: configs, embeddings, the shared pre-LayerNorm encoder, the text and vision transformers,
then the model classes. Every model class keeps its transformer under ``text_model`` / ``vision_model``, the
layout Stable Diffusion checkpoints are saved in (``text_model.encoder.layers.0...``); a checkpoint saved by
transformers 5, which drops that prefix for CLIPTextModel and CLIPVisionModel, loads too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CONFIG_NAME, PretrainedConfig, pop_hub_kwargs, read_json
from ..layers import attention, check_inputs, get_activation
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutputWithPooling, ModelOutput, Tensor
from ..task_heads import resolve_flags

# --- configs -------------------------------------------------------------------------------------


class _CLIPSubConfig(PretrainedConfig):
    """A text or vision config. Like transformers, it can be read from a full CLIP config.json (its
    ``text_config`` / ``vision_config`` part), so CLIPTextModel.from_pretrained works on a CLIPModel checkpoint."""

    sub_config_key = ""

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, **kwargs: Any) -> PretrainedConfig:
        hub_kwargs = pop_hub_kwargs(kwargs)
        from ..hub import resolve

        folder = resolve(path_or_repo_id, **hub_kwargs)
        config_dict = read_json(folder / CONFIG_NAME, what="model config")
        if config_dict.get("model_type") == "clip":
            config = CLIPConfig.from_dict(config_dict)
            return cls.from_dict(getattr(config, cls.sub_config_key).to_dict(), **kwargs)
        return super().from_pretrained(folder, **kwargs)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})."
            )


class CLIPTextConfig(_CLIPSubConfig):
    model_type = "clip_text_model"
    sub_config_key = "text_config"
    defaults = {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "projection_dim": 512,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_factor": 1.0,
        "pad_token_id": 1,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
    }


class CLIPVisionConfig(_CLIPSubConfig):
    model_type = "clip_vision_model"
    sub_config_key = "vision_config"
    defaults = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "projection_dim": 512,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_channels": 3,
        "image_size": 224,
        "patch_size": 32,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_factor": 1.0,
    }


class CLIPConfig(PretrainedConfig):
    """Text and vision configs nested as ``text_config`` / ``vision_config`` (dicts in config.json).

    Older checkpoints (Stable Diffusion's safety checker among them) also carry ``text_config_dict`` /
    ``vision_config_dict``; as in transformers, such a dict completed with the defaults wins over the plain
    config, and is not saved back.
    """

    model_type = "clip"
    defaults = {"projection_dim": 512, "logit_scale_init_value": 2.6592, "initializer_factor": 1.0}

    def __init__(self, text_config: Any = None, vision_config: Any = None, **kwargs: Any) -> None:
        text_overrides = kwargs.pop("text_config_dict", None) or {}
        vision_overrides = kwargs.pop("vision_config_dict", None) or {}
        super().__init__(**kwargs)
        self.text_config = _sub_config(CLIPTextConfig, text_config, text_overrides)
        self.vision_config = _sub_config(CLIPVisionConfig, vision_config, vision_overrides)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["text_config"] = self.text_config.to_dict()
        out["vision_config"] = self.vision_config.to_dict()
        return out


def _sub_config(config_class: type[PretrainedConfig], value: Any, legacy: dict) -> PretrainedConfig:
    if isinstance(value, PretrainedConfig):
        value = value.to_dict()
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"A CLIP {config_class.model_type} config must be a dict or a config, found {type(value).__name__}.")
    overrides = {**config_class.defaults, **legacy} if legacy else {}
    return config_class.from_dict({**(value or {}), **overrides})


# --- outputs -------------------------------------------------------------------------------------


@dataclass
class CLIPTextModelOutput(ModelOutput):
    text_embeds: Optional[Tensor] = None
    last_hidden_state: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class CLIPVisionModelOutput(ModelOutput):
    image_embeds: Optional[Tensor] = None
    last_hidden_state: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class CLIPOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits_per_image: Optional[Tensor] = None
    logits_per_text: Optional[Tensor] = None
    text_embeds: Optional[Tensor] = None
    image_embeds: Optional[Tensor] = None
    text_model_output: Optional[BaseModelOutputWithPooling] = None
    vision_model_output: Optional[BaseModelOutputWithPooling] = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


# --- embeddings ----------------------------------------------------------------------------------


class CLIPTextEmbeddings(nn.Module):
    """Token + learned absolute position embeddings (no LayerNorm: every encoder layer normalises first)."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
        if position_ids is None:
            positions = self.position_embedding.weight[: input_ids.shape[1]]
        else:
            positions = self.position_embedding(position_ids)
        return self.token_embedding(input_ids) + positions


class CLIPVisionEmbeddings(nn.Module):
    """A class token followed by one token per non-overlapping patch, plus learned position embeddings."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.num_channels = config.num_channels
        self.class_embedding = nn.Parameter(torch.empty(config.hidden_size))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size, bias=False
        )
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.position_embedding = nn.Embedding(self.num_patches + 1, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        patches = patches.flatten(2).transpose(1, 2)  # (batch, patches, hidden)
        cls = self.class_embedding.expand(batch, 1, -1)
        embeddings = torch.cat([cls, patches], dim=1)
        if interpolate_pos_encoding:
            return embeddings + self._resized_positions(height, width)
        return embeddings + self.position_embedding.weight

    def _resized_positions(self, height: int, width: int) -> torch.Tensor:
        """Position embeddings for another image size: the patch grid's table resized bicubically (the class
        token's entry kept), as transformers does for ``interpolate_pos_encoding``."""
        table = self.position_embedding.weight
        rows, cols = height // self.patch_size, width // self.patch_size
        if rows * cols == self.num_patches and height == width:
            return table
        side = int(self.num_patches**0.5)
        grid = table[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        return torch.cat([table[:1], grid.permute(0, 2, 3, 1).reshape(rows * cols, -1)], dim=0)


# --- encoder -------------------------------------------------------------------------------------


class CLIPAttention(nn.Module):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig) -> None:
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = config.attention_dropout
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        context, probs = attention(
            heads(self.q_proj(hidden_states)), heads(self.k_proj(hidden_states)), heads(self.v_proj(hidden_states)),
            mask, dropout_p=self.dropout if self.training else 0.0, output_attentions=output_attentions,
        )
        return self.out_proj(context), probs


class CLIPMLP(nn.Module):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig) -> None:
        super().__init__()
        self.activation_fn = get_activation(config.hidden_act)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class CLIPEncoderLayer(nn.Module):
    """Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig) -> None:
        super().__init__()
        self.self_attn = CLIPAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.self_attn(self.layer_norm1(hidden_states), mask, output_attentions)
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.layer_norm2(hidden_states)), probs


class CLIPEncoder(nn.Module):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor | None, output_hidden_states: bool, output_attentions: bool
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """(last layer's output, the input and every layer's output or None, attention maps or None)."""
        all_hidden = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, probs = layer(hidden_states, mask, output_attentions)
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            if all_attentions is not None:
                all_attentions.append(probs)
        return (
            hidden_states,
            tuple(all_hidden) if all_hidden is not None else None,
            tuple(all_attentions) if all_attentions is not None else None,
        )


def causal_padding_mask(attention_mask: torch.Tensor | None, length: int, dtype: torch.dtype,
                        device: torch.device) -> torch.Tensor:
    """Additive ``(batch or 1, 1, length, length)`` mask: each token sees itself and earlier non-padding tokens.

    A query with nothing left to see (a left-padded position before the first token) is given no mask at all,
    so softmax stays finite; its output is padding and meaningless either way.
    """
    keep = torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]
    if attention_mask is not None:
        keep = keep & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
        keep = keep | ~keep.any(dim=-1, keepdim=True)
    mask = torch.zeros(keep.shape, dtype=dtype, device=device)
    return mask.masked_fill_(~keep, torch.finfo(dtype).min)


class CLIPTextTransformer(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPTextEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.eos_token_id = config.eos_token_id

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
    ) -> BaseModelOutputWithPooling:
        if input_ids is None:
            raise ValueError("CLIP's text model needs input_ids (token ids from the CLIP tokenizer).")
        check_inputs(input_ids, None, attention_mask, max_length=self.config.max_position_embeddings,
                     hidden_size=self.config.hidden_size)
        _check_token_ids(input_ids, self.config.vocab_size)
        hidden = self.embeddings(input_ids, position_ids)
        mask = causal_padding_mask(attention_mask, input_ids.shape[1], hidden.dtype, hidden.device)
        hidden, all_hidden, all_attentions = self.encoder(hidden, mask, output_hidden_states, output_attentions)
        hidden = self.final_layer_norm(hidden)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pooled = hidden[rows, self._eos_positions(input_ids.to(hidden.device))]
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden, attentions=all_attentions
        )

    def _eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Where each sequence's end-of-text token is: the pooled output is the final state there.

        Configs written before transformers fixed ``eos_token_id`` say 2; for them, as transformers does, the
        end of text is the highest id of the sequence (it is the last id of CLIP's vocabulary). Otherwise it is
        the first ``eos_token_id`` (padding may repeat it); a sequence without one pools position 0.
        """
        if self.eos_token_id == 2:
            return input_ids.to(torch.int).argmax(dim=-1)
        eos = torch.as_tensor(self.eos_token_id, device=input_ids.device)
        return torch.isin(input_ids, eos).to(torch.int).argmax(dim=-1)


def _check_token_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    if input_ids.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(input_ids))
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"input_ids holds ids from {low} to {high}, but this text model's vocabulary has {vocab_size} tokens "
            f"(ids 0..{vocab_size - 1}). Use the tokenizer that was saved with the model."
        )


class CLIPVisionTransformer(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)  # sic: the checkpoint name
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        pixel_values: torch.Tensor | None,
        interpolate_pos_encoding: bool,
        output_hidden_states: bool,
        output_attentions: bool,
    ) -> BaseModelOutputWithPooling:
        self._check_pixels(pixel_values, interpolate_pos_encoding)
        hidden = self.pre_layrnorm(self.embeddings(pixel_values, interpolate_pos_encoding))
        hidden, all_hidden, all_attentions = self.encoder(hidden, None, output_hidden_states, output_attentions)
        pooled = self.post_layernorm(hidden[:, 0])  # the class token
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden, attentions=all_attentions
        )

    def _check_pixels(self, pixel_values: Any, interpolate_pos_encoding: bool) -> None:
        config = self.config
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(
                f"pixel_values should be a torch.Tensor of shape (batch, {config.num_channels}, {config.image_size}, "
                f"{config.image_size}), found {type(pixel_values).__name__}. Prepare images with CLIPImageProcessor."
            )
        if pixel_values.dim() != 4 or pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"pixel_values should have shape (batch, {config.num_channels}, height, width), "
                f"found {tuple(pixel_values.shape)}."
            )
        height, width = pixel_values.shape[-2:]
        if interpolate_pos_encoding:
            if height < config.patch_size or width < config.patch_size:
                raise ValueError(f"Images of {height}x{width} pixels are smaller than one {config.patch_size}-pixel patch.")
        elif height != config.image_size or width != config.image_size:
            raise ValueError(
                f"This vision model takes {config.image_size}x{config.image_size} images, found {height}x{width}. "
                "Resize them with the model's CLIPImageProcessor, or pass interpolate_pos_encoding=True."
            )


# --- models --------------------------------------------------------------------------------------


class CLIPPreTrainedModel(PreTrainedModel):
    config_class = CLIPConfig
    base_model_prefix = "clip"

    def _flags(self, output_hidden_states, output_attentions, return_dict) -> tuple[bool, bool, bool]:
        return resolve_flags(self.config, output_hidden_states, output_attentions, return_dict)


class CLIPTextModel(CLIPPreTrainedModel):
    """The text transformer alone: ``last_hidden_state`` is what Stable Diffusion conditions on."""

    config_class = CLIPTextConfig
    base_model_prefix = "text_model"

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__(config)
        self.text_model = CLIPTextTransformer(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.text_model.embeddings.token_embedding = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        output_hidden_states, output_attentions, return_dict = self._flags(
            output_hidden_states, output_attentions, return_dict
        )
        out = self.text_model(input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)
        return out if return_dict else out.to_tuple()


class CLIPTextModelWithProjection(CLIPTextModel):
    """Text transformer + ``text_projection`` of the pooled output (SDXL's second text encoder)."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__(config)
        self.text_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> CLIPTextModelOutput | tuple:
        output_hidden_states, output_attentions, return_dict = self._flags(
            output_hidden_states, output_attentions, return_dict
        )
        text = self.text_model(input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)
        out = CLIPTextModelOutput(
            text_embeds=self.text_projection(text.pooler_output),
            last_hidden_state=text.last_hidden_state,
            hidden_states=text.hidden_states,
            attentions=text.attentions,
        )
        return out if return_dict else out.to_tuple()


class CLIPVisionModel(CLIPPreTrainedModel):
    config_class = CLIPVisionConfig
    base_model_prefix = "vision_model"
    main_input_name = "pixel_values"

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__(config)
        self.vision_model = CLIPVisionTransformer(config)

    def get_input_embeddings(self) -> nn.Module:
        return self.vision_model.embeddings.patch_embedding

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        output_hidden_states, output_attentions, return_dict = self._flags(
            output_hidden_states, output_attentions, return_dict
        )
        out = self.vision_model(pixel_values, interpolate_pos_encoding, output_hidden_states, output_attentions)
        return out if return_dict else out.to_tuple()


class CLIPVisionModelWithProjection(CLIPVisionModel):
    """Vision transformer + ``visual_projection`` of the class token (IP-Adapter's image encoder)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__(config)
        self.visual_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
    ) -> CLIPVisionModelOutput | tuple:
        output_hidden_states, output_attentions, return_dict = self._flags(
            output_hidden_states, output_attentions, return_dict
        )
        vision = self.vision_model(pixel_values, interpolate_pos_encoding, output_hidden_states, output_attentions)
        out = CLIPVisionModelOutput(
            image_embeds=self.visual_projection(vision.pooler_output),
            last_hidden_state=vision.last_hidden_state,
            hidden_states=vision.hidden_states,
            attentions=vision.attentions,
        )
        return out if return_dict else out.to_tuple()


class CLIPModel(CLIPPreTrainedModel):
    """Both towers and their projections; ``forward`` scores every image against every text."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config)
        self.projection_dim = config.projection_dim
        self.text_model = CLIPTextTransformer(config.text_config)
        self.vision_model = CLIPVisionTransformer(config.vision_config)
        self.visual_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def get_text_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPooling:
        """The text tower's output with ``pooler_output`` projected (transformers 5 returns this object)."""
        out = self.text_model(input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)
        out.pooler_output = self.text_projection(out.pooler_output)
        return out

    def get_image_features(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPooling:
        out = self.vision_model(pixel_values, interpolate_pos_encoding, output_hidden_states, output_attentions)
        out.pooler_output = self.visual_projection(out.pooler_output)
        return out

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
    ) -> CLIPOutput | tuple:
        output_hidden_states, output_attentions, return_dict = self._flags(
            output_hidden_states, output_attentions, return_dict
        )
        vision = self.get_image_features(pixel_values, interpolate_pos_encoding, output_attentions, output_hidden_states)
        text = self.get_text_features(input_ids, attention_mask, position_ids, output_attentions, output_hidden_states)
        image_embeds = vision.pooler_output / vision.pooler_output.norm(dim=-1, keepdim=True)
        text_embeds = text.pooler_output / text.pooler_output.norm(dim=-1, keepdim=True)
        logits_per_text = text_embeds @ image_embeds.t() * self.logit_scale.exp()
        loss = None
        if return_loss:  # symmetric contrastive loss: text i belongs with image i
            loss = (_contrastive_loss(logits_per_text) + _contrastive_loss(logits_per_text.t())) / 2
        out = CLIPOutput(
            loss=loss, logits_per_image=logits_per_text.t(), logits_per_text=logits_per_text,
            text_embeds=text_embeds, image_embeds=image_embeds, text_model_output=text, vision_model_output=vision,
        )
        return out if return_dict else out.to_tuple()


def _contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
