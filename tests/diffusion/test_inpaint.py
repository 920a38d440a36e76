"""StableDiffusionInpaintPipeline against diffusers on tiny random pipelines: a 9-channel inpainting UNet (mask and
masked-image latents stacked on the input) and a plain 4-channel UNet (unmasked latents reset after each step),
PIL / numpy / tensor masks, strength, masked_image_latents, padding_mask_crop, callbacks, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import diffusers
from tests.diffusion.tiny_pipelines import max_pixel_difference

import hugkit
from hugkit.diffusion.pipeline_utils import DiffusionPipeline
from hugkit.diffusion.pipelines.stable_diffusion_inpaint import StableDiffusionInpaintPipeline, get_crop_region

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPT = "a red fox and the cat"
TOL = 1e-3


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(seed: int = 0, size: int = 64) -> Image.Image:
    pixels = np.random.RandomState(seed).rand(size, size, 3)
    return Image.fromarray((pixels * 255).astype("uint8"))


def _mask(size: int = 64, box: tuple[int, int, int, int] = (20, 16, 48, 40)) -> Image.Image:
    """White (repaint) inside box = (left, top, right, bottom), black elsewhere; a grey ("L") PIL image."""
    pixels = np.zeros((size, size), dtype=np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = 255
    return Image.fromarray(pixels)


def _reference(folder, scheduler=None):
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(folder, safety_checker=None,
                                                                    requires_safety_checker=False)
    if scheduler is not None:
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _mine(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def nine(sd_inpaint_folder):
    """(diffusers, hugkit) with a 9-channel inpainting UNet; hugkit's through DiffusionPipeline.from_pretrained."""
    return _reference(sd_inpaint_folder), _mine(DiffusionPipeline.from_pretrained(sd_inpaint_folder))


@pytest.fixture(scope="module")
def four(sd_folder):
    """(diffusers, hugkit) inpainting with a plain text-to-image UNet and Euler ancestral (noise at every step)."""
    hugkit_scheduler = hugkit.EulerAncestralDiscreteScheduler.from_pretrained(sd_folder / "scheduler")
    mine = StableDiffusionInpaintPipeline.from_pretrained(sd_folder, scheduler=hugkit_scheduler)
    return _reference(sd_folder, "EulerAncestralDiscreteScheduler"), _mine(mine)


def _both(reference, mine, generator=_seed, **kwargs):
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("image", _image())
    kwargs.setdefault("mask_image", _mask())
    kwargs.setdefault("num_inference_steps", 3)
    kwargs.setdefault("output_type", "np")
    expected = reference(generator=generator(), **kwargs).images
    got = mine(generator=generator(), **kwargs).images
    return expected, got


def test_loads_as_the_folder_says(nine):
    _, mine = nine
    assert type(mine) is hugkit.StableDiffusionInpaintPipeline
    assert mine.unet.config.in_channels == 9 and type(mine.unet).__module__.startswith("hugkit")
    assert mine.mask_processor.config.do_binarize and not mine.mask_processor.config.do_normalize


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_nine_channel_unet_matches_diffusers(nine, strength):
    expected, got = _both(*nine, strength=strength)
    assert got.shape == (1, 64, 64, 3)
    assert max_pixel_difference(expected, got) <= TOL


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_four_channel_unet_matches_diffusers(four, strength):
    expected, got = _both(*four, strength=strength)
    assert max_pixel_difference(expected, got) <= TOL


def test_four_channel_unet_keeps_the_unmasked_latents(four):
    """Outside the mask the final latents are the image's own latents (the last blend uses them un-noised)."""
    _, mine = four
    image, mask = _image(), _mask()
    latents = mine(PROMPT, image, mask, num_inference_steps=3, generator=_seed(), output_type="latent").images
    pixels = mine.image_processor.preprocess(image)
    generator = _seed()  # the draw the pipeline made first: the VAE sample of the image
    image_latents = mine.vae.config.scaling_factor * mine.vae.encode(pixels).latent_dist.sample(generator)
    keep = torch.nn.functional.interpolate(mine.mask_processor.preprocess(mask), size=(32, 32)) == 0
    assert torch.allclose(latents[keep.expand_as(latents)], image_latents[keep.expand_as(latents)], atol=1e-6)
    assert not torch.allclose(latents, image_latents, atol=1e-3)


def test_numpy_and_tensor_masks_batches_and_generators(nine):
    """A numpy mask (1, height, width) in [0, 1], a tensor image, two prompts from a list of generators."""
    mask = np.asarray(_mask(), dtype=np.float32)[None] / 255
    generators = lambda: [_seed(1), _seed(2)]  # noqa: E731
    expected, got = _both(*nine, prompt=[PROMPT, "a dog"], mask_image=mask, generator=generators,
                          image=torch.rand(1, 3, 64, 64, generator=_seed(9)))
    assert got.shape == (2, 64, 64, 3)
    assert max_pixel_difference(expected, got) <= TOL


def test_masked_image_latents_are_used_as_given(nine):
    _, mine = nine
    masked = torch.randn(1, 4, 32, 32, generator=_seed(11))
    expected, got = _both(*nine, masked_image_latents=masked, strength=0.8)
    assert max_pixel_difference(expected, got) <= TOL


def test_padding_mask_crop_matches_diffusers(nine):
    """The crop is inpainted at full size and pasted back; PIL output, so pixels may differ by one 8-bit level."""
    expected, got = _both(*nine, mask_image=_mask(box=(30, 10, 44, 20)), padding_mask_crop=4, output_type="pil")
    expected, got = np.asarray(expected[0], dtype=np.int16), np.asarray(got[0], dtype=np.int16)
    assert got.shape == (64, 64, 3)
    assert np.abs(expected - got).max() <= 1 and (expected != got).mean() < 0.01
    # outside the crop box the original image is untouched
    original = np.asarray(_image(), dtype=np.int16)
    x1, y1, x2, y2 = get_crop_region(_mask(box=(30, 10, 44, 20)), 64, 64, pad=4)
    assert np.array_equal(got[y2:], original[y2:])


@pytest.mark.parametrize("box, pad", [((30, 10, 44, 20), 4), ((0, 0, 10, 64), 2), ((50, 40, 64, 48), 0)])
def test_crop_region_matches_diffusers(box, pad):
    mask = _mask(box=box)
    assert get_crop_region(mask, 64, 48, pad=pad) == diffusers.image_processor.VaeImageProcessor.get_crop_region(
        mask, 64, 48, pad=pad)


def test_callback_sees_and_may_replace_the_mask(nine):
    _, mine = nine
    seen = []

    def callback(pipe, i, t, tensors):
        seen.append(tuple(tensors["mask"].shape))
        return {"mask": torch.zeros_like(tensors["mask"])}

    mine(PROMPT, _image(), _mask(), num_inference_steps=3, generator=_seed(), callback_on_step_end=callback,
         callback_on_step_end_tensor_inputs=["mask", "masked_image_latents"], output_type="np")
    assert seen == [(1, 1, 32, 32)] * 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask_image": None}, "mask_image is required"),
        ({"strength": -0.1}, "strength must be a number in \\[0, 1\\]"),
        ({"mask_image": torch.rand(1, 3, 64, 64)}, "mask_image has 3 channels"),
        ({"image": [_image(), _image(1)], "mask_image": [_mask()] * 3}, "Got 2 images and 3 masks"),
        ({"image": torch.randn(1, 4, 32, 32)}, "pass masked_image_latents too"),
        ({"image": np.random.rand(1, 64, 64, 3).astype(np.float32), "padding_mask_crop": 4}, "single PIL images"),
        ({"padding_mask_crop": 4, "output_type": "np"}, "output_type must be 'pil'"),
        ({"height": 63}, "multiples of 2"),
        ({"masked_image_latents": torch.randn(1, 4, 16, 16)}, "masked_image_latents are \\(16, 16\\)"),
    ],
)
def test_bad_inputs_get_clear_errors(nine, kwargs, match):
    _, mine = nine
    kwargs = {"prompt": PROMPT, "image": _image(), "mask_image": _mask(), "num_inference_steps": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        mine(**kwargs)
