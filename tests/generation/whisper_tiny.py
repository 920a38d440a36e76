"""Tiny random Whisper checkpoints and an output comparison, shared by tests/models/test_whisper.py and
tests/generation/test_whisper_generate.py.

The vocabulary (120 ids) has Whisper's layout in small: text ids, then ``<|endoftext|>`` (60), ``<|startoftranscript|>``
(61), three language tokens (62-64), ``<|translate|>``/``<|transcribe|>`` (65, 66), ``<|startoflm|>`` (67),
``<|startofprev|>`` (68), ``<|nocaptions|>`` (69, the no-speech token), ``<|notimestamps|>`` (70) and the timestamps
``<|0.00|>`` .. ``<|0.98|>`` (71-119; ``timestamp_begin = no_timestamps_token_id + 1`` as in transformers). A window is
``max_source_positions=30`` encoder positions = 60 mel frames (0.6 s), so 200 frames of features are four windows.
The weights are drawn wider than real checkpoints' (std 0.3) and the timestamp and end-of-text embeddings scaled up,
so that outputs depend on the audio and decoding meets timestamps, end-of-text and every long-form branch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import transformers

VOCAB, EOS, SOT, PREV_SOT, NO_SPEECH, NO_TIMESTAMPS = 120, 60, 61, 68, 69, 70
LANG_TO_ID = {"<|en|>": 62, "<|de|>": 63, "<|fr|>": 64}
TASK_TO_ID = {"translate": 65, "transcribe": 66}
SUPPRESS = [1, 2, 67, 68, 69]
BEGIN_SUPPRESS = [5, EOS]
MEL_BINS, SOURCE_POSITIONS, TARGET_POSITIONS = 80, 30, 48
WINDOW = 2 * SOURCE_POSITIONS  # mel frames per window


def tiny_config(**overrides) -> transformers.WhisperConfig:
    kwargs = dict(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=MEL_BINS,
        max_source_positions=SOURCE_POSITIONS, max_target_positions=TARGET_POSITIONS, pad_token_id=EOS,
        bos_token_id=EOS, eos_token_id=EOS, decoder_start_token_id=SOT, begin_suppress_tokens=BEGIN_SUPPRESS,
        suppress_tokens=SUPPRESS,
    )
    return transformers.WhisperConfig(**{**kwargs, **overrides})


def generation_config(english_only: bool = False, **overrides) -> transformers.GenerationConfig:
    kwargs: dict[str, Any] = dict(
        decoder_start_token_id=SOT, eos_token_id=EOS, pad_token_id=EOS, bos_token_id=EOS, max_length=30,
        suppress_tokens=SUPPRESS, begin_suppress_tokens=BEGIN_SUPPRESS, no_timestamps_token_id=NO_TIMESTAMPS,
        prev_sot_token_id=PREV_SOT, max_initial_timestamp_index=5, alignment_heads=[[0, 1], [1, 2], [1, 3]],
    )
    if english_only:  # like whisper-tiny.en: no language or task tokens, <|notimestamps|> forced after SOT
        kwargs.update(is_multilingual=False, forced_decoder_ids=[[1, NO_TIMESTAMPS]], return_timestamps=False)
    else:
        kwargs.update(is_multilingual=True, lang_to_id=LANG_TO_ID, task_to_id=TASK_TO_ID)
    return transformers.GenerationConfig(**{**kwargs, **overrides})


def build_reference(seed: int = 0, english_only: bool = False, eager: bool = False, **overrides):
    """A random transformers WhisperForConditionalGeneration (fp32, eval) with its generation config."""
    torch.manual_seed(seed)
    config = tiny_config(**overrides)
    if eager:
        config._attn_implementation = "eager"
    model = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name == "model.encoder.embed_positions.weight":
                continue  # the fixed sinusoids
            if "layer_norm" in name and name.endswith("weight"):
                parameter.normal_(1.0, 0.1)
            else:
                parameter.normal_(0.0, 0.3)
        embeddings = model.model.decoder.embed_tokens.weight
        embeddings[NO_TIMESTAMPS + 1 :] *= 1.5
        embeddings[EOS] *= 2.0
    model.generation_config = generation_config(english_only)
    return model


def save_tiny(directory: Path, seed: int = 0, english_only: bool = False) -> Path:
    build_reference(seed, english_only).save_pretrained(directory)
    return directory


def features(batch: int, frames: int = WINDOW, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, MEL_BINS, frames, generator=generator)


def assert_same(ours: Any, reference: Any, where: str = "output", atol: float = 1e-4) -> None:
    """Equal values, recursively: token ids exactly, floats within ``atol``; dict-like outputs compared on the keys
    hugkit returns (transformers' window results also carry caches and attentions)."""
    if isinstance(reference, torch.Tensor):
        assert isinstance(ours, torch.Tensor), f"{where}: expected a tensor, found {type(ours).__name__}"
        assert ours.shape == reference.shape, f"{where}: shape {tuple(ours.shape)} != {tuple(reference.shape)}"
        if reference.is_floating_point():
            diff = (ours.double() - reference.double()).abs().nan_to_num(0.0)
            assert diff.numel() == 0 or diff.max().item() <= atol, f"{where}: max |diff| {diff.max().item():.3g}"
            assert torch.equal(ours.isinf(), reference.isinf()), f"{where}: -inf at different places"
        else:
            assert torch.equal(ours.cpu(), reference.cpu()), f"{where}:\n{ours}\n!=\n{reference}"
        return
    if hasattr(reference, "keys") and not isinstance(reference, torch.Tensor):
        keys = list(ours.keys())
        assert keys, f"{where}: empty output"
        missing = [key for key in keys if key not in reference]
        assert not missing, f"{where}: keys {missing} are not in transformers' output {list(reference.keys())}"
        for key in keys:
            assert_same(ours[key], reference[key], f"{where}[{key!r}]", atol)
        return
    if isinstance(reference, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(reference), (
            f"{where}: {len(ours) if isinstance(ours, (list, tuple)) else type(ours).__name__} items != {len(reference)}"
        )
        for index, (mine, theirs) in enumerate(zip(ours, reference)):
            assert_same(mine, theirs, f"{where}[{index}]", atol)
        return
    if isinstance(reference, float):
        assert abs(float(ours) - reference) <= atol, f"{where}: {ours} != {reference}"
        return
    assert ours == reference, f"{where}: {ours!r} != {reference!r}"
