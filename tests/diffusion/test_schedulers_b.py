"""Parity of hugkit's LMS, Euler, Euler ancestral and UniPC schedulers with diffusers'.

Each case builds the same scheduler config in both libraries and checks the inference tables (timesteps, sigmas,
dtypes, init_noise_sigma), then runs a full denoising loop with a deterministic fake model from the same start
latents (and the same seeded generators for the stochastic samplers): every scaled model input and every
prev_sample must match. Config interchange (from_config across schedulers, save/load both ways) and bad-input
errors are covered at the end. diffusers' LMS needs scipy (its quadrature), so scipy is a test requirement here.
"""

from __future__ import annotations

import math

import diffusers
import numpy as np
import pytest
import torch

from hugkit.diffusion import schedulers as hk
from hugkit.diffusion.schedulers.lms_discrete import lms_coefficient
from hugkit.diffusion.schedulers.sigmas import beta_ppf, sigma_to_t, spaced_timesteps

# Stable Diffusion 1.x's scheduler: the schedule every SD checkpoint ships, as PNDM's config.
SD = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}
PNDM_SD_CONFIG = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "trained_betas": None, "clip_sample": False,
}
NAMES = ["LMSDiscreteScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "UniPCMultistepScheduler"]
ALL_NINE = [
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "LCMScheduler",
]
SPACING_AND_PREDICTION = [
    {**SD, "timestep_spacing": spacing, "prediction_type": prediction}
    for spacing in ("linspace", "leading", "trailing") for prediction in ("epsilon", "v_prediction")
]


def _case(name: str, config: dict, steps: int = 10, **step_kwargs) -> pytest.param:
    label = ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k]) or "sd"
    return pytest.param(name, config, steps, step_kwargs, id=f"{name[:-9]}-{label}-{steps}")


CASES = [
    *[_case("EulerDiscreteScheduler", c) for c in SPACING_AND_PREDICTION],
    _case("EulerDiscreteScheduler", SD, steps=25),
    _case("EulerDiscreteScheduler", {**SD, "use_karras_sigmas": True}, steps=25),
    _case("EulerDiscreteScheduler", {**SD, "use_karras_sigmas": True, "timestep_spacing": "leading"}),
    _case("EulerDiscreteScheduler", {**SD, "use_karras_sigmas": True, "sigma_min": 0.1, "sigma_max": 10.0}),
    _case("EulerDiscreteScheduler", {**SD, "use_exponential_sigmas": True}),
    _case("EulerDiscreteScheduler", {**SD, "use_beta_sigmas": True}),
    _case("EulerDiscreteScheduler", {**SD, "interpolation_type": "log_linear"}),
    _case("EulerDiscreteScheduler", {**SD, "final_sigmas_type": "sigma_min"}),
    _case("EulerDiscreteScheduler", {**SD, "timestep_type": "continuous", "prediction_type": "v_prediction"}),
    _case("EulerDiscreteScheduler", {**SD, "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
                                     "prediction_type": "v_prediction"}),
    _case("EulerDiscreteScheduler", {**SD, "prediction_type": "sample"}),
    _case("EulerDiscreteScheduler", SD, steps=15, s_churn=1.0),  # stochastic: seeded churn noise
    _case("EulerDiscreteScheduler", SD, steps=15, s_churn=2.0, s_tmin=0.5, s_tmax=5.0, s_noise=1.003),
    *[_case("EulerAncestralDiscreteScheduler", c) for c in SPACING_AND_PREDICTION],
    _case("EulerAncestralDiscreteScheduler", SD, steps=25),
    _case("EulerAncestralDiscreteScheduler", {**SD, "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
                                              "prediction_type": "v_prediction"}),
    _case("EulerAncestralDiscreteScheduler", {"beta_schedule": "squaredcos_cap_v2"}),
    *[_case("LMSDiscreteScheduler", c) for c in SPACING_AND_PREDICTION],
    _case("LMSDiscreteScheduler", SD, steps=25),
    _case("LMSDiscreteScheduler", {**SD, "use_karras_sigmas": True}),
    _case("LMSDiscreteScheduler", {**SD, "use_exponential_sigmas": True}),
    _case("LMSDiscreteScheduler", {**SD, "prediction_type": "sample"}, order=2),
    *[_case("UniPCMultistepScheduler", c) for c in SPACING_AND_PREDICTION],
    _case("UniPCMultistepScheduler", SD, steps=25),
    _case("UniPCMultistepScheduler", {**SD, "solver_order": 3}, steps=12),
    _case("UniPCMultistepScheduler", {**SD, "solver_order": 3, "solver_type": "bh1"}, steps=12),
    _case("UniPCMultistepScheduler", {**SD, "solver_order": 1}),
    _case("UniPCMultistepScheduler", {**SD, "predict_x0": False}),
    _case("UniPCMultistepScheduler", {**SD, "predict_x0": False, "solver_type": "bh1", "prediction_type": "v_prediction"}),
    _case("UniPCMultistepScheduler", {**SD, "predict_x0": False, "prediction_type": "sample"}),
    _case("UniPCMultistepScheduler", {**SD, "lower_order_final": False, "solver_order": 3,
                                      "final_sigmas_type": "sigma_min"}),
    _case("UniPCMultistepScheduler", {**SD, "disable_corrector": [0, 2, 3]}),
    _case("UniPCMultistepScheduler", {**SD, "use_karras_sigmas": True}, steps=25),
    _case("UniPCMultistepScheduler", {**SD, "use_karras_sigmas": True, "final_sigmas_type": "sigma_min"}),
    _case("UniPCMultistepScheduler", {**SD, "use_exponential_sigmas": True}),
    _case("UniPCMultistepScheduler", {**SD, "use_beta_sigmas": True}),
    _case("UniPCMultistepScheduler", {**SD, "thresholding": True, "sample_max_value": 2.0, "prediction_type": "sample"}),
    _case("UniPCMultistepScheduler", {**SD, "solver_type": "midpoint"}),  # a DPM-Solver type: becomes bh2
    _case("UniPCMultistepScheduler", {**SD, "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
                                      "prediction_type": "v_prediction"}),
    _case("UniPCMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0}),
    _case("UniPCMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
                                      "flow_shift": 2.0, "shift_terminal": 0.1}),
    _case("UniPCMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction",
                                      "use_karras_sigmas": True}),
]


def fake_model(sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for the UNet: depends on both the input and the timestep."""
    return 0.1 * sample + torch.sin(t.float() / 100.0) - 0.05 * sample.mean()


def start_latents(scheduler, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * scheduler.init_noise_sigma


def both(name: str, config: dict):
    return getattr(diffusers, name)(**config), getattr(hk, name)(**config)


def assert_same_tables(reference, ours) -> None:
    for field in ("timesteps", "sigmas"):
        expected, got = getattr(reference, field), getattr(ours, field)
        assert got.dtype == expected.dtype, field
        assert got.shape == expected.shape, field
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=field)
    torch.testing.assert_close(torch.as_tensor(ours.init_noise_sigma), torch.as_tensor(reference.init_noise_sigma))


def without_defaults_list(config) -> dict:
    """Configs compare as dicts; ``_use_default_values`` is a set in diffusers (its order is arbitrary)."""
    fields = dict(config)
    fields["_use_default_values"] = sorted(fields.get("_use_default_values", []))
    return fields


@pytest.mark.parametrize("name,config,steps,step_kwargs", CASES)
def test_loop_matches_diffusers(name: str, config: dict, steps: int, step_kwargs: dict) -> None:
    reference, ours = both(name, config)
    assert_same_tables(reference, ours)  # the training tables, before set_timesteps
    assert without_defaults_list(ours.config) == without_defaults_list(reference.config)

    reference.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert_same_tables(reference, ours)
    assert len(ours.timesteps) == len(reference.timesteps) > 0

    stochastic = name == "EulerAncestralDiscreteScheduler" or step_kwargs.get("s_churn", 0) > 0
    # LMS weights: diffusers integrates a float32 polynomial numerically, hugkit exactly (float64), so the loop
    # agrees to float32 rounding relative to the sample size (|x| ~ 15), not bit for bit.
    rtol = 1e-5 if name == "LMSDiscreteScheduler" else 0.0
    x_ref = start_latents(reference)
    x_ours = x_ref.clone()
    generators = (torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)) if stochastic else (None, None)
    for t in reference.timesteps:
        input_ref = reference.scale_model_input(x_ref, t)
        input_ours = ours.scale_model_input(x_ours, t)
        torch.testing.assert_close(input_ours, input_ref, rtol=rtol, atol=1e-5)
        kwargs_ref, kwargs_ours = dict(step_kwargs), dict(step_kwargs)
        if stochastic:
            kwargs_ref["generator"], kwargs_ours["generator"] = generators
        final_limit = unipc_final_limit(reference, fake_model(input_ref, t), x_ref) if name.startswith("UniPC") else None
        out_ref = reference.step(fake_model(input_ref, t), t, x_ref, **kwargs_ref)
        out_ours = ours.step(fake_model(input_ours, t), t, x_ours, **kwargs_ours)
        expected = out_ref.prev_sample
        if final_limit is not None and not torch.isfinite(expected).all():
            expected = final_limit  # diffusers' inf * 0 on the step to sigma 0; hugkit returns the finite limit
        torch.testing.assert_close(out_ours.prev_sample, expected, rtol=rtol, atol=1e-5)
        if hasattr(out_ref, "pred_original_sample"):
            torch.testing.assert_close(out_ours.pred_original_sample, out_ref.pred_original_sample, rtol=rtol, atol=1e-5)
        assert out_ours.prev_sample.dtype == out_ref.prev_sample.dtype
        x_ref, x_ours = out_ref.prev_sample, out_ours.prev_sample
    assert ours.step_index == reference.step_index == len(reference.timesteps)
    assert torch.isfinite(x_ours).all()


def unipc_final_limit(reference, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor | None:
    """On the last UniPC step (onto sigma 0) the first-order update tends to the data prediction x_0. diffusers
    evaluates inf * 0 there for bh1 and for predict_x0=False (NaN); this builds the limit from diffusers' own parts."""
    index = reference.step_index
    if index is None or index != len(reference.timesteps) - 1 or float(reference.sigmas[index + 1]) != 0.0:
        return None
    converted = reference.convert_model_output(model_output, sample=sample)
    if reference.predict_x0:
        return converted
    corrected = sample
    if reference.last_sample is not None and index - 1 not in reference.disable_corrector:
        corrected = reference.multistep_uni_c_bh_update(
            this_model_output=converted, last_sample=reference.last_sample, this_sample=sample, order=reference.this_order
        )
    alpha_s0, sigma_s0 = reference._sigma_to_alpha_sigma_t(reference.sigmas[index])
    return (corrected - sigma_s0 * converted) / alpha_s0


def test_unipc_final_step_is_finite_where_diffusers_gives_nan() -> None:
    """The documented difference: bh1 and predict_x0=False end in NaN in diffusers, in x_0 in hugkit."""
    for config in ({**SD, "solver_type": "bh1"}, {**SD, "predict_x0": False}):
        reference, ours = both("UniPCMultistepScheduler", config)
        reference.set_timesteps(5)
        ours.set_timesteps(5)
        x_ref = x_ours = start_latents(reference)
        for t in reference.timesteps:
            x_ref = reference.step(fake_model(x_ref, t), t, x_ref).prev_sample
            x_ours = ours.step(fake_model(x_ours, t), t, x_ours).prev_sample
        assert torch.isnan(x_ref).all() and torch.isfinite(x_ours).all()


def test_ancestral_noise_from_a_list_of_generators() -> None:
    """One generator per image draws that image's noise, as in diffusers (batch reproducibility)."""
    reference, ours = both("EulerAncestralDiscreteScheduler", SD)
    reference.set_timesteps(6)
    ours.set_timesteps(6)
    x_ref = start_latents(reference, batch=3)
    x_ours = x_ref.clone()
    gens_ref = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    gens_ours = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    for t in reference.timesteps:
        x_ref = reference.step(fake_model(reference.scale_model_input(x_ref, t), t), t, x_ref, generator=gens_ref).prev_sample
        x_ours = ours.step(fake_model(ours.scale_model_input(x_ours, t), t), t, x_ours, generator=gens_ours).prev_sample
        torch.testing.assert_close(x_ours, x_ref, rtol=0, atol=1e-5)
    # Different seeds per row really give different noise (the test would not notice a shared generator otherwise).
    assert not torch.allclose(x_ours[0], x_ours[1])


def test_euler_half_precision_model_output() -> None:
    """A float16 model: the update runs in float32 and prev_sample comes back float16, as in diffusers."""
    reference, ours = both("EulerDiscreteScheduler", SD)
    reference.set_timesteps(8)
    ours.set_timesteps(8)
    x_ref = start_latents(reference).half()
    x_ours = x_ref.clone()
    for t in reference.timesteps:
        out_ref = reference.step(fake_model(reference.scale_model_input(x_ref, t), t).half(), t, x_ref).prev_sample
        out_ours = ours.step(fake_model(ours.scale_model_input(x_ours, t), t).half(), t, x_ours).prev_sample
        assert out_ours.dtype == torch.float16
        torch.testing.assert_close(out_ours, out_ref, rtol=0, atol=1e-3)
        x_ref, x_ours = out_ref, out_ours


@pytest.mark.parametrize("custom", [{"sigmas": [14.0, 8.0, 3.5, 1.0, 0.3, 0.0]}, {"timesteps": [999.0, 700.5, 400.0, 51.0, 10.0]}])
def test_euler_custom_sigmas_and_timesteps(custom: dict) -> None:
    reference, ours = both("EulerDiscreteScheduler", SD)
    reference.set_timesteps(**custom)
    ours.set_timesteps(**custom)
    assert_same_tables(reference, ours)
    assert ours.num_inference_steps == reference.num_inference_steps == 5


@pytest.mark.parametrize("name", NAMES)
def test_add_noise_matches_diffusers(name: str) -> None:
    reference, ours = both(name, SD)
    reference.set_timesteps(10)
    ours.set_timesteps(10)
    original = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    timesteps = reference.timesteps[[0, 4, 9]]
    torch.testing.assert_close(ours.add_noise(original, noise, timesteps), reference.add_noise(original, noise, timesteps))
    # A pipeline that set a begin index (image-to-image) noises every sample to that step.
    reference.set_begin_index(3)
    ours.set_begin_index(3)
    start = reference.timesteps[3:4].repeat(3)
    noisy = ours.add_noise(original, noise, start)
    torch.testing.assert_close(noisy, reference.add_noise(original, noise, start))
    assert not torch.allclose(noisy, original)


def test_euler_get_velocity_matches_diffusers() -> None:
    reference, ours = both("EulerDiscreteScheduler", SD)
    reference.set_timesteps(10)
    ours.set_timesteps(10)
    sample, noise = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    timesteps = reference.timesteps[[1, 6]]
    torch.testing.assert_close(ours.get_velocity(sample, noise, timesteps), reference.get_velocity(sample, noise, timesteps))


def test_begin_index_starts_mid_schedule() -> None:
    reference, ours = both("EulerDiscreteScheduler", SD)
    reference.set_timesteps(10)
    ours.set_timesteps(10)
    reference.set_begin_index(4)
    ours.set_begin_index(4)
    assert ours.begin_index == 4
    x = start_latents(reference)
    t = reference.timesteps[4]
    torch.testing.assert_close(ours.scale_model_input(x, t), reference.scale_model_input(x, t))
    torch.testing.assert_close(ours.step(fake_model(x, t), t, x).prev_sample, reference.step(fake_model(x, t), t, x).prev_sample)
    assert ours.step_index == 5


# --- LMS coefficients --------------------------------------------------------------------------------------------
def test_lms_coefficients_match_diffusers_and_exact_quadrature() -> None:
    from scipy import integrate  # diffusers' LMS reference needs it too

    reference, ours = both("LMSDiscreteScheduler", {**SD, "use_karras_sigmas": True})
    reference.set_timesteps(12)
    ours.set_timesteps(12)
    sigmas64 = ours.sigmas.double().numpy()
    checked = 0
    for index in range(12):
        for order in range(1, min(index + 1, 4) + 1):
            for current in range(order):
                ours_coeff = ours.get_lms_coefficient(order, index, current)
                assert abs(ours_coeff - reference.get_lms_coefficient(order, index, current)) <= 1e-6

                def basis(tau: float) -> float:
                    nodes = [sigmas64[index - k] for k in range(order)]
                    return math.prod((tau - n) / (nodes[current] - n) for k, n in enumerate(nodes) if k != current)

                exact = integrate.quad(basis, sigmas64[index], sigmas64[index + 1], epsabs=1e-14, epsrel=1e-13)[0]
                assert abs(ours_coeff - exact) <= 1e-12
                checked += 1
    assert checked == 1 + 3 + 6 + 10 * 9  # orders 1..min(index + 1, 4), each with that many weights
    # Sanity: the weights of one step sum to the step length (they integrate a partition of unity).
    step = sum(lms_coefficient(ours.sigmas.numpy(), 4, 8, k) for k in range(4))
    assert step == pytest.approx(float(ours.sigmas[9] - ours.sigmas[8]), abs=1e-6)


# --- sigma helpers -----------------------------------------------------------------------------------------------
def test_beta_ppf_matches_scipy() -> None:
    from scipy import stats

    for q in (0.0, 1e-6, 0.01, 0.2, 0.5, 0.77, 0.999, 1.0):
        for a, b in ((0.6, 0.6), (2.0, 5.0), (0.5, 1.5)):
            assert beta_ppf(q, a, b) == pytest.approx(stats.beta.ppf(q, a, b), abs=1e-12)


def test_sigma_to_t_matches_diffusers_per_sigma() -> None:
    reference = diffusers.EulerDiscreteScheduler(**SD)
    log_sigmas = np.log((((1 - reference.alphas_cumprod) / reference.alphas_cumprod) ** 0.5).numpy())
    sigmas = np.array([1e-4, 0.0292, 0.03, 0.5, 1.0, 3.3, 14.6, 20.0])
    expected = np.array([reference._sigma_to_t(s, log_sigmas) for s in sigmas])
    np.testing.assert_array_equal(sigma_to_t(sigmas, log_sigmas), expected)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_multistep_spacing_matches_diffusers_unipc(spacing: str) -> None:
    for steps in (1, 7, 20, 50):
        reference = diffusers.UniPCMultistepScheduler(**SD, timestep_spacing=spacing)
        reference.set_timesteps(steps)
        ours = spaced_timesteps(spacing, 1000, steps, 1, multistep=True).astype(np.int64)
        np.testing.assert_array_equal(ours, reference.timesteps.numpy())


# --- config interchange ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_from_config_of_pndm_sd_config(name: str) -> None:
    reference = getattr(diffusers, name).from_config(PNDM_SD_CONFIG)
    ours = getattr(hk, name).from_config(PNDM_SD_CONFIG)
    assert without_defaults_list(ours.config) == without_defaults_list(reference.config)
    assert ours.config.steps_offset == 1 and ours.config.beta_schedule == "scaled_linear"
    reference.set_timesteps(20)
    ours.set_timesteps(20)
    assert_same_tables(reference, ours)


@pytest.mark.parametrize("name", NAMES)
def test_from_config_of_another_hugkit_scheduler(name: str) -> None:
    source_ref = diffusers.UniPCMultistepScheduler(**SD, prediction_type="v_prediction", timestep_spacing="trailing")
    source_ours = hk.UniPCMultistepScheduler(**SD, prediction_type="v_prediction", timestep_spacing="trailing")
    target = "EulerDiscreteScheduler" if name == "UniPCMultistepScheduler" else name
    reference = getattr(diffusers, target).from_config(source_ref.config)
    ours = getattr(hk, target).from_config(source_ours.config)
    assert without_defaults_list(ours.config) == without_defaults_list(reference.config)
    assert ours.config.prediction_type == "v_prediction" and ours.config.timestep_spacing == "trailing"


@pytest.mark.parametrize("name", NAMES)
def test_compatibles(name: str) -> None:
    cls = getattr(hk, name)
    assert cls._compatibles == ALL_NINE
    assert [c.__name__ for c in cls(**SD).compatibles] == ALL_NINE


@pytest.mark.parametrize("name", NAMES)
def test_save_pretrained_round_trips_with_diffusers(name: str, tmp_path) -> None:
    config = {**SD, "prediction_type": "v_prediction", "timestep_spacing": "leading"}
    if name in ("EulerDiscreteScheduler", "UniPCMultistepScheduler", "LMSDiscreteScheduler"):
        config["use_karras_sigmas"] = True
    # hugkit writes, diffusers reads
    getattr(hk, name)(**config).save_pretrained(tmp_path / "ours")
    loaded_ref = getattr(diffusers, name).from_pretrained(tmp_path / "ours")
    # diffusers writes, hugkit reads
    getattr(diffusers, name)(**config).save_pretrained(tmp_path / "reference")
    loaded_ours = getattr(hk, name).from_pretrained(tmp_path / "reference")
    assert type(loaded_ours) is getattr(hk, name)
    for key, value in config.items():
        assert loaded_ref.config[key] == value and loaded_ours.config[key] == value, key
    loaded_ref.set_timesteps(10)
    loaded_ours.set_timesteps(10)
    assert_same_tables(loaded_ref, loaded_ours)


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "UniPCMultistepScheduler"])
def test_step_before_set_timesteps(name: str) -> None:
    scheduler = getattr(hk, name)(**SD)
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(x, scheduler.timesteps[0], x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [0, -3])
def test_non_positive_num_inference_steps(name: str, steps: int) -> None:
    with pytest.raises(ValueError, match="num_inference_steps must be a positive integer"):
        getattr(hk, name)(**SD).set_timesteps(steps)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "field,value,valid",
    [("beta_schedule", "cosine", "scaled_linear"), ("prediction_type", "noise", "v_prediction"),
     ("timestep_spacing", "even", "trailing")],
)
def test_unknown_config_values(name: str, field: str, value: str, valid: str) -> None:
    with pytest.raises(ValueError, match=valid) as error:
        getattr(hk, name)(**{**SD, field: value})
    assert repr(value) in str(error.value)


def test_integer_timestep_is_refused_by_euler() -> None:
    scheduler = hk.EulerDiscreteScheduler(**SD)
    scheduler.set_timesteps(5)
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(ValueError, match="not an index"):
        scheduler.step(x, 0, x)


def test_timestep_not_in_schedule() -> None:
    scheduler = hk.EulerAncestralDiscreteScheduler(**SD)
    scheduler.set_timesteps(5)
    with pytest.raises(ValueError, match="not in this scheduler's timesteps"):
        scheduler.scale_model_input(torch.zeros(1, 4, 2, 2), torch.tensor(3.25))


def test_stepping_past_the_end() -> None:
    scheduler = hk.EulerDiscreteScheduler(**SD)
    scheduler.set_timesteps(2)
    x = torch.zeros(1, 4, 2, 2)
    for t in scheduler.timesteps:
        x = scheduler.step(fake_model(x, t), t, x).prev_sample
    with pytest.raises(ValueError, match="more times than there are timesteps"):
        scheduler.step(x, scheduler.timesteps[-1], x)


def test_two_sigma_rules_and_conflicting_set_timesteps_arguments() -> None:
    with pytest.raises(ValueError, match="only one of"):
        hk.EulerDiscreteScheduler(**SD, use_karras_sigmas=True, use_exponential_sigmas=True)
    scheduler = hk.EulerDiscreteScheduler(**SD)
    with pytest.raises(ValueError, match="exactly one of"):
        scheduler.set_timesteps(10, timesteps=[999.0, 500.0])
    with pytest.raises(ValueError, match="exactly one of"):
        scheduler.set_timesteps()
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        hk.EulerDiscreteScheduler(**SD, use_karras_sigmas=True).set_timesteps(timesteps=[999.0, 500.0])


def test_unipc_bad_options() -> None:
    with pytest.raises(ValueError, match="'bh1', 'bh2'"):
        hk.UniPCMultistepScheduler(**SD, solver_type="rk4")
    with pytest.raises(ValueError, match="use_flow_sigmas"):
        hk.UniPCMultistepScheduler(**SD).set_timesteps(sigmas=[0.9, 0.5, 0.1])
    with pytest.raises(ValueError, match="mu"):
        hk.UniPCMultistepScheduler(use_flow_sigmas=True, use_dynamic_shifting=True).set_timesteps(10)
    # An order-3 step onto sigma 0 divides by an infinite log-SNR (diffusers fails or returns NaN there).
    scheduler = hk.UniPCMultistepScheduler(**SD, solver_order=3, lower_order_final=False)
    scheduler.set_timesteps(4)
    x = torch.randn(1, 4, 2, 2)
    with pytest.raises(ValueError, match="lower_order_final=True"):
        for t in scheduler.timesteps:
            x = scheduler.step(fake_model(x, t), t, x).prev_sample


def test_lms_bad_order() -> None:
    scheduler = hk.LMSDiscreteScheduler(**SD)
    scheduler.set_timesteps(4)
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(ValueError, match="order must be a positive integer"):
        scheduler.step(x, scheduler.timesteps[0], x, order=0)
