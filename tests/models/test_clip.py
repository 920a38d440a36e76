"""hugkit's CLIP models vs transformers on the same tiny random checkpoints: text (causal + padding mask, EOS
pooling, every hidden state), vision (class-token pooling, resized position embeddings), the projection models,
CLIPModel, configs, both checkpoint layouts, and bad input."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

import transformers
from conftest import assert_close
from hugkit.auto import AutoConfig, AutoModel
from hugkit.models import clip

TEXT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=77, bos_token_id=97, eos_token_id=98, pad_token_id=1, projection_dim=16)
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=30,
              patch_size=2, projection_dim=16)
BOS, EOS = 97, 98

# Right-padded as the CLIP tokenizer pads (EOS repeated after the text), three different lengths.
IDS = torch.tensor([
    [BOS, 5, 6, 7, EOS, EOS, EOS, EOS],
    [BOS, 8, 9, 10, 11, 12, 13, EOS],
    [BOS, 14, EOS, EOS, EOS, EOS, EOS, EOS],
])
MASK = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0], [1] * 8, [1, 1, 1, 0, 0, 0, 0, 0]])


def _save(model, directory):
    with torch.no_grad():  # transformers zero-initialises biases: random ones catch a lost bias
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.05)
    model.save_pretrained(directory)
    return directory


def _reference(cls_name: str, config, directory):
    torch.manual_seed(0)
    _save(getattr(transformers, cls_name)(config), directory)
    return getattr(transformers, cls_name).from_pretrained(directory, attn_implementation="eager").eval()


def _pixels(batch: int = 2, height: int = 30, width: int = 30, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _compare(mine, theirs, fields, hidden=True, attentions=True):
    for name in fields:
        assert_close(getattr(mine, name), getattr(theirs, name), what=name)
    if hidden:
        assert len(mine.hidden_states) == len(theirs.hidden_states) == 3  # embeddings + 2 layers
        for i, (a, b) in enumerate(zip(mine.hidden_states, theirs.hidden_states)):
            assert_close(a, b, what=f"hidden_states[{i}]")
    if attentions:
        assert len(mine.attentions) == len(theirs.attentions) == 2
        for i, (a, b) in enumerate(zip(mine.attentions, theirs.attentions)):
            assert_close(a, b, atol=1e-5, what=f"attentions[{i}]")


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "gelu"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_text_model_matches_transformers(tmp_path, hidden_act, with_mask, caplog):
    reference = _reference("CLIPTextModel", transformers.CLIPTextConfig(**TEXT, hidden_act=hidden_act), tmp_path)
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = AutoModel.from_pretrained(tmp_path)  # model_type clip_text_model, saved by transformers 5
    assert type(model) is clip.CLIPTextModel and not caplog.records
    kwargs = {"attention_mask": MASK} if with_mask else {}
    with torch.inference_mode():
        expected = reference(IDS, output_hidden_states=True, output_attentions=True, **kwargs)
        full = model(IDS, output_hidden_states=True, output_attentions=True, **kwargs)
        plain = model(IDS, **kwargs)
        as_tuple = model(IDS, return_dict=False, **kwargs)
        # clip_skip as Stable Diffusion applies it: final_layer_norm(hidden_states[-2]) through .text_model
        skipped = model.text_model.final_layer_norm(full.hidden_states[-2])
        expected_skipped = reference.final_layer_norm(expected.hidden_states[-2])
    _compare(full, expected, ("last_hidden_state", "pooler_output"))
    assert_close(plain.last_hidden_state, expected.last_hidden_state, what="sdpa last_hidden_state")
    assert plain.hidden_states is None and plain.attentions is None
    # pooled = final state at the first EOS (padding repeats EOS)
    assert torch.equal(plain.pooler_output, plain.last_hidden_state[torch.arange(3), torch.tensor([4, 7, 2])])
    assert len(as_tuple) == 2 and torch.equal(as_tuple[1], plain.pooler_output)
    assert_close(skipped, expected_skipped, what="clip_skip")


def test_left_padding_matches_at_real_tokens(tmp_path):
    reference = _reference("CLIPTextModel", transformers.CLIPTextConfig(**TEXT), tmp_path)
    model = clip.CLIPTextModel.from_pretrained(tmp_path)
    ids = torch.tensor([[1, 1, BOS, 5, 6, EOS], [BOS, 7, 8, 9, 10, EOS]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6])
    with torch.inference_mode():
        expected = reference(ids, attention_mask=mask)
        out = model(ids, attention_mask=mask)
    assert torch.isfinite(out.last_hidden_state).all()  # fully masked query rows stay finite
    assert_close(out.last_hidden_state[mask.bool()], expected.last_hidden_state[mask.bool()], what="real tokens")
    assert_close(out.pooler_output, expected.pooler_output, what="pooler_output")


def test_legacy_eos_token_id_pools_at_highest_id(tmp_path):
    """Configs from before transformers' fix say eos_token_id=2: the pooled token is the argmax of the ids."""
    reference = _reference("CLIPTextModel", transformers.CLIPTextConfig(**{**TEXT, "eos_token_id": 2}), tmp_path)
    model = clip.CLIPTextModel.from_pretrained(tmp_path)
    ids = torch.tensor([[BOS, 5, 60, 7, EOS, 3], [BOS, 8, 2, 9, 10, 11]])  # an id 2 in the middle must not be picked
    with torch.inference_mode():
        expected, out = reference(ids), model(ids)
    assert_close(out.pooler_output, expected.pooler_output, what="pooler_output")
    assert torch.equal(out.pooler_output, out.last_hidden_state[torch.arange(2), torch.tensor([4, 0])])


def test_text_model_with_projection(tmp_path):
    reference = _reference("CLIPTextModelWithProjection", transformers.CLIPTextConfig(**TEXT), tmp_path)
    model = clip.CLIPTextModelWithProjection.from_pretrained(tmp_path)
    with torch.inference_mode():
        expected = reference(IDS, attention_mask=MASK, output_hidden_states=True, output_attentions=True)
        out = model(IDS, attention_mask=MASK, output_hidden_states=True, output_attentions=True)
        as_tuple = model(IDS, attention_mask=MASK, return_dict=False)
    assert out.text_embeds.shape == (3, 16)
    _compare(out, expected, ("text_embeds", "last_hidden_state"))
    assert len(as_tuple) == 2  # SDXL reads [0] as the pooled embeds
    assert_close(as_tuple[0], expected.text_embeds, what="tuple[0]")


@pytest.mark.parametrize("cls_name", ["CLIPVisionModel", "CLIPVisionModelWithProjection"])
def test_vision_models_match_transformers(tmp_path, cls_name):
    reference = _reference(cls_name, transformers.CLIPVisionConfig(**VISION), tmp_path)
    model = getattr(clip, cls_name).from_pretrained(tmp_path)
    pixels = _pixels()
    with torch.inference_mode():
        expected = reference(pixels, output_hidden_states=True, output_attentions=True)
        out = model(pixels, output_hidden_states=True, output_attentions=True)
        resized_expected = reference(_pixels(2, 40, 36), interpolate_pos_encoding=True)
        resized = model(_pixels(2, 40, 36), interpolate_pos_encoding=True)
    fields = ("last_hidden_state", "pooler_output") if cls_name == "CLIPVisionModel" else ("last_hidden_state", "image_embeds")
    _compare(out, expected, fields)
    assert out.last_hidden_state.shape == (2, 1 + 15 * 15, 32)
    for name in fields:
        assert_close(getattr(resized, name), getattr(resized_expected, name), what=f"resized {name}")


def test_clip_model_matches_transformers(tmp_path):
    config = transformers.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)
    reference = _reference("CLIPModel", config, tmp_path)
    model = AutoModel.from_pretrained(tmp_path)
    assert type(model) is clip.CLIPModel
    pixels = _pixels(3)
    with torch.inference_mode():
        expected = reference(input_ids=IDS, pixel_values=pixels, attention_mask=MASK, return_loss=True)
        out = model(input_ids=IDS, pixel_values=pixels, attention_mask=MASK, return_loss=True)
        text_features = model.get_text_features(IDS, attention_mask=MASK).pooler_output
        image_features = model.get_image_features(pixels).pooler_output
        expected_text = reference.get_text_features(IDS, attention_mask=MASK).pooler_output
        expected_image = reference.get_image_features(pixels).pooler_output
    for name in ("loss", "logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
        assert_close(getattr(out, name), getattr(expected, name), what=name)
    assert_close(out.vision_model_output.pooler_output, expected.vision_model_output.pooler_output, what="vision pooled")
    assert_close(text_features, expected_text, what="get_text_features")
    assert_close(image_features, expected_image, what="get_image_features")
    assert len(out.to_tuple()) == len(expected.to_tuple()) == 7


def test_sub_models_load_from_a_full_clip_checkpoint(tmp_path):
    """As in transformers, CLIPTextModel / CLIPVisionModelWithProjection read their part of a CLIPModel folder."""
    config = transformers.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)
    reference = _reference("CLIPModel", config, tmp_path)
    text = clip.CLIPTextModel.from_pretrained(tmp_path)
    vision = clip.CLIPVisionModelWithProjection.from_pretrained(tmp_path)
    assert text.config.hidden_size == 32 and text.config.eos_token_id == EOS
    with torch.inference_mode():
        assert_close(text(IDS).last_hidden_state, reference.text_model(IDS).last_hidden_state, what="text")
        assert_close(vision(_pixels()).image_embeds, reference.get_image_features(_pixels()).pooler_output, what="image")


def test_both_checkpoint_layouts_load_and_save_loads_in_transformers(tmp_path):
    """Stable Diffusion's text_encoder keys are text_model.*; transformers 5 saves CLIPTextModel without it."""
    reference = _reference("CLIPTextModel", transformers.CLIPTextConfig(**TEXT), tmp_path / "flat")
    flat = load_file(tmp_path / "flat" / "model.safetensors")
    assert all(not key.startswith("text_model.") for key in flat)
    nested_dir = tmp_path / "nested"
    nested_dir.mkdir()
    (nested_dir / "config.json").write_text((tmp_path / "flat" / "config.json").read_text())
    save_file({f"text_model.{k}": v for k, v in flat.items()}, nested_dir / "model.safetensors")
    with torch.inference_mode():
        expected = reference(IDS).last_hidden_state
        for folder in (tmp_path / "flat", nested_dir):
            assert torch.equal(clip.CLIPTextModel.from_pretrained(folder)(IDS).last_hidden_state,
                               clip.CLIPTextModel.from_pretrained(tmp_path / "flat")(IDS).last_hidden_state)
        model = clip.CLIPTextModel.from_pretrained(nested_dir)
        assert_close(model(IDS).last_hidden_state, expected, what="nested layout")
        model.save_pretrained(tmp_path / "saved")
        assert set(load_file(tmp_path / "saved" / "model.safetensors")) == {f"text_model.{k}" for k in flat}
        back = transformers.CLIPTextModel.from_pretrained(tmp_path / "saved").eval()
        assert_close(back(IDS).last_hidden_state, expected, what="hugkit-saved, read by transformers")


def test_configs_round_trip_and_legacy_dict_overrides(tmp_path):
    config = transformers.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    # The safety checker's config.json also has *_config_dict entries, which win (transformers' rule).
    data["vision_config_dict"] = {"num_hidden_layers": 1, "patch_size": 3}
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded = AutoConfig.from_pretrained(tmp_path)
    expected = transformers.CLIPConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, clip.CLIPConfig) and isinstance(loaded.vision_config, clip.CLIPVisionConfig)
    for name in ("num_hidden_layers", "patch_size", "image_size", "hidden_size", "hidden_act"):
        assert getattr(loaded.vision_config, name) == getattr(expected.vision_config, name), name
    assert loaded.text_config.eos_token_id == expected.text_config.eos_token_id == EOS
    assert loaded.projection_dim == 16 and loaded.logit_scale_init_value == pytest.approx(2.6592)
    saved = loaded.to_dict()
    assert "vision_config_dict" not in saved and saved["vision_config"]["patch_size"] == 3
    assert saved["vision_config"]["model_type"] == "clip_vision_model"
    assert clip.CLIPConfig.from_dict(saved).to_dict() == saved
    defaults = clip.CLIPTextConfig()
    reference_defaults = transformers.CLIPTextConfig()
    for name in ("vocab_size", "hidden_size", "max_position_embeddings", "hidden_act", "eos_token_id", "pad_token_id"):
        assert getattr(defaults, name) == getattr(reference_defaults, name), name


def test_bad_inputs_raise_clear_errors(tmp_path):
    torch.manual_seed(0)
    text = clip.CLIPTextModel(clip.CLIPTextConfig(**TEXT)).eval()
    vision = clip.CLIPVisionModel(clip.CLIPVisionConfig(**VISION)).eval()
    with pytest.raises(ValueError, match=r"ids from 5 to 99.*99 tokens"):
        text(torch.tensor([[5, 99]]))
    with pytest.raises(ValueError, match="from -1"):
        text(torch.tensor([[-1, 5]]))
    with pytest.raises(ValueError, match="at most 77"):
        text(torch.ones(1, 78, dtype=torch.long))
    with pytest.raises(ValueError, match="needs input_ids"):
        text()
    with pytest.raises(TypeError, match="integer token ids"):
        text(torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"takes 30x30 images, found 32x30.*interpolate_pos_encoding"):
        vision(torch.randn(1, 3, 32, 30))
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        vision(torch.randn(3, 30, 30))
    with pytest.raises(TypeError, match="CLIPImageProcessor"):
        vision([[0.0]])
    with pytest.raises(ValueError, match="divisible"):
        clip.CLIPTextConfig(hidden_size=30, num_attention_heads=4)
