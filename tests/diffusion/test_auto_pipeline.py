"""AutoPipelineForText2Image / Image2Image / Inpainting: the same task class as diffusers' AutoPipeline picks for a
folder or a loaded pipeline, components shared by from_pipe, settings carried over and restored, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import diffusers
from tests.diffusion.tiny_pipelines import max_pixel_difference

import hugkit
from hugkit.diffusion.pipeline_utils import DiffusionPipeline
from hugkit.diffusion.pipelines.auto_pipeline import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPT = "a red fox and the cat"
AUTOS = {"text2image": AutoPipelineForText2Image, "image2image": AutoPipelineForImage2Image,
         "inpaint": AutoPipelineForInpainting}


def _image(seed: int = 0, size: int = 64) -> Image.Image:
    return Image.fromarray((np.random.RandomState(seed).rand(size, size, 3) * 255).astype("uint8"))


@pytest.mark.parametrize(
    "folder_fixture, task, expected",
    [
        ("sd_folder", "text2image", "StableDiffusionPipeline"),
        ("sd_folder", "image2image", "StableDiffusionImg2ImgPipeline"),
        ("sd_folder", "inpaint", "StableDiffusionInpaintPipeline"),
        ("sd_inpaint_folder", "text2image", "StableDiffusionPipeline"),
        ("sd_inpaint_folder", "image2image", "StableDiffusionImg2ImgPipeline"),
        ("sdxl_folder", "text2image", "StableDiffusionXLPipeline"),
        ("sdxl_folder", "image2image", "StableDiffusionXLImg2ImgPipeline"),
    ],
)
def test_from_pretrained_picks_the_class_diffusers_picks(request, folder_fixture, task, expected):
    folder = request.getfixturevalue(folder_fixture)
    pipe = AUTOS[task].from_pretrained(folder)
    assert type(pipe) is getattr(hugkit, expected)
    assert type(pipe.unet).__module__.startswith("hugkit")
    reference = {"text2image": diffusers.AutoPipelineForText2Image, "image2image": diffusers.AutoPipelineForImage2Image,
                 "inpaint": diffusers.AutoPipelineForInpainting}[task]
    assert reference.from_pipe(_diffusers_pipe(folder)).__class__.__name__ == expected


_DIFFUSERS_PIPES: dict = {}


def _diffusers_pipe(folder):
    """diffusers' own pipeline of a folder, loaded once per folder."""
    if folder not in _DIFFUSERS_PIPES:
        pipe = diffusers.DiffusionPipeline.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        _DIFFUSERS_PIPES[folder] = pipe
    return _DIFFUSERS_PIPES[folder]


def test_from_pipe_shares_components_and_draws_what_diffusers_draws(sd_folder):
    text2image = DiffusionPipeline.from_pretrained(sd_folder)
    image2image = AutoPipelineForImage2Image.from_pipe(text2image)
    assert type(image2image) is hugkit.StableDiffusionImg2ImgPipeline
    for name in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(image2image, name) is getattr(text2image, name)
    assert image2image.config.requires_safety_checker == text2image.config.requires_safety_checker
    image2image.set_progress_bar_config(disable=True)
    reference = diffusers.AutoPipelineForImage2Image.from_pipe(_diffusers_pipe(sd_folder))
    reference.set_progress_bar_config(disable=True)
    kwargs = dict(image=_image(), strength=0.5, num_inference_steps=4, output_type="np")
    expected = reference(PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).images
    got = image2image(PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert max_pixel_difference(expected, got) <= 1e-3


def test_from_pipe_overrides_components_and_settings(sd_folder):
    text2image = DiffusionPipeline.from_pretrained(sd_folder)
    euler = hugkit.EulerDiscreteScheduler.from_config(text2image.scheduler.config)
    inpaint = AutoPipelineForInpainting.from_pipe(text2image, scheduler=euler, requires_safety_checker=False)
    assert type(inpaint) is hugkit.StableDiffusionInpaintPipeline
    assert inpaint.scheduler is euler and inpaint.unet is text2image.unet
    assert inpaint.config.requires_safety_checker is False
    assert inpaint.config.scheduler == ["diffusers", "EulerDiscreteScheduler"]
    with pytest.raises(TypeError, match="does not take \\['controlnet'\\]"):
        AutoPipelineForInpainting.from_pipe(text2image, controlnet=None)


def test_settings_a_pipeline_does_not_take_come_back(sdxl_folder):
    """requires_aesthetics_score survives a round trip through the text-to-image pipeline, which lacks it."""
    refiner_like = hugkit.StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl_folder, requires_aesthetics_score=True)
    text2image = AutoPipelineForText2Image.from_pipe(refiner_like)
    assert type(text2image) is hugkit.StableDiffusionXLPipeline
    assert "requires_aesthetics_score" not in text2image.config
    assert text2image.config["_requires_aesthetics_score"] is True
    back = AutoPipelineForImage2Image.from_pipe(text2image)
    assert back.config.requires_aesthetics_score is True and back.text_encoder_2 is refiner_like.text_encoder_2


def test_refiner_layout_becomes_text_to_image(tmp_path, sdxl_folder):
    """A pipeline without the first text encoder (optional in SDXL) still converts."""
    refiner_like = hugkit.StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl_folder, text_encoder=None, tokenizer=None)
    text2image = AutoPipelineForText2Image.from_pipe(refiner_like)
    assert text2image.text_encoder is None and text2image.text_encoder_2 is refiner_like.text_encoder_2


def test_errors(tmp_path, sd_folder, sdxl_folder):
    with pytest.raises(TypeError, match="from_pretrained"):
        AutoPipelineForText2Image()
    with pytest.raises(ValueError, match="StableDiffusionXLInpaintPipeline, which hugkit does not have"):
        AutoPipelineForInpainting.from_pretrained(sdxl_folder)
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        AutoPipelineForImage2Image.from_pretrained(sd_folder / "unet")
    strange = tmp_path / "strange"
    shutil.copytree(sd_folder, strange)
    index = json.loads((strange / "model_index.json").read_text())
    (strange / "model_index.json").write_text(json.dumps({**index, "_class_name": "KandinskyPipeline"}))
    with pytest.raises(ValueError, match="does not know the pipeline 'KandinskyPipeline'"):
        AutoPipelineForImage2Image.from_pretrained(strange)
    with pytest.raises(TypeError, match="loaded hugkit pipeline"):
        AutoPipelineForImage2Image.from_pipe("not a pipeline")
