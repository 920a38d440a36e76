"""Original-layout Stable Diffusion 1.x / 2.x single files, converted to diffusers' component layouts.

Stable Diffusion is often shared as one CompVis/LDM file: the UNet under ``model.diffusion_model.``, the VAE under
``first_stage_model.``, and the text encoder under ``cond_stage_model.transformer.`` (SD 1.x: transformers' CLIP
names behind a prefix) or ``cond_stage_model.model.`` (SD 2.x: OpenCLIP, fused qkv). ``convert_original_checkpoint``
reads such a file without any download and returns, per component, the diffusers/transformers config and a state
dict under diffusers/transformers names, ready for ``Component.from_config(config)`` plus a strict state-dict load.

Configs come from the weights' shapes. What shapes cannot tell follows what diffusers does (it reads the configs of
its reference repos): SD 1.x attention has 8 heads, SD 2.x 64-channel heads; SD 2.x 768 models predict
``v_prediction`` and upcast attention, unless the file's ``global_step`` is 875000 (SD 2 base, ``epsilon``).
Renamed tensors stay views of the file's mmap: nothing is copied.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import torch

from ..loading import iter_safetensors, iter_torch_bin

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD 1.x: transformers' CLIPTextModel names follow
OPEN_CLIP_PREFIX = "cond_stage_model.model."  # SD 2.x: OpenCLIP text tower
VAE_SCALING_FACTOR = 0.18215
SD2_BASE_GLOBAL_STEP = 875000  # the SD 2 (512, epsilon) base release; diffusers' only hint against v_prediction

# diffusers' names for what it detects, the pipeline class and the reference repo it reads missing files from
_MODEL_TYPES = {
    "v1": ("StableDiffusionPipeline", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
    "v2": ("StableDiffusionPipeline", "stabilityai/stable-diffusion-2-1"),
    "inpainting": ("StableDiffusionInpaintPipeline", "stable-diffusion-v1-5/stable-diffusion-inpainting"),
    "inpainting_v2": ("StableDiffusionInpaintPipeline", "stabilityai/stable-diffusion-2-inpainting"),
}
_PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
# Other layouts people pass by mistake, recognised by a telling key prefix.
_OTHER_LAYOUTS = {
    "conditioner.embedders.": "an SDXL original checkpoint (only SD 1.x / 2.x are converted here)",
    "control_model.": "a ControlNet original checkpoint",
    "model.diffusion_model.joint_blocks.": "an SD3 checkpoint",
    "double_blocks.": "a Flux checkpoint",
    "model.diffusion_model.double_blocks.": "a Flux checkpoint",
    "down_blocks.": "a diffusers-layout UNet (load it with UNet2DConditionModel.from_pretrained)",
    "encoder.down_blocks.": "a diffusers-layout VAE (load it with AutoencoderKL.from_pretrained)",
    "encoder.down.": "a standalone original-layout VAE, without a UNet",
}
class Component(NamedTuple):
    """One component: its config (diffusers/transformers fields, with ``_class_name``) and its weights."""

    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


class ConvertedCheckpoint(dict):
    """Component name -> ``Component``; also says what was detected (diffusers' name for it) and what
    diffusers would use for the parts a single file never holds (the tokenizer)."""

    def __init__(self, components: dict[str, Component], model_type: str) -> None:
        super().__init__(components)
        self.model_type = model_type
        self.pipeline_class_name, self.reference_repo = _MODEL_TYPES[model_type]


def convert_original_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, Any],
    *,
    prediction_type: str | None = None,
    extract_ema: bool = False,
    image_size: int | None = None,
    torch_dtype: torch.dtype | None = None,
    config_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ConvertedCheckpoint:
    """Convert an original-layout SD 1.x / 2.x checkpoint (a .safetensors / .ckpt file, or its state dict).

    Returns a ``ConvertedCheckpoint`` with "unet", "vae" and "text_encoder" (those the file holds), "scheduler"
    and "tokenizer" (a description: the tokenizer is never in the file; its config names the repo diffusers uses).
    ``prediction_type`` overrides the guess for the scheduler; ``extract_ema`` takes the UNet from the EMA
    weights (``model_ema.*``); ``image_size`` sets the sample sizes; ``torch_dtype`` converts floating weights;
    ``config_overrides`` (e.g. ``{"unet": {"upcast_attention": True}}``) replaces inferred config fields.
    """
    if prediction_type is not None and prediction_type not in _PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {_PREDICTION_TYPES}, got {prediction_type!r}.")
    overrides = {name: dict(fields) for name, fields in (config_overrides or {}).items()}
    unknown = set(overrides) - {"unet", "vae", "text_encoder", "scheduler"}
    if unknown:
        raise ValueError(
            f"config_overrides names unknown components {sorted(unknown)}; use 'unet', 'vae', 'text_encoder' "
            "or 'scheduler'."
        )
    state, global_step = _read(path_or_state_dict, torch_dtype)
    _check_layout(state)

    unet = _strip(state, UNET_PREFIX)
    if extract_ema:
        unet = _ema_weights(state, unet)
    text_encoder = _convert_text_encoder(state, overrides.get("text_encoder", {}))
    if text_encoder is not None:  # SD 2.x is the one with the OpenCLIP text tower
        is_v2 = any(key.startswith(OPEN_CLIP_PREFIX) for key in state)
    else:
        is_v2 = _unet_uses_linear_projection(unet)
    in_channels = unet["input_blocks.0.0.weight"].shape[1]
    inpainting = in_channels == 9
    model_type = ("inpainting_v2" if is_v2 else "inpainting") if inpainting else ("v2" if is_v2 else "v1")

    if prediction_type is None:
        prediction_type = "v_prediction" if model_type == "v2" and global_step != SD2_BASE_GLOBAL_STEP else "epsilon"
    is_768_v = model_type == "v2" and prediction_type == "v_prediction"
    image_size = image_size or (768 if is_768_v else 512)

    components: dict[str, Component] = {}
    unet_config = _unet_config(unet, is_v2, upcast_attention=is_768_v, image_size=image_size)
    unet_weights = _convert_unet(unet, unet_config["layers_per_block"])  # the file's layout, whatever overrides say
    unet_config.update(overrides.get("unet", {}))
    if text_encoder is not None and unet_config["cross_attention_dim"] != text_encoder.config["hidden_size"]:
        raise ValueError(
            f"The UNet attends to {unet_config['cross_attention_dim']}-dim text features but the text encoder in the "
            f"file is {text_encoder.config['hidden_size']}-dim: the file mixes parts of different models."
        )
    components["unet"] = Component(unet_config, unet_weights)
    vae = _strip(state, VAE_PREFIX, skip=lambda key: key.startswith("loss."))
    if vae:
        components["vae"] = _convert_vae(vae, image_size, overrides.get("vae", {}))
    else:
        logger.info("The checkpoint holds no VAE (%s*); pass one to the pipeline.", VAE_PREFIX)
    if text_encoder is not None:
        components["text_encoder"] = text_encoder
    else:
        logger.info("The checkpoint holds no text encoder (cond_stage_model.*); pass one to the pipeline.")
    scheduler_config = _scheduler_config(state, prediction_type, use_ddim=is_768_v)
    scheduler_config.update(overrides.get("scheduler", {}))
    components["scheduler"] = Component(scheduler_config, {})
    components["tokenizer"] = Component(_tokenizer_description(is_v2), {})
    return ConvertedCheckpoint(components, model_type)


# --- reading -----------------------------------------------------------------------------------------------------
def _read(
    source: str | os.PathLike | Mapping[str, Any], torch_dtype: torch.dtype | None
) -> tuple[dict[str, torch.Tensor], int | None]:
    """(flat tensor dict, global_step or None) from a file or a state dict, unwrapping Lightning's "state_dict"."""
    if isinstance(source, Mapping):
        outer = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ValueError(
                f"{path} is a folder; convert_original_checkpoint needs one original-layout file (.safetensors or "
                ".ckpt). A diffusers folder loads with DiffusionPipeline.from_pretrained."
            )
        if not path.is_file():
            raise FileNotFoundError(f"No checkpoint file at {path}.")
        if path.suffix == ".safetensors":
            outer = dict(iter_safetensors(path, convert_to=torch_dtype))
            torch_dtype = None  # already converted while reading
        elif path.suffix in (".ckpt", ".bin", ".pt", ".pth"):
            outer = dict(iter_torch_bin(path))
        else:
            raise ValueError(
                f"{path.name}: expected a .safetensors or .ckpt (.bin, .pt, .pth) Stable Diffusion checkpoint, "
                f"found a {path.suffix or 'suffix-less'} file."
            )
    else:
        raise TypeError(
            f"convert_original_checkpoint takes a file path or a state dict, got {type(source).__name__}."
        )
    global_step = None
    while isinstance(outer.get("state_dict"), Mapping):
        global_step = outer.get("global_step", global_step)
        outer = dict(outer["state_dict"])
    global_step = outer.get("global_step", global_step)
    if isinstance(global_step, torch.Tensor):
        global_step = int(global_step.item())
    state = {key: value for key, value in outer.items() if isinstance(value, torch.Tensor)}
    if torch_dtype is not None:
        state = {k: v.to(torch_dtype) if v.is_floating_point() else v for k, v in state.items()}
    return state, global_step


def _check_layout(state: dict[str, torch.Tensor]) -> None:
    for prefix, what in _OTHER_LAYOUTS.items():
        if any(key.startswith(prefix) for key in state):
            raise ValueError(f"This file looks like {what}, not an SD 1.x / 2.x original checkpoint.")
    if UNET_PREFIX + "input_blocks.0.0.weight" not in state:
        prefixes = sorted({".".join(key.split(".")[:2]) for key in state})
        raise ValueError(
            f"Not an SD 1.x / 2.x original-layout checkpoint: no UNet weights under {UNET_PREFIX!r}. "
            f"Key prefixes found: {prefixes[:12] or 'none (the file holds no tensors)'}."
        )
    if any(key.startswith(UNET_PREFIX + "label_emb.") for key in state):
        raise ValueError("This UNet has a class/size embedding (label_emb: SDXL or an upscaler); only SD 1.x / 2.x "
                         "text-to-image and inpainting checkpoints are converted.")
    # LDM's training buffers (betas, alphas_cumprod, ...), EMA weights and the like belong to no component
    ignored = [key for key in state if not key.startswith((UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX, OPEN_CLIP_PREFIX))]
    if ignored:
        logger.debug("Ignoring %d keys outside the SD components, e.g. %s", len(ignored), ignored[:5])


def _strip(
    state: dict[str, torch.Tensor], prefix: str, skip: Callable[[str], bool] | None = None
) -> dict[str, torch.Tensor]:
    out = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    return {key: value for key, value in out.items() if skip is None or not skip(key)}


def _ema_weights(state: dict[str, torch.Tensor], unet: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet's EMA copy: LDM stores it as ``model_ema.`` plus the dotless name after ``model.``."""
    ema = {}
    missing = []
    for key in unet:
        ema_key = "model_ema.diffusion_model" + key.replace(".", "")
        if ema_key in state:
            ema[key] = state[ema_key]
        else:
            missing.append(ema_key)
    if missing:
        have = sum(key.startswith("model_ema.") for key in state)
        raise ValueError(
            f"extract_ema=True, but {len(missing)} of the UNet's {len(unet)} EMA weights are missing (e.g. "
            f"{missing[0]!r}; the file has {have} model_ema.* keys). Use extract_ema=False for the regular weights."
        )
    return ema


# --- UNet --------------------------------------------------------------------------------------------------------
_UNET_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_UNET_TOP = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out"}
_TRANSFORMER_PARTS = ("norm.", "proj_in.", "proj_out.", "transformer_blocks.")  # same names in LDM and diffusers
_BLOCK_KEY = re.compile(r"(input_blocks|output_blocks|middle_block)\.(\d+)\.(?:(\d+)\.)?(.+)")


def _unet_uses_linear_projection(unet: dict[str, torch.Tensor]) -> bool:
    return any(key.endswith(".proj_in.weight") and value.ndim == 2 for key, value in unet.items())


def _count(keys: Iterable[str], pattern: str) -> int:
    """How many distinct indices ``pattern`` (a regex with one ``(\\d+)``) matches at the start of ``keys``."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for key in keys if (m := regex.match(key))}
    return max(found) + 1 if found else 0


def _unet_config(unet: dict[str, torch.Tensor], is_v2: bool, *, upcast_attention: bool, image_size: int) -> dict:
    keys = list(unet)
    downsampler = re.compile(r"input_blocks\.(\d+)\.0\.op\.weight")
    downsamplers = sorted(int(m.group(1)) for key in keys if (m := downsampler.fullmatch(key)))
    num_inputs = _count(keys, r"input_blocks\.(\d+)\.")
    num_outputs = _count(keys, r"output_blocks\.(\d+)\.")
    layers_per_block = downsamplers[0] - 1 if downsamplers else num_inputs - 1
    levels = len(downsamplers) + 1
    step = layers_per_block + 1
    if (layers_per_block < 1 or downsamplers != [step * n for n in range(1, levels)]
            or num_inputs != levels * step or num_outputs != levels * step):
        raise ValueError(
            f"The UNet weights do not follow the LDM layout: {num_inputs} input blocks with downsamplers at "
            f"{downsamplers} and {num_outputs} output blocks; expected every level to "
            "hold the same number of ResBlocks, a downsampler closing each level but the last, and one more "
            "output block per level."
        )
    if "middle_block.1.proj_in.weight" not in unet:
        raise ValueError("The UNet's middle block has no attention (middle_block.1); SD 1.x / 2.x always has one.")

    block_out_channels, down_types, depths = [], [], []
    cross_attention_dim = None
    for level in range(levels):
        first = 1 + level * step
        block_out_channels.append(unet[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0])
        has_attention = f"input_blocks.{first}.1.proj_in.weight" in unet
        down_types.append("CrossAttnDownBlock2D" if has_attention else "DownBlock2D")
        depths.append(_count(keys, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.") if has_attention else 1)
        if has_attention and cross_attention_dim is None:
            cross_attention_dim = unet[f"input_blocks.{first}.1.transformer_blocks.0.attn2.to_k.weight"].shape[1]
    if cross_attention_dim is None:
        cross_attention_dim = unet["middle_block.1.transformer_blocks.0.attn2.to_k.weight"].shape[1]
    up_types = ["CrossAttnUpBlock2D" if f"output_blocks.{level * step}.1.proj_in.weight" in unet else "UpBlock2D"
                for level in range(levels)]

    if is_v2:  # 64 channels per head: diffusers' (misnamed) attention_head_dim holds per-block head counts
        if any(channels % 64 for channels in block_out_channels):
            raise ValueError(
                f"SD 2.x uses 64-channel attention heads, but the block widths {block_out_channels} are not "
                "multiples of 64; pass config_overrides={'unet': {'attention_head_dim': <heads per block>}}."
            )
        attention_head_dim: int | list[int] = [channels // 64 for channels in block_out_channels]
    else:
        attention_head_dim = 8  # SD 1.x: 8 heads in every block
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": image_size // 8,
        "in_channels": unet["input_blocks.0.0.weight"].shape[1],
        "out_channels": unet["out.2.weight"].shape[0],
        "down_block_types": down_types,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "up_block_types": up_types,
        "block_out_channels": block_out_channels,
        "layers_per_block": layers_per_block,
        "transformer_layers_per_block": _transformer_depth(keys, down_types, depths),
        "cross_attention_dim": cross_attention_dim,
        "attention_head_dim": attention_head_dim,
        "use_linear_projection": _unet_uses_linear_projection(unet),
        "upcast_attention": upcast_attention,
        "act_fn": "silu",
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "center_input_sample": False,
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "mid_block_scale_factor": 1,
    }


def _transformer_depth(keys: list[str], down_types: list[str], depths: list[int]) -> int | list[int]:
    """One int when every transformer (down levels and middle) has the same depth, else diffusers' per-level list
    (the middle block takes the last entry)."""
    attention_depths = {d for d, kind in zip(depths, down_types) if kind.startswith("CrossAttn")}
    mid_depth = _count(keys, r"middle_block\.1\.transformer_blocks\.(\d+)\.")
    if attention_depths <= {mid_depth}:
        return mid_depth
    return depths[:-1] + [mid_depth] if down_types[-1] == "DownBlock2D" else depths


def _unet_name(key: str, layers_per_block: int) -> str | None:
    """The diffusers name of an LDM UNet key, or None when the key is not part of the layout."""
    module, _, param = key.rpartition(".")
    for old, new in _UNET_TOP.items():
        if module == old:
            return f"{new}.{param}"
    match = _BLOCK_KEY.fullmatch(key)
    if match is None:
        return None
    kind, index, part, rest = match.group(1), int(match.group(2)), match.group(3), match.group(4)
    if kind == "middle_block":  # ResBlock, SpatialTransformer, ResBlock
        if index in (0, 2):
            return _resnet(f"mid_block.resnets.{index // 2}", rest)
        return f"mid_block.attentions.0.{rest}" if index == 1 and rest.startswith(_TRANSFORMER_PARTS) else None
    if part is None:
        return None
    part = int(part)
    if kind == "input_blocks" and index == 0:
        return None  # input_blocks.0.0 is conv_in (above); nothing else lives in block 0
    if kind == "input_blocks":
        level, layer = divmod(index - 1, layers_per_block + 1)
        prefix = f"down_blocks.{level}"
        if part == 0 and rest.startswith("op.") and layer == layers_per_block:
            return f"{prefix}.downsamplers.0.conv.{rest[3:]}"
    else:
        level, layer = divmod(index, layers_per_block + 1)
        prefix = f"up_blocks.{level}"
        if part in (1, 2) and rest.startswith("conv.") and layer == layers_per_block:
            return f"{prefix}.upsamplers.0.conv.{rest[5:]}"
    if part == 0 and layer < layers_per_block + (kind == "output_blocks"):
        return _resnet(f"{prefix}.resnets.{layer}", rest)
    if part == 1 and rest.startswith(_TRANSFORMER_PARTS):
        return f"{prefix}.attentions.{layer}.{rest}"
    return None


def _resnet(prefix: str, rest: str) -> str | None:
    module, _, param = rest.rpartition(".")
    new = _UNET_RESNET.get(module)
    return f"{prefix}.{new}.{param}" if new else None


def _convert_unet(unet: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    converted, unexpected = {}, []
    for key, value in unet.items():
        name = _unet_name(key, layers_per_block)
        if name is None:
            unexpected.append(UNET_PREFIX + key)
        else:
            converted[name] = value
    if unexpected:
        raise ValueError(
            f"{len(unexpected)} UNet weights do not fit the SD 1.x / 2.x LDM layout, e.g. {unexpected[:5]}. "
            "The file is another architecture or was modified; it cannot be converted as Stable Diffusion."
        )
    return converted


# --- VAE ---------------------------------------------------------------------------------------------------------
_VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_VAE_RESNET_PARTS = {"norm1", "conv1", "norm2", "conv2", "nin_shortcut"}
_VAE_KEY = re.compile(
    r"(?P<coder>encoder|decoder)\.(?:"
    r"(?P<dir>down|up)\.(?P<level>\d+)\.(?:block\.(?P<layer>\d+)\.(?P<res>\w+)|(?P<sampler>downsample|upsample)\.conv)"
    r"|mid\.block_(?P<mid>[12])\.(?P<midres>\w+)"
    r"|mid\.attn_1\.(?P<attn>norm|q|k|v|proj_out)"
    r"|(?P<top>conv_in|conv_out|norm_out))\.(?P<param>weight|bias)"
)


def _vae_name(key: str, levels: int) -> str | None:
    if re.fullmatch(r"(post_)?quant_conv\.(weight|bias)", key):
        return key
    m = _VAE_KEY.fullmatch(key)
    if m is None:
        return None
    coder, param = m["coder"], m["param"]
    if m["top"]:
        return f"{coder}.{'conv_norm_out' if m['top'] == 'norm_out' else m['top']}.{param}"
    if m["attn"]:
        return f"{coder}.mid_block.attentions.0.{_VAE_ATTENTION[m['attn']]}.{param}"
    resnet_part = m["res"] or m["midres"]
    if resnet_part not in _VAE_RESNET_PARTS and resnet_part is not None:
        return None
    resnet_part = "conv_shortcut" if resnet_part == "nin_shortcut" else resnet_part
    if m["mid"]:
        return f"{coder}.mid_block.resnets.{int(m['mid']) - 1}.{resnet_part}.{param}"
    if (m["dir"] == "down") != (coder == "encoder"):
        return None
    level = int(m["level"])
    if coder == "decoder":  # LDM numbers decoder levels from the lowest resolution; diffusers from the first run
        level = levels - 1 - level
    blocks = f"{coder}.{m['dir']}_blocks.{level}"
    if m["sampler"]:
        return f"{blocks}.{m['sampler']}rs.0.conv.{param}"
    return f"{blocks}.resnets.{m['layer']}.{resnet_part}.{param}"


def _convert_vae(vae: dict[str, torch.Tensor], image_size: int, overrides: dict) -> Component:
    keys = list(vae)
    levels = _count(keys, r"encoder\.down\.(\d+)\.")
    layers = _count(keys, r"encoder\.down\.0\.block\.(\d+)\.")
    if levels == 0 or "encoder.conv_in.weight" not in vae or "decoder.conv_out.weight" not in vae:
        raise ValueError(f"The VAE weights ({VAE_PREFIX}*) do not follow the LDM autoencoder layout "
                         "(encoder.conv_in, encoder.down.N.block.M, decoder.up.N.block.M, decoder.conv_out).")
    config = {
        "_class_name": "AutoencoderKL",
        "in_channels": vae["encoder.conv_in.weight"].shape[1],
        "out_channels": vae["decoder.conv_out.weight"].shape[0],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": [vae[f"encoder.down.{n}.block.0.conv1.weight"].shape[0] for n in range(levels)],
        "layers_per_block": layers,
        "latent_channels": vae["decoder.conv_in.weight"].shape[1],
        "act_fn": "silu",
        "norm_num_groups": 32,
        "sample_size": image_size,
        "scaling_factor": VAE_SCALING_FACTOR,
        "use_quant_conv": "quant_conv.weight" in vae,
        "use_post_quant_conv": "post_quant_conv.weight" in vae,
        "mid_block_add_attention": "encoder.mid.attn_1.q.weight" in vae,
    }
    config.update(overrides)
    converted, unexpected = {}, []
    for key, value in vae.items():
        name = _vae_name(key, levels)
        if name is None:
            unexpected.append(VAE_PREFIX + key)
            continue
        if ".attentions.0." in name and name.endswith(".weight") and value.ndim > 2:
            value = value.reshape(value.shape[0], value.shape[1])  # LDM's 1x1 convs are diffusers' linears (a view)
        converted[name] = value
    if unexpected:
        raise ValueError(f"{len(unexpected)} VAE weights do not fit the LDM autoencoder layout, e.g. {unexpected[:5]}.")
    return Component(config, converted)


# --- text encoders -----------------------------------------------------------------------------------------------
_OPEN_CLIP_TOP = {"token_embedding.weight": "embeddings.token_embedding.weight",
                  "positional_embedding": "embeddings.position_embedding.weight",
                  "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
_OPEN_CLIP_LAYER = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
                    "attn.out_proj": "self_attn.out_proj"}
_OPEN_CLIP_UNUSED = {"text_projection", "logit_scale", "attn_mask"}  # CLIPTextModel has no projection


def _convert_text_encoder(state: dict[str, torch.Tensor], overrides: dict) -> Component | None:
    clip = _strip(state, CLIP_PREFIX)
    if clip:
        return _convert_clip(clip, overrides)
    open_clip = _strip(state, OPEN_CLIP_PREFIX)
    if open_clip:
        return _convert_open_clip(open_clip, overrides)
    return None


def _clip_config(*, vocab: int, hidden: int, intermediate: int, layers: int, positions: int, act: str,
                 projection_dim: int, overrides: dict) -> dict:
    config = {
        "_class_name": "CLIPTextModel",
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": hidden // 64,  # CLIP ViT-L/14 and OpenCLIP ViT-H/14 both use 64-dim heads
        "max_position_embeddings": positions,
        "hidden_act": act,
        "layer_norm_eps": 1e-5,
        "projection_dim": projection_dim,
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_factor": 1.0,
        "bos_token_id": 0,  # as in the SD repos' text_encoder/config.json
        "eos_token_id": 2,
        "pad_token_id": 1,
    }
    config.update(overrides)
    heads = config["num_attention_heads"]
    if not isinstance(heads, int) or heads < 1 or hidden % heads:
        raise ValueError(
            f"Cannot infer the text encoder's attention heads: its width {hidden} is not a multiple of 64-dim heads. "
            "Pass config_overrides={'text_encoder': {'num_attention_heads': N}}."
        )
    return config


def _convert_clip(clip: dict[str, torch.Tensor], overrides: dict) -> Component:
    """SD 1.x: transformers' CLIPTextModel names behind a prefix; only the position_ids buffer is dropped."""
    stray = [CLIP_PREFIX + key for key in clip if not key.startswith("text_model.")]
    embed = clip.get("text_model.embeddings.token_embedding.weight")
    if stray or embed is None:
        raise ValueError(
            f"The SD 1.x text encoder ({CLIP_PREFIX}*) should hold transformers' CLIPTextModel weights under "
            f"'text_model.'; found {stray[:5] or 'no token embedding'}."
        )
    state = {key: value for key, value in clip.items() if not key.endswith("embeddings.position_ids")}
    keys = list(state)
    config = _clip_config(
        vocab=embed.shape[0], hidden=embed.shape[1],
        intermediate=state["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        layers=_count(keys, r"text_model\.encoder\.layers\.(\d+)\."),
        positions=state["text_model.embeddings.position_embedding.weight"].shape[0],
        act="quick_gelu", projection_dim=embed.shape[1], overrides=overrides,
    )
    return Component(config, state)


def _convert_open_clip(open_clip: dict[str, torch.Tensor], overrides: dict) -> Component:
    """SD 2.x: OpenCLIP's text tower. SD 2.x conditions on the penultimate layer, so, as diffusers does, the last
    resblock is left out (23 of ViT-H's 24 layers) and the final layer norm applies to the one before it."""
    keys = list(open_clip)
    total_layers = _count(keys, r"transformer\.resblocks\.(\d+)\.")
    embed = open_clip.get("token_embedding.weight")
    if embed is None or total_layers < 2:
        raise ValueError(f"The SD 2.x text encoder ({OPEN_CLIP_PREFIX}*) should be an OpenCLIP text tower "
                         f"(token_embedding, transformer.resblocks.N, ln_final); found keys {keys[:5]}.")
    hidden = embed.shape[1]
    state, unexpected = {}, []
    for key, value in open_clip.items():
        layer_match = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(\w+)", key)
        if key in _OPEN_CLIP_TOP:
            state["text_model." + _OPEN_CLIP_TOP[key]] = value
        elif key in _OPEN_CLIP_UNUSED:
            continue
        elif layer_match is None:
            unexpected.append(key)
        elif int(layer_match.group(1)) == total_layers - 1:
            continue  # the last layer: SD 2.x never runs it
        else:
            layer, module, param = layer_match.groups()
            prefix = f"text_model.encoder.layers.{layer}"
            if module == "attn" and param in ("in_proj_weight", "in_proj_bias"):
                kind = param.removeprefix("in_proj_")
                for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.split(hidden, dim=0)):
                    state[f"{prefix}.self_attn.{name}.{kind}"] = chunk  # row blocks of a contiguous tensor: views
            elif module in _OPEN_CLIP_LAYER:
                state[f"{prefix}.{_OPEN_CLIP_LAYER[module]}.{param}"] = value
            else:
                unexpected.append(key)
    if unexpected:
        raise ValueError(f"OpenCLIP text encoder weights not in the expected layout: {unexpected[:5]}.")
    projection = open_clip.get("text_projection")
    config = _clip_config(
        vocab=embed.shape[0], hidden=hidden,
        intermediate=open_clip["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        layers=total_layers - 1, positions=open_clip["positional_embedding"].shape[0], act="gelu",
        projection_dim=projection.shape[1] if projection is not None else hidden, overrides=overrides,
    )
    return Component(config, state)


# --- scheduler and tokenizer -------------------------------------------------------------------------------------
def _scheduler_config(state: dict[str, torch.Tensor], prediction_type: str, *, use_ddim: bool) -> dict:
    """The SD repos' scheduler config: scaled_linear 0.00085..0.012 over 1000 steps, unless the file's own ``betas``
    buffer (LDM keeps one) says otherwise, in which case those betas are used as they are."""
    config = {
        "_class_name": "DDIMScheduler" if use_ddim else "PNDMScheduler",
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "trained_betas": None,
        "prediction_type": prediction_type,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "clip_sample": False,
        "timestep_spacing": "leading",
    }
    betas = state.get("betas")
    if betas is not None and betas.ndim == 1 and len(betas) > 1:
        betas = betas.double()
        standard = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        if betas.shape != standard.shape or not torch.allclose(betas, standard, rtol=1e-3, atol=0):
            config.update(num_train_timesteps=len(betas), trained_betas=betas.tolist())
    return config


def _tokenizer_description(is_v2: bool) -> dict:
    """Single files carry no tokenizer: say which one the model was trained with (and where diffusers gets it)."""
    if is_v2:  # OpenCLIP's tokenizer: same vocabulary as CLIP's, padded with "!" instead of "<|endoftext|>"
        return {"_class_name": "CLIPTokenizer", "pretrained_model_name_or_path": "stabilityai/stable-diffusion-2-1",
                "subfolder": "tokenizer", "pad_token": "!", "model_max_length": 77}
    return {"_class_name": "CLIPTokenizer", "pretrained_model_name_or_path": "openai/clip-vit-large-patch14",
            "subfolder": None, "pad_token": "<|endoftext|>", "model_max_length": 77}
