"""Linear multistep (k-diffusion's ``sample_lms``): the probability-flow ODE dx/dsigma = d(x, sigma) solved with an
Adams-Bashforth-style method of up to ``order`` past slopes, on the uneven sigma grid.

The weight of each past slope is the integral, over the step [sigma_i, sigma_{i+1}], of its Lagrange basis
polynomial through the past sigmas. diffusers computes it with scipy's adaptive quadrature; the integrand is a
polynomial, so hugkit integrates it exactly from its coefficients (no scipy).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ...outputs import ModelOutput
from ..configuration import register_to_config
from .base import check_num_inference_steps, make_betas
from .sigmas import (
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

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


@dataclass
class LMSDiscreteSchedulerOutput(ModelOutput):
    prev_sample: Optional[torch.Tensor] = None
    pred_original_sample: Optional[torch.Tensor] = None


def lms_coefficient(sigmas: np.ndarray, order: int, index: int, current_order: int) -> float:
    """Weight of the slope from ``current_order`` steps back when stepping from ``sigmas[index]`` to
    ``sigmas[index + 1]``: the exact integral of the Lagrange basis polynomial that is 1 at that past sigma and 0 at
    the other ``order - 1`` past sigmas."""
    nodes = [float(sigmas[index - k]) for k in range(order)]
    own = nodes[current_order]
    others = [node for k, node in enumerate(nodes) if k != current_order]
    # Coefficients (lowest power first) of the product of (tau - node) over the other nodes.
    coefficients = [1.0]
    for node in others:
        coefficients = [high - node * low for high, low in zip([0.0, *coefficients], [*coefficients, 0.0])]
    scale = math.prod(own - node for node in others)  # the product's value at `own`, so the basis is 1 there

    def antiderivative(tau: float) -> float:  # c_k tau^k integrates to c_k tau^(k+1) / (k+1)
        return sum(c * tau ** (k + 1) / (k + 1) for k, c in enumerate(coefficients))

    return (antiderivative(float(sigmas[index + 1])) - antiderivative(float(sigmas[index]))) / scale


class LMSDiscreteScheduler(SigmaSchedulerMixin):
    """Linear multistep sampler over sigmas, with diffusers' config fields (see the module docstring)."""

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
    ) -> None:
        name = type(self).__name__
        check_choice(name, "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice(name, "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        check_one_sigma_rule(name, self.config)

        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.use_karras_sigmas = use_karras_sigmas
        self.derivatives: list[torch.Tensor] = []
        # diffusers starts LMS with every training timestep already set, so step works before set_timesteps.
        self.set_timesteps(num_train_timesteps)
        self.is_scale_input_called = False

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` timesteps (spaced as the config says, or by the configured sigma rule)."""
        config = self.config
        self.num_inference_steps = check_num_inference_steps(num_inference_steps)
        timesteps = spaced_timesteps(
            config.timestep_spacing, config.num_train_timesteps, num_inference_steps, config.steps_offset
        ).astype(np.float32)
        full_sigmas = train_sigmas(self.alphas_cumprod)
        log_sigmas = np.log(full_sigmas)
        sigmas = interpolate_sigmas(timesteps, full_sigmas)
        rule = (
            karras_sigmas if config.use_karras_sigmas
            else exponential_sigmas if config.use_exponential_sigmas
            else beta_sigmas if config.use_beta_sigmas
            else None
        )
        if rule is not None:
            sigmas = rule(*sigma_bounds(sigmas), num_inference_steps)
            timesteps = sigma_to_t(sigmas, log_sigmas)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))  # stays on the CPU
        self.timesteps = torch.from_numpy(timesteps).to(device=device, dtype=torch.float32)
        self._step_index = None
        self._begin_index = None
        self.derivatives = []

    def get_lms_coefficient(self, order: int, t: int, current_order: int) -> float:
        """diffusers' name for :func:`lms_coefficient` on this scheduler's sigmas."""
        return lms_coefficient(self.sigmas.numpy(), order, t, current_order)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        order: int = 4,
        return_dict: bool = True,
    ) -> LMSDiscreteSchedulerOutput | tuple:
        """One LMS step from ``timestep`` to the next one, using up to ``order`` slopes (fewer at the start)."""
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"LMS order must be a positive integer (diffusers uses 4), got {order!r}.")
        if not self.is_scale_input_called:
            logger.warning("Call scale_model_input before step: the model input must be scaled at each step.")
        index = self._step_sigma_index(timestep)

        sigma = self.sigmas[index]
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            pred_original_sample = sample - sigma * model_output
        elif prediction_type == "v_prediction":  # x_0 = c_out * v + c_skip * x
            pred_original_sample = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        else:
            pred_original_sample = model_output

        self.derivatives.append((sample - pred_original_sample) / sigma)
        if len(self.derivatives) > order:
            self.derivatives.pop(0)
        order = min(index + 1, order)
        sigmas = self.sigmas.numpy()
        coefficients = [lms_coefficient(sigmas, order, index, k) for k in range(order)]
        # Newest slope first: coefficient k belongs to the slope from k steps back.
        prev_sample = sample + sum(c * d for c, d in zip(coefficients, reversed(self.derivatives)))

        self._step_index += 1
        if not return_dict:
            return prev_sample, pred_original_sample
        return LMSDiscreteSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
