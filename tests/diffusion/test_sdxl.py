"""StableDiffusionXLPipeline and StableDiffusionXLImg2ImgPipeline against diffusers on tiny random SDXL pipelines
(two text encoders, "text_time" added conditioning): prompts and negative prompts for each encoder, empty negatives
forced to zeros, size micro-conditioning, a scheduler swap, denoising_end / denoising_start hand-off to a refiner,
the fp16 VAE upcast, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import diffusers
from tests.diffusion.tiny_pipelines import tiny_sdxl_pipeline
from tests.diffusion.tiny_pipelines import max_pixel_difference

import hugkit
from hugkit.diffusion.pipeline_utils import DiffusionPipeline
from hugkit.diffusion.pipelines.stable_diffusion_xl import StableDiffusionXLPipelineOutput

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPT = "a red fox and the cat"
TOL = 1e-3


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(seed: int = 0, size: int = 64) -> Image.Image:
    pixels = np.random.RandomState(seed).rand(size, size, 3)
    return Image.fromarray((pixels * 255).astype("uint8"))


def _quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipes(sdxl_folder):
    return _quiet(diffusers.StableDiffusionXLPipeline.from_pretrained(sdxl_folder)), _quiet(DiffusionPipeline.from_pretrained(sdxl_folder))


@pytest.fixture(scope="module")
def img2img(sdxl_folder):
    reference = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl_folder)
    return _quiet(reference), _quiet(hugkit.StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl_folder))


@pytest.fixture(scope="module")
def refiner(tmp_path_factory):
    """The refiner layout: only the second text encoder, an aesthetic score instead of the target size."""
    reference, folder = tiny_sdxl_pipeline(tmp_path_factory.mktemp("refiner"), "StableDiffusionXLImg2ImgPipeline", refiner=True)
    return _quiet(reference), _quiet(DiffusionPipeline.from_pretrained(folder))


def _both(reference, mine, generator=_seed, **kwargs):
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("num_inference_steps", 3)
    kwargs.setdefault("output_type", "np")
    expected = reference(generator=generator(), **kwargs).images
    got = mine(generator=generator(), **kwargs).images
    return expected, got


# --- text to image ---------------------------------------------------------------------------------
def test_loads_as_the_folder_says(pipes):
    _, mine = pipes
    assert type(mine) is hugkit.StableDiffusionXLPipeline
    assert type(mine.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert type(mine.text_encoder_2).__module__.startswith("hugkit") and type(mine.unet).__module__.startswith("hugkit")
    assert mine.config.force_zeros_for_empty_prompt is True and mine.latent_format == "sdxl"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"negative_prompt": "a dog"},
        {"prompt": [PROMPT, "a dog"], "prompt_2": ["the red fox", "and"], "negative_prompt": ["cat", "red"],
         "negative_prompt_2": ["dog", "fox"]},
        {"num_images_per_prompt": 2, "guidance_rescale": 0.7},
        {"guidance_scale": 1.0, "clip_skip": 1},
        {"original_size": (32, 48), "crops_coords_top_left": (4, 8), "target_size": (48, 64)},
        {"negative_original_size": (16, 16), "negative_crops_coords_top_left": (2, 2), "negative_target_size": (32, 32)},
    ],
    ids=["plain", "negative", "prompt_2-batch", "per-prompt-rescale", "unguided-clip_skip", "sizes", "negative-sizes"],
)
def test_same_image_as_diffusers(pipes, kwargs):
    expected, got = _both(*pipes, **kwargs)
    assert max_pixel_difference(expected, got) <= TOL


def test_empty_negative_prompt_encoded_when_not_forced_to_zeros(sdxl_folder):
    reference = _quiet(diffusers.StableDiffusionXLPipeline.from_pretrained(sdxl_folder, force_zeros_for_empty_prompt=False))
    mine = _quiet(DiffusionPipeline.from_pretrained(sdxl_folder, force_zeros_for_empty_prompt=False))
    assert mine.config.force_zeros_for_empty_prompt is False
    expected, got = _both(reference, mine)
    assert max_pixel_difference(expected, got) <= TOL
    _, negative, _, negative_pooled = mine.encode_prompt(PROMPT, device=torch.device("cpu"))
    assert negative.abs().sum() > 0 and negative_pooled.abs().sum() > 0


def test_zeros_for_empty_negative_prompt(pipes):
    _, mine = pipes
    embeds, negative, pooled, negative_pooled = mine.encode_prompt(PROMPT, device=torch.device("cpu"))
    assert embeds.shape == (1, 77, 64) and pooled.shape == (1, 32)  # both encoders' widths; the projection's
    assert torch.count_nonzero(negative) == 0 and torch.count_nonzero(negative_pooled) == 0


def test_scheduler_swap_to_euler(pipes, sdxl_folder):
    reference, _ = pipes
    euler_reference = _quiet(diffusers.StableDiffusionXLPipeline(
        **{**reference.components, "scheduler": diffusers.EulerDiscreteScheduler.from_config(reference.scheduler.config)},
        add_watermarker=False))
    euler = _quiet(DiffusionPipeline.from_pretrained(
        sdxl_folder, scheduler=hugkit.EulerDiscreteScheduler.from_pretrained(sdxl_folder / "scheduler")))
    expected, got = _both(euler_reference, euler, num_inference_steps=4)
    assert max_pixel_difference(expected, got) <= TOL


def test_prompt_embeds_give_the_same_image(pipes):
    _, mine = pipes
    embeds, negative, pooled, negative_pooled = mine.encode_prompt(PROMPT, negative_prompt="a dog", device=torch.device("cpu"))
    direct = mine(PROMPT, negative_prompt="a dog", num_inference_steps=2, generator=_seed(), output_type="np").images
    given = mine(prompt_embeds=embeds, negative_prompt_embeds=negative, pooled_prompt_embeds=pooled,
                 negative_pooled_prompt_embeds=negative_pooled, num_inference_steps=2, generator=_seed(),
                 output_type="np").images
    assert max_pixel_difference(direct, given) == 0.0


def test_negative_sizes_apply_to_each_image_of_a_batch(pipes):
    """diffusers lines the negative time ids up with the wrong rows for batches > 1 (neg, pos, neg, pos ...);
    hugkit gives each image of a batch what it would get alone."""
    reference, mine = pipes
    sizes = {"negative_original_size": (16, 16), "negative_target_size": (32, 32)}
    batch = mine([PROMPT, "a dog"], generator=[_seed(1), _seed(2)], num_inference_steps=3, output_type="np", **sizes).images
    for row, (prompt, seed) in enumerate([(PROMPT, 1), ("a dog", 2)]):
        alone = reference(prompt, generator=_seed(seed), num_inference_steps=3, output_type="np", **sizes).images
        assert max_pixel_difference(alone[0], batch[row]) <= TOL


def test_output_class_and_tuple(pipes):
    _, mine = pipes
    out = mine(PROMPT, num_inference_steps=2, generator=_seed())
    assert isinstance(out, StableDiffusionXLPipelineOutput) and isinstance(out.images[0], Image.Image)
    assert out.images[0].size == (64, 64)
    as_tuple = mine(PROMPT, num_inference_steps=2, generator=_seed(), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1


def test_stream_previews_use_the_sdxl_latent_format(pipes):
    _, mine = pipes
    steps = list(mine.stream(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np"))
    assert len(steps) == 3 and steps[-1].output is not None
    assert steps[0].latent_format == "sdxl" and steps[0].preview.size == (32, 32)


def test_fp16_vae_is_upcast_to_decode(sdxl_folder):
    """force_upcast: an fp16 VAE decodes in fp32 and is fp16 again afterwards."""
    mine = _quiet(DiffusionPipeline.from_pretrained(sdxl_folder))
    full = mine(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    mine.vae.to(torch.float16)
    upcast = mine(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    assert mine.vae.dtype == torch.float16
    assert max_pixel_difference(full, upcast) < 1e-2  # only the weights' fp16 rounding differs


# --- image to image and the refiner ----------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"strength": 0.5}, {"strength": 0.75, "prompt": [PROMPT, "a dog"],
                                                        "negative_prompt": ["red", "fox"]}])
def test_img2img_same_image_as_diffusers(img2img, kwargs):
    expected, got = _both(*img2img, image=_image(), num_inference_steps=4, **kwargs)
    assert max_pixel_difference(expected, got) <= TOL


def test_base_hands_over_to_img2img_at_denoising_end(pipes, img2img):
    """The base stops at denoising_end and returns latents; image-to-image continues from denoising_start."""
    base_reference, base = pipes
    reference, mine = img2img
    latents = base(PROMPT, num_inference_steps=6, denoising_end=0.5, output_type="latent", generator=_seed()).images
    expected_latents = base_reference(PROMPT, num_inference_steps=6, denoising_end=0.5, output_type="latent",
                                      generator=_seed()).images
    assert latents.shape == (1, 4, 32, 32) and torch.allclose(latents, expected_latents, atol=1e-4)
    expected, got = _both(reference, mine, image=latents, num_inference_steps=6, denoising_start=0.5)
    assert max_pixel_difference(expected, got) <= TOL
    steps = list(mine.stream(PROMPT, image=latents, num_inference_steps=6, denoising_start=0.5, generator=_seed()))
    assert len(steps) == 4  # DDIM's 6 steps are 831, 665 | 499, 333, 167, 1: the base ran the first two


@pytest.mark.parametrize("kwargs", [{"strength": 0.6, "aesthetic_score": 7.0, "negative_aesthetic_score": 2.0},
                                    {"denoising_start": 0.7}])
def test_refiner_same_image_as_diffusers(refiner, kwargs):
    _, mine = refiner
    assert mine.text_encoder is None and mine.config.requires_aesthetics_score is True
    image = torch.randn(1, 4, 32, 32, generator=_seed(3)) if "denoising_start" in kwargs else _image()
    expected, got = _both(*refiner, image=image, num_inference_steps=5, **kwargs)
    assert max_pixel_difference(expected, got) <= TOL


# --- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prompt": None, "prompt_embeds": torch.zeros(1, 77, 64)}, "pass pooled_prompt_embeds too"),
        ({"prompt": None, "prompt_2": "a", "prompt_embeds": torch.zeros(1, 77, 64)}, "prompt_2 or prompt_embeds"),
        ({"prompt_2": 3}, "prompt_2 must be a string"),
        ({"prompt": [PROMPT], "negative_prompt": ["a", "b"]}, "Got 2 negative prompts for 1 prompts"),
        ({"denoising_end": 1.5}, "denoising_end is a fraction"),
        ({"original_size": (64,)}, "original_size must be a pair"),
        ({"height": 63}, "multiples of 2"),
    ],
)
def test_bad_inputs_get_clear_errors(pipes, kwargs, match):
    _, mine = pipes
    kwargs = {"prompt": PROMPT, "num_inference_steps": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        mine(**kwargs)


def test_img2img_bad_inputs(img2img):
    _, mine = img2img
    with pytest.raises(ValueError, match="must be below denoising_end"):
        mine(PROMPT, image=_image(), denoising_start=0.8, denoising_end=0.5)
    with pytest.raises(ValueError, match="strength must be"):
        mine(PROMPT, image=_image(), strength=2)
    with pytest.raises(ValueError, match="image is required"):
        mine(PROMPT)


def test_setup_errors(sdxl_folder):
    with pytest.raises(ValueError, match="invisible watermark"):
        DiffusionPipeline.from_pretrained(sdxl_folder, add_watermarker=True)
    # a base folder read as a refiner: 5 time ids do not fit the UNet's added embedding
    wrong = _quiet(hugkit.StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl_folder, requires_aesthetics_score=True))
    with pytest.raises(ValueError, match="added embedding takes 80 numbers"):
        wrong(PROMPT, image=_image(), strength=0.5, num_inference_steps=2)


def test_saved_folder_loads_in_diffusers(pipes, tmp_path):
    reference, mine = pipes
    mine.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline" and index["force_zeros_for_empty_prompt"] is True
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    reloaded = _quiet(diffusers.StableDiffusionXLPipeline.from_pretrained(tmp_path / "saved"))
    expected, got = _both(reloaded, mine)
    assert max_pixel_difference(expected, got) <= TOL
