"""Fixtures for the diffusion tests: tiny random pipeline folders (SD, SD inpainting, SDXL), built once per session."""

from __future__ import annotations

import pytest

from tests.diffusion.tiny_pipelines import save_as, tiny_sd_pipeline, tiny_sdxl_pipeline


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    pipe, folder = tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))
    return folder


@pytest.fixture(scope="session")
def sd_inpaint_folder(tmp_path_factory):
    """A tiny SD inpainting checkpoint: 9-channel UNet, saved by diffusers' StableDiffusionInpaintPipeline."""
    pipe, _ = tiny_sd_pipeline(tmp_path_factory.mktemp("sd-inpaint-src"), unet_overrides={"in_channels": 9})
    return save_as("StableDiffusionInpaintPipeline", tmp_path_factory.mktemp("sd-inpaint") / "tiny-sd-inpaint",
                   **pipe.components, requires_safety_checker=False)[1]


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory):
    return tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl"))[1]


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors run several times faster on one thread than on threads that share busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
