"""Tasks without a built-in model default to transformers' default id; offline, the error says how to get it."""

import pytest

from hugkit import pipeline
from hugkit.hub import CheckpointNotFoundError


def test_offline_default_error_says_how_to_get_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointNotFoundError) as info:
        pipeline("feature-extraction")
    message = str(info.value)
    assert "defaults to transformers' default 'distilbert/distilroberta-base'" in message
    assert "huggingface-cli download distilbert/distilroberta-base" in message
    assert "pipeline('feature-extraction', model='path/to/model')" in message
