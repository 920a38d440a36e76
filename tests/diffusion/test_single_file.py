"""Original-layout (CompVis/LDM) SD 1.x / 2.x single files against diffusers' own conversion, offline.

Tiny diffusers/transformers models are written back into the original layout (a small test-side table below), saved
as one file, and converted by hugkit: the configs must equal the tiny ones, the state dicts must equal what
diffusers' converters make of the same file, and they must load strictly into diffusers/transformers and give the
original models' outputs.
"""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

from hugkit.diffusion.single_file import convert_original_checkpoint

SD_BETAS = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
TINY_VAE = dict(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2,
                up_block_types=["UpDecoderBlock2D"] * 2, layers_per_block=1, latent_channels=4, norm_num_groups=32)
VARIANTS = {
    # SD 1.x layout: 8 heads, conv proj_in, CLIP (quick_gelu); the last level without attention, as in SD.
    "v1": dict(
        unet=dict(block_out_channels=[32, 64], layers_per_block=2, attention_head_dim=8, cross_attention_dim=128,
                  down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], in_channels=4, sample_size=64),
        text=dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_hidden_layers=2, vocab_size=99,
                  max_position_embeddings=16, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2),
    ),
    # SD 2.x layout: 64-channel heads, linear proj_in, depth-2 transformers, OpenCLIP (gelu, 24 resblocks: diffusers
    # drops resblocks.23, SD 2.x's unused last layer); attention before an upsampler (output_blocks.N.2.conv).
    "v2": dict(
        unet=dict(block_out_channels=[64, 128], layers_per_block=2, attention_head_dim=[1, 2], cross_attention_dim=64,
                  down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"], use_linear_projection=True,
                  up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], transformer_layers_per_block=2,
                  upcast_attention=True, sample_size=96, in_channels=4),
        text=dict(hidden_size=64, intermediate_size=128, num_attention_heads=1, num_hidden_layers=24, vocab_size=99,
                  max_position_embeddings=16, hidden_act="gelu", bos_token_id=0, eos_token_id=2),
    ),
}
VARIANTS["inpainting"] = dict(unet={**VARIANTS["v1"]["unet"], "in_channels": 9}, text=VARIANTS["v1"]["text"])


# --- writing tiny models back into the original layout (test-side inverse table) ----------------------------------
_RESNET_TO_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                  "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def unet_to_ldm(state: dict, config: dict) -> dict:
    step = config["layers_per_block"] + 1
    fixed = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module in fixed:
            out[f"{fixed[module]}.{param}"] = value
            continue
        m = re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)", key)
        if m:
            side, level, kind, layer, rest = m[1], int(m[2]), m[3], int(m[4]), m[5]
            if side == "down":
                block = f"input_blocks.{1 + level * step + layer}"
            else:
                block = f"output_blocks.{level * step + layer}"
            if kind == "resnets":
                sub, _, p = rest.rpartition(".")
                out[f"{block}.0.{_RESNET_TO_LDM[sub]}.{p}"] = value
            elif kind == "attentions":
                out[f"{block}.1.{rest}"] = value
            elif kind == "downsamplers":
                out[f"input_blocks.{1 + level * step + step - 1}.0.op.{rest.removeprefix('conv.')}"] = value
            else:
                has_attention = config["up_block_types"][level].startswith("CrossAttn")
                out[f"output_blocks.{level * step + step - 1}.{2 if has_attention else 1}.{rest}"] = value
            continue
        m = re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key)
        if m[1] == "attentions":
            out[f"middle_block.1.{m[3]}"] = value
        else:
            sub, _, p = m[3].rpartition(".")
            out[f"middle_block.{2 * int(m[2])}.{_RESNET_TO_LDM[sub]}.{p}"] = value
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def vae_to_ldm(state: dict, levels: int) -> dict:
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", new)
        m = re.fullmatch(r"(\w+)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(\w+)", new)
        if m:
            new = f"{m[1]}.mid.attn_1.{attention[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm":
                value = value[:, :, None, None]  # LDM's 1x1 convs
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets", r"encoder.down.\1.block", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0",
                     lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample", new)
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: dict) -> dict:
    out = {"cond_stage_model.transformer.text_model." + k: v for k, v in state.items()}
    positions = state["embeddings.position_embedding.weight"].shape[0]
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(positions)[None]
    return out


def open_clip_to_ldm(state: dict, projection_dim: int) -> dict:
    names = {"embeddings.token_embedding.weight": "token_embedding.weight",
             "embeddings.position_embedding.weight": "positional_embedding",
             "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}
    parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    out = {}
    for key, value in state.items():
        if key in names:
            out[names[key]] = value
            continue
        layer, module, param = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(\w+)", key).groups()
        if module == "self_attn.q_proj":
            qkv = [state[f"encoder.layers.{layer}.self_attn.{p}_proj.{param}"] for p in "qkv"]
            out[f"transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat(qkv)
        elif module in parts:
            out[f"transformer.resblocks.{layer}.{parts[module]}.{param}"] = value
    hidden = state["embeddings.token_embedding.weight"].shape[1]
    out["text_projection"] = torch.randn(hidden, projection_dim)
    out["logit_scale"] = torch.tensor(4.6)
    return {"cond_stage_model.model." + k: v for k, v in out.items()}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one thread is ~20x faster than two fighting for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(variant: str) -> dict:
    torch.manual_seed(0)
    spec = VARIANTS[variant]
    unet = UNet2DConditionModel(**spec["unet"], norm_num_groups=32).eval()
    vae = AutoencoderKL(**TINY_VAE).eval()
    text = CLIPTextModel(CLIPTextConfig(**spec["text"])).eval()
    state = {**unet_to_ldm(unet.state_dict(), dict(unet.config)), **vae_to_ldm(vae.state_dict(), 2)}
    if spec["text"]["hidden_act"] == "gelu":
        state.update(open_clip_to_ldm(text.state_dict(), projection_dim=32))
    else:
        state.update(clip_to_ldm(text.state_dict()))
    state["betas"] = SD_BETAS.float()
    state["alphas_cumprod"] = torch.cumprod(1 - SD_BETAS, 0).float()
    return {"state": {k: v.contiguous() for k, v in state.items()}, "unet": unet, "vae": vae, "text": text}


@pytest.fixture(scope="module", params=list(VARIANTS))
def case(request, tmp_path_factory):
    built = build(request.param)
    path = tmp_path_factory.mktemp(request.param) / "model.safetensors"
    save_file(built["state"], str(path))
    return {**built, "variant": request.param, "path": path, "converted": convert_original_checkpoint(path)}


def public(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


# --- (a) configs from shapes ----------------------------------------------------------------------------------------
UNET_FIELDS = ["in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
               "layers_per_block", "transformer_layers_per_block", "cross_attention_dim", "attention_head_dim",
               "use_linear_projection", "upcast_attention", "sample_size", "mid_block_type", "norm_num_groups",
               "act_fn", "norm_eps", "flip_sin_to_cos", "freq_shift", "downsample_padding", "center_input_sample"]
VAE_FIELDS = ["in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
              "layers_per_block", "latent_channels", "norm_num_groups", "act_fn", "scaling_factor",
              "use_quant_conv", "use_post_quant_conv", "mid_block_add_attention"]
TEXT_FIELDS = ["vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "max_position_embeddings",
               "hidden_act", "layer_norm_eps", "bos_token_id", "eos_token_id", "pad_token_id"]


def test_configs_come_from_the_shapes(case):
    converted = case["converted"]
    unet_config, vae_config, text_config = (converted[n].config for n in ("unet", "vae", "text_encoder"))
    for field in UNET_FIELDS:
        assert _plain(unet_config[field]) == _plain(case["unet"].config[field]), field
    for field in VAE_FIELDS:
        assert _plain(vae_config[field]) == _plain(case["vae"].config[field]), field
    assert vae_config["sample_size"] == unet_config["sample_size"] * 8
    source_text = case["text"].config
    for field in TEXT_FIELDS:
        assert text_config[field] == getattr(source_text, field), field
    is_v2 = case["variant"] == "v2"
    # SD 2.x conditions on the penultimate layer: diffusers' SD 2 text encoder has 23 of OpenCLIP's 24 layers
    assert text_config["num_hidden_layers"] == source_text.num_hidden_layers - is_v2
    assert text_config["model_type"] == "clip_text_model"
    assert converted.model_type == {"v1": "v1", "v2": "v2", "inpainting": "inpainting"}[case["variant"]]
    assert converted.pipeline_class_name == ("StableDiffusionInpaintPipeline" if case["variant"] == "inpainting"
                                             else "StableDiffusionPipeline")
    assert converted["tokenizer"].config["pad_token"] == ("!" if is_v2 else "<|endoftext|>")
    scheduler = converted["scheduler"].config
    assert scheduler["_class_name"] == ("DDIMScheduler" if is_v2 else "PNDMScheduler")
    assert scheduler["prediction_type"] == ("v_prediction" if is_v2 else "epsilon")
    assert scheduler["beta_schedule"] == "scaled_linear"
    assert (scheduler["beta_start"], scheduler["beta_end"]) == (0.00085, 0.012)
    assert (scheduler["steps_offset"], scheduler["num_train_timesteps"], scheduler["trained_betas"]) == (1, 1000, None)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# --- (b) the same tensors under the same names as diffusers' conversion ----------------------------------------------
def test_state_dicts_equal_diffusers_conversion(case):
    state, converted = case["state"], case["converted"]
    expected = {
        "unet": convert_ldm_unet_checkpoint(state, dict(case["unet"].config)),
        "vae": convert_ldm_vae_checkpoint(state, dict(case["vae"].config)),
    }
    if case["variant"] == "v2":
        expected["text_encoder"] = convert_open_clip_checkpoint(case["text"], state)
    else:
        expected["text_encoder"] = convert_ldm_clip_checkpoint(state)
        # a non-persistent buffer in transformers: diffusers passes it on and its non-strict load drops it
        del expected["text_encoder"]["text_model.embeddings.position_ids"]
    for name, reference in expected.items():
        ours = converted[name].state_dict
        assert sorted(ours) == sorted(reference), name
        for key, tensor in reference.items():
            assert ours[key].shape == tensor.shape and torch.equal(ours[key], tensor), f"{name}: {key}"


# --- (c) strict loading into diffusers / transformers, same outputs as the source models ----------------------------
def test_components_load_strictly_and_reproduce_the_models(case):
    converted = case["converted"]
    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_config(converted["unet"].config).eval()
    unet.load_state_dict(converted["unet"].state_dict, strict=True)
    in_channels = converted["unet"].config["in_channels"]
    cross = converted["unet"].config["cross_attention_dim"]
    sample, context = torch.randn(1, in_channels, 8, 8), torch.randn(1, 5, cross)
    with torch.no_grad():
        torch.testing.assert_close(unet(sample, 10, context).sample, case["unet"](sample, 10, context).sample,
                                   rtol=0, atol=1e-5)

    vae = AutoencoderKL.from_config(converted["vae"].config).eval()
    vae.load_state_dict(converted["vae"].state_dict, strict=True)
    image = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(vae(image).sample, case["vae"](image).sample, rtol=0, atol=1e-5)

    text = CLIPTextModel(CLIPTextConfig.from_dict(public(converted["text_encoder"].config))).eval()
    # transformers >= 5.6 flattened CLIPTextModel; files (and hugkit's result) keep the "text_model." names
    text.load_state_dict({k.removeprefix("text_model."): v for k, v in converted["text_encoder"].state_dict.items()},
                         strict=True)
    ids = torch.tensor([[0, 5, 17, 42, 2]])
    source = case["text"]
    with torch.no_grad():
        ours = text(ids).last_hidden_state
        if case["variant"] == "v2":  # penultimate layer, then the final layer norm
            expected = source.final_layer_norm(source(ids, output_hidden_states=True).hidden_states[-2])
        else:
            expected = source(ids).last_hidden_state
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_scheduler_config_builds_diffusers_schedulers(case):
    config = case["converted"]["scheduler"].config
    cls = {"PNDMScheduler": PNDMScheduler, "DDIMScheduler": DDIMScheduler}[config["_class_name"]]
    scheduler = cls.from_config(config)
    torch.testing.assert_close(scheduler.betas.double(), SD_BETAS, rtol=1e-6, atol=0)
    assert scheduler.config.prediction_type == config["prediction_type"]


def test_renamed_tensors_are_views_of_the_file(case):
    """No copies: renamed tensors, squeezed 1x1 convs and the split qkv too, are views of the file's mmap."""
    converted = case["converted"]
    storage = converted["unet"].state_dict["conv_in.weight"].untyped_storage().data_ptr()
    squeezed = converted["vae"].state_dict["encoder.mid_block.attentions.0.to_q.weight"]
    split = converted["text_encoder"].state_dict["text_model.encoder.layers.0.self_attn.k_proj.weight"]
    assert squeezed.untyped_storage().data_ptr() == storage
    assert split.untyped_storage().data_ptr() == storage


# --- what shapes cannot tell: prediction type, EMA, betas, overrides --------------------------------------------------
@pytest.fixture(scope="module")
def sd2_state():
    return build("v2")["state"]


def test_sd2_base_global_step_means_epsilon_in_a_ckpt(sd2_state, tmp_path):
    path = tmp_path / "sd2-base.ckpt"
    torch.save({"state_dict": sd2_state, "global_step": 875000}, path)
    converted = convert_original_checkpoint(path)
    assert converted.model_type == "v2"
    assert converted["scheduler"].config["prediction_type"] == "epsilon"
    assert converted["scheduler"].config["_class_name"] == "PNDMScheduler"
    assert converted["unet"].config["upcast_attention"] is False
    assert converted["unet"].config["sample_size"] == 64 and converted["vae"].config["sample_size"] == 512
    # an explicit prediction_type wins over the guess
    forced = convert_original_checkpoint(path, prediction_type="v_prediction")
    assert forced["scheduler"].config["prediction_type"] == "v_prediction"
    assert forced["unet"].config["upcast_attention"] is True and forced["unet"].config["sample_size"] == 96
    assert convert_original_checkpoint(sd2_state, prediction_type="epsilon")["unet"].config["sample_size"] == 64


def test_extract_ema(sd2_state):
    state = dict(sd2_state)
    unet_keys = [k for k in state if k.startswith("model.diffusion_model.")]
    for key in unet_keys:
        state["model_ema." + "".join(key.split(".")[1:])] = state[key] + 1
    regular = convert_original_checkpoint(state)["unet"].state_dict
    ema = convert_original_checkpoint(state, extract_ema=True)["unet"].state_dict
    assert torch.equal(regular["conv_in.weight"], state["model.diffusion_model.input_blocks.0.0.weight"])
    assert sorted(ema) == sorted(regular)
    assert all(torch.equal(ema[k], regular[k] + 1) for k in regular)
    with pytest.raises(ValueError, match="extract_ema=True, but .* EMA weights are missing"):
        convert_original_checkpoint(sd2_state, extract_ema=True)


def test_betas_not_sd_standard_become_trained_betas(sd2_state):
    betas = torch.linspace(1e-4, 0.02, 500)
    config = convert_original_checkpoint({**sd2_state, "betas": betas})["scheduler"].config
    assert config["num_train_timesteps"] == 500
    torch.testing.assert_close(torch.tensor(config["trained_betas"], dtype=torch.float32), betas)
    assert torch.equal(DDIMScheduler.from_config(config).betas, betas)


def test_overrides_dtype_and_fp16(sd2_state):
    converted = convert_original_checkpoint(
        sd2_state, torch_dtype=torch.float16, image_size=256,
        config_overrides={"unet": {"upcast_attention": False}, "vae": {"scaling_factor": 0.13025}},
    )
    assert converted["unet"].config["upcast_attention"] is False
    assert converted["unet"].config["sample_size"] == 32 and converted["vae"].config["sample_size"] == 256
    assert converted["vae"].config["scaling_factor"] == 0.13025
    dtypes = {t.dtype for c in ("unet", "vae", "text_encoder") for t in converted[c].state_dict.values()}
    assert dtypes == {torch.float16}


def test_unet_only_file_is_detected_from_the_unet(sd2_state):
    unet_only = {k: v for k, v in sd2_state.items() if k.startswith("model.diffusion_model.")}
    converted = convert_original_checkpoint(unet_only)
    assert sorted(converted) == ["scheduler", "tokenizer", "unet"]
    assert converted.model_type == "v2" and converted["unet"].config["attention_head_dim"] == [1, 2]


# --- bad input ----------------------------------------------------------------------------------------------------
def test_bad_inputs_get_clear_errors(sd2_state, tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint file"):
        convert_original_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="is a folder"):
        convert_original_checkpoint(tmp_path)
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="expected a .safetensors or .ckpt"):
        convert_original_checkpoint(tmp_path / "model.gguf")
    with pytest.raises(TypeError, match="file path or a state dict"):
        convert_original_checkpoint(42)
    sdxl = {**sd2_state, "conditioner.embedders.1.model.positional_embedding": torch.zeros(3)}
    with pytest.raises(ValueError, match="SDXL"):
        convert_original_checkpoint(sdxl)
    with pytest.raises(ValueError, match="diffusers-layout UNet"):
        convert_original_checkpoint({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"Key prefixes found: \['foo.bar'\]"):
        convert_original_checkpoint({"foo.bar.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="do not fit the SD 1.x / 2.x LDM layout"):
        convert_original_checkpoint({**sd2_state, "model.diffusion_model.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="class/size embedding"):
        convert_original_checkpoint({**sd2_state, "model.diffusion_model.label_emb.0.0.weight": torch.zeros(1)})
    mixed = {k: v for k, v in sd2_state.items() if not k.startswith("cond_stage_model.")}
    mixed.update(clip_to_ldm(CLIPTextModel(CLIPTextConfig(**VARIANTS["v1"]["text"])).state_dict()))
    with pytest.raises(ValueError, match="mixes parts of different models"):
        convert_original_checkpoint(mixed)
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        convert_original_checkpoint(sd2_state, prediction_type="v")
    with pytest.raises(ValueError, match="unknown components"):
        convert_original_checkpoint(sd2_state, config_overrides={"transformer": {}})
    broken = {k: v for k, v in sd2_state.items() if "output_blocks.5." not in k}
    with pytest.raises(ValueError, match="do not follow the LDM layout"):
        convert_original_checkpoint(broken)


def test_heads_that_cannot_be_inferred_ask_for_an_override():
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                        num_hidden_layers=2, vocab_size=99, max_position_embeddings=16))
    unet = UNet2DConditionModel(**{**VARIANTS["v1"]["unet"], "cross_attention_dim": 32}, norm_num_groups=32)
    state = {**unet_to_ldm(unet.state_dict(), dict(unet.config)), **clip_to_ldm(text.state_dict())}
    with pytest.raises(ValueError, match="num_attention_heads"):
        convert_original_checkpoint(state)
    converted = convert_original_checkpoint(state, config_overrides={"text_encoder": {"num_attention_heads": 4}})
    assert converted["text_encoder"].config["num_attention_heads"] == 4


def test_converted_vae_fills_hugkits_autoencoder(case):
    """The path the pipeline takes: build on the meta device from the config, then a strict load of the state dict."""
    from hugkit.diffusion.models.autoencoder_kl import AutoencoderKL as HugkitAutoencoderKL

    if case["variant"] != "v1":
        return  # the same tiny VAE in every variant: once is enough
    component = case["converted"]["vae"]
    with torch.device("meta"):
        vae = HugkitAutoencoderKL.from_config(component.config)
    vae.load_state_items(component.state_dict.items(), source="the converted VAE")
    latents = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(vae.eval().decode(latents).sample, case["vae"].decode(latents).sample,
                                   rtol=0, atol=1e-5)


# SD 1.5's and SD 2.1's published unet/text_encoder configs (the fields shapes and the rules above decide)
SD15 = dict(unet=dict(cross_attention_dim=768, attention_head_dim=8, sample_size=64),
            text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                      hidden_act="quick_gelu"))
SD21 = dict(unet=dict(cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20], use_linear_projection=True,
                      upcast_attention=True, sample_size=96),
            text=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                      hidden_act="gelu"))


@pytest.mark.parametrize("published", [SD15, SD21], ids=["sd15", "sd21"])
def test_full_size_layouts_give_the_published_configs(published):
    """Real sizes, built on the meta device (no memory): the inferred configs are the ones diffusers ships."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(**published["unet"])
        text = CLIPTextModel(CLIPTextConfig(**published["text"], bos_token_id=0, eos_token_id=2))
    is_v2 = published is SD21
    state = unet_to_ldm(unet.state_dict(), dict(unet.config))
    state.update(open_clip_to_ldm(text.state_dict(), 1024) if is_v2 else clip_to_ldm(text.state_dict()))
    converted = convert_original_checkpoint(state)
    for field in UNET_FIELDS:
        assert _plain(converted["unet"].config[field]) == _plain(unet.config[field]), field
    text_config = converted["text_encoder"].config
    assert text_config["num_attention_heads"] == published["text"]["num_attention_heads"]
    assert text_config["num_hidden_layers"] == (23 if is_v2 else 12)
    assert converted.model_type == ("v2" if is_v2 else "v1")
