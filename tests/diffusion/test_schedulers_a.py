"""DDPM, DDIM, PNDM, LCM and DPM-Solver(++) multistep against diffusers: the same timesteps and sigmas, every
``prev_sample`` of a full denoising loop (a fixed fake model, the same seeded latents and generators), configs
swapped between schedulers with ``from_config``, folders read both ways, and clear errors for bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hugkit.diffusion.schedulers.base import KARRAS_DIFFUSION_SCHEDULERS
from hugkit.diffusion.schedulers.ddim import DDIMScheduler
from hugkit.diffusion.schedulers.ddpm import DDPMScheduler
from hugkit.diffusion.schedulers.dpmsolver_multistep import DPMSolverMultistepScheduler
from hugkit.diffusion.schedulers.lcm import LCMScheduler
from hugkit.diffusion.schedulers.pndm import PNDMScheduler

diffusers = pytest.importorskip("diffusers")

# diffusers' own deprecation notices (dpmsolver / sde-dpmsolver, numpy 2's __array__) are not hugkit's concern.
pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers")]

OURS = {cls.__name__: cls for cls in (DDPMScheduler, DDIMScheduler, PNDMScheduler, LCMScheduler,
                                      DPMSolverMultistepScheduler)}
# Stable Diffusion 1.x's noise schedule.
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
# stable-diffusion-v1-4/scheduler/scheduler_config.json, as shipped.
SD14_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.7.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None, "clip_sample": False,
}
SHAPE = (2, 4, 8, 8)
TOL = 1e-5


def fake_model(sample: torch.Tensor, t: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """A deterministic stand-in for the UNet that depends on both the sample and the timestep."""
    out = 0.1 * sample + 0.05 * math.cos(float(t) / 150.0)
    if channels is not None:  # learned variance: a second block of channels in (0, 1)
        out = torch.cat([out, torch.sigmoid(sample)], dim=1)
    return out


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the reference's scale (samples grow to tens in the noisier schedules)."""
    return ((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item()


def both(name: str, **config):
    return OURS[name](**config), getattr(diffusers, name)(**config)


def generators(seed: int, count: int | None):
    make = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    return make() if count is None else [torch.Generator().manual_seed(seed + i) for i in range(count)]


def seeded(name: str, seed: int) -> dict:
    """A fresh seeded generator for ``step`` (PNDM draws no noise and takes none)."""
    return {} if name == "PNDMScheduler" else {"generator": torch.Generator().manual_seed(seed)}


def run_loop(name: str, config: dict, steps: int | None, set_kwargs: dict | None = None,
             step_kwargs: dict | None = None, seeded: bool = False, per_row: bool = False,
             learned_channels: bool = False) -> int:
    """Set both schedulers up, check the schedule, run the whole loop side by side; returns the number of steps."""
    ours, ref = both(name, **config)
    ours.set_timesteps(steps, **(set_kwargs or {}))
    ref.set_timesteps(steps, **(set_kwargs or {}))
    assert ours.timesteps.dtype == ref.timesteps.dtype
    assert torch.equal(ours.timesteps, ref.timesteps), (ours.timesteps, ref.timesteps)
    if hasattr(ref, "sigmas"):
        assert ours.sigmas.dtype == ref.sigmas.dtype
        assert torch.equal(ours.sigmas, ref.sigmas)
    assert float(ours.init_noise_sigma) == float(ref.init_noise_sigma)
    assert ours.order == ref.order

    latents = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    x_ours, x_ref = latents.clone(), latents.clone()
    rows = SHAPE[0] if per_row else None
    g_ours, g_ref = (generators(7, rows), generators(7, rows)) if seeded else (None, None)
    channels = SHAPE[1] if learned_channels else None
    for i, t in enumerate(ours.timesteps):
        extra = dict(step_kwargs or {})
        if seeded:
            out_ours = ours.step(fake_model(x_ours, t, channels), t, x_ours, generator=g_ours, **extra)
            out_ref = ref.step(fake_model(x_ref, t, channels), t, x_ref, generator=g_ref, **extra)
        else:
            out_ours = ours.step(fake_model(x_ours, t, channels), t, x_ours, **extra)
            out_ref = ref.step(fake_model(x_ref, t, channels), t, x_ref, **extra)
        assert type(out_ours).__name__ == type(out_ref).__name__
        for field in ("prev_sample", "pred_original_sample", "denoised"):
            if getattr(out_ref, field, None) is not None:
                assert close(getattr(out_ours, field), getattr(out_ref, field)) <= TOL, (name, field, i, int(t))
        x_ours, x_ref = out_ours.prev_sample, out_ref.prev_sample
    assert torch.isfinite(x_ours).all()
    return len(ours.timesteps)


# --- full loops ---------------------------------------------------------------------------------------------------
LOOPS = [
    # DDIM: SD's usual setup, each spacing and prediction type, stochastic DDIM, thresholding, zero-SNR.
    *[("DDIMScheduler", dict(SD, clip_sample=False, set_alpha_to_one=False, timestep_spacing=spacing,
                             prediction_type=prediction), 10, {}, {}, False)
      for spacing in ("leading", "linspace", "trailing") for prediction in ("epsilon", "v_prediction")],
    ("DDIMScheduler", dict(SD, prediction_type="sample"), 12, {}, {"use_clipped_model_output": True}, False),
    ("DDIMScheduler", dict(SD, clip_sample=False), 15, {}, {"eta": 1.0}, True),
    ("DDIMScheduler", dict(SD, thresholding=True, sample_max_value=1.5), 10, {}, {}, False),
    ("DDIMScheduler", dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                           prediction_type="v_prediction"), 10, {}, {"eta": 0.5}, True),
    ("DDIMScheduler", dict(beta_schedule="squaredcos_cap_v2"), 10, {}, {}, False),
    # PNDM: SD 1.4's config, and the Runge-Kutta warm-up, per spacing.
    *[("PNDMScheduler", dict(SD, skip_prk_steps=skip, timestep_spacing=spacing), 10, {}, {}, False)
      for skip in (True, False) for spacing in ("leading", "linspace", "trailing")],
    ("PNDMScheduler", dict(SD, skip_prk_steps=True, prediction_type="v_prediction", set_alpha_to_one=True), 20,
     {}, {}, False),
    ("PNDMScheduler", dict(SD, skip_prk_steps=False, prediction_type="v_prediction"), 15, {}, {}, False),
    # DDPM: noise on every step but the last.
    *[("DDPMScheduler", dict(SD, timestep_spacing=spacing, prediction_type=prediction), 10, {}, {}, True)
      for spacing, prediction in (("leading", "epsilon"), ("linspace", "v_prediction"), ("trailing", "sample"))],
    *[("DDPMScheduler", dict(SD, variance_type=kind, clip_sample=False), 10, {}, {}, True)
      for kind in ("fixed_large", "fixed_small_log")],
    ("DDPMScheduler", dict(beta_schedule="sigmoid", thresholding=True), 10, {}, {}, True),
    ("DDPMScheduler", dict(SD), None, {"timesteps": [999, 800, 600, 300, 100, 5, 0]}, {}, True),
    # LCM: 1-8 steps, img2img strength, custom timesteps, another distillation length.
    ("LCMScheduler", dict(), 4, {}, {}, True),
    ("LCMScheduler", dict(prediction_type="v_prediction", timestep_spacing="trailing"), 8, {}, {}, True),
    ("LCMScheduler", dict(), 6, {"strength": 0.5}, {}, True),
    ("LCMScheduler", dict(), None, {"timesteps": [999, 759, 499, 259]}, {}, True),
    ("LCMScheduler", dict(original_inference_steps=20, clip_sample=True), 3, {}, {}, True),
    # DPM-Solver: every algorithm, order and solver type of SD's set...
    *[("DPMSolverMultistepScheduler", dict(SD, algorithm_type=algorithm, solver_order=order, solver_type=solver,
                                           **({} if "++" in algorithm else {"final_sigmas_type": "sigma_min"})),
       20, {}, {}, algorithm.startswith("sde"))
      for algorithm in ("dpmsolver++", "sde-dpmsolver++", "dpmsolver")
      for order in (1, 2, 3) for solver in ("midpoint", "heun")],
    ("DPMSolverMultistepScheduler", dict(SD, algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min"), 10,
     {}, {}, True),
    # ... and its sigma schedules, spacings and end-of-run options.
    *[("DPMSolverMultistepScheduler", dict(SD, timestep_spacing=spacing, prediction_type="v_prediction",
                                           **{rule: True}), 10, {}, {}, False)
      for spacing in ("leading", "linspace", "trailing")
      for rule in ("use_karras_sigmas", "use_lu_lambdas", "use_exponential_sigmas")],
    ("DPMSolverMultistepScheduler", dict(SD, use_karras_sigmas=True, algorithm_type="sde-dpmsolver++"), 25, {}, {},
     True),
    ("DPMSolverMultistepScheduler", dict(SD, use_beta_sigmas=True), 10, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD, euler_at_final=True), 25, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD, lower_order_final=False, solver_order=3), 12, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD, final_sigmas_type="sigma_min", use_karras_sigmas=True), 12, {}, {},
     False),
    ("DPMSolverMultistepScheduler", dict(SD, thresholding=True, prediction_type="sample"), 12, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD, thresholding=True, algorithm_type="dpmsolver",
                                         final_sigmas_type="sigma_min"), 12, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                                         prediction_type="v_prediction"), 12, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD, lambda_min_clipped=-5.1), 12, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction"),
     12, {}, {}, False),
    ("DPMSolverMultistepScheduler", dict(SD), None, {"timesteps": [999, 700, 500, 250, 50]}, {}, False),
]


@pytest.mark.parametrize("name,config,steps,set_kwargs,step_kwargs,seeded", LOOPS)
def test_loop_matches_diffusers(name, config, steps, set_kwargs, step_kwargs, seeded):
    count = run_loop(name, config, steps, set_kwargs, step_kwargs, seeded=seeded)
    assert count >= 3


@pytest.mark.parametrize("name,config,step_kwargs", [
    ("DDPMScheduler", dict(SD), {}),
    ("DDIMScheduler", dict(SD), {"eta": 1.0}),
    ("LCMScheduler", dict(), {}),
    ("DPMSolverMultistepScheduler", dict(SD, algorithm_type="sde-dpmsolver++"), {}),
])
def test_one_generator_per_image_matches_diffusers(name, config, step_kwargs):
    run_loop(name, config, 8, step_kwargs=step_kwargs, seeded=True, per_row=True)


@pytest.mark.parametrize("name,config", [
    ("DDPMScheduler", dict(SD, thresholding=True)), ("DDIMScheduler", dict(SD, thresholding=True)),
    ("PNDMScheduler", dict(SD, skip_prk_steps=True)), ("LCMScheduler", dict(thresholding=True)),
    ("DPMSolverMultistepScheduler", dict(SD, algorithm_type="sde-dpmsolver++", thresholding=True)),
])
def test_half_precision_samples_keep_their_dtype_like_diffusers(name, config):
    """bf16 latents: thresholding upcasts internally, DPM-Solver computes in float32; outputs come back in bf16."""
    ours, ref = both(name, **config)
    ours.set_timesteps(5)
    ref.set_timesteps(5)
    x_ours = x_ref = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    for t in ours.timesteps:
        x_ours = ours.step(fake_model(x_ours, t), t, x_ours, **seeded(name, int(t))).prev_sample
        x_ref = ref.step(fake_model(x_ref, t), t, x_ref, **seeded(name, int(t))).prev_sample
        assert x_ours.dtype == x_ref.dtype
        assert torch.equal(x_ours, x_ref)


@pytest.mark.parametrize("variance_type", ["learned", "learned_range"])
def test_ddpm_learned_variance_matches_diffusers(variance_type):
    run_loop("DDPMScheduler", dict(SD, variance_type=variance_type), 10, seeded=True, learned_channels=True)


def test_ddpm_without_set_timesteps_walks_every_training_step_like_diffusers():
    ours, ref = both("DDPMScheduler", **SD)
    assert torch.equal(ours.timesteps, ref.timesteps) and ours.timesteps.dtype == ref.timesteps.dtype
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    for t in (torch.tensor(999), torch.tensor(1), torch.tensor(0)):
        a = ours.step(fake_model(x, t), t, x, generator=torch.Generator().manual_seed(5)).prev_sample
        b = ref.step(fake_model(x, t), t, x, generator=torch.Generator().manual_seed(5)).prev_sample
        assert close(a, b) <= TOL


def test_ddim_explicit_variance_noise_matches_diffusers():
    ours, ref = both("DDIMScheduler", **SD)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    t = ours.timesteps[3]
    a = ours.step(fake_model(x, t), t, x, eta=0.7, variance_noise=noise)
    b = ref.step(fake_model(x, t), t, x, eta=0.7, variance_noise=noise)
    assert close(a.prev_sample, b.prev_sample) <= TOL
    prev, x0 = ours.step(fake_model(x, t), t, x, eta=0.7, variance_noise=noise, return_dict=False)
    assert torch.equal(prev, a.prev_sample) and torch.equal(x0, a.pred_original_sample)
    assert a[0] is a.prev_sample and a["pred_original_sample"] is a.pred_original_sample


def test_pndm_schedule_and_warmup_counts():
    """SD 1.4 runs 10 PNDM steps as 11 model calls; the Runge-Kutta warm-up takes 12 calls for 3 steps."""
    skip, prk = PNDMScheduler(**SD, skip_prk_steps=True), PNDMScheduler(**SD)
    skip.set_timesteps(10)
    prk.set_timesteps(10)
    assert skip.timesteps.tolist() == [901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert prk.timesteps.tolist()[:13] == [901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601]
    assert len(prk.timesteps) == 12 + 7


def test_set_timesteps_twice_restarts_the_run():
    for name, config in (("PNDMScheduler", dict(SD, skip_prk_steps=True)), ("DPMSolverMultistepScheduler", SD),
                         ("LCMScheduler", {})):
        ours, ref = both(name, **config)
        for scheduler in (ours, ref):
            scheduler.set_timesteps(5)
            x = torch.ones(SHAPE)
            for t in scheduler.timesteps[:3]:
                x = scheduler.step(fake_model(x, t), t, x, **seeded(name, 0)).prev_sample
        # A second run must not see the first one's history (stored outputs, step index, warm-up counter).
        ours.set_timesteps(7)
        ref.set_timesteps(7)
        x_ours = x_ref = torch.full(SHAPE, 0.5)
        for t in ours.timesteps:
            x_ours = ours.step(fake_model(x_ours, t), t, x_ours, **seeded(name, 1)).prev_sample
            x_ref = ref.step(fake_model(x_ref, t), t, x_ref, **seeded(name, 1)).prev_sample
        assert close(x_ours, x_ref) <= TOL, name


# --- add_noise, get_velocity, begin_index -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "LCMScheduler"])
def test_add_noise_and_velocity_match_diffusers(name):
    ours, ref = both(name, **SD)
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    timesteps = torch.tensor([10, 900])
    assert torch.equal(ours.add_noise(x0, noise, timesteps), ref.add_noise(x0, noise, timesteps))
    if hasattr(ref, "get_velocity"):
        assert torch.equal(ours.get_velocity(x0, noise, timesteps), ref.get_velocity(x0, noise, timesteps))


def test_dpm_add_noise_and_begin_index_match_diffusers():
    ours, ref = both("DPMSolverMultistepScheduler", **SD, use_karras_sigmas=True)
    ours.set_timesteps(20)
    ref.set_timesteps(20)
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    t = ours.timesteps[[5, 9]]
    assert torch.equal(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
    # img2img: start at step 8 of 20.
    for scheduler in (ours, ref):
        scheduler.set_timesteps(20)
        scheduler.set_begin_index(8)
    assert ours.begin_index == 8 and ours.step_index is None
    start = ours.timesteps[8:9].repeat(SHAPE[0])
    x_ours, x_ref = ours.add_noise(x0, noise, start), ref.add_noise(x0, noise, start)
    assert torch.equal(x_ours, x_ref)
    for t in ours.timesteps[8:]:
        x_ours = ours.step(fake_model(x_ours, t), t, x_ours).prev_sample
        x_ref = ref.step(fake_model(x_ref, t), t, x_ref).prev_sample
        assert ours.step_index == ref.step_index
    assert close(x_ours, x_ref) <= TOL


# --- configs ------------------------------------------------------------------------------------------------------
def _same_config(ours, ref, defaults: bool = True) -> None:
    """Every field equal, hidden ones (another scheduler's) included; the defaults list in any order; the version
    stamp aside. A saved file carries no defaults list, so configs read from files are compared without it."""
    def fields(config) -> dict:
        kept = {k: v for k, v in config.items() if k not in ("_diffusers_version", "_use_default_values")}
        if defaults:
            kept["_use_default_values"] = sorted(config.get("_use_default_values", []))
        return kept

    assert fields(ours.config) == fields(ref.config)


@pytest.mark.parametrize("target", list(OURS))
def test_from_config_of_sd14_pndm_config_matches_diffusers(target):
    overrides = {"use_karras_sigmas": True} if target == "DPMSolverMultistepScheduler" else {}
    ours = OURS[target].from_config(SD14_SCHEDULER_CONFIG, **overrides)
    ref = getattr(diffusers, target).from_config(SD14_SCHEDULER_CONFIG, **overrides)
    _same_config(ours, ref)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    assert torch.equal(ours.timesteps, ref.timesteps)


@pytest.mark.parametrize("source", ["DDIMScheduler", "DPMSolverMultistepScheduler", "LCMScheduler",
                                    "UniPCMultistepScheduler", "EulerDiscreteScheduler"])
@pytest.mark.parametrize("target", list(OURS))
def test_swapping_configs_between_schedulers_matches_diffusers(source, target):
    """A config written by one diffusers scheduler (SD settings) builds the same config in the other, both ways."""
    source_config = dict(getattr(diffusers, source)(**SD).config)
    ours = OURS[target].from_config(source_config)
    ref = getattr(diffusers, target).from_config(source_config)
    _same_config(ours, ref)


def test_unipc_solver_names_map_to_dpm_solver_ones():
    config = dict(diffusers.UniPCMultistepScheduler(**SD, solver_type="bh1").config)
    ours = DPMSolverMultistepScheduler.from_config(config)
    assert ours.config.solver_type == "midpoint"
    assert DPMSolverMultistepScheduler(algorithm_type="deis").config.algorithm_type == "dpmsolver++"
    assert DPMSolverMultistepScheduler(solver_type="logrho").config.solver_type == "midpoint"


@pytest.mark.parametrize("name", list(OURS))
def test_saved_folder_loads_in_diffusers_and_back(name, tmp_path):
    config = dict(SD, prediction_type="v_prediction", timestep_spacing="trailing")
    ours = OURS[name](**config)
    ours.save_pretrained(tmp_path / "ours")
    written = json.loads((tmp_path / "ours" / "scheduler_config.json").read_text())
    assert written["_class_name"] == name and written["prediction_type"] == "v_prediction"
    ref = getattr(diffusers, name).from_pretrained(tmp_path / "ours")
    assert {k: v for k, v in ours.config.items() if not k.startswith("_")} == {
        k: v for k, v in ref.config.items() if not k.startswith("_")}

    getattr(diffusers, name)(**config).save_pretrained(tmp_path / "ref")
    back = OURS[name].from_pretrained(tmp_path / "ref")
    _same_config(back, getattr(diffusers, name).from_pretrained(tmp_path / "ref"), defaults=False)
    back.set_timesteps(6)
    ref.set_timesteps(6)
    assert torch.equal(back.timesteps, ref.timesteps)


@pytest.mark.parametrize("name", list(OURS))
def test_compatibles_list_every_hugkit_scheduler(name):
    scheduler = OURS[name]()
    assert sorted(scheduler._compatibles) == sorted(KARRAS_DIFFUSION_SCHEDULERS)
    assert name in {cls.__name__ for cls in scheduler.compatibles}
    assert len(scheduler) == 1000 and scheduler.init_noise_sigma == 1.0


# --- bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["DDIMScheduler", "PNDMScheduler", "LCMScheduler", "DPMSolverMultistepScheduler"])
def test_step_before_set_timesteps_is_a_clear_error(name):
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="set_timesteps"):
        OURS[name]().step(x, 999, x)


@pytest.mark.parametrize("name", list(OURS))
@pytest.mark.parametrize("steps", [0, -3, 1001, 2.5])
def test_bad_step_counts_are_clear_errors(name, steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        OURS[name]().set_timesteps(steps)


def test_lcm_step_count_beyond_distillation_schedule():
    with pytest.raises(ValueError, match="original_inference_steps"):
        LCMScheduler().set_timesteps(60)


@pytest.mark.parametrize("name", list(OURS))
@pytest.mark.parametrize("field,value,valid", [
    ("beta_schedule", "cosine", "scaled_linear"),
    ("prediction_type", "noise", "epsilon"),
    ("timestep_spacing", "uniform", "trailing"),
])
def test_unknown_config_values_name_the_valid_ones(name, field, value, valid):
    with pytest.raises(ValueError, match=valid):
        OURS[name](**{field: value})


@pytest.mark.parametrize("field,value,valid", [
    ("algorithm_type", "dpm++", "sde-dpmsolver"),
    ("solver_type", "euler", "heun"),
    ("solver_order", 4, "3"),
    ("final_sigmas_type", "one", "sigma_min"),
])
def test_unknown_dpm_solver_options_name_the_valid_ones(field, value, valid):
    with pytest.raises(ValueError, match=valid):
        DPMSolverMultistepScheduler(**{field: value})


def test_other_bad_input_is_explained():
    with pytest.raises(ValueError, match="final_sigmas_type='sigma_min'"):
        DPMSolverMultistepScheduler(algorithm_type="dpmsolver")
    with pytest.raises(ValueError, match="only one of"):
        DPMSolverMultistepScheduler(use_karras_sigmas=True, use_exponential_sigmas=True)
    with pytest.raises(ValueError, match="cannot be combined"):
        DPMSolverMultistepScheduler(use_karras_sigmas=True).set_timesteps(timesteps=[999, 500])
    with pytest.raises(ValueError, match="exactly one"):
        DPMSolverMultistepScheduler().set_timesteps()
    with pytest.raises(ValueError, match="descending"):
        DDPMScheduler().set_timesteps(timesteps=[10, 500])
    ddim = DDIMScheduler()
    ddim.set_timesteps(10)
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="not both"):
        ddim.step(x, 901, x, eta=1.0, generator=torch.Generator(), variance_noise=x)
    pndm = PNDMScheduler()
    pndm.set_timesteps(10)
    with pytest.raises(ValueError, match="Runge-Kutta"):
        pndm.step_plms(x, 901, x)
    sde = DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver", solver_order=3, final_sigmas_type="sigma_min")
    sde.set_timesteps(10)
    with pytest.raises(ValueError, match="no third-order"):
        for t in sde.timesteps:
            x = sde.step(fake_model(x, t), t, x).prev_sample
