"""One table of every component class a diffusers ``model_index.json`` may name, and where hugkit defines it.

``model_index.json`` lists components as ``[library, class name]`` (``["diffusers", "UNet2DConditionModel"]``,
``["transformers", "CLIPTextModel"]``); hugkit finds its own class of that name here and imports it only when used.
"""

from __future__ import annotations

import importlib

# class name -> module defining it
COMPONENT_CLASSES: dict[str, str] = {
    # schedulers
    "DDPMScheduler": "hugkit.diffusion.schedulers.ddpm",
    "DDIMScheduler": "hugkit.diffusion.schedulers.ddim",
    "PNDMScheduler": "hugkit.diffusion.schedulers.pndm",
    "LMSDiscreteScheduler": "hugkit.diffusion.schedulers.lms_discrete",
    "EulerDiscreteScheduler": "hugkit.diffusion.schedulers.euler_discrete",
    "EulerAncestralDiscreteScheduler": "hugkit.diffusion.schedulers.euler_ancestral_discrete",
    "DPMSolverMultistepScheduler": "hugkit.diffusion.schedulers.dpmsolver_multistep",
    "UniPCMultistepScheduler": "hugkit.diffusion.schedulers.unipc_multistep",
    "LCMScheduler": "hugkit.diffusion.schedulers.lcm",
    # models
    "UNet2DConditionModel": "hugkit.diffusion.models.unet_2d_condition",
    "AutoencoderKL": "hugkit.diffusion.models.autoencoder_kl",
    "StableDiffusionSafetyChecker": "hugkit.diffusion.safety_checker",
    "CLIPTextModel": "hugkit.models.clip",
    "CLIPTextModelWithProjection": "hugkit.models.clip",
    "CLIPVisionModelWithProjection": "hugkit.models.clip",
    "CLIPImageProcessor": "hugkit.image_processing",
    "CLIPImageProcessorFast": "hugkit.image_processing",  # transformers 5 saves these names
    "CLIPImageProcessorPil": "hugkit.image_processing",
    "CLIPFeatureExtractor": "hugkit.image_processing",
    # tokenizers: hugkit has one tokenizer class that reads every format
    "CLIPTokenizer": "hugkit.tokenization",
    "CLIPTokenizerFast": "hugkit.tokenization",
}

SCHEDULER_NAMES = [name for name in COMPONENT_CLASSES if name.endswith("Scheduler")]


def find_component_class(name: str) -> type | None:
    """hugkit's class named ``name`` (a diffusers/transformers class name), or None when hugkit has none."""
    module_name = COMPONENT_CLASSES.get(name)
    if module_name is None:
        return None
    module = importlib.import_module(module_name)
    if module_name == "hugkit.tokenization":
        return module.AutoTokenizer
    if module_name == "hugkit.image_processing":
        return module.CLIPImageProcessor
    return getattr(module, name)
