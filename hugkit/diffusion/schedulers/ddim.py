"""DDIM (Song et al. 2020, arXiv 2010.02502): a non-Markovian sampler for a DDPM-trained model that can skip
timesteps; ``eta=0`` is deterministic, ``eta=1`` recovers DDPM's noise level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ...outputs import ModelOutput
from ..configuration import register_to_config
from ..utils import randn_tensor
from .base import SchedulerMixin, check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from .ddpm import PREDICTION_TYPES, AlphaBarMixin, spaced_timesteps, threshold_sample
from .sigmas import TIMESTEP_SPACINGS, check_choice


@dataclass
class DDIMSchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None
    pred_original_sample: Optional[torch.Tensor] = None


class DDIMScheduler(AlphaBarMixin, SchedulerMixin):
    """Denoising diffusion implicit models: predict x_0, then step to x_{t-1} along the predicted noise direction."""

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Any = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "leading",
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        check_choice("DDIMScheduler", "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice("DDIMScheduler", "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        # alpha_bar "before" timestep 0: 1 (a clean image) or, as some checkpoints were trained, alpha_bar_0.
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.from_numpy(np.arange(num_train_timesteps)[::-1].copy().astype(np.int64))

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        return sample

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        num_train = self.config.num_train_timesteps
        self.num_inference_steps = check_num_inference_steps(num_inference_steps, num_train)
        schedule = spaced_timesteps(self.config.timestep_spacing, num_train, num_inference_steps,
                                    self.config.steps_offset)
        self.timesteps = torch.from_numpy(schedule).to(device)

    def _alpha_bar_prev(self, prev_timestep: Any) -> torch.Tensor:
        return self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod

    def _get_variance(self, timestep: Any, prev_timestep: Any) -> torch.Tensor:
        """sigma_t^2 / eta^2 of DDIM eq. 16."""
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self._alpha_bar_prev(prev_timestep)
        return ((1 - alpha_prod_t_prev) / (1 - alpha_prod_t)) * (1 - alpha_prod_t / alpha_prod_t_prev)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DDIMSchedulerOutput | tuple:
        if self.num_inference_steps is None:
            raise ValueError("DDIMScheduler.step was called before set_timesteps: call "
                             "scheduler.set_timesteps(num_inference_steps) first.")
        if eta > 0 and variance_noise is not None and generator is not None:
            raise ValueError("Pass either `generator` or `variance_noise` to DDIMScheduler.step, not both.")

        # Like diffusers, the previous timestep is one "leading" stride back, whatever the spacing.
        prev_timestep = timestep - self.config.num_train_timesteps // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self._alpha_bar_prev(prev_timestep)
        beta_prod_t = 1 - alpha_prod_t

        prediction = self.config.prediction_type
        if prediction == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
            pred_epsilon = model_output
        elif prediction == "sample":
            pred_original_sample = model_output
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
        else:  # v_prediction
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
            pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample

        if self.config.thresholding:
            pred_original_sample = threshold_sample(
                pred_original_sample, self.config.dynamic_thresholding_ratio, self.config.sample_max_value
            )
        elif self.config.clip_sample:
            limit = self.config.clip_sample_range
            pred_original_sample = pred_original_sample.clamp(-limit, limit)

        std_dev_t = eta * self._get_variance(timestep, prev_timestep) ** (0.5)
        if use_clipped_model_output:  # re-derive the noise from the clipped x_0 (as GLIDE does)
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)

        # DDIM eq. 12: the predicted x_0, plus the direction pointing to x_t, plus fresh noise when eta > 0.
        direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + direction
        if eta > 0:
            if variance_noise is None:
                variance_noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                              dtype=model_output.dtype)
            prev_sample = prev_sample + std_dev_t * variance_noise

        if not return_dict:
            return (prev_sample, pred_original_sample)
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
