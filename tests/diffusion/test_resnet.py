"""ResnetBlock2D, Downsample2D and Upsample2D against diffusers' modules on the same random weights."""

from __future__ import annotations

import pytest
import torch

from hugkit.diffusion.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D

resnet_ref = pytest.importorskip("diffusers.models.resnet")
from diffusers.models.downsampling import Downsample2D as RefDownsample2D  # noqa: E402
from diffusers.models.upsampling import Upsample2D as RefUpsample2D  # noqa: E402


def _twin(ours: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Give ``ours`` the reference module's weights; strict, so every name must match diffusers'."""
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=32, out_channels=32, temb_channels=16),
        dict(in_channels=32, out_channels=64, temb_channels=16, time_embedding_norm="scale_shift"),
        dict(in_channels=32, out_channels=64, temb_channels=None, groups=8, groups_out=16, eps=1e-5),
        dict(in_channels=32, out_channels=32, temb_channels=16, output_scale_factor=2.0, use_in_shortcut=True,
             non_linearity="silu", skip_time_act=True),
    ],
    ids=["default", "scale_shift", "vae_no_temb", "shortcut_scaled"],
)
def test_resnet_block_matches_diffusers(kwargs: dict) -> None:
    torch.manual_seed(0)
    ref = resnet_ref.ResnetBlock2D(**kwargs)
    ours = ResnetBlock2D(**kwargs)
    _twin(ours, ref)
    x = torch.randn(2, kwargs["in_channels"], 8, 8)
    temb = torch.randn(2, kwargs["temb_channels"]) if kwargs["temb_channels"] else None
    with torch.no_grad():
        expected = ref(x, temb)
        got = ours(x, temb)
    assert got.shape == expected.shape == (2, kwargs["out_channels"], 8, 8)
    assert (got - expected).abs().max().item() <= 1e-5
    assert (ours.conv_shortcut is not None) == (ref.conv_shortcut is not None)


def test_resnet_block_without_temb_skips_the_time_projection() -> None:
    # diffusers itself crashes here (silu(None)); hugkit skips the embedding, i.e. acts as the VAE's block.
    torch.manual_seed(1)
    ref = resnet_ref.ResnetBlock2D(in_channels=32, temb_channels=None)
    ours = ResnetBlock2D(in_channels=32, temb_channels=16)
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        assert (ours(x, None) - ref(x, None)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("use_conv", [True, False])
def test_downsample_matches_diffusers(padding: int, use_conv: bool) -> None:
    torch.manual_seed(2)
    ref = RefDownsample2D(32, use_conv=use_conv, padding=padding, name="op")
    ours = Downsample2D(32, use_conv=use_conv, padding=padding, name="op")
    _twin(ours, ref)
    x = torch.randn(2, 32, 9, 10)  # odd size: the (0, 1, 0, 1) pad decides the output size
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5
    if use_conv:
        assert set(dict(ours.named_parameters())) == {"conv.weight", "conv.bias"}


@pytest.mark.parametrize("use_conv", [True, False])
@pytest.mark.parametrize("output_size", [None, (9, 11)])
def test_upsample_matches_diffusers(use_conv: bool, output_size: tuple | None) -> None:
    torch.manual_seed(3)
    ref = RefUpsample2D(32, use_conv=use_conv, out_channels=16 if use_conv else None)
    ours = Upsample2D(32, use_conv=use_conv, out_channels=16 if use_conv else None)
    _twin(ours, ref)
    x = torch.randn(2, 32, 5, 6)
    with torch.no_grad():
        expected, got = ref(x, output_size), ours(x, output_size)
    assert got.shape == expected.shape
    assert got.shape[-2:] == (output_size or (10, 12))
    assert (got - expected).abs().max().item() <= 1e-5


def test_upsample_bf16_is_exact() -> None:
    x = torch.randn(1, 8, 3, 3).to(torch.bfloat16)
    out = Upsample2D(8)(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out[:, :, ::2, ::2], x) and torch.equal(out[:, :, 1::2, 1::2], x)


def test_upsample_without_interpolation_only_convolves() -> None:
    torch.manual_seed(4)
    ref = RefUpsample2D(8, use_conv=True, interpolate=False)
    ours = Upsample2D(8, use_conv=True, interpolate=False)
    _twin(ours, ref)
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)
        assert ours(x).shape == (1, 8, 4, 4)


def test_bad_input_gives_clear_errors() -> None:
    block = ResnetBlock2D(in_channels=32, temb_channels=None)
    with pytest.raises(ValueError, match=r"\(batch, 32, height, width\).*got shape \(1, 16, 4, 4\)"):
        block(torch.randn(1, 16, 4, 4))
    with pytest.raises(ValueError, match="temb_channels=None"):
        block(torch.randn(1, 32, 4, 4), torch.randn(1, 8))
    with pytest.raises(ValueError, match="needs `temb`"):
        ResnetBlock2D(in_channels=32, temb_channels=8, time_embedding_norm="scale_shift")(torch.randn(1, 32, 4, 4))
    with pytest.raises(ValueError, match="time_embedding_norm"):
        ResnetBlock2D(in_channels=32, time_embedding_norm="ada_group")
    with pytest.raises(ValueError, match="Unknown activation"):
        ResnetBlock2D(in_channels=32, non_linearity="swishy")
    with pytest.raises(ValueError, match="not supported"):
        ResnetBlock2D(in_channels=32, up=True)
    with pytest.raises(ValueError, match="3-D|4-D"):
        Downsample2D(8, use_conv=True)(torch.randn(8, 4, 4))
    with pytest.raises(ValueError, match="8 channels"):
        Upsample2D(8)(torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match="cannot change channels"):
        Downsample2D(8, use_conv=False, out_channels=16)


def test_grad_path_matches_inference_path_and_backpropagates() -> None:
    # Without autograd the block overwrites its intermediates; with autograd it must not (backward needs them).
    torch.manual_seed(5)
    ref = resnet_ref.ResnetBlock2D(in_channels=32, out_channels=64, temb_channels=16, output_scale_factor=2.0)
    ours = ResnetBlock2D(in_channels=32, out_channels=64, temb_channels=16, output_scale_factor=2.0)
    _twin(ours, ref)
    x = torch.randn(1, 32, 4, 4, requires_grad=True)
    temb = torch.randn(1, 16)
    with torch.no_grad():
        inference = ours(x, temb)
    out = ours(x, temb)
    assert torch.equal(out.detach(), inference)
    out.sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    ref(ref_x, temb).sum().backward()
    assert (x.grad - ref_x.grad).abs().max().item() <= 1e-5
