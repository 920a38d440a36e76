"""DPM-Solver and DPM-Solver++ multistep (Lu et al., arXiv 2206.00927 and 2211.01095): exponential-integrator
solvers for the diffusion ODE (or SDE) that reuse the model outputs of earlier steps, 1st to 3rd order.

Work happens in log-SNR time: lambda = log(alpha_t / sigma_t). "dpmsolver++" integrates the data prediction x_0
(stable with classifier-free guidance, SD's usual choice), "dpmsolver" the noise prediction; the "sde-" variants add
fresh noise each step. Timesteps and sigmas are computed with numpy as diffusers does, so they match exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..configuration import register_to_config
from ..utils import randn_tensor
from .base import SchedulerMixin, SchedulerOutput, check_num_inference_steps, make_betas, rescale_zero_terminal_snr
from .ddpm import threshold_sample
from .sigmas import (TIMESTEP_SPACINGS, beta_sigmas, check_choice, check_one_sigma_rule, exponential_sigmas,
                     karras_sigmas, sigma_bounds, sigma_to_t, train_sigmas)

ALGORITHM_TYPES = ("dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver")
SOLVER_TYPES = ("midpoint", "heun")
# Other schedulers' solver names that diffusers maps onto DPM-Solver's when a config is swapped in.
_FOREIGN_ALGORITHMS = {"deis": "dpmsolver++"}
_FOREIGN_SOLVERS = {"logrho": "midpoint", "bh1": "midpoint", "bh2": "midpoint"}


class DPMSolverMultistepScheduler(SchedulerMixin):
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Any = None,
        solver_order: int = 2,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: str = "dpmsolver++",
        solver_type: str = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_lu_lambdas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        final_sigmas_type: str = "zero",
        lambda_min_clipped: float = -float("inf"),
        variance_type: str | None = None,
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        use_dynamic_shifting: bool = False,
        time_shift_type: str = "exponential",
    ) -> None:
        name = "DPMSolverMultistepScheduler"
        if algorithm_type in _FOREIGN_ALGORITHMS:
            algorithm_type = _FOREIGN_ALGORITHMS[algorithm_type]
            self.register_to_config(algorithm_type=algorithm_type)
        if solver_type in _FOREIGN_SOLVERS:
            solver_type = _FOREIGN_SOLVERS[solver_type]
            self.register_to_config(solver_type=solver_type)
        check_choice(name, "algorithm_type", algorithm_type, ALGORITHM_TYPES)
        check_choice(name, "solver_type", solver_type, SOLVER_TYPES)
        check_choice(name, "solver_order", solver_order, (1, 2, 3))
        check_choice(name, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction", "flow_prediction"))
        check_choice(name, "timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        check_choice(name, "final_sigmas_type", final_sigmas_type, ("zero", "sigma_min"))
        check_one_sigma_rule(name, self.config)
        if algorithm_type in ("dpmsolver", "sde-dpmsolver") and final_sigmas_type == "zero":
            raise ValueError(f"{name}: algorithm_type={algorithm_type!r} cannot end at sigma 0; "
                             "pass final_sigmas_type='sigma_min' (or use 'dpmsolver++').")

        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        if rescale_betas_zero_snr:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        if rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2**-24  # keep the last sigma finite (zero SNR would make it infinite)
        self.alpha_t = torch.sqrt(self.alphas_cumprod)
        self.sigma_t = torch.sqrt(1 - self.alphas_cumprod)
        self.lambda_t = torch.log(self.alpha_t) - torch.log(self.sigma_t)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.init_noise_sigma = 1.0
        self.flow_shift = flow_shift  # set_timesteps(mu=...) replaces it (dynamic shifting)

        self.num_inference_steps: int | None = None
        self.timesteps = torch.from_numpy(
            np.linspace(0, num_train_timesteps - 1, num_train_timesteps, dtype=np.float32)[::-1].copy()
        )
        self.model_outputs: list[torch.Tensor | None] = [None] * solver_order
        self.lower_order_nums = 0
        self._step_index: int | None = None
        self._begin_index: int | None = None

    # --- step bookkeeping -----------------------------------------------------------------------------------------
    @property
    def step_index(self) -> int | None:
        """Index of the next step into ``timesteps``; None until the first step."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """Index of the first step (set by img2img pipelines that start part-way through)."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = begin_index

    def index_for_timestep(self, timestep: Any, schedule_timesteps: torch.Tensor | None = None) -> int:
        """Where ``timestep`` sits in the schedule; for a repeated timestep the second occurrence (so img2img that
        starts mid-schedule does not skip a sigma), and the last step for a timestep not in the schedule."""
        schedule = self.timesteps if schedule_timesteps is None else schedule_timesteps
        candidates = (schedule == timestep).nonzero()
        if len(candidates) == 0:
            return len(self.timesteps) - 1
        return candidates[1 if len(candidates) > 1 else 0].item()

    def _init_step_index(self, timestep: Any) -> None:
        if self.begin_index is not None:
            self._step_index = self._begin_index
        else:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)

    # --- schedule --------------------------------------------------------------------------------------------------
    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        mu: float | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        """Choose ``num_inference_steps`` timesteps (or your own descending ``timesteps``) and their sigmas."""
        config = self.config
        if mu is not None:
            if not (config.use_dynamic_shifting and config.time_shift_type == "exponential"):
                raise ValueError("`mu` needs use_dynamic_shifting=True and time_shift_type='exponential'.")
            self.flow_shift = float(np.exp(mu))
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("Pass exactly one of `num_inference_steps` or `timesteps` to set_timesteps.")
        if timesteps is not None:
            for flag in ("use_karras_sigmas", "use_lu_lambdas", "use_exponential_sigmas", "use_beta_sigmas",
                         "use_flow_sigmas"):
                if config[flag]:
                    raise ValueError(f"Custom `timesteps` cannot be combined with {flag}=True.")
            schedule = np.array(timesteps).astype(np.int64)
        else:
            check_num_inference_steps(num_inference_steps, config.num_train_timesteps)
            schedule = self._spaced_timesteps(num_inference_steps)

        sigmas_train = train_sigmas(self.alphas_cumprod)
        log_sigmas = np.log(sigmas_train)
        n = num_inference_steps
        # Ranges run from the largest training sigma down to the smallest (or the configured sigma_min / sigma_max,
        # which a config swapped in from a scheduler with those fields carries, as in diffusers).
        sigma_min, sigma_max = sigma_bounds(sigmas_train[::-1], config.get("sigma_min"), config.get("sigma_max"))
        rounded = config.beta_schedule != "squaredcos_cap_v2"
        if config.use_karras_sigmas:
            sigmas = karras_sigmas(sigma_min, sigma_max, n)
            schedule = sigma_to_t(sigmas, log_sigmas)
            schedule = schedule.round() if rounded else schedule
        elif config.use_lu_lambdas:  # uniform in log-SNR (Lu et al.); for these sigmas log-SNR = -log(sigma)
            log_max, log_min = float(log_sigmas[-1]), float(log_sigmas[0])
            sigmas = np.exp(log_max + np.linspace(0, 1, n) * (log_min - log_max))
            schedule = sigma_to_t(sigmas, log_sigmas)
            schedule = schedule.round() if rounded else schedule
        elif config.use_exponential_sigmas:
            sigmas = exponential_sigmas(sigma_min, sigma_max, n)
            schedule = sigma_to_t(sigmas, log_sigmas)
        elif config.use_beta_sigmas:
            sigmas = beta_sigmas(sigma_min, sigma_max, n)
            schedule = sigma_to_t(sigmas, log_sigmas)
        elif config.use_flow_sigmas:
            shift = self.flow_shift
            flow = 1.0 - np.linspace(1, 1 / config.num_train_timesteps, n + 1)
            sigmas = np.flip(shift * flow / (1 + (shift - 1) * flow))[:-1].copy()
            schedule = (sigmas * config.num_train_timesteps).copy()
        else:
            sigmas = np.interp(schedule, np.arange(0, len(sigmas_train)), sigmas_train)

        # "zero" ends on the clean image; "sigma_min" stops at the smallest training sigma.
        sigma_last = float(sigmas_train[0]) if config.final_sigmas_type == "sigma_min" else 0
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [sigma_last]]).astype(np.float32))
        self.timesteps = torch.from_numpy(schedule).to(device=device, dtype=torch.int64)
        self.num_inference_steps = len(schedule)
        self.model_outputs = [None] * config.solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None

    def _spaced_timesteps(self, n: int) -> np.ndarray:
        """Descending timesteps; the end of the range drops timesteps whose log-SNR is below lambda_min_clipped."""
        config = self.config
        clipped = torch.searchsorted(torch.flip(self.lambda_t, [0]), config.lambda_min_clipped)
        last_timestep = int(config.num_train_timesteps - clipped.item())
        if config.timestep_spacing == "linspace":
            timesteps = np.linspace(0, last_timestep - 1, n + 1).round()[::-1][:-1]
        elif config.timestep_spacing == "leading":
            step_ratio = last_timestep // (n + 1)
            timesteps = (np.arange(0, n + 1) * step_ratio).round()[::-1][:-1] + config.steps_offset
        else:  # trailing
            timesteps = np.arange(last_timestep, 0, -config.num_train_timesteps / n).round() - 1
        return timesteps.copy().astype(np.int64)

    # --- the solver ------------------------------------------------------------------------------------------------
    def scale_model_input(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return sample

    def _sigma_to_alpha_sigma_t(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t) of the variance-preserving process for the sigma of the variance-exploding one."""
        if self.config.use_flow_sigmas:
            return 1 - sigma, sigma
        alpha_t = 1 / ((sigma**2 + 1) ** 0.5)
        return alpha_t, sigma * alpha_t

    def _alpha_sigma_lambda(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        alpha, sigma = self._sigma_to_alpha_sigma_t(self.sigmas[index])
        return alpha, sigma, torch.log(alpha) - torch.log(sigma)

    def convert_model_output(self, model_output: torch.Tensor, *, sample: torch.Tensor) -> torch.Tensor:
        """The model's output as the quantity the algorithm integrates: x_0 for "++" variants, epsilon otherwise."""
        config = self.config
        if config.prediction_type == "epsilon" and config.variance_type in ("learned", "learned_range"):
            model_output = model_output[:, : sample.shape[1]]  # drop the predicted variance channels
        alpha_t, sigma_t = self._sigma_to_alpha_sigma_t(self.sigmas[self.step_index])
        prediction = config.prediction_type
        if config.algorithm_type in ("dpmsolver++", "sde-dpmsolver++"):
            if prediction == "epsilon":
                x0_pred = (sample - sigma_t * model_output) / alpha_t
            elif prediction == "sample":
                x0_pred = model_output
            elif prediction == "v_prediction":
                x0_pred = alpha_t * sample - sigma_t * model_output
            else:  # flow_prediction
                x0_pred = sample - self.sigmas[self.step_index] * model_output
            if config.thresholding:
                x0_pred = threshold_sample(x0_pred, config.dynamic_thresholding_ratio, config.sample_max_value)
            return x0_pred

        if prediction == "epsilon":
            epsilon = model_output
        elif prediction == "sample":
            epsilon = (sample - alpha_t * model_output) / sigma_t
        elif prediction == "v_prediction":
            epsilon = alpha_t * model_output + sigma_t * sample
        else:
            raise ValueError(f"algorithm_type={config.algorithm_type!r} does not take "
                             "prediction_type='flow_prediction'; use 'dpmsolver++'.")
        if config.thresholding:  # threshold x_0, then turn it back into a noise prediction
            x0_pred = (sample - sigma_t * epsilon) / alpha_t
            x0_pred = threshold_sample(x0_pred, config.dynamic_thresholding_ratio, config.sample_max_value)
            epsilon = (sample - alpha_t * x0_pred) / sigma_t
        return epsilon

    def dpm_solver_first_order_update(self, model_output: torch.Tensor, *, sample: torch.Tensor,
                                      noise: torch.Tensor | None = None) -> torch.Tensor:
        """One step of DPM-Solver-1 (DDIM in log-SNR time; paper 2211.01095 eq. 5 and its SDE form)."""
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(self.step_index + 1)
        alpha_s, sigma_s, lambda_s = self._alpha_sigma_lambda(self.step_index)
        h = lambda_t - lambda_s
        algorithm = self.config.algorithm_type
        if algorithm == "dpmsolver++":
            return (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * model_output
        if algorithm == "dpmsolver":
            return (alpha_t / alpha_s) * sample - (sigma_t * (torch.exp(h) - 1.0)) * model_output
        if algorithm == "sde-dpmsolver++":
            return (
                (sigma_t / sigma_s * torch.exp(-h)) * sample
                + (alpha_t * (1 - torch.exp(-2.0 * h))) * model_output
                + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise
            )
        return (  # sde-dpmsolver
            (alpha_t / alpha_s) * sample
            - 2.0 * (sigma_t * (torch.exp(h) - 1.0)) * model_output
            + sigma_t * torch.sqrt(torch.exp(2 * h) - 1.0) * noise
        )

    def multistep_dpm_solver_second_order_update(
        self, model_output_list: list[torch.Tensor], *, sample: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """DPM-Solver-2M: the first-order step plus a correction from the last two outputs' finite difference D1."""
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(self.step_index + 1)
        alpha_s0, sigma_s0, lambda_s0 = self._alpha_sigma_lambda(self.step_index)
        _, _, lambda_s1 = self._alpha_sigma_lambda(self.step_index - 1)
        m0, m1 = model_output_list[-1], model_output_list[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        r0 = h_0 / h
        D0, D1 = m0, (1.0 / r0) * (m0 - m1)
        algorithm, midpoint = self.config.algorithm_type, self.config.solver_type == "midpoint"
        if algorithm == "dpmsolver++":
            base = (sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
            if midpoint:
                return base - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * D1
            return base + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1
        if algorithm == "dpmsolver":
            base = (alpha_t / alpha_s0) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
            if midpoint:
                return base - 0.5 * (sigma_t * (torch.exp(h) - 1.0)) * D1
            return base - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1
        if algorithm == "sde-dpmsolver++":
            base = (sigma_t / sigma_s0 * torch.exp(-h)) * sample + (alpha_t * (1 - torch.exp(-2.0 * h))) * D0
            if midpoint:
                base = base + 0.5 * (alpha_t * (1 - torch.exp(-2.0 * h))) * D1
            else:
                base = base + (alpha_t * ((1.0 - torch.exp(-2.0 * h)) / (-2.0 * h) + 1.0)) * D1
            return base + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise
        base = (alpha_t / alpha_s0) * sample - 2.0 * (sigma_t * (torch.exp(h) - 1.0)) * D0  # sde-dpmsolver
        if midpoint:
            base = base - (sigma_t * (torch.exp(h) - 1.0)) * D1
        else:
            base = base - 2.0 * (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1
        return base + sigma_t * torch.sqrt(torch.exp(2 * h) - 1.0) * noise

    def multistep_dpm_solver_third_order_update(
        self, model_output_list: list[torch.Tensor], *, sample: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """DPM-Solver-3M: adds the second finite difference D2 of the last three outputs."""
        algorithm = self.config.algorithm_type
        if algorithm == "sde-dpmsolver":
            raise ValueError("algorithm_type='sde-dpmsolver' has no third-order update: use solver_order=2, "
                             "or algorithm_type='sde-dpmsolver++'.")
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(self.step_index + 1)
        alpha_s0, sigma_s0, lambda_s0 = self._alpha_sigma_lambda(self.step_index)
        _, _, lambda_s1 = self._alpha_sigma_lambda(self.step_index - 1)
        _, _, lambda_s2 = self._alpha_sigma_lambda(self.step_index - 2)
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        h, h_0, h_1 = lambda_t - lambda_s0, lambda_s0 - lambda_s1, lambda_s1 - lambda_s2
        r0, r1 = h_0 / h, h_1 / h
        D0 = m0
        D1_0, D1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
        D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1)
        D2 = (1.0 / (r0 + r1)) * (D1_0 - D1_1)
        if algorithm == "dpmsolver++":
            return (
                (sigma_t / sigma_s0) * sample
                - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1
                - (alpha_t * ((torch.exp(-h) - 1.0 + h) / h**2 - 0.5)) * D2
            )
        if algorithm == "dpmsolver":
            return (
                (alpha_t / alpha_s0) * sample
                - (sigma_t * (torch.exp(h) - 1.0)) * D0
                - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1
                - (sigma_t * ((torch.exp(h) - 1.0 - h) / h**2 - 0.5)) * D2
            )
        return (  # sde-dpmsolver++
            (sigma_t / sigma_s0 * torch.exp(-h)) * sample
            + (alpha_t * (1.0 - torch.exp(-2.0 * h))) * D0
            + (alpha_t * ((1.0 - torch.exp(-2.0 * h)) / (-2.0 * h) + 1.0)) * D1
            + (alpha_t * ((1.0 - torch.exp(-2.0 * h) - 2.0 * h) / (2.0 * h) ** 2 - 0.5)) * D2
            + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise
        )

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple:
        """Advance ``sample`` one step with the highest order the stored outputs (and the position) allow."""
        if self.num_inference_steps is None:
            raise ValueError("DPMSolverMultistepScheduler.step was called before set_timesteps: call "
                             "scheduler.set_timesteps(num_inference_steps) first.")
        if self.step_index is None:
            self._init_step_index(timestep)
        config = self.config
        num_steps = len(self.timesteps)
        # Few steps make high-order updates unstable at the end: fall back to lower orders there.
        few_steps = config.lower_order_final and num_steps < 15
        first_order_now = self.step_index == num_steps - 1 and (
            config.euler_at_final or few_steps or config.final_sigmas_type == "zero"
        )
        second_order_now = self.step_index == num_steps - 2 and few_steps

        model_output = self.convert_model_output(model_output, sample=sample)
        self.model_outputs = [*self.model_outputs[1:], model_output]
        sample = sample.to(torch.float32)
        noise = None
        if config.algorithm_type.startswith("sde-"):
            if variance_noise is None:
                noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                     dtype=torch.float32)
            else:
                noise = variance_noise.to(device=model_output.device, dtype=torch.float32)

        if config.solver_order == 1 or self.lower_order_nums < 1 or first_order_now:
            prev_sample = self.dpm_solver_first_order_update(model_output, sample=sample, noise=noise)
        elif config.solver_order == 2 or self.lower_order_nums < 2 or second_order_now:
            prev_sample = self.multistep_dpm_solver_second_order_update(self.model_outputs, sample=sample, noise=noise)
        else:
            prev_sample = self.multistep_dpm_solver_third_order_update(self.model_outputs, sample=sample, noise=noise)

        self.lower_order_nums = min(self.lower_order_nums + 1, config.solver_order)
        prev_sample = prev_sample.to(model_output.dtype)
        self._step_index += 1
        return SchedulerOutput(prev_sample=prev_sample) if return_dict else (prev_sample,)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Noise clean samples to the sigma of ``timesteps`` in this schedule (img2img's starting point)."""
        sigmas = self.sigmas.to(device=original_samples.device, dtype=original_samples.dtype)
        schedule = self.timesteps.to(original_samples.device)
        timesteps = timesteps.to(original_samples.device)
        if self.begin_index is None:
            indices = [self.index_for_timestep(t, schedule) for t in timesteps]
        else:
            indices = [self.step_index if self.step_index is not None else self.begin_index] * timesteps.shape[0]
        sigma = sigmas[indices].flatten()
        sigma = sigma.reshape(sigma.shape[0], *([1] * (original_samples.ndim - 1)))
        alpha_t, sigma_t = self._sigma_to_alpha_sigma_t(sigma)
        return alpha_t * original_samples + sigma_t * noise
