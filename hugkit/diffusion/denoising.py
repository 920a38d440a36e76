"""The parts of the denoising loop every Stable Diffusion pipeline shares: the per-step object ``stream()`` yields,
its cheap preview, timestep setup, guidance helpers, and the pipeline output.

The loop is a generator (as hugkit's token loop is): ``pipe.stream(...)`` yields one ``DenoisingStep`` per
step and ``pipe(...)`` folds over it, so breaking out of the loop stops the work and nothing is computed twice.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..outputs import ModelOutput

# Linear maps from latent channels to RGB, fitted by the community to SD's VAEs (the usual "latent2rgb"
# previews): a (channels, 3) matrix and an RGB bias. Far cheaper than a VAE decode, good enough to watch.
LATENT_RGB_FACTORS = {
    "sd": ([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
           [0.0, 0.0, 0.0]),
    "sdxl": ([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
             [0.1084, -0.0175, -0.0011]),
}


@dataclass
class StableDiffusionPipelineOutput(ModelOutput):
    images: Any = None
    nsfw_content_detected: Optional[list[bool]] = None


@dataclass
class DenoisingStep:
    """One step of the denoising loop, as ``pipe.stream()`` yields it.

    ``latents`` are the (scaled) latents after this step; ``preview`` is a small PIL image of the first one,
    computed on demand. The final step also carries ``output`` (the decoded images, as ``pipe(...)`` returns them).
    """

    index: int
    timestep: Any
    latents: torch.Tensor
    num_inference_steps: int
    latent_format: str = "sd"
    output: Any = field(default=None, repr=False)

    @property
    def is_last(self) -> bool:
        return self.index == self.num_inference_steps - 1

    @property
    def images(self) -> Any:
        return None if self.output is None else self.output.images

    @property
    def preview(self) -> Any:
        return latents_to_preview(self.latents[0], self.latent_format)

    def previews(self) -> list:
        return [latents_to_preview(one, self.latent_format) for one in self.latents]


def latents_to_preview(latents: torch.Tensor, latent_format: str = "sd") -> Any:
    """A (channels, h, w) latent as an h x w RGB PIL image through a fixed linear map (no VAE)."""
    from PIL import Image

    factors, bias = LATENT_RGB_FACTORS[latent_format]
    matrix = torch.tensor(factors, dtype=torch.float32)
    if latents.shape[0] != matrix.shape[0]:
        raise ValueError(f"Previews need {matrix.shape[0]}-channel latents, got {latents.shape[0]} channels.")
    rgb = torch.einsum("chw,cr->hwr", latents.detach().float().cpu(), matrix) + torch.tensor(bias)
    rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(rgb)


def retrieve_timesteps(
    scheduler: Any, num_inference_steps: int | None, device: Any, timesteps: list | None = None,
    sigmas: list | None = None, **kwargs: Any,
) -> tuple[torch.Tensor, int]:
    """Set the scheduler's schedule (a step count, or custom ``timesteps`` / ``sigmas``) and return it."""
    if timesteps is not None and sigmas is not None:
        raise ValueError("Pass either timesteps or sigmas, not both.")
    for name, custom in (("timesteps", timesteps), ("sigmas", sigmas)):
        if custom is None:
            continue
        if name not in inspect.signature(scheduler.set_timesteps).parameters:
            raise ValueError(f"{type(scheduler).__name__} does not take custom {name}; use a scheduler that does "
                             "(e.g. EulerDiscreteScheduler or DPMSolverMultistepScheduler) or pass num_inference_steps.")
        scheduler.set_timesteps(device=device, **{name: custom}, **kwargs)
        return scheduler.timesteps, len(scheduler.timesteps)
    from .schedulers.base import check_num_inference_steps

    check_num_inference_steps(num_inference_steps)
    scheduler.set_timesteps(num_inference_steps, device=device, **kwargs)
    return scheduler.timesteps, num_inference_steps


def step_kwargs(scheduler: Any, generator: Any, eta: float) -> dict[str, Any]:
    """``eta`` and ``generator`` for schedulers whose ``step`` takes them (DDIM's eta, ancestral noise)."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


def rescale_noise_cfg(noise_cfg: torch.Tensor, noise_pred_text: torch.Tensor, guidance_rescale: float = 0.0) -> torch.Tensor:
    """Bring the guided prediction's std back to the text prediction's (arXiv 2305.08891, section 3.4): fixes
    over-exposure with zero-terminal-SNR schedules; ``guidance_rescale`` mixes it with the plain guided one."""
    dims = list(range(1, noise_pred_text.ndim))
    rescaled = noise_cfg * (noise_pred_text.std(dim=dims, keepdim=True) / noise_cfg.std(dim=dims, keepdim=True))
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


def guidance_scale_embedding(w: torch.Tensor, embedding_dim: int = 512, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal embedding of the guidance scale, the extra input of LCM-distilled UNets (``time_cond_proj_dim``)."""
    w = w * 1000.0
    half = embedding_dim // 2
    frequencies = torch.exp(torch.arange(half, dtype=dtype) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    angles = w.to(dtype)[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if embedding_dim % 2 == 1:
        embedding = torch.nn.functional.pad(embedding, (0, 1))
    return embedding


def check_callback_inputs(names: Any, allowed: list[str]) -> list[str]:
    names = list(names or [])
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"callback_on_step_end_tensor_inputs may name {allowed}, got unknown {unknown}.")
    return names
