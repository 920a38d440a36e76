"""UNet2DConditionModel (SD 1.x, SD 2.x, SDXL, LCM) and its attention parts vs diffusers on tiny random weights.

Each reference is built by diffusers with the sizes of diffusers' own pipeline tests, saved with its
``save_pretrained`` and loaded by hugkit's ``from_pretrained`` (strict: every checkpoint key must be used and every
parameter filled), then both run on the same inputs: batch 2, a different timestep per row.
"""

from __future__ import annotations

import json

import diffusers
import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock as RefBasicTransformerBlock
from diffusers.models.attention_processor import Attention as RefAttention
from diffusers.models.embeddings import get_timestep_embedding as ref_timestep_embedding

from hugkit.diffusion.models.attention import Attention, BasicTransformerBlock
from hugkit.diffusion.models.embeddings import get_timestep_embedding
from hugkit.diffusion.models.unet_2d_condition import UNet2DConditionModel, UNet2DConditionOutput
from hugkit.diffusion.models.unet_blocks import get_down_block, get_up_block

TOL = 1e-4

SD1 = dict(
    block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
)
SD2 = {**SD1, "use_linear_projection": True, "upcast_attention": True, "attention_head_dim": (2, 4)}
SDXL = {
    **SD1, "use_linear_projection": True, "attention_head_dim": (2, 4), "transformer_layers_per_block": (1, 2),
    "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 80,  # pooled text width 32 + 6 time ids * 8
}
LCM = {**SD1, "time_cond_proj_dim": 16}


def build_reference(config: dict, seed: int = 0) -> diffusers.UNet2DConditionModel:
    """diffusers' UNet with every weight random (norm scales and biases too, which default init would hide)."""
    torch.manual_seed(seed)
    model = diffusers.UNet2DConditionModel(**config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.1)
    return model.eval()


def make_inputs(config: dict, height: int = 32, width: int = 32, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "sample": torch.randn(2, config["in_channels"], height, width, generator=generator),
        "timestep": torch.tensor([10, 740]),
        "encoder_hidden_states": torch.randn(2, 7, config["cross_attention_dim"], generator=generator),
    }
    if config.get("addition_embed_type") == "text_time":
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, 32, generator=generator),
            "time_ids": torch.tensor([[32.0, 32, 0, 0, 32, 32], [64.0, 48, 4, 2, 32, 32]]),
        }
    if config.get("time_cond_proj_dim"):
        inputs["timestep_cond"] = torch.randn(2, config["time_cond_proj_dim"], generator=generator)
    return inputs


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module", autouse=True)
def _single_threaded():
    """Tiny models gain nothing from threads, and on a shared 2-core machine an OpenMP thread waiting for a busy
    core makes every op slow (about 30x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    """(diffusers model, its saved folder, hugkit model loaded from it) for the SD 1.x config."""
    folder = tmp_path_factory.mktemp("sd1_unet")
    ref = build_reference(SD1)
    ref.save_pretrained(folder)
    return ref, folder, UNet2DConditionModel.from_pretrained(folder)


# --- parity of whole UNets -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [SD2, SDXL, LCM], ids=["sd2", "sdxl", "lcm"])
def test_unet_matches_diffusers(config: dict, tmp_path) -> None:
    ref = build_reference(config)
    ref.save_pretrained(tmp_path)
    ours = UNet2DConditionModel.from_pretrained(tmp_path)
    inputs = make_inputs(config)
    with torch.no_grad():
        expected = ref(**inputs).sample
        got = ours(**inputs).sample
    assert max_diff(got, expected) <= TOL
    assert expected.abs().max() > 0.1  # a real signal, not a collapsed output
    # the two rows had different timesteps (and noise), so they must differ
    assert max_diff(got[0], got[1]) > 1e-2


def test_sd1_unet_matches_diffusers_and_uses_every_key(sd1) -> None:
    ref, folder, ours = sd1
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert ours.config.attention_head_dim == 8 and ours.config.cross_attention_dim == 32
    inputs = make_inputs(SD1)
    with torch.no_grad():
        expected = ref(**inputs).sample
        output = ours(**inputs)
    assert isinstance(output, UNet2DConditionOutput)
    assert max_diff(output.sample, expected) <= TOL
    assert torch.equal(output[0], output["sample"])
    with torch.no_grad():
        as_tuple = ours(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.sample)


def test_variant_checkpoint_loads(tmp_path) -> None:
    ref = build_reference(SD1, seed=3)
    ref.save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "diffusion_pytorch_model.fp16.safetensors").exists()
    ours = UNet2DConditionModel.from_pretrained(tmp_path, variant="fp16")
    inputs = make_inputs(SD1)
    with torch.no_grad():
        assert max_diff(ours(**inputs).sample, ref(**inputs).sample) <= TOL


def test_odd_sizes_forward_the_upsample_size(sd1) -> None:
    ref, _, ours = sd1
    inputs = make_inputs(SD1, height=17, width=22)  # not multiples of 2**num_upsamplers (here 2)
    with torch.no_grad():
        expected = ref(**inputs).sample
        got = ours(**inputs).sample
    assert got.shape == (2, 4, 17, 22)
    assert max_diff(got, expected) <= TOL


def test_timestep_forms_broadcast_like_diffusers(sd1) -> None:
    """A python int/float, a 0-d tensor or a length-1 tensor all mean "this timestep for every row"."""
    ref, _, ours = sd1
    inputs = make_inputs(SD1, height=8, width=8)
    with torch.no_grad():
        for timestep, per_row in [
            (7, torch.tensor([7, 7])),
            (7.5, torch.tensor([7.5, 7.5], dtype=torch.float64)),
            (torch.tensor(7), torch.tensor([7, 7])),
            (torch.tensor([7.25]), torch.tensor([7.25, 7.25])),
        ]:
            got = ours(**{**inputs, "timestep": timestep}).sample
            assert torch.equal(got, ours(**{**inputs, "timestep": per_row}).sample), timestep
        expected = ref(**{**inputs, "timestep": 7.5}).sample
        assert max_diff(ours(**{**inputs, "timestep": 7.5}).sample, expected) <= TOL


def test_controlnet_residuals_and_encoder_attention_mask(sd1) -> None:
    ref, _, ours = sd1
    inputs = make_inputs(SD1, height=16, width=16)
    # skip shapes: conv_in, 2 resnets + downsample of block 0, 2 resnets of block 1
    generator = torch.Generator().manual_seed(5)
    shapes = [(32, 16), (32, 16), (32, 16), (32, 8), (64, 8), (64, 8)]
    down = [torch.randn(2, c, s, s, generator=generator) for c, s in shapes]
    mid = torch.randn(2, 64, 8, 8, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    kwargs = dict(down_block_additional_residuals=down, mid_block_additional_residual=mid,
                  encoder_attention_mask=mask)
    with torch.no_grad():
        expected = ref(**inputs, **kwargs).sample
        got = ours(**inputs, **kwargs).sample
        plain = ours(**inputs).sample
    assert max_diff(got, expected) <= TOL
    assert max_diff(got, plain) > 1e-2  # the residuals and the mask did something


def test_attention_slicing_gives_the_same_output(sd1) -> None:
    _, _, ours = sd1
    inputs = make_inputs(SD1, height=8, width=8)
    with torch.no_grad():
        baseline = ours(**inputs).sample
        for size in ("auto", "max", 3, [1] * 12):
            ours.set_attention_slice(size)
            assert max_diff(ours(**inputs).sample, baseline) <= 1e-5, size
    ours.set_attention_slice(None)
    sliced = [m.slice_size for m in ours.modules() if isinstance(m, Attention)]
    assert sliced == [None] * 12
    with pytest.raises(ValueError, match="larger than this layer's 8 heads"):
        ours.set_attention_slice(9)
    with pytest.raises(ValueError, match="12 attention layers"):
        ours.set_attention_slice([1, 1])


def test_hugkit_save_loads_in_diffusers(sd1, tmp_path) -> None:
    ref, _, ours = sd1
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["_class_name"] == "UNet2DConditionModel" and saved["block_out_channels"] == [32, 64]
    reloaded = diffusers.UNet2DConditionModel.from_pretrained(tmp_path).eval()
    inputs = make_inputs(SD1, height=16, width=16)
    with torch.no_grad():
        assert max_diff(reloaded(**inputs).sample, ref(**inputs).sample) == 0.0


def test_bfloat16_load_runs_close_to_float32(sd1) -> None:
    _, folder, ours = sd1
    low = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.bfloat16)
    assert low.dtype == torch.bfloat16
    inputs = make_inputs(SD1, height=16, width=16)
    low_inputs = {k: v.to(torch.bfloat16) if k != "timestep" else v for k, v in inputs.items()}
    with torch.no_grad():
        full = ours(**inputs).sample
        got = low(**low_inputs).sample
    assert got.dtype == torch.bfloat16
    assert max_diff(got.float(), full) <= 0.05 * full.abs().max().item()


# --- bad input and unsupported configs ----------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(sd1) -> None:
    _, _, ours = sd1
    inputs = make_inputs(SD1, height=16, width=16)
    with pytest.raises(ValueError, match=r"sample must be a \(batch, 4, height, width\)"):
        ours(**{**inputs, "sample": torch.randn(2, 3, 16, 16)})
    with pytest.raises(ValueError, match="cross_attention_dim is 32"):
        ours(**{**inputs, "encoder_hidden_states": torch.randn(2, 7, 48)})
    with pytest.raises(ValueError, match="batch 1 but sample has batch 2"):
        ours(**{**inputs, "encoder_hidden_states": torch.randn(1, 7, 32)})
    with pytest.raises(ValueError, match="1-d tensor of length 1 or 2"):
        ours(**{**inputs, "timestep": torch.tensor([1, 2, 3])})
    with pytest.raises(ValueError, match="no cond_proj"):
        ours(**inputs, timestep_cond=torch.randn(2, 16))
    with pytest.raises(ValueError, match="without mid_block_additional_residual"):
        ours(**inputs, down_block_additional_residuals=[torch.zeros(1)])
    with pytest.raises(ValueError, match="unsupported cross_attention_kwargs"):
        ours(**inputs, cross_attention_kwargs={"ip_adapter_masks": None})


def test_sdxl_needs_added_cond_kwargs() -> None:
    torch.manual_seed(0)
    ours = UNet2DConditionModel(**SDXL).eval()
    inputs = make_inputs(SDXL, height=16, width=16)
    with pytest.raises(ValueError, match=r"needs added_cond_kwargs .*missing \['text_embeds', 'time_ids'\]"):
        ours(**{k: v for k, v in inputs.items() if k != "added_cond_kwargs"})
    with pytest.raises(ValueError, match=r"missing \['time_ids'\]"):
        ours(**{**inputs, "added_cond_kwargs": {"text_embeds": torch.randn(2, 32)}})
    with pytest.raises(ValueError, match="projection_class_embeddings_input_dim = 80"):
        ours(**{**inputs, "added_cond_kwargs": {"text_embeds": torch.randn(2, 32), "time_ids": torch.zeros(2, 5)}})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"class_embed_type": "timestep"}, "class_embed_type='timestep'"),
        ({"num_attention_heads": 8}, "number of heads is given by `attention_head_dim`"),
        ({"addition_embed_type": "text"}, "addition_embed_type='text'"),
        ({"time_embedding_type": "fourier"}, "time_embedding_type='fourier'"),
        ({"dual_cross_attention": True}, "dual_cross_attention=True"),
        ({"down_block_types": ("DownBlock2D", "SimpleCrossAttnDownBlock2D")}, "unsupported down block type"),
        ({"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}, "unsupported mid block type"),
        ({"attention_head_dim": (8, 8, 8)}, "attention_head_dim has 3 entries but there are 2 down blocks"),
        ({"attention_head_dim": 5}, "cannot be split into 5 attention heads"),
        ({"transformer_layers_per_block": ((1, 1), (1, 2))}, "reverse_transformer_layers_per_block"),
    ],
)
def test_unsupported_configs_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        UNet2DConditionModel(**{**SD1, **overrides})


def test_block_factories_reject_unknown_names() -> None:
    common = dict(num_layers=1, in_channels=32, out_channels=32, temb_channels=16, resnet_eps=1e-5,
                  resnet_act_fn="silu", resnet_groups=32)
    with pytest.raises(ValueError, match="Unknown or unsupported down block type 'KDownBlock2D'"):
        get_down_block("KDownBlock2D", add_downsample=True, **common)
    with pytest.raises(ValueError, match="hugkit supports: UpBlock2D, CrossAttnUpBlock2D"):
        get_up_block("AttnUpBlock2D", prev_output_channel=32, add_upsample=True, **common)
    # diffusers' optional "UNetRes" prefix is accepted
    assert type(get_down_block("UNetResDownBlock2D", add_downsample=False, **common)).__name__ == "DownBlock2D"


# --- the parts ------------------------------------------------------------------------------------------------------
def test_vae_style_attention_on_feature_maps_matches_diffusers() -> None:
    """GroupNorm + residual + rescale on (B, C, H, W) input: the VAE mid-block's attention."""
    kwargs = dict(heads=2, dim_head=32, rescale_output_factor=2.0, eps=1e-6, norm_num_groups=32,
                  residual_connection=True, bias=True, upcast_softmax=True, _from_deprecated_attn_block=True)
    torch.manual_seed(0)
    ref = RefAttention(64, **kwargs).eval()
    ours = Attention(64, **kwargs).eval()
    with torch.no_grad():
        for param in ref.parameters():
            param.normal_(0.0, 0.2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 64, 5, 7)
    with torch.no_grad():
        expected = ref(x)
        assert max_diff(ours(x), expected) <= 1e-5
        ours.set_attention_slice(1)
        assert max_diff(ours(x), expected) <= 1e-5


def test_transformer_block_with_mask_matches_diffusers() -> None:
    torch.manual_seed(0)
    ref = RefBasicTransformerBlock(64, 4, 16, cross_attention_dim=24, attention_bias=True).eval()
    ours = BasicTransformerBlock(64, 4, 16, cross_attention_dim=24, attention_bias=True).eval()
    with torch.no_grad():
        for param in ref.parameters():
            param.normal_(0.0, 0.2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x, context = torch.randn(2, 35, 64), torch.randn(2, 9, 24)
    bias = torch.zeros(2, 1, 9)
    bias[0, :, 5:] = -10000.0
    with torch.no_grad():
        expected = ref(x, encoder_hidden_states=context, encoder_attention_mask=bias)
        got = ours(x, encoder_hidden_states=context, encoder_attention_mask=bias)
    assert max_diff(got, expected) <= 1e-5


@pytest.mark.parametrize("dim, flip, shift", [(32, True, 0), (33, False, 1), (8, True, 1)])
def test_timestep_embedding_matches_diffusers(dim: int, flip: bool, shift: float) -> None:
    timesteps = torch.tensor([0.0, 1.5, 999.0])
    expected = ref_timestep_embedding(timesteps, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    assert torch.equal(get_timestep_embedding(timesteps, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift),
                       expected)
    with pytest.raises(ValueError, match="1-D tensor"):
        get_timestep_embedding(timesteps[None], dim)
