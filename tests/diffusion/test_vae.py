"""AutoencoderKL against diffusers on the same tiny random weights: encode, sample, decode, forward, slicing,
tiling, legacy attention names, and saving back to diffusers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hugkit.diffusion.models.autoencoder_kl import AutoencoderKL, DiagonalGaussianDistribution

diffusers = pytest.importorskip("diffusers")

TOL = 1e-4
# diffusers' own AutoencoderKL test sizes
TINY = dict(
    block_out_channels=[32, 64],
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 2,
    up_block_types=["UpDecoderBlock2D"] * 2,
    latent_channels=4,
    norm_num_groups=32,
)
# The Stable Diffusion layout (4 levels, 2 resnets per level, 8x downsampling) at small width.
SD_STYLE = dict(
    block_out_channels=[32, 32, 64, 64],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=64,
    scaling_factor=0.13025,
)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _reference(config: dict, seed: int = 0) -> "diffusers.AutoencoderKL":
    torch.manual_seed(seed)
    model = diffusers.AutoencoderKL(**config).eval()
    # diffusers initialises some biases to zero; random ones make the comparison see every weight.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    ref = _reference(TINY)
    path = tmp_path_factory.mktemp("vae_tiny")
    ref.save_pretrained(path)
    return ref, AutoencoderKL.from_pretrained(path), path


@pytest.mark.parametrize("config", [TINY, SD_STYLE], ids=["tiny", "sd_style"])
def test_encode_decode_forward_match_diffusers(config: dict, tmp_path: Path) -> None:
    ref = _reference(config, seed=1)
    ref.save_pretrained(tmp_path)
    ours = AutoencoderKL.from_pretrained(tmp_path)
    for key in ("block_out_channels", "layers_per_block", "scaling_factor", "latent_channels", "force_upcast"):
        assert ours.config[key] == ref.config[key]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref_post, our_post = ref.encode(x).latent_dist, ours.encode(x).latent_dist
        assert isinstance(our_post, DiagonalGaussianDistribution)
        assert _max_diff(our_post.mean, ref_post.mean) <= TOL
        assert _max_diff(our_post.std, ref_post.std) <= TOL
        assert _max_diff(our_post.logvar, ref_post.logvar) <= TOL
        assert _max_diff(our_post.mode(), ref_post.mode()) <= TOL
        assert _max_diff(our_post.kl(), ref_post.kl()) <= 1e-2 * ref_post.kl().abs().max().item()
        ref_z = ref_post.sample(torch.Generator().manual_seed(7))
        our_z = our_post.sample(torch.Generator().manual_seed(7))
        assert _max_diff(our_z, ref_z) <= TOL
        assert not torch.allclose(our_z, our_post.mean)  # the sample really drew noise

        expected = ref.decode(ref_z).sample
        got = ours.decode(our_z).sample
        assert got.shape == (2, 3, 32, 32)
        assert _max_diff(got, expected) <= TOL
        assert _max_diff(ours.decode(our_z, return_dict=False)[0], expected) <= TOL

        assert _max_diff(ours(x).sample, ref(x).sample) <= TOL
        sampled = ours(x, sample_posterior=True, generator=torch.Generator().manual_seed(3)).sample
        ref_sampled = ref(x, sample_posterior=True, generator=torch.Generator().manual_seed(3)).sample
        assert _max_diff(sampled, ref_sampled) <= TOL
        assert isinstance(ours(x, return_dict=False), tuple)


def test_cpu_load_uses_channels_last_weights_but_returns_default_layout(tiny: tuple) -> None:
    _, ours, _ = tiny
    assert ours.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert ours.decode(torch.randn(1, 4, 8, 8)).sample.is_contiguous()
        assert ours.encode(torch.randn(1, 3, 16, 16)).latent_dist.parameters.is_contiguous()


def test_posterior_with_generator_list_and_kl_to_other(tiny: tuple) -> None:
    ref, ours, _ = tiny
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref_post, our_post = ref.encode(x).latent_dist, ours.encode(x)[0]
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2)]  # noqa: E731
    assert _max_diff(our_post.sample(gens()), ref_post.sample(gens())) <= TOL
    other_ref = diffusers.models.autoencoders.vae.DiagonalGaussianDistribution(ref_post.parameters.flip(0))
    other_ours = DiagonalGaussianDistribution(our_post.parameters.flip(0))
    expected = ref_post.kl(other_ref)
    assert _max_diff(our_post.kl(other_ours), expected) <= 1e-4 * expected.abs().max().item()
    assert _max_diff(our_post.nll(our_post.mean), ref_post.nll(ref_post.mean)) <= 1e-3
    point = DiagonalGaussianDistribution(our_post.parameters, deterministic=True)
    assert torch.equal(point.sample(torch.Generator().manual_seed(0)), point.mean)


def test_config_variants_match_diffusers(tmp_path: Path) -> None:
    config = dict(TINY, mid_block_add_attention=False, use_quant_conv=False, use_post_quant_conv=False,
                  act_fn="swish", layers_per_block=2, shift_factor=0.1159,
                  latents_mean=[0.1, 0.2, 0.3, 0.4], latents_std=[1.0, 0.9, 0.8, 0.7])
    ref = _reference(config, seed=2)
    ref.save_pretrained(tmp_path)
    ours = AutoencoderKL.from_pretrained(tmp_path)
    assert ours.quant_conv is None and ours.post_quant_conv is None and len(ours.encoder.mid_block.attentions) == 0
    assert ours.config.shift_factor == 0.1159 and list(ours.config.latents_mean) == [0.1, 0.2, 0.3, 0.4]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _max_diff(ours(x).sample, ref(x).sample) <= TOL


def test_slicing_equals_unsliced_and_diffusers(tiny: tuple) -> None:
    ref, ours, _ = tiny
    x = torch.randn(3, 3, 32, 32)
    z = torch.randn(3, 4, 16, 16)
    with torch.no_grad():
        whole_moments = ours.encode(x).latent_dist.parameters
        whole_images = ours.decode(z).sample
        ours.enable_slicing()
        ref.enable_slicing()
        try:
            sliced_moments = ours.encode(x).latent_dist.parameters
            sliced_images = ours.decode(z).sample
            ref_images = ref.decode(z).sample
        finally:
            ours.disable_slicing()
            ref.disable_slicing()
    assert _max_diff(sliced_moments, whole_moments) <= 1e-5
    assert _max_diff(sliced_images, whole_images) <= 1e-5
    assert _max_diff(sliced_images, ref_images) <= TOL


def test_tiling_matches_diffusers_tiled_output(tmp_path: Path) -> None:
    # sample_size 32 makes 32-pixel tiles (16-latent tiles for this 2-level VAE), so a 128x128 image is tiled.
    ref = _reference(dict(TINY, sample_size=32), seed=3)
    ref.save_pretrained(tmp_path)
    ours = AutoencoderKL.from_pretrained(tmp_path)
    assert ours.tile_sample_min_size == ref.tile_sample_min_size == 32
    assert ours.tile_latent_min_size == ref.tile_latent_min_size == 16
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    z = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        untiled = ours.decode(z).sample
        ours.enable_tiling()
        ref.enable_tiling()
        our_moments = ours.encode(x).latent_dist.parameters
        ref_moments = ref.encode(x).latent_dist.parameters
        our_images = ours.decode(z).sample
        ref_images = ref.decode(z).sample
        explicit = ours.tiled_decode(z).sample
    assert our_moments.shape == (1, 8, 64, 64)
    assert _max_diff(our_moments, ref_moments) <= TOL
    assert our_images.shape == (1, 3, 128, 128)
    assert _max_diff(our_images, ref_images) <= TOL
    assert _max_diff(explicit, our_images) == 0.0
    assert _max_diff(our_images, untiled) > 1e-3  # tiling really happened (the seams are cross-faded)
    ours.disable_tiling()
    with torch.no_grad():
        assert _max_diff(ours.decode(z).sample, untiled) == 0.0


def test_legacy_attention_names_load_to_the_same_output(tiny: tuple, tmp_path: Path) -> None:
    ref, ours, path = tiny
    state = load_file(str(path / "diffusion_pytorch_model.safetensors"))
    legacy = {}
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    for key, tensor in state.items():
        for new, old in renames.items():
            marker = f".{new}."
            if ".mid_block.attentions." in key and marker in key:
                key = key.replace(marker, f".{old}.")
                if key.endswith("weight") and old in ("query", "proj_attn"):
                    tensor = tensor[:, :, None, None].contiguous()  # the original 1x1-conv layout
        legacy[key] = tensor
    assert "encoder.mid_block.attentions.0.query.weight" in legacy and not any(".to_q." in k for k in legacy)
    save_file(legacy, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    loaded = AutoencoderKL.from_pretrained(tmp_path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _max_diff(loaded(x).sample, ref(x).sample) <= TOL


def test_save_pretrained_loads_in_diffusers(tiny: tuple, tmp_path: Path) -> None:
    ref, ours, _ = tiny
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["_class_name"] == "AutoencoderKL" and saved["block_out_channels"] == [32, 64]
    back = diffusers.AutoencoderKL.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _max_diff(back(x).sample, ref(x).sample) <= TOL
    ours.save_pretrained(tmp_path / "fp16", variant="fp16")
    assert (tmp_path / "fp16" / "diffusion_pytorch_model.fp16.safetensors").exists()


def test_half_precision_load_runs_close_to_fp32(tiny: tuple) -> None:
    _, ours, path = tiny
    half = AutoencoderKL.from_pretrained(path, torch_dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    z = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        full = ours.decode(z).sample
        got = half.decode(z.to(torch.bfloat16)).sample
    assert got.dtype == torch.bfloat16
    assert _max_diff(got.float(), full) <= 0.1 * full.abs().max().item()


def test_bad_input_gives_clear_errors(tiny: tuple) -> None:
    _, ours, _ = tiny
    with pytest.raises(ValueError, match=r"encode expects images of shape \(batch, 3, height, width\), got \(1, 4, 32"):
        ours.encode(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"x\[None\]"):
        ours.encode(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"decode expects latents of shape \(batch, 4, height, width\)"):
        ours.decode(torch.randn(1, 3, 8, 8))
    with pytest.raises(TypeError, match=r"torch.float64 but the model weights are torch.float32"):
        ours.decode(torch.randn(1, 4, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2x2 pixels"):
        ours.encode(torch.randn(1, 3, 1, 8))
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        ours.encode([[1.0]])
    with pytest.raises(ValueError, match="AttnDownEncoderBlock2D"):
        AutoencoderKL(**dict(TINY, down_block_types=["AttnDownEncoderBlock2D"] * 2))
    with pytest.raises(ValueError, match="one down block and one up block per entry"):
        AutoencoderKL(**dict(TINY, down_block_types=["DownEncoderBlock2D"]))
    with pytest.raises(ValueError, match="divisible by norm_num_groups=32"):
        AutoencoderKL(**dict(TINY, block_out_channels=[32, 48]))
