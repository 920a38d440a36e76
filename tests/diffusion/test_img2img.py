"""StableDiffusionImg2ImgPipeline against diffusers: a tiny random pipeline diffusers saved, loaded by hugkit through
DiffusionPipeline.from_pretrained, gives the same images for the same seed (PIL, numpy, tensor and latent inputs,
strengths, batches, per-image generators, a sigma scheduler); the loop streams; bad inputs get clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import diffusers
from tests.diffusion.tiny_pipelines import max_pixel_difference

import hugkit
from hugkit.diffusion.pipeline_utils import DiffusionPipeline
from hugkit.diffusion.pipelines.stable_diffusion_img2img import StableDiffusionImg2ImgPipeline, retrieve_latents

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPT = "a red fox and the cat"
TOL = 1e-3


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(seed: int = 0, size: int = 64) -> Image.Image:
    pixels = np.random.RandomState(seed).rand(size, size, 3)
    return Image.fromarray((pixels * 255).astype("uint8"))


@pytest.fixture(scope="module")
def pipes(sd_folder, tmp_path_factory):
    """(diffusers, hugkit) image-to-image pipelines of one folder that diffusers' Img2Img pipeline saved."""
    reference = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(sd_folder, safety_checker=None,
                                                                         requires_safety_checker=False)
    folder = tmp_path_factory.mktemp("sd-img2img") / "tiny-sd-img2img"
    reference.save_pretrained(folder)
    reference.set_progress_bar_config(disable=True)
    mine = DiffusionPipeline.from_pretrained(folder)
    mine.set_progress_bar_config(disable=True)
    return reference, mine


def _both(reference, mine, generator=_seed, **kwargs):
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("image", _image())
    kwargs.setdefault("num_inference_steps", 4)
    kwargs.setdefault("output_type", "np")
    expected = reference(generator=generator(), **kwargs).images
    got = mine(generator=generator(), **kwargs).images
    return expected, got


def test_loads_as_the_folder_says(pipes):
    _, mine = pipes
    assert type(mine) is hugkit.StableDiffusionImg2ImgPipeline
    assert all(type(c).__module__.startswith("hugkit") for c in (mine.unet, mine.vae, mine.text_encoder, mine.scheduler))


@pytest.mark.parametrize("strength", [0.3, 0.75])
def test_pil_image_matches_diffusers(pipes, strength):
    expected, got = _both(*pipes, strength=strength)
    assert got.shape == (1, 64, 64, 3)
    assert max_pixel_difference(expected, got) <= TOL


def test_tensor_and_numpy_images_match_diffusers(pipes):
    pixels = torch.rand(1, 3, 64, 64, generator=_seed(5))
    expected, got = _both(*pipes, image=pixels, strength=0.6)
    assert max_pixel_difference(expected, got) <= TOL
    expected, got = _both(*pipes, image=pixels.permute(0, 2, 3, 1).numpy(), strength=0.6)
    assert max_pixel_difference(expected, got) <= TOL


def test_latents_as_image_are_used_as_they_are(pipes):
    latents = torch.randn(1, 4, 32, 32, generator=_seed(7))
    expected, got = _both(*pipes, image=latents, strength=0.5)
    assert max_pixel_difference(expected, got) <= TOL


def test_two_prompts_share_one_image(pipes):
    expected, got = _both(*pipes, prompt=[PROMPT, "a dog"], negative_prompt=["red", "green"], strength=0.75)
    assert got.shape == (2, 64, 64, 3)
    assert max_pixel_difference(expected, got) <= TOL


def test_one_generator_per_image(pipes):
    """A list of generators encodes each copy of the image with its own generator, then draws its noise."""
    generators = lambda: [_seed(1), _seed(2)]  # noqa: E731
    expected, got = _both(*pipes, generator=generators, num_images_per_prompt=2, strength=0.75)
    assert got.shape == (2, 64, 64, 3)
    assert max_pixel_difference(expected, got) <= TOL
    assert max_pixel_difference(got[0], got[1]) > 1e-2


def test_sigma_scheduler_starts_where_strength_says(pipes, sd_folder):
    """Euler's noise level comes from set_begin_index: the image is noised to the first kept step's sigma."""
    reference, _ = pipes
    euler_reference = diffusers.StableDiffusionImg2ImgPipeline(
        **{**reference.components, "scheduler": diffusers.EulerDiscreteScheduler.from_config(reference.scheduler.config)},
        requires_safety_checker=False,
    )
    euler_reference.set_progress_bar_config(disable=True)
    euler = StableDiffusionImg2ImgPipeline.from_pretrained(
        sd_folder, scheduler=hugkit.EulerDiscreteScheduler.from_pretrained(sd_folder / "scheduler"))
    euler.set_progress_bar_config(disable=True)
    expected, got = _both(euler_reference, euler, strength=0.5, num_inference_steps=6)
    assert max_pixel_difference(expected, got) <= TOL


def test_stream_runs_the_strength_share_of_the_steps(pipes):
    _, mine = pipes
    steps = list(mine.stream(PROMPT, _image(), strength=0.5, num_inference_steps=6, generator=_seed(), output_type="np"))
    assert len(steps) == 3 and [s.index for s in steps] == [0, 1, 2]
    assert steps[-1].output is not None and all(s.output is None for s in steps[:-1])
    called = mine(PROMPT, _image(), strength=0.5, num_inference_steps=6, generator=_seed(), output_type="np").images
    assert max_pixel_difference(steps[-1].images, called) == 0.0


def test_retrieve_latents_sample_and_argmax(pipes):
    _, mine = pipes
    pixels = torch.rand(1, 3, 64, 64, generator=_seed(3)) * 2 - 1
    encoded = mine.vae.encode(pixels)
    assert torch.equal(retrieve_latents(encoded, sample_mode="argmax"), encoded.latent_dist.mode())
    drawn = retrieve_latents(encoded, generator=_seed(4))
    assert torch.allclose(drawn, encoded.latent_dist.sample(_seed(4)))
    assert not torch.allclose(drawn, encoded.latent_dist.mode())
    with pytest.raises(ValueError, match="sample_mode"):
        retrieve_latents(encoded, sample_mode="mean")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strength": 1.5}, "strength must be a number in \\[0, 1\\]"),
        ({"strength": 0.0}, "leaves no denoising step"),
        ({"image": None}, "image is required"),
        ({"image": _image().convert("RGBA")}, "mode 'RGBA'.*convert\\('RGB'\\)"),
        ({"image": torch.rand(1, 1, 64, 64)}, "1 channels"),
        ({"image": [_image(), _image(1)]}, "Got 2 images for a batch of 1"),
        ({"generator": [_seed(), _seed()]}, "list of 2 generators for 1 images"),
    ],
)
def test_bad_inputs_get_clear_errors(pipes, kwargs, match):
    _, mine = pipes
    kwargs = {"prompt": PROMPT, "image": _image(), "num_inference_steps": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        mine(**kwargs)
