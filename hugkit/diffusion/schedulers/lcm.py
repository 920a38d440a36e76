"""LCM (Luo et al. 2023, arXiv 2310.04378): multistep sampling for latent consistency models, 1 to 8 steps.

A consistency model maps any noisy sample straight to a clean estimate; each step denoises fully with the boundary
condition c_skip * x_t + c_out * x_0, then re-noises to the next, lower timestep. The timesteps are a subset of
the ``original_inference_steps``-long schedule the model was distilled on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ...outputs import ModelOutput
from ..configuration import register_to_config
from ..utils import randn_tensor
from .base import SchedulerMixin, check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from .ddpm import PREDICTION_TYPES, AlphaBarMixin, check_custom_timesteps, threshold_sample
from .sigmas import TIMESTEP_SPACINGS, check_choice

logger = logging.getLogger(__name__)


@dataclass
class LCMSchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None
    denoised: Optional[torch.Tensor] = None


class LCMScheduler(AlphaBarMixin, SchedulerMixin):
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "scaled_linear",
        trained_betas: Any = None,
        original_inference_steps: int = 50,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "leading",
        timestep_scaling: float = 10.0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        check_choice("LCMScheduler", "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice("LCMScheduler", "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.init_noise_sigma = 1.0
        self.sigma_data = 0.5  # the data standard deviation the boundary condition assumes
        self.num_inference_steps: int | None = None
        self.custom_timesteps = False
        self.timesteps = torch.from_numpy(np.arange(num_train_timesteps)[::-1].copy().astype(np.int64))
        self._step_index: int | None = None
        self._begin_index: int | None = None

    # --- step bookkeeping -----------------------------------------------------------------------------------------
    @property
    def step_index(self) -> int | None:
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = begin_index

    def index_for_timestep(self, timestep: Any, schedule_timesteps: torch.Tensor | None = None) -> int:
        schedule = self.timesteps if schedule_timesteps is None else schedule_timesteps
        candidates = (schedule == timestep).nonzero()
        if len(candidates) == 0:
            raise ValueError(f"Timestep {timestep} is not in this scheduler's timesteps {schedule.tolist()}.")
        return candidates[1 if len(candidates) > 1 else 0].item()

    def _init_step_index(self, timestep: Any) -> None:
        if self.begin_index is not None:
            self._step_index = self._begin_index
        else:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)

    # --- schedule --------------------------------------------------------------------------------------------------
    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        original_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        strength: float = 1.0,
    ) -> None:
        """Pick ``num_inference_steps`` evenly from the distillation schedule (or use your own ``timesteps``);
        ``strength`` < 1 (img2img) keeps only the lower part of the schedule."""
        num_train = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("Pass exactly one of `num_inference_steps` or `timesteps` to set_timesteps.")
        original_steps = (original_inference_steps if original_inference_steps is not None
                          else self.config.original_inference_steps)
        if original_steps > num_train:
            raise ValueError(
                f"original_inference_steps ({original_steps}) cannot exceed num_train_timesteps ({num_train})."
            )
        # The distillation schedule: every k-th training timestep, ending at num_train - 1.
        k = num_train // original_steps
        lcm_origin_timesteps = np.asarray(list(range(1, int(original_steps * strength) + 1))) * k - 1

        if timesteps is not None:
            timesteps = check_custom_timesteps(timesteps, num_train)
            on_schedule = set(lcm_origin_timesteps.tolist())
            off_schedule = [t for t in timesteps[1:] if t not in on_schedule]
            if strength == 1.0 and timesteps[0] != num_train - 1:
                logger.warning("Custom LCM timesteps start at %d, not %d; results may be off.",
                               timesteps[0], num_train - 1)
            if off_schedule:
                logger.warning("Custom LCM timesteps %s are not on the distillation schedule; results may be off.",
                               off_schedule)
            if len(timesteps) > original_steps:
                logger.warning("%d custom LCM timesteps exceed original_inference_steps (%d); results may be off.",
                               len(timesteps), original_steps)
            schedule = np.array(timesteps, dtype=np.int64)
            self.num_inference_steps = len(schedule)
            self.custom_timesteps = True
            kept = min(int(self.num_inference_steps * strength), self.num_inference_steps)
            schedule = schedule[max(self.num_inference_steps - kept, 0) * self.order:]
        else:
            check_num_inference_steps(num_inference_steps, num_train)
            if len(lcm_origin_timesteps) // num_inference_steps < 1:
                raise ValueError(
                    f"num_inference_steps ({num_inference_steps}) is more than original_inference_steps x strength "
                    f"({original_steps} x {strength}) allows: use at most {int(original_steps * strength)} steps, or a "
                    f"strength of at least {num_inference_steps / original_steps}."
                )
            if num_inference_steps > original_steps:
                raise ValueError(
                    f"num_inference_steps ({num_inference_steps}) cannot exceed original_inference_steps "
                    f"({original_steps}): LCM's timesteps are a subset of that schedule."
                )
            self.num_inference_steps = num_inference_steps
            self.custom_timesteps = False
            descending = lcm_origin_timesteps[::-1].copy()
            picks = np.floor(np.linspace(0, len(descending), num=num_inference_steps, endpoint=False)).astype(np.int64)
            schedule = descending[picks]

        self.timesteps = torch.from_numpy(schedule).to(device=device, dtype=torch.long)
        self._step_index = None
        self._begin_index = None

    def get_scalings_for_boundary_condition_discrete(self, timestep: Any) -> tuple[Any, Any]:
        """(c_skip, c_out): c_skip -> 1 and c_out -> 0 as t -> 0, so the model is the identity on clean data."""
        scaled = timestep * self.config.timestep_scaling
        c_skip = self.sigma_data**2 / (scaled**2 + self.sigma_data**2)
        c_out = scaled / (scaled**2 + self.sigma_data**2) ** 0.5
        return c_skip, c_out

    def previous_timestep(self, timestep: Any) -> Any:
        """The timestep after ``timestep`` in the schedule (-1 after the last one)."""
        if self.custom_timesteps or self.num_inference_steps:
            index = (self.timesteps == timestep).nonzero(as_tuple=True)[0][0]
            return torch.tensor(-1) if index == self.timesteps.shape[0] - 1 else self.timesteps[index + 1]
        return timestep - 1

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> LCMSchedulerOutput | tuple:
        if self.num_inference_steps is None:
            raise ValueError("LCMScheduler.step was called before set_timesteps: call "
                             "scheduler.set_timesteps(num_inference_steps) first.")
        if self.step_index is None:
            self._init_step_index(timestep)
        next_index = self.step_index + 1
        prev_timestep = self.timesteps[next_index] if next_index < len(self.timesteps) else timestep
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
        c_skip, c_out = self.get_scalings_for_boundary_condition_discrete(timestep)

        prediction = self.config.prediction_type
        if prediction == "epsilon":
            x0 = (sample - beta_prod_t.sqrt() * model_output) / alpha_prod_t.sqrt()
        elif prediction == "sample":
            x0 = model_output
        else:  # v_prediction
            x0 = alpha_prod_t.sqrt() * sample - beta_prod_t.sqrt() * model_output
        if self.config.thresholding:
            x0 = threshold_sample(x0, self.config.dynamic_thresholding_ratio, self.config.sample_max_value)
        elif self.config.clip_sample:
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)

        denoised = c_out * x0 + c_skip * sample
        if self.step_index != self.num_inference_steps - 1:  # re-noise to the next timestep, except at the end
            noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                 dtype=denoised.dtype)
            prev_sample = alpha_prod_t_prev.sqrt() * denoised + beta_prod_t_prev.sqrt() * noise
        else:
            prev_sample = denoised
        self._step_index += 1
        if not return_dict:
            return (prev_sample, denoised)
        return LCMSchedulerOutput(prev_sample=prev_sample, denoised=denoised)
