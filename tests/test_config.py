"""Configs keep unknown fields, round-trip through save_pretrained, and take overrides at load."""

import json

import pytest

from hugkit.config import PretrainedConfig


class ToyConfig(PretrainedConfig):
    model_type = "toy"
    defaults = {"hidden_size": 8, "n_layers": 2}
    attribute_map = {"num_hidden_layers": "n_layers"}


def test_unknown_fields_round_trip(tmp_path):
    source = {"model_type": "toy", "hidden_size": 16, "my_custom_field": [1, 2], "id2label": {"0": "NEG", "1": "POS"}}
    (tmp_path / "config.json").write_text(json.dumps(source))
    config = ToyConfig.from_pretrained(tmp_path)
    assert config.my_custom_field == [1, 2]
    assert config.id2label == {0: "NEG", 1: "POS"} and config.label2id == {"NEG": 0, "POS": 1}
    assert config.num_labels == 2
    config.save_pretrained(tmp_path / "copy")
    saved = json.loads((tmp_path / "copy" / "config.json").read_text())
    assert saved["my_custom_field"] == [1, 2] and saved["hidden_size"] == 16
    assert saved["id2label"] == {"0": "NEG", "1": "POS"} and saved["model_type"] == "toy"
    assert ToyConfig.from_pretrained(tmp_path / "copy") == config


def test_overrides_and_attribute_map(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy"}))
    config = ToyConfig.from_pretrained(tmp_path, num_labels=5, output_hidden_states=True, num_hidden_layers=1)
    assert config.num_labels == 5 and config.id2label[4] == "LABEL_4"
    assert config.output_hidden_states is True
    assert config.n_layers == 1 and config.num_hidden_layers == 1
    config.num_hidden_layers = 3
    assert config.to_dict()["n_layers"] == 3


def test_wrong_model_type_is_explained(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="describes a 'gpt2' model, but ToyConfig is for 'toy'"):
        ToyConfig.from_pretrained(tmp_path)


def test_missing_and_corrupt_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="'config.json' is missing.*model.safetensors"):
        ToyConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ToyConfig.from_pretrained(tmp_path)


def test_dtype_spellings():
    assert ToyConfig(torch_dtype="float16").dtype == "float16"
    assert ToyConfig(torch_dtype="float16").to_dict()["dtype"] == "float16"
