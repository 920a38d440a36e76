"""VITS / MMS-TTS parity with transformers: tiny random checkpoints saved by transformers, loaded by hugkit, run
under the same seed (same random draws in the same order) -> the same waveform, lengths and spectrogram."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import transformers
from hugkit import AutoConfig, AutoModel, AutoModelForTextToWaveform
from hugkit.models.vits import VitsConfig, VitsModel

TINY = dict(
    vocab_size=14, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, ffn_dim=24, window_size=2,
    flow_size=8, spectrogram_bins=9, upsample_initial_channel=16, upsample_rates=[2, 3], upsample_kernel_sizes=[4, 6],
    resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 2]], duration_predictor_filter_channels=12,
    prior_encoder_num_wavenet_layers=2, posterior_encoder_num_wavenet_layers=2, duration_predictor_num_flows=2,
    depth_separable_num_layers=2, duration_predictor_flow_bins=6,
)
VARIANTS = {
    "stochastic": {},
    "deterministic": {"use_stochastic_duration_prediction": False},
    "multi-speaker": {"num_speakers": 3, "speaker_embedding_size": 4},
    "deterministic-multi-speaker": {"use_stochastic_duration_prediction": False, "num_speakers": 2, "speaker_embedding_size": 3},
}
TOL = 1e-4


def _perturb(model: torch.nn.Module) -> None:
    """transformers initialises some parameters to exact values (zero affine flows, g = ||v||); move them so the
    test sees every parameter do its job."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("translate", "log_scale")):
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
            elif name.endswith("original0"):  # weight-norm magnitudes
                parameter.mul_(0.5 + torch.rand(parameter.shape, generator=generator))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{variant: (transformers model, folder)}"""
    made = {}
    for variant, overrides in VARIANTS.items():
        torch.manual_seed(0)
        model = transformers.VitsModel(transformers.VitsConfig(**TINY, **overrides)).eval()
        _perturb(model)
        folder = tmp_path_factory.mktemp(f"vits-{variant}")
        model.save_pretrained(folder)
        made[variant] = (model, folder)
    return made


def _inputs(padded: bool = True):
    ids = torch.tensor([[0, 3, 0, 5, 0, 7, 0, 2, 0, 9, 0], [0, 4, 0, 6, 0, 1, 0, 13, 0, 0, 0], [0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    mask = torch.tensor([[1] * 11, [1] * 9 + [0] * 2, [1] * 3 + [0] * 8])
    if not padded:
        return {"input_ids": ids[:1]}
    return {"input_ids": ids, "attention_mask": mask}


def _run(model, seed: int = 3, **kwargs):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(**kwargs)


def _check(reference, output) -> None:
    assert output.waveform.shape == reference.waveform.shape
    assert torch.equal(output.sequence_lengths, reference.sequence_lengths)
    assert output.spectrogram.shape == reference.spectrogram.shape
    assert (output.spectrogram - reference.spectrogram).abs().max() <= TOL
    assert (output.waveform - reference.waveform).abs().max() <= TOL
    assert output.waveform.abs().max() > 0


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("padded", [False, True])
def test_waveform_parity(checkpoints, variant, padded):
    reference, folder = checkpoints[variant]
    model = AutoModel.from_pretrained(folder)
    assert type(model) is VitsModel
    extra = {"speaker_id": 1} if "multi" in variant else {}
    inputs = _inputs(padded)
    _check(_run(reference, **inputs, **extra), _run(model, **inputs, **extra))


@pytest.mark.parametrize("ids", [[[5]], [[0, 3]], [[0, 3, 0]]])
def test_inputs_shorter_than_the_attention_window(checkpoints, ids):
    reference, folder = checkpoints["stochastic"]
    model = VitsModel.from_pretrained(folder)
    inputs = {"input_ids": torch.tensor(ids)}
    _check(_run(reference, **inputs), _run(model, **inputs))


def test_multi_speaker_without_speaker_id_and_each_speaker(checkpoints):
    reference, folder = checkpoints["multi-speaker"]
    model = VitsModel.from_pretrained(folder)
    _check(_run(reference, **_inputs()), _run(model, **_inputs()))
    for speaker in range(3):
        _check(_run(reference, **_inputs(), speaker_id=speaker), _run(model, **_inputs(), speaker_id=speaker))
    # hugkit extra: one speaker per row (transformers takes one speaker for the whole batch)
    per_row = _run(model, **_inputs(), speaker_id=torch.tensor([2, 2, 2]))
    _check(_run(model, **_inputs(), speaker_id=2), per_row)


@pytest.mark.parametrize("variant", ["stochastic", "deterministic"])
def test_synthesis_controls_match_transformers(checkpoints, variant):
    reference, folder = checkpoints[variant]
    model = VitsModel.from_pretrained(folder)
    inputs = _inputs()
    _check(_run(reference, **inputs, speaking_rate=1.7), _run(model, **inputs, speaking_rate=1.7))
    slow = _run(model, **inputs, speaking_rate=0.5)
    normal = _run(model, **inputs).sequence_lengths
    assert (slow.sequence_lengths >= normal).all() and slow.sequence_lengths.sum() > normal.sum()
    # Settable on the model (transformers' attributes) and read from the config.
    for name, value in (("noise_scale", 0.3), ("noise_scale_duration", 1.5), ("speaking_rate", 1.3)):
        saved = getattr(reference, name)
        setattr(reference, name, value)
        setattr(model, name, value)
        assert getattr(model.config, name) == value
        try:
            _check(_run(reference, **inputs), _run(model, **inputs))
        finally:
            setattr(reference, name, saved)
            setattr(model, name, saved)
    # Config overrides at load time reach the same place.
    noisy = VitsModel.from_pretrained(folder, noise_scale=0.1)
    assert noisy.noise_scale == 0.1
    default = reference.noise_scale
    reference.noise_scale = 0.1
    try:
        _check(_run(reference, **inputs), _run(noisy, **inputs))
    finally:
        reference.noise_scale = default


def test_per_call_noise_arguments_equal_setting_them(checkpoints):
    _, folder = checkpoints["stochastic"]
    model = VitsModel.from_pretrained(folder)
    per_call = _run(model, **_inputs(), noise_scale=0.2, noise_scale_duration=0.4)
    model.noise_scale, model.noise_scale_duration = 0.2, 0.4
    _check(per_call, _run(model, **_inputs()))
    first = model(**_inputs(), generator=torch.Generator().manual_seed(5))
    again = model(**_inputs(), generator=torch.Generator().manual_seed(5))
    assert torch.equal(first.waveform, again.waveform)


def test_spline_tails_match(tmp_path):
    """A small tail bound puts many duration latents outside the spline's range (identity there)."""
    torch.manual_seed(0)
    reference = transformers.VitsModel(transformers.VitsConfig(**TINY, duration_predictor_tail_bound=0.4)).eval()
    _perturb(reference)
    reference.save_pretrained(tmp_path)
    model = VitsModel.from_pretrained(tmp_path)
    for seed in range(3):
        _check(_run(reference, seed, **_inputs()), _run(model, seed, **_inputs()))


def test_hidden_states_and_attentions(checkpoints):
    reference, folder = checkpoints["stochastic"]
    model = VitsModel.from_pretrained(folder)
    flags = dict(output_hidden_states=True, output_attentions=True)
    theirs, ours = _run(reference, **_inputs(), **flags), _run(model, **_inputs(), **flags)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == TINY["num_hidden_layers"] + 1
    for a, b in zip(theirs.hidden_states, ours.hidden_states):
        assert (a - b).abs().max() <= TOL
    for a, b in zip(theirs.attentions, ours.attentions):
        assert a.shape == b.shape and (a - b).abs().max() <= TOL
    as_tuple = _run(model, **_inputs(), return_dict=False)
    assert len(as_tuple) == 3 and torch.equal(as_tuple[0], _run(model, **_inputs()).waveform)
    assert list(_run(model, **_inputs()).keys()) == ["waveform", "sequence_lengths", "spectrogram"]


def test_strict_load_uses_every_checkpoint_tensor(checkpoints):
    reference, folder = checkpoints["multi-speaker"]
    model = VitsModel.from_pretrained(folder)
    saved = load_file(str(folder / "model.safetensors"))
    ours = model.state_dict()
    assert set(ours) == set(saved) == set(reference.state_dict())
    for key, tensor in saved.items():
        if key.endswith("original1"):  # folded: g * v / ||v||
            magnitude = saved[key.replace("original1", "original0")]
            assert torch.allclose(ours[key], torch._weight_norm(tensor, magnitude, 0), atol=1e-7)
        elif not key.endswith("original0"):
            assert torch.equal(ours[key], tensor), key
    # A checkpoint with a tensor removed, or one too many, is refused with the names.
    broken = dict(saved)
    broken.pop("decoder.conv_post.weight")
    broken["flow.flows.0.extra"] = torch.zeros(1)
    save_file(broken, str(folder.parent / "broken.safetensors"))
    bad = folder.parent / "vits-broken"
    bad.mkdir(exist_ok=True)
    (folder.parent / "broken.safetensors").rename(bad / "model.safetensors")
    (bad / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ValueError, match="decoder.conv_post.weight") as info:
        VitsModel.from_pretrained(bad)
    assert "flow.flows.0.extra" in str(info.value)


def test_legacy_weight_g_weight_v_names(checkpoints, tmp_path):
    reference, folder = checkpoints["stochastic"]
    legacy = {}
    for key, tensor in load_file(str(folder / "model.safetensors")).items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        legacy[key] = tensor
    assert any(k.endswith("weight_g") for k in legacy)
    save_file(legacy, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    model = AutoModelForTextToWaveform.from_pretrained(tmp_path)
    _check(_run(reference, **_inputs()), _run(model, **_inputs()))
    # transformers reads the legacy names too, and agrees
    theirs = transformers.VitsModel.from_pretrained(tmp_path).eval()
    _check(_run(theirs, **_inputs()), _run(model, **_inputs()))


def test_save_pretrained_round_trips_to_transformers(checkpoints, tmp_path):
    _, folder = checkpoints["multi-speaker"]
    model = VitsModel.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    theirs, info = transformers.VitsModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _check(_run(theirs.eval(), **_inputs(), speaker_id=2), _run(model, **_inputs(), speaker_id=2))
    again = VitsModel.from_pretrained(tmp_path)
    _check(_run(model, **_inputs()), _run(again, **_inputs()))


def test_load_state_dict_of_a_transformers_model(checkpoints):
    reference, folder = checkpoints["stochastic"]
    config = AutoConfig.from_pretrained(folder)
    assert isinstance(config, VitsConfig)
    model = VitsModel(config).eval()
    model.load_state_dict(reference.state_dict())
    _check(_run(reference, **_inputs()), _run(model, **_inputs()))


def test_config_round_trip_and_validation(checkpoints, tmp_path):
    _, folder = checkpoints["stochastic"]
    config = VitsConfig.from_pretrained(folder)
    assert config.upsample_rates == TINY["upsample_rates"] and config.sampling_rate == 16000
    config.save_pretrained(tmp_path)
    theirs = transformers.VitsConfig.from_pretrained(tmp_path)
    assert theirs.flow_size == TINY["flow_size"] and theirs.resblock_dilation_sizes == TINY["resblock_dilation_sizes"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "vits"
    with pytest.raises(ValueError, match="upsample_kernel_sizes"):
        VitsConfig(upsample_rates=[2, 2], upsample_kernel_sizes=[4])
    with pytest.raises(ValueError, match="divisible"):
        VitsConfig(hidden_size=15, num_attention_heads=2)


def test_bad_inputs(checkpoints):
    _, folder = checkpoints["multi-speaker"]
    model = VitsModel.from_pretrained(folder)
    with pytest.raises(ValueError, match="empty"):
        model(input_ids=torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="range 0-2"):
        model(**_inputs(), speaker_id=3)
    with pytest.raises(ValueError, match="speaking_rate"):
        model(**_inputs(), speaking_rate=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(input_ids=[[1, 2, 3]])
    with pytest.raises(NotImplementedError, match="Training"):
        model(**_inputs(), labels=torch.zeros(3, 9, 4))
    single = VitsModel.from_pretrained(checkpoints["stochastic"][1])
    with pytest.raises(ValueError, match="single speaker"):
        single(**_inputs(), speaker_id=1)
