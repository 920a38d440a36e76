"""DDPM (Ho et al. 2020, arXiv 2006.11239): ancestral sampling of the discrete diffusion process, one noisy step
at a time.

Besides DDPMScheduler this file holds the pieces that the schedulers built on the same alpha-bar table share
(DDIM, PNDM, LCM, DPM-Solver): the timestep spacings, dynamic thresholding and ``add_noise`` /
``get_velocity``. They follow diffusers' arithmetic step for step (numpy float64 for spacings, float32 tensors for the
rest) so timesteps match exactly and samples to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ...outputs import ModelOutput
from ..configuration import register_to_config
from ..utils import randn_tensor
from .base import SchedulerMixin, betas_for_alpha_bar, check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from .sigmas import TIMESTEP_SPACINGS, check_choice

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


# --- helpers shared by the alpha-bar schedulers ------------------------------------------------------------------
def spaced_timesteps(spacing: str, num_train_timesteps: int, num_inference_steps: int, steps_offset: int) -> np.ndarray:
    """Descending int64 timesteps for ``num_inference_steps`` steps (the spacings of arXiv 2305.08891, table 2)."""
    if spacing == "linspace":
        timesteps = np.linspace(0, num_train_timesteps - 1, num_inference_steps).round()[::-1]
    elif spacing == "leading":
        # Multiples of the step ratio from 0, shifted by steps_offset (SD uses 1): ends one step after 0.
        timesteps = np.arange(num_inference_steps)[::-1] * (num_train_timesteps // num_inference_steps) + steps_offset
    elif spacing == "trailing":
        # Counts down from the last training timestep, so the first step sees (nearly) pure noise.
        timesteps = np.round(np.arange(num_train_timesteps, 0, -num_train_timesteps / num_inference_steps)) - 1
    else:
        raise ValueError(f"Unknown timestep_spacing {spacing!r}; expected one of {', '.join(TIMESTEP_SPACINGS)}.")
    return timesteps.astype(np.int64)


def check_custom_timesteps(timesteps: Sequence[Any], num_train_timesteps: int) -> list[int]:
    """User-given timesteps as ints, after checking they are strictly descending and inside the training range."""
    timesteps = [int(t) for t in timesteps]
    if not timesteps:
        raise ValueError("Custom `timesteps` is empty: pass at least one timestep.")
    if any(later >= earlier for earlier, later in zip(timesteps, timesteps[1:])):
        raise ValueError(f"Custom `timesteps` must be strictly descending, got {timesteps}.")
    if timesteps[0] >= num_train_timesteps:
        raise ValueError(
            f"Custom `timesteps` must start below num_train_timesteps ({num_train_timesteps}), got {timesteps[0]}."
        )
    return timesteps


def threshold_sample(sample: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Dynamic thresholding (Imagen, arXiv 2205.11487): per sample, clamp to s = the ``ratio`` quantile of |x|
    (kept in [1, max_value]) and divide by s, which keeps saturated pixels from blowing up at high guidance."""
    dtype = sample.dtype
    flat = sample.reshape(sample.shape[0], -1)
    if dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # quantile needs float32 or float64
    limit = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -limit, limit) / limit).reshape(sample.shape).to(dtype)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per batch row, shaped to broadcast over ``like``."""
    values = values.flatten()
    return values.reshape(values.shape[0], *([1] * (like.ndim - 1)))


def add_noise_at(
    alphas_cumprod: torch.Tensor, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The forward process q(x_t | x_0): sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * noise."""
    alpha_bar = alphas_cumprod.to(device=original_samples.device, dtype=original_samples.dtype)
    alpha_bar = alpha_bar[timesteps.to(original_samples.device)]
    return _per_sample(alpha_bar**0.5, original_samples) * original_samples + _per_sample(
        (1 - alpha_bar) ** 0.5, original_samples
    ) * noise


def velocity_at(
    alphas_cumprod: torch.Tensor, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The v-prediction target (arXiv 2202.00512): sqrt(alpha_bar_t) * noise - sqrt(1 - alpha_bar_t) * x_0."""
    alpha_bar = alphas_cumprod.to(device=sample.device, dtype=sample.dtype)[timesteps.to(sample.device)]
    return _per_sample(alpha_bar**0.5, sample) * noise - _per_sample((1 - alpha_bar) ** 0.5, sample) * sample


class AlphaBarMixin:
    """``add_noise`` and ``get_velocity`` for schedulers that keep an ``alphas_cumprod`` table."""

    alphas_cumprod: torch.Tensor

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return add_noise_at(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return velocity_at(self.alphas_cumprod, sample, noise, timesteps)


# --- DDPM --------------------------------------------------------------------------------------------------------
DDPM_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "laplace")
VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range")


@dataclass
class DDPMSchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None
    pred_original_sample: Optional[torch.Tensor] = None


def _ddpm_betas(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
                trained_betas: Any) -> torch.Tensor:
    """DDPM takes two schedules the others do not: 'sigmoid' (GeoDiff) and 'laplace'."""
    if trained_betas is None and beta_schedule == "sigmoid":
        return torch.sigmoid(torch.linspace(-6, 6, num_train_timesteps)) * (beta_end - beta_start) + beta_start
    if trained_betas is None and beta_schedule == "laplace":
        return betas_for_alpha_bar(num_train_timesteps, alpha_transform_type="laplace")
    if trained_betas is None:
        check_choice("DDPMScheduler", "beta_schedule", beta_schedule, DDPM_BETA_SCHEDULES)
    return make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)


class DDPMScheduler(AlphaBarMixin, SchedulerMixin):
    """Denoising diffusion probabilistic models: each step samples x_{t-1} ~ q(x_{t-1} | x_t, x_0 predicted)."""

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Any = None,
        variance_type: str = "fixed_small",
        clip_sample: bool = True,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        check_choice("DDPMScheduler", "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice("DDPMScheduler", "variance_type", variance_type, VARIANCE_TYPES)
        check_choice("DDPMScheduler", "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.betas = _ddpm_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.one = torch.tensor(1.0)
        self.init_noise_sigma = 1.0
        self.variance_type = variance_type
        # Until set_timesteps, the schedule is every training timestep (what training-time sampling uses).
        self.num_inference_steps: int | None = None
        self.custom_timesteps = False
        self.timesteps = torch.from_numpy(np.arange(num_train_timesteps)[::-1].copy())

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        """Choose the sampling timesteps: ``num_inference_steps`` spaced by ``timestep_spacing``, or your own
        strictly descending ``timesteps``."""
        num_train = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("Pass exactly one of `num_inference_steps` or `timesteps` to set_timesteps.")
        if timesteps is not None:
            schedule = np.array(check_custom_timesteps(timesteps, num_train), dtype=np.int64)
            self.custom_timesteps = True
        else:
            self.num_inference_steps = check_num_inference_steps(num_inference_steps, num_train)
            self.custom_timesteps = False
            schedule = spaced_timesteps(self.config.timestep_spacing, num_train, num_inference_steps,
                                        self.config.steps_offset)
        self.timesteps = torch.from_numpy(schedule).to(device)

    def previous_timestep(self, timestep: Any) -> Any:
        """The timestep after ``timestep`` in the schedule (-1 after the last one)."""
        if self.custom_timesteps or self.num_inference_steps:
            matches = (self.timesteps == timestep).nonzero(as_tuple=True)[0]
            if len(matches) == 0:
                raise ValueError(f"Timestep {timestep} is not in this scheduler's timesteps {self.timesteps.tolist()}.")
            index = matches[0]
            return torch.tensor(-1) if index == self.timesteps.shape[0] - 1 else self.timesteps[index + 1]
        return timestep - 1

    def _alpha_bars(self, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        prev_t = self.previous_timestep(t)
        return self.alphas_cumprod[t], (self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one)

    def _get_variance(self, t: Any, predicted_variance: torch.Tensor | None = None,
                      variance_type: str | None = None) -> torch.Tensor:
        alpha_prod_t, alpha_prod_t_prev = self._alpha_bars(t)
        current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev
        # beta-tilde of the DDPM paper (eq. 7), kept off zero for the logs below.
        variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
        variance_type = variance_type or self.config.variance_type
        if variance_type == "fixed_small_log":
            return torch.exp(0.5 * torch.log(variance))
        if variance_type == "fixed_large":
            return current_beta_t
        if variance_type == "fixed_large_log":
            return torch.log(current_beta_t)
        if variance_type == "learned":
            return predicted_variance
        if variance_type == "learned_range":  # the model interpolates between the two log variances
            fraction = (predicted_variance + 1) / 2
            return fraction * torch.log(current_beta_t) + (1 - fraction) * torch.log(variance)
        return variance

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> DDPMSchedulerOutput | tuple:
        t = timestep
        predicted_variance = None
        if model_output.shape[1] == sample.shape[1] * 2 and self.variance_type in ("learned", "learned_range"):
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)

        alpha_prod_t, alpha_prod_t_prev = self._alpha_bars(t)
        beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t

        prediction = self.config.prediction_type
        if prediction == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        elif prediction == "sample":
            pred_original_sample = model_output
        else:
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        if self.config.thresholding:
            pred_original_sample = threshold_sample(
                pred_original_sample, self.config.dynamic_thresholding_ratio, self.config.sample_max_value
            )
        elif self.config.clip_sample:
            limit = self.config.clip_sample_range
            pred_original_sample = pred_original_sample.clamp(-limit, limit)

        # Mean of the posterior q(x_{t-1} | x_t, x_0), DDPM eq. 7.
        x0_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        xt_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
        prev_sample = x0_coeff * pred_original_sample + xt_coeff * sample

        if t > 0:  # no noise is added on the last step
            noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                 dtype=model_output.dtype)
            variance = self._get_variance(t, predicted_variance=predicted_variance)
            if self.variance_type == "fixed_small_log":
                prev_sample = prev_sample + variance * noise
            elif self.variance_type == "learned_range":
                prev_sample = prev_sample + torch.exp(0.5 * variance) * noise
            else:
                prev_sample = prev_sample + variance**0.5 * noise

        if not return_dict:
            return (prev_sample, pred_original_sample)
        return DDPMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
