"""Euler (Karras et al. 2022, arXiv 2206.00364, algorithm 2): the probability-flow ODE solved one Euler step at a time
in sigma, optionally with "churn" (noise added back before each step, which makes it a stochastic sampler).

Each step turns the model output into a denoised estimate x_0, takes the slope d = (x - x_0) / sigma and moves
``x + d * (sigma_next - sigma)``. Same config fields, tables and numbers as diffusers' EulerDiscreteScheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from ..utils import randn_tensor
from .base import check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from ...outputs import ModelOutput
from .sigmas import (
    FINAL_SIGMAS_TYPES,
    TIMESTEP_SPACINGS,
    SigmaSchedulerMixin,
    beta_sigmas,
    check_choice,
    check_one_sigma_rule,
    exponential_sigmas,
    interpolate_sigmas,
    karras_sigmas,
    sigma_bounds,
    sigma_to_t,
    spaced_timesteps,
    train_sigmas,
)

logger = logging.getLogger(__name__)

# "original_sample" is an old spelling of "sample" that diffusers still accepts.
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "original_sample")
INTERPOLATION_TYPES = ("linear", "log_linear")
TIMESTEP_TYPES = ("discrete", "continuous")


@dataclass
class EulerDiscreteSchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None
    pred_original_sample: Optional[torch.Tensor] = None


class EulerDiscreteScheduler(SigmaSchedulerMixin):
    """Euler sampler over sigmas (optionally with churn), with diffusers' config fields (see the module docstring)."""

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
        interpolation_type: str = "linear",
        use_karras_sigmas: bool | None = False,
        use_exponential_sigmas: bool | None = False,
        use_beta_sigmas: bool | None = False,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        timestep_spacing: str = "linspace",
        timestep_type: str = "discrete",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        final_sigmas_type: str = "zero",
    ) -> None:
        name = type(self).__name__
        check_choice(name, "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice(name, "interpolation_type", interpolation_type, INTERPOLATION_TYPES)
        check_choice(name, "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        check_choice(name, "timestep_type", timestep_type, TIMESTEP_TYPES)
        check_choice(name, "final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        check_one_sigma_rule(name, self.config)

        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        if rescale_betas_zero_snr:
            # Zero signal would make the first sigma infinite; fp16's smallest subnormal keeps it finite.
            self.alphas_cumprod[-1] = 2**-24

        # Until set_timesteps: every training timestep, from the noisiest down.
        sigmas = torch.from_numpy(train_sigmas(self.alphas_cumprod)).flip(0)
        self.num_inference_steps: int | None = None
        if self._continuous_v_prediction:
            self.timesteps = self._continuous_timesteps(sigmas)
        else:
            self.timesteps = torch.from_numpy(np.linspace(0, num_train_timesteps - 1, num_train_timesteps)[::-1].copy()).float()
        self.sigmas = torch.cat([sigmas, torch.zeros(1)])
        self.is_scale_input_called = False
        self.use_karras_sigmas = use_karras_sigmas
        self.use_exponential_sigmas = use_exponential_sigmas
        self.use_beta_sigmas = use_beta_sigmas
        self._step_index = None
        self._begin_index = None

    @property
    def _continuous_v_prediction(self) -> bool:
        # EDM-style continuous timesteps (t = log(sigma) / 4) exist only for v-prediction, as in diffusers.
        return self.config.timestep_type == "continuous" and self.config.prediction_type == "v_prediction"

    @staticmethod
    def _continuous_timesteps(sigmas: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.25 * float(sigma.log()) for sigma in sigmas], dtype=torch.float32)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: Sequence[float] | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> None:
        """Choose the inference schedule: ``num_inference_steps`` spaced by the config, or custom ``timesteps``,
        or custom ``sigmas`` (which then include the final sigma, usually 0)."""
        config = self.config
        given = [name for name, value in (("num_inference_steps", num_inference_steps), ("timesteps", timesteps),
                                          ("sigmas", sigmas)) if value is not None]
        if len(given) != 1:
            raise ValueError(
                f"Pass exactly one of num_inference_steps, timesteps or sigmas to set_timesteps; got {given or 'none'}."
            )
        if timesteps is not None:
            rule = next((r for r in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas") if config[r]), None)
            if rule is not None:
                raise ValueError(f"Custom timesteps cannot be combined with {rule}=True: the rule picks the sigmas.")
            if self._continuous_v_prediction:
                raise ValueError("Custom timesteps cannot be used with timestep_type='continuous' and v_prediction.")
        if num_inference_steps is not None:
            check_num_inference_steps(num_inference_steps)
        else:
            num_inference_steps = len(timesteps) if timesteps is not None else len(sigmas) - 1
        self.num_inference_steps = num_inference_steps

        full_sigmas = train_sigmas(self.alphas_cumprod)
        log_sigmas = np.log(full_sigmas)
        if sigmas is not None:
            sigma_table = np.array(sigmas).astype(np.float32)
            timestep_table = sigma_to_t(sigma_table[:-1], log_sigmas)
        else:
            if timesteps is not None:
                timestep_table = np.array(timesteps).astype(np.float32)
            else:
                timestep_table = spaced_timesteps(
                    config.timestep_spacing, config.num_train_timesteps, num_inference_steps, config.steps_offset
                ).astype(np.float32)
            if config.interpolation_type == "linear":
                sigma_table = interpolate_sigmas(timestep_table, full_sigmas)
            else:  # "log_linear": evenly spaced in log sigma over the whole training range (one more than steps)
                sigma_table = torch.linspace(
                    np.log(full_sigmas[-1]), np.log(full_sigmas[0]), num_inference_steps + 1
                ).exp().numpy()
            sigma_table, timestep_table = self._apply_sigma_rule(sigma_table, timestep_table, log_sigmas)
            final = full_sigmas[0] if config.final_sigmas_type == "sigma_min" else 0.0
            sigma_table = np.concatenate([sigma_table, [final]]).astype(np.float32)

        new_sigmas = torch.from_numpy(sigma_table).to(dtype=torch.float32)
        if self._continuous_v_prediction:
            self.timesteps = self._continuous_timesteps(new_sigmas[:-1]).to(device=device)
        else:
            self.timesteps = torch.from_numpy(timestep_table.astype(np.float32)).to(device=device)
        self._step_index = None
        self._begin_index = None
        self.sigmas = new_sigmas  # kept on the CPU: step reads single values from it

    def _apply_sigma_rule(
        self, sigma_table: np.ndarray, timestep_table: np.ndarray, log_sigmas: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replace the spaced sigmas by the Karras / exponential / beta rule when the config asks for one."""
        config = self.config
        if config.use_karras_sigmas:
            rule = karras_sigmas
        elif config.use_exponential_sigmas:
            rule = exponential_sigmas
        elif config.use_beta_sigmas:
            rule = beta_sigmas
        else:
            return sigma_table, timestep_table
        low, high = sigma_bounds(sigma_table, config.sigma_min, config.sigma_max)
        sigma_table = rule(low, high, self.num_inference_steps)
        return sigma_table, sigma_to_t(sigma_table, log_sigmas)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        s_churn: float = 0.0,
        s_tmin: float = 0.0,
        s_tmax: float = float("inf"),
        s_noise: float = 1.0,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> EulerDiscreteSchedulerOutput | tuple:
        """One Euler step from ``timestep`` to the next one. ``s_churn > 0`` first raises the noise level of
        ``sample`` from sigma to sigma * (1 + gamma) with fresh noise, where s_tmin <= sigma <= s_tmax."""
        if self.num_inference_steps is None:
            raise ValueError(f"Call {type(self).__name__}.set_timesteps(num_inference_steps) before step().")
        self._check_float_timestep(timestep)
        if not self.is_scale_input_called:
            logger.warning("Call scale_model_input before step: the model input must be scaled at each step.")
        index = self._step_sigma_index(timestep)

        sample = sample.to(torch.float32)  # the update is done in float32 whatever the model's dtype
        sigma = self.sigmas[index]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
            sample = sample + noise * s_noise * (sigma_hat**2 - sigma**2) ** 0.5

        prediction_type = self.config.prediction_type
        if prediction_type in ("sample", "original_sample"):
            pred_original_sample = model_output
        elif prediction_type == "epsilon":
            pred_original_sample = sample - sigma_hat * model_output
        else:  # v_prediction: x_0 = c_out * v + c_skip * x
            pred_original_sample = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)

        derivative = (sample - pred_original_sample) / sigma_hat
        prev_sample = (sample + derivative * (self.sigmas[index + 1] - sigma_hat)).to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return prev_sample, pred_original_sample
        return EulerDiscreteSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The v-prediction target at ``timesteps`` (values of ``self.timesteps``)."""
        self._check_float_timestep(timesteps)
        schedule = self.timesteps.to(sample.device)
        indices = [self.index_for_timestep(t, schedule) for t in timesteps.to(sample.device)]
        alpha_bar = self.alphas_cumprod.to(sample)[indices].flatten()
        shape = (alpha_bar.shape[0], *([1] * (sample.ndim - 1)))
        return (alpha_bar**0.5).reshape(shape) * noise - ((1 - alpha_bar) ** 0.5).reshape(shape) * sample
