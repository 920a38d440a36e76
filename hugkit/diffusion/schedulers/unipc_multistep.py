"""UniPC (Zhao et al. 2023, arXiv 2302.04867): a multistep predictor-corrector solver for the diffusion ODE, written
in log-SNR time lambda = log(alpha_t / sigma_t).

Each step first *corrects* the sample it was given (UniC, using the model output just computed at it, free of extra
model calls), then *predicts* the next sample (UniP) from the last ``solver_order`` model outputs. ``solver_type``
picks B(h): "bh1" = h, "bh2" = e^h - 1. ``predict_x0`` runs the solver on the data prediction (recommended) or on
the noise prediction. Same config fields, tables and numbers as diffusers' UniPCMultistepScheduler.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from .base import SchedulerMixin, SchedulerOutput, check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from .ddpm import threshold_sample
from .sigmas import (
    FINAL_SIGMAS_TYPES,
    TIMESTEP_SPACINGS,
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

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "flow_prediction")
SOLVER_TYPES = ("bh1", "bh2")
# Solver types of DPM-Solver a shared config may carry; diffusers maps them to bh2 (UniPC has no such variants).
DPM_SOLVER_TYPES = ("midpoint", "heun", "logrho")
TIME_SHIFT_TYPES = ("exponential", "linear")


class UniPCMultistepScheduler(SchedulerMixin):
    """UniPC predictor-corrector sampler, with diffusers' config fields (see the module docstring)."""

    order = 1
    init_noise_sigma = 1.0

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        solver_order: int = 2,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        predict_x0: bool = True,
        solver_type: str = "bh2",
        lower_order_final: bool = True,
        disable_corrector: list[int] = [],  # noqa: B006 - diffusers' default, recorded as-is in saved configs
        solver_p: SchedulerMixin | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        final_sigmas_type: str = "zero",
        rescale_betas_zero_snr: bool = False,
        use_dynamic_shifting: bool = False,
        time_shift_type: str = "exponential",
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        shift_terminal: float | None = None,
    ) -> None:
        name = type(self).__name__
        check_choice(name, "prediction_type", prediction_type, PREDICTION_TYPES)
        check_choice(name, "solver_type", solver_type, SOLVER_TYPES + DPM_SOLVER_TYPES)
        check_choice(name, "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        check_choice(name, "final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        check_choice(name, "time_shift_type", time_shift_type, TIME_SHIFT_TYPES)
        check_one_sigma_rule(name, self.config)
        if isinstance(solver_order, bool) or not isinstance(solver_order, int) or solver_order < 1:
            raise ValueError(f"{name}: solver_order must be a positive integer (2 for guided sampling), got {solver_order!r}.")
        if shift_terminal is not None and not use_flow_sigmas:
            raise ValueError(f"{name}: shift_terminal is only supported with use_flow_sigmas=True.")
        if not predict_x0 and prediction_type == "flow_prediction":
            raise ValueError(f"{name}: prediction_type='flow_prediction' needs predict_x0=True.")
        if solver_type in DPM_SOLVER_TYPES:
            self.register_to_config(solver_type="bh2")

        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        if rescale_betas_zero_snr:
            # Zero signal would make the first sigma infinite; fp16's smallest subnormal keeps it finite.
            self.alphas_cumprod[-1] = 2**-24
        self.alpha_t = torch.sqrt(self.alphas_cumprod)
        self.sigma_t = torch.sqrt(1 - self.alphas_cumprod)
        self.lambda_t = torch.log(self.alpha_t) - torch.log(self.sigma_t)
        # Until set_timesteps: the training sigmas, ascending in t (as diffusers leaves them).
        self.sigmas = torch.from_numpy(train_sigmas(self.alphas_cumprod))

        self.predict_x0 = predict_x0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.from_numpy(np.linspace(0, num_train_timesteps - 1, num_train_timesteps)[::-1].copy()).float()
        self.model_outputs: list[torch.Tensor | None] = [None] * solver_order
        self.timestep_list: list[Any] = [None] * solver_order
        self.lower_order_nums = 0
        self.disable_corrector = list(disable_corrector)
        self.solver_p = solver_p
        self.last_sample: torch.Tensor | None = None
        self.this_order = 0
        self._step_index: int | None = None
        self._begin_index: int | None = None

    # --- step bookkeeping ---------------------------------------------------------------------------------------
    @property
    def step_index(self) -> int | None:
        """The index of the current timestep; advances by one per ``step``."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """The index of the first timestep, when a pipeline set one with ``set_begin_index``."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start at ``timesteps[begin_index]`` (pipelines call this before the loop, e.g. for image-to-image)."""
        self._begin_index = begin_index

    def index_for_timestep(self, timestep: int | torch.Tensor, schedule_timesteps: torch.Tensor | None = None) -> int:
        """Where ``timestep`` sits in the schedule: the second match when it appears twice (so a run started
        mid-schedule skips no sigma), the last step when it is absent (as diffusers does)."""
        schedule = self.timesteps if schedule_timesteps is None else schedule_timesteps
        matches = (schedule == timestep).nonzero()
        if len(matches) == 0:
            return len(self.timesteps) - 1
        return int(matches[1 if len(matches) > 1 else 0].item())

    def _init_step_index(self, timestep: int | torch.Tensor) -> None:
        if self._begin_index is not None:
            self._step_index = self._begin_index
            return
        if isinstance(timestep, torch.Tensor):
            timestep = timestep.to(self.timesteps.device)
        self._step_index = self.index_for_timestep(timestep)

    # --- schedule ---------------------------------------------------------------------------------------------
    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: Sequence[float] | None = None,
        mu: float | None = None,
    ) -> None:
        """Choose the inference schedule. ``sigmas`` (custom flow sigmas) needs ``use_flow_sigmas=True``; ``mu`` is
        the resolution-dependent shift that ``use_dynamic_shifting=True`` requires."""
        config = self.config
        name = type(self).__name__
        if config.use_dynamic_shifting and mu is None:
            raise ValueError(f"{name}: use_dynamic_shifting=True needs `mu` in set_timesteps.")
        if sigmas is not None:
            if not config.use_flow_sigmas:
                raise ValueError(f"{name}: custom `sigmas` are only supported with use_flow_sigmas=True.")
            sigmas = np.array(sigmas, dtype=np.float64)
            num_inference_steps = len(sigmas)
        check_num_inference_steps(num_inference_steps)

        timesteps = spaced_timesteps(
            config.timestep_spacing, config.num_train_timesteps, num_inference_steps, config.steps_offset, multistep=True
        ).astype(np.int64)
        rule = (
            karras_sigmas if config.use_karras_sigmas
            else exponential_sigmas if config.use_exponential_sigmas
            else beta_sigmas if config.use_beta_sigmas
            else None
        )
        if rule is not None:
            base = train_sigmas(self.alphas_cumprod) if sigmas is None else sigmas
            log_sigmas = np.log(base)
            descending = np.flip(base).copy()
            sigmas = rule(*sigma_bounds(descending, config.sigma_min, config.sigma_max), num_inference_steps)
            if config.use_karras_sigmas and config.use_flow_sigmas:
                sigmas = sigmas / (sigmas + 1)
                timesteps = (sigmas * config.num_train_timesteps).copy()
            else:
                timesteps = sigma_to_t(sigmas, log_sigmas)
                if config.use_karras_sigmas:
                    timesteps = timesteps.round()
            final = sigmas[-1]
        elif config.use_flow_sigmas:
            if sigmas is None:
                sigmas = np.linspace(1, 1 / config.num_train_timesteps, num_inference_steps + 1)[:-1]
            sigmas = self._shift_flow_sigmas(sigmas, mu)
            timesteps = (sigmas * config.num_train_timesteps).copy()
            final = sigmas[-1]
        else:
            full_sigmas = train_sigmas(self.alphas_cumprod)
            sigmas = interpolate_sigmas(timesteps, full_sigmas)
            final = full_sigmas[0]
        last = final if config.final_sigmas_type == "sigma_min" else 0
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [last]]).astype(np.float32))  # stays on the CPU
        # Fractional timesteps (exponential / beta / flow sigmas) are truncated to integers, as diffusers does.
        self.timesteps = torch.from_numpy(timesteps).to(device=device, dtype=torch.int64)

        self.num_inference_steps = len(timesteps)
        self.model_outputs = [None] * config.solver_order
        self.lower_order_nums = 0
        self.last_sample = None
        if self.solver_p:
            self.solver_p.set_timesteps(self.num_inference_steps, device=device)
        self._step_index = None
        self._begin_index = None

    def _shift_flow_sigmas(self, sigmas: np.ndarray, mu: float | None) -> np.ndarray:
        """Flow-matching sigmas shifted toward the noisy end (by ``mu`` or ``flow_shift``), kept just below 1."""
        config = self.config
        if config.use_dynamic_shifting:
            sigmas = self.time_shift(mu, 1.0, sigmas)
        else:
            shift = config.flow_shift
            sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        if config.shift_terminal:
            sigmas = self.stretch_shift_to_terminal(sigmas)
        sigmas = np.array(sigmas, dtype=np.float64)
        if np.fabs(sigmas[0] - 1) < 1e-6:  # sigma = 1 has no signal: log-SNR would be -inf
            sigmas[0] -= 1e-6
        return sigmas

    def time_shift(self, mu: float, sigma: float, t: np.ndarray) -> np.ndarray:
        """The resolution-dependent shift of flow-matching timesteps (SD3 / Flux style)."""
        if self.config.time_shift_type == "exponential":
            return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)
        return mu / (mu + (1 / t - 1) ** sigma)

    def stretch_shift_to_terminal(self, t: np.ndarray) -> np.ndarray:
        """Stretch shifted timesteps so the last one equals ``shift_terminal``."""
        one_minus_z = 1 - t
        scale_factor = one_minus_z[-1] / (1 - self.config.shift_terminal)
        return 1 - (one_minus_z / scale_factor)

    # --- the solver -------------------------------------------------------------------------------------------
    def _sigma_to_alpha_sigma_t(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t) of the variance-preserving process (or of the flow) at noise level ``sigma``."""
        if self.config.use_flow_sigmas:
            return 1 - sigma, sigma
        alpha_t = 1 / ((sigma**2 + 1) ** 0.5)
        return alpha_t, sigma * alpha_t

    def _lambda(self, index: int, device: torch.device) -> torch.Tensor:
        alpha, sigma = self._sigma_to_alpha_sigma_t(self.sigmas[index].to(device))
        return torch.log(alpha) - torch.log(sigma)

    def convert_model_output(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """The model output as the quantity the solver runs on: x_0 when ``predict_x0``, else the noise."""
        sigma = self.sigmas[self._step_index]
        alpha_t, sigma_t = self._sigma_to_alpha_sigma_t(sigma)
        prediction_type = self.config.prediction_type
        if self.predict_x0:
            if prediction_type == "epsilon":
                x0_pred = (sample - sigma_t * model_output) / alpha_t
            elif prediction_type == "sample":
                x0_pred = model_output
            elif prediction_type == "v_prediction":
                x0_pred = alpha_t * sample - sigma_t * model_output
            else:  # flow_prediction: the model predicts noise - x_0
                x0_pred = sample - sigma * model_output
            if self.config.thresholding:
                x0_pred = threshold_sample(x0_pred, self.config.dynamic_thresholding_ratio, self.config.sample_max_value)
            return x0_pred
        if prediction_type == "epsilon":
            return model_output
        if prediction_type == "sample":
            return (sample - alpha_t * model_output) / sigma_t
        return alpha_t * model_output + sigma_t * sample  # v_prediction

    def _update_terms(self, target: int, source: int, order: int, device: torch.device) -> dict[str, Any]:
        """What UniP and UniC share for a step from sigma index ``source`` to ``target`` with ``order`` outputs:
        the scales, h = lambda_target - lambda_source, B(h), and the order conditions R rho = b (paper, eq. 7)."""
        alpha_t, sigma_t = self._sigma_to_alpha_sigma_t(self.sigmas[target].to(device))
        alpha_s0, sigma_s0 = self._sigma_to_alpha_sigma_t(self.sigmas[source].to(device))
        lambda_s0 = torch.log(alpha_s0) - torch.log(sigma_s0)
        h = (torch.log(alpha_t) - torch.log(sigma_t)) - lambda_s0

        m0 = self.model_outputs[-1]
        rks, differences = [], []
        for i in range(1, order):
            rk = (self._lambda(source - i, device) - lambda_s0) / h
            rks.append(rk)
            differences.append((self.model_outputs[-(i + 1)] - m0) / rk)
        rks.append(torch.ones((), device=device))
        rks = torch.stack(rks)

        hh = -h if self.predict_x0 else h
        h_phi_1 = torch.expm1(hh)  # h * phi_1(h) = e^h - 1
        B_h = hh if self.config.solver_type == "bh1" else torch.expm1(hh)
        R, b = [], []
        h_phi_k = h_phi_1 / hh - 1
        factorial = 1
        for i in range(1, order + 1):
            R.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial / B_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        if self.predict_x0:
            ratio, scale = sigma_t / sigma_s0, alpha_t
        else:
            ratio, scale = alpha_t / alpha_s0, sigma_t
        return {
            "R": torch.stack(R), "b": torch.stack(b), "B_h": B_h, "h_phi_1": h_phi_1, "m0": m0,
            "ratio": ratio, "scale": scale,
            "D1s": torch.stack(differences, dim=1) if differences else None,
        }

    def multistep_uni_p_bh_update(self, model_output: torch.Tensor, sample: torch.Tensor, order: int) -> torch.Tensor:
        """UniP: predict the sample at the next timestep from the last ``order`` converted model outputs."""
        if self.solver_p:  # a user-chosen scheduler does the prediction instead
            return self.solver_p.step(model_output, self.timestep_list[-1], sample).prev_sample
        index = self._step_index
        if self.sigmas[index + 1] == 0:
            return self._final_step_to_zero(sample, order)
        terms = self._update_terms(index + 1, index, order, sample.device)
        x_t_ = terms["ratio"] * sample - terms["scale"] * terms["h_phi_1"] * terms["m0"]
        if terms["D1s"] is None:
            return x_t_.to(sample.dtype)
        if order == 2:
            rhos_p = torch.ones(1, dtype=sample.dtype, device=sample.device) * 0.5
        else:
            rhos_p = torch.linalg.solve(terms["R"][:-1, :-1], terms["b"][:-1]).to(sample.device).to(sample.dtype)
        pred_res = torch.einsum("k,bk...->b...", rhos_p, terms["D1s"])
        return (x_t_ - terms["scale"] * terms["B_h"] * pred_res).to(sample.dtype)

    def _final_step_to_zero(self, sample: torch.Tensor, order: int) -> torch.Tensor:
        """The step onto sigma 0, where log-SNR is infinite. The first-order update tends to the data prediction
        x_0 there; we return that limit (diffusers evaluates inf * 0 for bh1 and for predict_x0=False: NaN)."""
        if order > 1:  # the higher-order terms divide by the infinite step: no finite limit
            raise ValueError(
                f"{type(self).__name__} cannot take an order-{order} step to sigma 0. Keep lower_order_final=True "
                "(the default), or set final_sigmas_type='sigma_min'."
            )
        m0 = self.model_outputs[-1]
        if self.predict_x0:
            return m0.to(sample.dtype)
        alpha_s0, sigma_s0 = self._sigma_to_alpha_sigma_t(self.sigmas[self._step_index].to(sample.device))
        return ((sample - sigma_s0 * m0) / alpha_s0).to(sample.dtype)  # m0 is the noise prediction here

    def multistep_uni_c_bh_update(
        self, this_model_output: torch.Tensor, last_sample: torch.Tensor, this_sample: torch.Tensor, order: int
    ) -> torch.Tensor:
        """UniC: correct ``this_sample`` (predicted from ``last_sample``) with the model output just computed at it."""
        index = self._step_index
        terms = self._update_terms(index, index - 1, order, this_sample.device)
        dtype = last_sample.dtype
        x_t_ = terms["ratio"] * last_sample - terms["scale"] * terms["h_phi_1"] * terms["m0"]
        if order == 1:
            rhos_c = torch.ones(1, dtype=dtype, device=this_sample.device) * 0.5
        else:
            rhos_c = torch.linalg.solve(terms["R"], terms["b"]).to(this_sample.device).to(dtype)
        corr_res = 0 if terms["D1s"] is None else torch.einsum("k,bk...->b...", rhos_c[:-1], terms["D1s"])
        D1_t = this_model_output - terms["m0"]
        return (x_t_ - terms["scale"] * terms["B_h"] * (corr_res + rhos_c[-1] * D1_t)).to(dtype)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple:
        """Correct ``sample`` with this model output (UniC), then predict the sample at the next timestep (UniP)."""
        if self.num_inference_steps is None:
            raise ValueError(f"Call {type(self).__name__}.set_timesteps(num_inference_steps) before step().")
        if self._step_index is None:
            self._init_step_index(timestep)
        if self._step_index >= len(self.timesteps):
            raise ValueError(
                f"{type(self).__name__}.step was called more times than there are timesteps ({len(self.timesteps)}); "
                "call `set_timesteps` again to start a new run."
            )
        index = self._step_index
        solver_order = self.config.solver_order

        use_corrector = index > 0 and (index - 1) not in self.disable_corrector and self.last_sample is not None
        converted = self.convert_model_output(model_output, sample=sample)
        if use_corrector:
            sample = self.multistep_uni_c_bh_update(converted, self.last_sample, sample, self.this_order)

        self.model_outputs = [*self.model_outputs[1:], converted]
        self.timestep_list = [*self.timestep_list[1:], timestep]
        # Fewer past outputs at the start (warm-up) and, with lower_order_final, near the end (more stable).
        this_order = min(solver_order, len(self.timesteps) - index) if self.config.lower_order_final else solver_order
        self.this_order = min(this_order, self.lower_order_nums + 1)

        self.last_sample = sample
        # The raw model output goes to the predictor, in case a solver_p scheduler does the prediction.
        prev_sample = self.multistep_uni_p_bh_update(model_output, sample=sample, order=self.this_order)
        self.lower_order_nums = min(self.lower_order_nums + 1, solver_order)
        self._step_index += 1
        if not return_dict:
            return (prev_sample,)
        return SchedulerOutput(prev_sample=prev_sample)

    def scale_model_input(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """UniPC feeds the sample to the model unscaled."""
        return sample

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``alpha_t * original_samples + sigma_t * noise`` at each sample's timestep."""
        sigmas = self.sigmas.to(device=original_samples.device, dtype=original_samples.dtype)
        schedule = self.timesteps.to(original_samples.device)
        timesteps = timesteps.to(original_samples.device)
        if self._begin_index is None:  # training, or a pipeline without set_begin_index
            indices = [self.index_for_timestep(t, schedule) for t in timesteps]
        elif self._step_index is not None:  # after the first denoising step (inpainting)
            indices = [self._step_index] * timesteps.shape[0]
        else:  # before the first step (image-to-image)
            indices = [self._begin_index] * timesteps.shape[0]
        sigma = sigmas[indices].flatten()
        sigma = sigma.reshape(sigma.shape[0], *([1] * (original_samples.ndim - 1)))
        alpha_t, sigma_t = self._sigma_to_alpha_sigma_t(sigma)
        return alpha_t * original_samples + sigma_t * noise
