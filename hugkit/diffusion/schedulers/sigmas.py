"""Noise levels (sigmas) for the schedulers that walk them: Euler, Euler ancestral, LMS, UniPC, DPM-Solver.

A training timestep t has the noise level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t): a sample at t is
``x_0 + sigma_t * noise`` up to scale. Inference picks a few of those levels (by timestep spacing, or by the Karras /
exponential / beta rules) and maps chosen sigmas back to fractional timesteps for the model.

The functions here work in NumPy float64 in the same order of operations as diffusers, so the tables match it bit
for bit; the schedulers cast to float32 at the end, as diffusers does. ``SigmaSchedulerMixin`` holds what the
k-diffusion style schedulers (Euler, Euler ancestral, LMS) share: step bookkeeping, input scaling and ``add_noise``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np
import torch

from .base import SchedulerMixin

logger = logging.getLogger(__name__)

TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")


def check_choice(owner: str, field: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise a ValueError naming the valid values when a config field holds an unknown one."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{owner} got {field}={value!r}; expected one of {valid}.")


def check_one_sigma_rule(owner: str, config: Any) -> None:
    """Karras, exponential and beta sigmas are alternatives: at most one may be switched on."""
    chosen = [name for name in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas") if config.get(name)]
    if len(chosen) > 1:
        raise ValueError(f"{owner}: only one of {', '.join(chosen)} can be True; pick one sigma schedule.")


def train_sigmas(alphas_cumprod: torch.Tensor) -> np.ndarray:
    """sigma_t for every training timestep, ascending in t (float32, computed in torch as diffusers does)."""
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).numpy()


def spaced_timesteps(
    spacing: str,
    num_train_timesteps: int,
    num_inference_steps: int,
    steps_offset: int = 0,
    *,
    multistep: bool = False,
) -> np.ndarray:
    """Descending float64 timesteps for ``num_inference_steps`` steps (spacings of arXiv 2305.08891, table 2).

    Plain (Euler, LMS): ``linspace`` keeps fractional timesteps. ``multistep=True`` is the layout of the multistep
    solvers (UniPC, DPM-Solver): lay out one point more, round, and drop the final point (t = 0).
    The caller casts (float32 for Euler-style schedulers, int64 for the multistep solvers).
    """
    points = num_inference_steps + 1 if multistep else num_inference_steps
    if spacing == "linspace":
        timesteps = np.linspace(0, num_train_timesteps - 1, points)
        if multistep:
            timesteps = timesteps.round()
        timesteps = timesteps[::-1]
    elif spacing == "leading":
        # Multiples of the step ratio from 0, shifted by steps_offset (Stable Diffusion uses 1).
        timesteps = (np.arange(points) * (num_train_timesteps // points)).astype(np.float64)[::-1]
    elif spacing == "trailing":
        # Counts down from the last training timestep, so the first step sees (nearly) pure noise.
        timesteps = np.arange(num_train_timesteps, 0, -num_train_timesteps / num_inference_steps).round() - 1
    else:
        raise ValueError(f"Unknown timestep_spacing {spacing!r}; expected one of {', '.join(map(repr, TIMESTEP_SPACINGS))}.")
    if multistep and spacing != "trailing":
        timesteps = timesteps[:-1]
    if spacing == "leading":
        timesteps = timesteps + steps_offset
    return timesteps.copy()


def interpolate_sigmas(timesteps: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Sigmas at (possibly fractional) ``timesteps``, linear between training timesteps (float64)."""
    return np.interp(timesteps, np.arange(len(sigmas)), sigmas)


def sigma_to_t(sigmas: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """The fractional training timestep of each sigma: linear interpolation in log-sigma between neighbours.

    ``log_sigmas`` is the log of the training sigmas, ascending in t. Sigmas outside the table clamp to its ends.
    """
    sigmas = np.asarray(sigmas)
    log_sigma = np.log(np.maximum(sigmas, 1e-10)).reshape(-1)
    # The last training timestep whose log-sigma is <= each sigma's, kept so that a right neighbour exists.
    low_idx = np.clip((log_sigmas[:, None] <= log_sigma[None, :]).sum(axis=0) - 1, 0, log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(sigmas.shape)


def sigma_bounds(in_sigmas: np.ndarray, sigma_min: float | None = None, sigma_max: float | None = None) -> tuple[float, float]:
    """(sigma_min, sigma_max): the configured values where set, else the last and first of descending ``in_sigmas``."""
    low = sigma_min if sigma_min is not None else in_sigmas[-1].item()
    high = sigma_max if sigma_max is not None else in_sigmas[0].item()
    return low, high


def karras_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. (arXiv 2206.00364, eq. 5): descending sigmas evenly spaced in sigma^(1/rho)."""
    ramp = np.linspace(0, 1, num_inference_steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


def exponential_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int) -> np.ndarray:
    """Descending sigmas evenly spaced in log(sigma)."""
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), num_inference_steps))


def beta_sigmas(
    sigma_min: float, sigma_max: float, num_inference_steps: int, alpha: float = 0.6, beta: float = 0.6
) -> np.ndarray:
    """"Beta Sampling is All You Need" (arXiv 2407.12173): descending sigmas at the quantiles of a Beta(alpha, beta)
    distribution, which puts more steps at both ends of the schedule."""
    quantiles = [beta_ppf(q, alpha, beta) for q in 1 - np.linspace(0, 1, num_inference_steps)]
    return np.array([sigma_min + q * (sigma_max - sigma_min) for q in quantiles])


def beta_ppf(q: float, a: float, b: float) -> float:
    """The inverse CDF of Beta(a, b) at ``q``: Newton on the regularized incomplete beta, kept inside a shrinking
    bisection bracket so it always converges (no scipy needed)."""
    if q <= 0:
        return 0.0
    if q >= 1:
        return 1.0
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    low, high, x = 0.0, 1.0, 0.5
    for _ in range(200):
        error = _regularized_incomplete_beta(x, a, b) - q
        if error == 0:
            return x
        if error < 0:
            low = x
        else:
            high = x
        density = math.exp((a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - log_norm)
        candidate = x - error / density
        if not low < candidate < high:
            candidate = 0.5 * (low + high)
        if abs(candidate - x) <= 1e-16 * max(x, 1e-300) or candidate in (low, high):
            return candidate
        x = candidate
    return x


def _regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the CDF of Beta(a, b), by its continued fraction (modified Lentz), mirrored for convergence."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_incomplete_beta(1 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return math.exp(log_front) * fraction / a


def index_for_timestep(timestep: float | torch.Tensor, schedule_timesteps: torch.Tensor) -> int:
    """Where ``timestep`` sits in the schedule. When it appears twice, the second one: a run that starts mid-schedule
    (image-to-image) must not skip a sigma."""
    matches = (schedule_timesteps == timestep).nonzero()
    if len(matches) == 0:
        raise ValueError(
            f"Timestep {float(timestep)} is not in this scheduler's timesteps; pass the values of "
            "`scheduler.timesteps` (after `set_timesteps`), not loop indices."
        )
    return int(matches[1 if len(matches) > 1 else 0].item())


class SigmaSchedulerMixin(SchedulerMixin):
    """What Euler, Euler ancestral and LMS share: a descending ``sigmas`` table (one per timestep, then the final
    sigma), a step counter, model input scaled by 1 / sqrt(sigma^2 + 1), and noise added as ``x + sigma * noise``."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    _step_index: int | None = None
    _begin_index: int | None = None
    is_scale_input_called: bool = False

    @property
    def init_noise_sigma(self) -> torch.Tensor:
        """How much to scale unit-variance noise to start from: the largest sigma (on the sqrt(sigma^2 + 1) scale
        for "leading" spacing, whose first step is not the last training timestep)."""
        max_sigma = self.sigmas.max()
        if self.config.timestep_spacing in ("linspace", "trailing"):
            return max_sigma
        return (max_sigma**2 + 1) ** 0.5

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

    def index_for_timestep(self, timestep: float | torch.Tensor, schedule_timesteps: torch.Tensor | None = None) -> int:
        return index_for_timestep(timestep, self.timesteps if schedule_timesteps is None else schedule_timesteps)

    def _init_step_index(self, timestep: float | torch.Tensor) -> None:
        if self._begin_index is not None:
            self._step_index = self._begin_index
            return
        if isinstance(timestep, torch.Tensor):
            timestep = timestep.to(self.timesteps.device)
        self._step_index = self.index_for_timestep(timestep)

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor) -> torch.Tensor:
        """The model's input at this step: ``sample / sqrt(sigma^2 + 1)`` (the model was trained on unit variance)."""
        if self._step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self._step_index]
        self.is_scale_input_called = True
        return sample / ((sigma**2 + 1) ** 0.5)

    def _check_float_timestep(self, timestep: Any) -> None:
        """Loop indices (ints) are a common mistake: these schedulers need the values of ``self.timesteps``."""
        is_integer_tensor = isinstance(timestep, torch.Tensor) and not timestep.is_floating_point()
        if isinstance(timestep, int) or is_integer_tensor:
            raise ValueError(
                f"{type(self).__name__}.step got an integer timestep ({timestep!r}). Pass one of "
                "`scheduler.timesteps` (float values), not an index from `enumerate(timesteps)`."
            )

    def _step_sigma_index(self, timestep: float | torch.Tensor) -> int:
        """The step index for this ``step`` call, set from ``timestep`` on the first call."""
        if self._step_index is None:
            self._init_step_index(timestep)
        if self._step_index + 1 >= len(self.sigmas):
            raise ValueError(
                f"{type(self).__name__}.step was called more times than there are timesteps "
                f"({len(self.timesteps)}); call `set_timesteps` again to start a new run."
            )
        return self._step_index

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``original_samples + sigma_t * noise`` at each sample's timestep (image-to-image start, inpainting)."""
        sigmas = self.sigmas.to(device=original_samples.device, dtype=original_samples.dtype)
        schedule = self.timesteps.to(original_samples.device)
        timesteps = timesteps.to(original_samples.device)
        if self._begin_index is None:  # training, or a pipeline without set_begin_index
            indices = [index_for_timestep(t, schedule) for t in timesteps]
        elif self._step_index is not None:  # after the first denoising step (inpainting)
            indices = [self._step_index] * timesteps.shape[0]
        else:  # before the first step (image-to-image)
            indices = [self._begin_index] * timesteps.shape[0]
        sigma = sigmas[indices].flatten()
        sigma = sigma.reshape(sigma.shape[0], *([1] * (original_samples.ndim - 1)))
        return original_samples + noise * sigma
