"""PNDM (Liu et al. 2022, arXiv 2202.09778): pseudo numerical methods on the diffusion ODE, Stable Diffusion 1.x's
default scheduler.

It warms up with Runge-Kutta steps (PRK: 4 model calls per step for the first 3 steps) and then runs a linear
multistep method (PLMS, Adams-Bashforth up to 4th order) that reuses past model outputs. ``skip_prk_steps=True``
(what SD ships) replaces the Runge-Kutta warm-up with lower-order PLMS steps, costing one extra model call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..configuration import register_to_config
from .base import SchedulerMixin, SchedulerOutput, check_num_inference_steps, make_betas
from .ddpm import AlphaBarMixin, spaced_timesteps
from .sigmas import TIMESTEP_SPACINGS, check_choice


class PNDMScheduler(AlphaBarMixin, SchedulerMixin):
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Any = None,
        skip_prk_steps: bool = False,
        set_alpha_to_one: bool = False,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
    ) -> None:
        check_choice("PNDMScheduler", "prediction_type", prediction_type, ("epsilon", "v_prediction"))
        check_choice("PNDMScheduler", "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.init_noise_sigma = 1.0
        self.pndm_order = 4  # PLMS uses up to 4 past model outputs
        self.num_inference_steps: int | None = None
        self.prk_timesteps: np.ndarray | None = None
        self.plms_timesteps: np.ndarray | None = None
        self.timesteps: torch.Tensor | None = None
        self._reset_history()

    def _reset_history(self) -> None:
        self.ets: list[torch.Tensor] = []  # past model outputs (epsilons) the multistep formula combines
        self.counter = 0  # model calls seen since set_timesteps
        self.cur_model_output: Any = 0  # running Runge-Kutta sum
        self.cur_sample: torch.Tensor | None = None  # the sample a multi-call step started from

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        num_train = self.config.num_train_timesteps
        self.num_inference_steps = check_num_inference_steps(num_inference_steps, num_train)
        ascending = spaced_timesteps(self.config.timestep_spacing, num_train, num_inference_steps,
                                     self.config.steps_offset)[::-1]
        if self.config.skip_prk_steps:
            # The second-to-last ascending timestep is visited twice: PLMS's second call (the average of two
            # model outputs, a Heun-like step) re-evaluates the step the first call made.
            self.prk_timesteps = np.array([], dtype=np.int64)
            self.plms_timesteps = np.concatenate([ascending[:-1], ascending[-2:-1], ascending[-1:]])[::-1].copy()
        else:
            # Runge-Kutta over the 3 highest strides, each step evaluated at t, t - half, t - half, t - stride.
            half = num_train // num_inference_steps // 2
            last = ascending[-self.pndm_order:]
            points = np.stack([last, last + half], axis=1).reshape(-1)
            self.prk_timesteps = points[:-1].repeat(2)[1:-1][::-1].copy()
            self.plms_timesteps = ascending[:-3][::-1].copy()
        schedule = np.concatenate([self.prk_timesteps, self.plms_timesteps]).astype(np.int64)
        self.timesteps = torch.from_numpy(schedule).to(device)
        self._reset_history()

    def scale_model_input(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return sample

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             return_dict: bool = True) -> SchedulerOutput | tuple:
        """One model call's worth of progress: a Runge-Kutta stage during warm-up, then a PLMS step."""
        if self.num_inference_steps is None:
            raise ValueError("PNDMScheduler.step was called before set_timesteps: call "
                             "scheduler.set_timesteps(num_inference_steps) first.")
        if self.counter < len(self.prk_timesteps) and not self.config.skip_prk_steps:
            return self.step_prk(model_output, timestep, sample, return_dict=return_dict)
        return self.step_plms(model_output, timestep, sample, return_dict=return_dict)

    def step_prk(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
                 return_dict: bool = True) -> SchedulerOutput | tuple:
        """Runge-Kutta stage ``counter % 4`` of a 4-stage step (weights 1/6, 1/3, 1/3, 1/6)."""
        if self.num_inference_steps is None:
            raise ValueError("PNDMScheduler.step_prk was called before set_timesteps.")
        stage = self.counter % 4
        half = self.config.num_train_timesteps // self.num_inference_steps // 2
        prev_timestep = timestep - (0 if self.counter % 2 else half)
        timestep = self.prk_timesteps[self.counter // 4 * 4]  # every stage steps from the step's start

        if stage == 0:
            self.cur_model_output += 1 / 6 * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif stage in (1, 2):
            self.cur_model_output += 1 / 3 * model_output
        else:
            model_output = self.cur_model_output + 1 / 6 * model_output
            self.cur_model_output = 0
        start = self.cur_sample if self.cur_sample is not None else sample

        prev_sample = self._get_prev_sample(start, timestep, prev_timestep, model_output)
        self.counter += 1
        return SchedulerOutput(prev_sample=prev_sample) if return_dict else (prev_sample,)

    def step_plms(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
                  return_dict: bool = True) -> SchedulerOutput | tuple:
        """A linear multistep step: Adams-Bashforth of the order the stored outputs allow."""
        if self.num_inference_steps is None:
            raise ValueError("PNDMScheduler.step_plms was called before set_timesteps.")
        if not self.config.skip_prk_steps and len(self.ets) < 3:
            raise ValueError(
                "PNDMScheduler.step_plms needs the 12 Runge-Kutta calls of the warm-up first (skip_prk_steps=False): "
                "call scheduler.step for every timestep in scheduler.timesteps, in order."
            )
        stride = self.config.num_train_timesteps // self.num_inference_steps
        prev_timestep = timestep - stride
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            # Second call without warm-up: redo the first step from its start, with the averaged output.
            prev_timestep = timestep
            timestep = timestep + stride

        ets = self.ets
        if len(ets) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(ets) == 1 and self.counter == 1:
            model_output = (model_output + ets[-1]) / 2
            sample, self.cur_sample = self.cur_sample, None
        elif len(ets) == 2:
            model_output = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            model_output = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])

        prev_sample = self._get_prev_sample(sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return SchedulerOutput(prev_sample=prev_sample) if return_dict else (prev_sample,)

    def _get_prev_sample(self, sample: torch.Tensor, timestep: Any, prev_timestep: Any,
                         model_output: torch.Tensor) -> torch.Tensor:
        """x_{t-delta} from x_t and an epsilon estimate: PNDM's transfer function phi (paper eq. 11)."""
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        if self.config.prediction_type == "v_prediction":
            model_output = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        sample_coeff = (alpha_prod_t_prev / alpha_prod_t) ** (0.5)
        denominator = (alpha_prod_t * beta_prod_t_prev ** (0.5)
                       + (alpha_prod_t * beta_prod_t * alpha_prod_t_prev) ** (0.5))
        return sample_coeff * sample - (alpha_prod_t_prev - alpha_prod_t) * model_output / denominator
