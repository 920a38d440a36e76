"""Euler ancestral (k-diffusion's ``sample_euler_ancestral``): each step goes deterministically down to a noise
level below the next sigma, then adds fresh noise to land exactly on it.

From sigma to sigma_next the noise splits as sigma_up = sigma_next * sqrt(1 - sigma_next^2 / sigma^2) (fresh noise)
and sigma_down = sqrt(sigma_next^2 - sigma_up^2) (where the Euler step goes). Seeded runs match diffusers'
EulerAncestralDiscreteScheduler: the noise is drawn with the same generator calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ...outputs import ModelOutput
from ..configuration import register_to_config
from ..utils import randn_tensor
from .base import check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from .sigmas import TIMESTEP_SPACINGS, SigmaSchedulerMixin, check_choice, interpolate_sigmas, spaced_timesteps, train_sigmas

logger = logging.getLogger(__name__)

# diffusers accepts "sample" in the config but cannot step with it; so does hugkit, with a clear error in step.
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass
class EulerAncestralDiscreteSchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None
    pred_original_sample: Optional[torch.Tensor] = None


class EulerAncestralDiscreteScheduler(SigmaSchedulerMixin):
    """Euler ancestral sampler, with diffusers' config fields (see the module docstring)."""

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        name = type(self).__name__
        check_choice(name, "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice(name, "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)

        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        if rescale_betas_zero_snr:
            # Zero signal would make the first sigma infinite; fp16's smallest subnormal keeps it finite.
            self.alphas_cumprod[-1] = 2**-24

        # Until set_timesteps: every training timestep, from the noisiest down (float64 timesteps, as diffusers).
        sigmas = train_sigmas(self.alphas_cumprod)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas[::-1], [0.0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(np.linspace(0, num_train_timesteps - 1, num_train_timesteps)[::-1].copy())
        self.num_inference_steps: int | None = None
        self.is_scale_input_called = False
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` timesteps, spaced as the config says, and their sigmas."""
        config = self.config
        self.num_inference_steps = check_num_inference_steps(num_inference_steps)
        timesteps = spaced_timesteps(
            config.timestep_spacing, config.num_train_timesteps, num_inference_steps, config.steps_offset
        ).astype(np.float32)
        sigmas = interpolate_sigmas(timesteps, train_sigmas(self.alphas_cumprod))
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))  # stays on the CPU
        self.timesteps = torch.from_numpy(timesteps).to(device=device)
        self._step_index = None
        self._begin_index = None

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> EulerAncestralDiscreteSchedulerOutput | tuple:
        """One ancestral step from ``timestep`` to the next one; ``generator`` seeds the fresh noise."""
        if self.num_inference_steps is None:
            raise ValueError(f"Call {type(self).__name__}.set_timesteps(num_inference_steps) before step().")
        self._check_float_timestep(timestep)
        if self.config.prediction_type == "sample":
            raise ValueError(
                f"{type(self).__name__} cannot step with prediction_type='sample' (neither can diffusers); "
                "use 'epsilon' or 'v_prediction', or EulerDiscreteScheduler."
            )
        if not self.is_scale_input_called:
            logger.warning("Call scale_model_input before step: the model input must be scaled at each step.")
        index = self._step_sigma_index(timestep)

        sigma = self.sigmas[index]
        sample = sample.to(torch.float32)  # the update is done in float32 whatever the model's dtype
        if self.config.prediction_type == "epsilon":
            pred_original_sample = sample - sigma * model_output
        else:  # v_prediction: x_0 = c_out * v + c_skip * x
            pred_original_sample = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)

        sigma_to = self.sigmas[index + 1]
        sigma_up = (sigma_to**2 * (sigma**2 - sigma_to**2) / sigma**2) ** 0.5
        sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
        derivative = (sample - pred_original_sample) / sigma
        prev_sample = sample + derivative * (sigma_down - sigma)
        noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
        prev_sample = (prev_sample + noise * sigma_up).to(model_output.dtype)

        self._step_index += 1
        if not return_dict:
            return prev_sample, pred_original_sample
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
