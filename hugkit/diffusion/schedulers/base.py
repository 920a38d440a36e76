"""What every scheduler shares: config files, the output object, and the beta schedules of the training process.

A scheduler turns the model's prediction at one timestep into the sample for the next. Each algorithm lives in its
own file; this one holds the parts they all use, with diffusers' names and numbers (betas in float32, computed the
way diffusers computes them, so timesteps and step outputs match bit for bit).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch

from ...outputs import ModelOutput
from ..configuration import ConfigMixin

SCHEDULER_CONFIG_NAME = "scheduler_config.json"

# Every scheduler hugkit has can replace every other one in a Stable Diffusion pipeline.
KARRAS_DIFFUSION_SCHEDULERS = [
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "LCMScheduler",
]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


@dataclass
class SchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None


class SchedulerMixin(ConfigMixin):
    config_name: ClassVar[str] = SCHEDULER_CONFIG_NAME
    _compatibles: ClassVar[list[str]] = list(KARRAS_DIFFUSION_SCHEDULERS)
    order: ClassVar[int] = 1
    init_noise_sigma = 1.0

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, subfolder: str | None = None, **kwargs: Any
    ) -> "SchedulerMixin":
        """Read ``scheduler_config.json`` from a folder (``subfolder="scheduler"`` in a pipeline folder)."""
        from ...config import pop_hub_kwargs

        hub_kwargs = pop_hub_kwargs(kwargs)
        config = cls.load_config(pretrained_model_name_or_path, subfolder=subfolder, **hub_kwargs)
        return cls.from_config(config, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        self.save_config(save_directory)

    @property
    def compatibles(self) -> list[type]:
        from ..registry import find_component_class

        return [c for c in (find_component_class(name) for name in self._compatibles) if c is not None]

    def __len__(self) -> int:
        return self.config.num_train_timesteps


def betas_for_alpha_bar(
    num_diffusion_timesteps: int, max_beta: float = 0.999, alpha_transform_type: str = "cosine"
) -> torch.Tensor:
    """Betas that make the cumulative product of (1 - beta) follow ``alpha_bar(t)`` on [0, 1] (GLIDE's cosine)."""
    if alpha_transform_type == "cosine":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    elif alpha_transform_type == "exp":
        def alpha_bar(t: float) -> float:
            return math.exp(t * -12.0)
    elif alpha_transform_type == "laplace":
        def alpha_bar(t: float) -> float:
            lmb = -0.5 * math.copysign(1, 0.5 - t) * math.log(1 - 2 * math.fabs(0.5 - t) + 1e-6)
            snr = math.exp(lmb)
            return math.sqrt(snr / (1 + snr))
    else:
        raise ValueError(f"Unknown alpha_transform_type {alpha_transform_type!r}: expected 'cosine', 'exp' or 'laplace'.")
    steps = num_diffusion_timesteps
    betas = [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)]
    return torch.tensor(betas, dtype=torch.float32)


def make_betas(
    num_train_timesteps: int,
    beta_start: float,
    beta_end: float,
    beta_schedule: str,
    trained_betas: Any = None,
) -> torch.Tensor:
    """The training noise schedule a scheduler config describes (float32, as diffusers builds it)."""
    if trained_betas is not None:
        return torch.tensor(trained_betas, dtype=torch.float32)
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    if beta_schedule == "scaled_linear":  # latent diffusion's schedule: linear in sqrt(beta)
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(num_train_timesteps)
    raise ValueError(
        f"Unknown beta_schedule {beta_schedule!r} in the scheduler config: expected one of {', '.join(BETA_SCHEDULES)}, "
        "or trained_betas."
    )


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alpha_bar) so the last timestep has zero signal (arXiv 2305.08891, algorithm 1)."""
    root = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alpha_bar = root**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


def check_num_inference_steps(num_inference_steps: Any, num_train_timesteps: int | None = None) -> int:
    """A clear error for a step count no scheduler can use."""
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps <= 0:
        raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
    if num_train_timesteps is not None and num_inference_steps > num_train_timesteps:
        raise ValueError(
            f"num_inference_steps ({num_inference_steps}) cannot exceed the scheduler's num_train_timesteps "
            f"({num_train_timesteps}): the model was trained on only that many timesteps."
        )
    return num_inference_steps
