"""Convert a CTranslate2 Whisper folder (what faster-whisper loads) into a transformers-format Whisper folder.

CTranslate2's Whisper layout (its transformers loader, ``python/ctranslate2/converters/transformers.py``, builds it
from transformers' names; ``WhisperSpec`` is in ``python/ctranslate2/specs/whisper_spec.py``), and what this
converter undoes:

* self-attention fuses q, k and v into ``self_attention/linear_0`` ([3 d, d]); cross-attention keeps q in
  ``attention/linear_0`` and fuses k, v into ``attention/linear_1`` ([2 d, d]). Whisper's k projections have no bias:
  the fused bias holds zeros there (``utils.fuse_linear``), which are checked and dropped;
* ``linear_1`` (self) / ``linear_2`` (cross) are the output projections, ``ffn/linear_0`` / ``linear_1`` are fc1/fc2;
  the layer norms sit beside the block they precede (``self_attention/layer_norm`` is ``self_attn_layer_norm``, ...);
* layer norms are ``gamma`` / ``beta``, position tables ``position_encodings/encodings``; convolutions keep torch's
  [out, in, kernel] layout;
* the output projection ``decoder/projection/weight`` is an alias of ``decoder/embeddings/weight`` (tied), so the
  transformers checkpoint stores only ``model.decoder.embed_tokens.weight`` and ties ``proj_out`` to it.

The folder's ``config.json`` holds the generation settings (``suppress_ids``, ``suppress_ids_begin``,
``alignment_heads``, ``lang_ids``); its ``tokenizer.json`` is transformers' tokenizer without the 1,501 timestamp
tokens (added back here, as transformers' Whisper tokenizer has them); ``vocabulary.txt`` (or ``vocabulary.json``
from newer CTranslate2) lists every id's token and is used to check the rebuilt tokenizer id by id.

Weights are written in float32 by default: the shipped fp16 values upcast exactly, openai's own transformers
checkpoints are float32, and hugkit and transformers run fp32 on CPU unless asked. ``dtype="float16"`` keeps them
at half the size.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .ctranslate2_reader import MODEL_FILE, CT2FormatError, CT2Model, read_ct2_model

logger = logging.getLogger(__name__)

# Bump when the converted folder changes for the same input (the built-in cache keys on it).
CONVERTER_VERSION = 1

CT2_CONFIG_FILE = "config.json"
CT2_TOKENIZER_FILE = "tokenizer.json"
CT2_VOCABULARY_FILES = ("vocabulary.txt", "vocabulary.json")

WHISPER_SPEC_NAME = "WhisperSpec"
WHISPER_SPEC_REVISION = 3
_GELU = 3  # CTranslate2's Activation enum (python/ctranslate2/specs/common_spec.py)

# Graph switches of CTranslate2's decoder and the value transformers' Whisper architecture implies. A file with
# another value describes a different network, which a renamed checkpoint would silently get wrong.
_DECODER_SWITCHES = {
    "decoder/pre_norm": (1, True),  # (expected value, must be present)
    "decoder/activation": (_GELU, True),
    "decoder/scale_embeddings": (0, False),
    "decoder/alibi": (0, False),
    "decoder/alibi_use_positive_positions": (0, False),  # written by newer CTranslate2 (4.x); moot without alibi
    "decoder/scale_alibi": (0, False),
    "decoder/start_from_zero_embedding": (0, False),
}
# Scalars that only describe the file (head counts are read; CTranslate2's alignment defaults are superseded by the
# folder's config.json alignment_heads).
_DESCRIPTIVE_SCALARS = ("encoder/num_heads", "decoder/num_heads", "decoder/alignment_heads", "decoder/alignment_layer")

# Whisper's timestamp tokens: <|0.00|> ... <|30.00|> in steps of 0.02 s, right after <|notimestamps|>.
TIME_PRECISION = 0.02
NUM_TIMESTAMP_TOKENS = 1501
# English-only checkpoints have 51,864 ids; transformers calls a Whisper vocabulary of 51,865 or more multilingual.
MULTILINGUAL_MIN_VOCAB = 51865

SAMPLING_RATE = 16000


# --------------------------------------------------------------------------------------------------- Whisper


@dataclass(frozen=True)
class WhisperDims:
    """The sizes of a Whisper network, read from the stored shapes (not assumed from a model name)."""

    vocab_size: int
    d_model: int
    num_mel_bins: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_source_positions: int
    max_target_positions: int


def _count_layers(model: CT2Model, stack: str) -> int:
    count = 0
    while f"{stack}/layer_{count}/ffn/linear_0/weight" in model:
        count += 1
    return count


def whisper_dims(model: CT2Model) -> WhisperDims:
    if model.spec_name != WHISPER_SPEC_NAME or model.spec_revision != WHISPER_SPEC_REVISION:
        raise CT2FormatError(
            f"{model.path} holds a {model.spec_name!r} revision {model.spec_revision} model; this converter reads "
            f"{WHISPER_SPEC_NAME!r} revision {WHISPER_SPEC_REVISION} (what current CTranslate2 releases write)."
        )
    for name in ("decoder/embeddings/weight", "encoder/conv1/weight", "encoder/position_encodings/encodings",
                 "decoder/position_encodings/encodings", "encoder/num_heads", "decoder/num_heads"):
        if name not in model:
            raise CT2FormatError(f"{model.path} is missing {name}, which every CTranslate2 Whisper model has.")
    vocab_size, d_model = model.variable("decoder/embeddings/weight").shape
    return WhisperDims(
        vocab_size=vocab_size,
        d_model=d_model,
        num_mel_bins=model.variable("encoder/conv1/weight").shape[1],
        encoder_layers=_count_layers(model, "encoder"),
        decoder_layers=_count_layers(model, "decoder"),
        encoder_attention_heads=int(model.scalar("encoder/num_heads")),
        decoder_attention_heads=int(model.scalar("decoder/num_heads")),
        encoder_ffn_dim=model.variable("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=model.variable("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=model.variable("encoder/position_encodings/encodings").shape[0],
        max_target_positions=model.variable("decoder/position_encodings/encodings").shape[0],
    )


def _check_decoder_switches(model: CT2Model) -> None:
    for name, (expected, required) in _DECODER_SWITCHES.items():
        if name not in model:
            if required:
                raise CT2FormatError(f"{model.path} is missing the graph switch {name} (expected {expected}).")
            continue
        value = model.scalar(name)
        if value != expected:
            raise CT2FormatError(
                f"{model.path}: {name} is {value}, but transformers' Whisper needs {expected}; the file describes "
                "a different network and cannot be converted to WhisperForConditionalGeneration."
            )


class _StateDictBuilder:
    """Collects transformers-named arrays from CTranslate2 variables, remembering which variables were used."""

    def __init__(self, model: CT2Model, dims: WhisperDims, dtype: np.dtype) -> None:
        self.model = model
        self.dims = dims
        self.dtype = dtype
        self.used: set[str] = set()
        self.tensors: dict[str, np.ndarray] = {}

    def take(self, name: str) -> np.ndarray:
        self.used.add(self.model.resolve(name))
        value = self.model.array(name)
        if value.dtype.kind != "f":
            raise CT2FormatError(
                f"{self.model.path}: {name} is stored as {self.model.variable(name).dtype} (a quantized model). "
                "Expected float weights: convert the source again with ct2-transformers-converter "
                "--quantization float16 (or float32), or use a float CTranslate2 Whisper."
            )
        return value

    def put(self, name: str, value: np.ndarray) -> None:
        # ascontiguousarray: splits of the fused projections are row slices, safetensors wants dense buffers.
        self.tensors[name] = np.ascontiguousarray(value, dtype=self.dtype)

    def copy(self, hf: str, ct2: str) -> None:
        self.put(hf, self.take(ct2))

    def linear(self, hf: str, ct2: str) -> None:
        self.copy(f"{hf}.weight", f"{ct2}/weight")
        self.copy(f"{hf}.bias", f"{ct2}/bias")

    def layer_norm(self, hf: str, ct2: str) -> None:
        self.copy(f"{hf}.weight", f"{ct2}/gamma")
        self.copy(f"{hf}.bias", f"{ct2}/beta")

    def fused(self, ct2: str, parts: list[str]) -> None:
        """Split a fused projection into equal row blocks, one per transformers projection. A part whose name ends in
        ``k_proj`` has no bias in transformers: its slice of the fused bias must be the zeros the fusion wrote."""
        weight, bias = self.take(f"{ct2}/weight"), self.take(f"{ct2}/bias")
        rows = self.dims.d_model
        if weight.shape != (rows * len(parts), rows) or bias.shape != (rows * len(parts),):
            raise CT2FormatError(
                f"{self.model.path}: {ct2} should fuse {len(parts)} projections of [{rows}, {rows}], found weight "
                f"{list(weight.shape)} and bias {list(bias.shape)}."
            )
        for index, part in enumerate(parts):
            block = slice(index * rows, (index + 1) * rows)
            self.put(f"{part}.weight", weight[block])
            if part.endswith("k_proj"):
                if np.any(bias[block]):
                    raise CT2FormatError(
                        f"{self.model.path}: the key slice of {ct2}/bias is not zero, but Whisper's k_proj has no "
                        "bias; this is not a Whisper model transformers can hold."
                    )
            else:
                self.put(f"{part}.bias", bias[block])


def whisper_state_dict(model: CT2Model, dims: WhisperDims, dtype: str = "float32") -> dict[str, np.ndarray]:
    """Every weight of WhisperForConditionalGeneration except the tied ``proj_out.weight``, by transformers' names.

    Raises when a stored variable is left unused: a variable this mapping does not know means a layout it has not
    been written for, and dropping it would lose part of the network.
    """
    _check_decoder_switches(model)
    builder = _StateDictBuilder(model, dims, np.dtype(dtype))

    for stack in ("encoder", "decoder"):
        hf = f"model.{stack}"
        builder.copy(f"{hf}.embed_positions.weight", f"{stack}/position_encodings/encodings")
        builder.layer_norm(f"{hf}.layer_norm", f"{stack}/layer_norm")
        for index in range(getattr(dims, f"{stack}_layers")):
            layer, ct2 = f"{hf}.layers.{index}", f"{stack}/layer_{index}"
            attention = f"{layer}.self_attn"
            builder.fused(f"{ct2}/self_attention/linear_0",
                          [f"{attention}.q_proj", f"{attention}.k_proj", f"{attention}.v_proj"])
            builder.linear(f"{attention}.out_proj", f"{ct2}/self_attention/linear_1")
            builder.layer_norm(f"{layer}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            if stack == "decoder":
                cross = f"{layer}.encoder_attn"
                builder.linear(f"{cross}.q_proj", f"{ct2}/attention/linear_0")
                builder.fused(f"{ct2}/attention/linear_1", [f"{cross}.k_proj", f"{cross}.v_proj"])
                builder.linear(f"{cross}.out_proj", f"{ct2}/attention/linear_2")
                builder.layer_norm(f"{layer}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
            builder.linear(f"{layer}.fc1", f"{ct2}/ffn/linear_0")
            builder.linear(f"{layer}.fc2", f"{ct2}/ffn/linear_1")
            builder.layer_norm(f"{layer}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    builder.linear("model.encoder.conv1", "encoder/conv1")
    builder.linear("model.encoder.conv2", "encoder/conv2")
    builder.copy("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    _check_tied_projection(model)

    known = builder.used | set(_DECODER_SWITCHES) | set(_DESCRIPTIVE_SCALARS) | {"decoder/projection/weight"}
    unused = sorted(set(model.variables) - known)
    if unused:
        raise CT2FormatError(
            f"{model.path} holds variables this Whisper mapping does not know: {', '.join(unused[:8])}"
            f"{' ...' if len(unused) > 8 else ''}. Expected a float CTranslate2 WhisperSpec revision "
            f"{WHISPER_SPEC_REVISION} model (quantized files carry *_scale variables: convert a float one)."
        )
    return builder.tensors


def _check_tied_projection(model: CT2Model) -> None:
    """transformers' Whisper ties proj_out to the decoder embedding; the file must say the same."""
    name = "decoder/projection/weight"
    if name not in model:
        raise CT2FormatError(f"{model.path} is missing {name} (the decoder's output projection).")
    if "decoder/projection/bias" in model:
        raise CT2FormatError(f"{model.path} has an output-projection bias; Whisper's proj_out has none.")
    if model.resolve(name) == "decoder/embeddings/weight":
        return
    if not np.array_equal(model.array(name), model.array("decoder/embeddings/weight")):
        raise CT2FormatError(
            f"{model.path}: the output projection differs from the decoder embedding, but transformers' Whisper "
            "ties them (proj_out = embed_tokens); this model cannot be represented faithfully."
        )


# ----------------------------------------------------------------------------------------- tokens and configs


@dataclass(frozen=True)
class WhisperSpecialTokens:
    """Ids of Whisper's control tokens, looked up by name in the source tokenizer."""

    endoftext: int
    startoftranscript: int
    translate: int
    transcribe: int
    startoflm: int
    startofprev: int
    nospeech: int
    notimestamps: int

    @property
    def timestamp_begin(self) -> int:
        return self.notimestamps + 1


_CONTROL_TOKENS = {
    "endoftext": ("<|endoftext|>",),
    "startoftranscript": ("<|startoftranscript|>",),
    "translate": ("<|translate|>",),
    "transcribe": ("<|transcribe|>",),
    "startoflm": ("<|startoflm|>",),
    "startofprev": ("<|startofprev|>",),
    "nospeech": ("<|nocaptions|>", "<|nospeech|>"),  # renamed in later Whisper releases
    "notimestamps": ("<|notimestamps|>",),
}


def _special_tokens(tokenizer: dict, path: Path) -> WhisperSpecialTokens:
    ids = {entry["content"]: entry["id"] for entry in tokenizer.get("added_tokens", [])}
    found = {}
    for field, names in _CONTROL_TOKENS.items():
        matches = [ids[name] for name in names if name in ids]
        if not matches:
            raise CT2FormatError(
                f"{path} has no {' / '.join(names)} added token; expected Whisper's tokenizer.json "
                "(as CTranslate2's converter copies it from the transformers checkpoint)."
            )
        found[field] = matches[0]
    return WhisperSpecialTokens(**found)


def timestamp_token(index: int) -> str:
    return "<|%.2f|>" % (index * TIME_PRECISION)


def whisper_tokenizer_json(tokenizer: dict, special: WhisperSpecialTokens, vocab_size: int, path: Path) -> dict:
    """The source tokenizer.json with the timestamp tokens added after <|notimestamps|>, as transformers' Whisper
    tokenizer holds them (added, not special, normalized: ``add_tokens(timestamps, special_tokens=False)``)."""
    tokenizer = json.loads(json.dumps(tokenizer))  # a deep copy: the caller's dict stays as read
    added = tokenizer.setdefault("added_tokens", [])
    highest = max([entry["id"] for entry in added] + list(tokenizer["model"]["vocab"].values()))
    count = vocab_size - special.timestamp_begin
    if count != NUM_TIMESTAMP_TOKENS:
        raise CT2FormatError(
            f"The model has {vocab_size} ids and <|notimestamps|> is {special.notimestamps}, leaving {count} ids for "
            f"timestamps; Whisper has {NUM_TIMESTAMP_TOKENS} (<|0.00|>..<|30.00|>). The tokenizer ({path}) does not "
            "belong to this model.bin."
        )
    if highest >= special.timestamp_begin:
        # Already present (a newer source): keep them, after checking they are the expected tokens.
        present = {entry["id"]: entry["content"] for entry in added if entry["id"] >= special.timestamp_begin}
        expected = {special.timestamp_begin + i: timestamp_token(i) for i in range(NUM_TIMESTAMP_TOKENS)}
        if present != expected:
            raise CT2FormatError(f"{path} has ids above <|notimestamps|> that are not Whisper's timestamp tokens.")
        return tokenizer
    for index in range(NUM_TIMESTAMP_TOKENS):
        added.append({
            "id": special.timestamp_begin + index, "content": timestamp_token(index), "single_word": False,
            "lstrip": False, "rstrip": False, "normalized": True, "special": False,
        })
    return tokenizer


def _read_vocabulary(path: Path) -> list[str]:
    """CTranslate2's vocabulary: one token a line (vocabulary.txt) or a JSON list (vocabulary.json)."""
    if path.suffix == ".json":
        return list(_read_json(path, "the vocabulary"))
    with open(path, encoding="utf-8") as handle:
        listed = handle.read().split("\n")
    if listed and listed[-1] == "":
        listed.pop()
    return listed


def _check_against_vocabulary(tokenizer: dict, vocabulary_path: Path, vocab_size: int) -> None:
    """CTranslate2's vocabulary lists each id's token: the rebuilt tokenizer must agree on every one."""
    listed = _read_vocabulary(vocabulary_path)
    by_id = {index: token for token, index in tokenizer["model"]["vocab"].items()}
    by_id.update({entry["id"]: entry["content"] for entry in tokenizer["added_tokens"]})
    if len(listed) != vocab_size or len(by_id) != vocab_size:
        raise CT2FormatError(
            f"{vocabulary_path} lists {len(listed)} tokens and the rebuilt tokenizer has {len(by_id)}, but the model "
            f"has {vocab_size} ids; the folder's files do not belong together."
        )
    mismatched = [index for index, token in enumerate(listed) if by_id.get(index) != token]
    if mismatched:
        index = mismatched[0]
        raise CT2FormatError(
            f"The rebuilt tokenizer disagrees with {vocabulary_path} on {len(mismatched)} ids, first id {index}: "
            f"{by_id.get(index)!r} vs {listed[index]!r}."
        )


def whisper_config(dims: WhisperDims, special: WhisperSpecialTokens, ct2_config: dict, dtype: str) -> dict:
    """config.json for WhisperForConditionalGeneration, with the fields openai's transformers checkpoints carry."""
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": dims.vocab_size,
        "num_mel_bins": dims.num_mel_bins,
        "d_model": dims.d_model,
        "encoder_layers": dims.encoder_layers,
        "encoder_attention_heads": dims.encoder_attention_heads,
        "encoder_ffn_dim": dims.encoder_ffn_dim,
        "decoder_layers": dims.decoder_layers,
        "decoder_attention_heads": dims.decoder_attention_heads,
        "decoder_ffn_dim": dims.decoder_ffn_dim,
        "num_hidden_layers": dims.encoder_layers,
        "max_source_positions": dims.max_source_positions,
        "max_target_positions": dims.max_target_positions,
        "activation_function": "gelu",
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "init_std": 0.02,
        "scale_embedding": False,
        "use_cache": True,
        "is_encoder_decoder": True,
        "tie_word_embeddings": True,
        # bos is <|endoftext|> as the tokenizer's bos_token (and transformers' convert_openai_to_hf.py) has it;
        # generation starts from decoder_start_token_id, <|startoftranscript|>.
        "bos_token_id": special.endoftext,
        "decoder_start_token_id": special.startoftranscript,
        "eos_token_id": special.endoftext,
        "pad_token_id": special.endoftext,
        "suppress_tokens": list(ct2_config["suppress_ids"]),
        "begin_suppress_tokens": list(ct2_config["suppress_ids_begin"]),
        "forced_decoder_ids": [[1, special.notimestamps]],
        "max_length": dims.max_target_positions,
        "torch_dtype": dtype,
    }


def whisper_generation_config(dims: WhisperDims, special: WhisperSpecialTokens, ct2_config: dict) -> dict:
    """generation_config.json with the fields of openai/whisper-tiny.en's (English-only: no language/task maps)."""
    return {
        "alignment_heads": [list(pair) for pair in ct2_config["alignment_heads"]],
        "begin_suppress_tokens": list(ct2_config["suppress_ids_begin"]),
        "bos_token_id": special.endoftext,
        "decoder_start_token_id": special.startoftranscript,
        "eos_token_id": special.endoftext,
        "forced_decoder_ids": [[1, special.notimestamps]],
        "is_multilingual": False,
        "max_initial_timestamp_index": 1,  # the value openai's English-only transformers configs ship
        "max_length": dims.max_target_positions,
        "no_timestamps_token_id": special.notimestamps,
        "pad_token_id": special.endoftext,
        "prev_sot_token_id": special.startofprev,
        "return_timestamps": False,
        "suppress_tokens": list(ct2_config["suppress_ids"]),
    }


def whisper_tokenizer_config(tokenizer: dict) -> tuple[dict, dict]:
    """(tokenizer_config.json, special_tokens_map.json) as transformers' WhisperTokenizer saves them."""
    specials = [entry["content"] for entry in sorted(tokenizer["added_tokens"], key=lambda e: e["id"])
                if entry["special"]]
    special_map = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "additional_special_tokens": specials,
    }
    config = {
        "tokenizer_class": "WhisperTokenizer",
        **special_map,
        "add_bos_token": False,
        "add_prefix_space": False,
        # openai's files say True; transformers 5 ignores it for BPE (with a warning), 4.x would strip spaces before
        # punctuation that Whisper's byte-level pieces already place right.
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": 1024,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
    }
    return config, special_map


def whisper_preprocessor_config(dims: WhisperDims) -> dict:
    """preprocessor_config.json for WhisperFeatureExtractor: 16 kHz, 25 ms window (n_fft 400), 10 ms hop, 30 s
    chunks. The mel filter bank is not stored; the extractor computes it from these numbers."""
    chunk_length, hop_length = 30, 160
    n_samples = chunk_length * SAMPLING_RATE
    return {
        "chunk_length": chunk_length,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": dims.num_mel_bins,
        "hop_length": hop_length,
        "n_fft": 400,
        "n_samples": n_samples,
        "nb_max_frames": n_samples // hop_length,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "sampling_rate": SAMPLING_RATE,
    }


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: a CTranslate2 Whisper folder holds {what} beside {MODEL_FILE}.")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as error:
        raise CT2FormatError(f"{path} is not valid JSON ({error}).") from None


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def convert_ct2_whisper(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Convert a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json[, vocabulary.txt]) into a folder
    that ``WhisperForConditionalGeneration.from_pretrained`` and ``WhisperProcessor.from_pretrained`` load, in
    transformers and in hugkit. Returns the output folder.
    """
    source, output = Path(source), Path(output)
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}.")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} exists and is not empty; pass overwrite=True (--overwrite) to replace it.")

    model = read_ct2_model(source / MODEL_FILE)
    dims = whisper_dims(model)
    if dims.vocab_size >= MULTILINGUAL_MIN_VOCAB:
        raise CT2FormatError(
            f"{model.path} is a multilingual Whisper (vocabulary {dims.vocab_size}); this converter writes "
            "English-only checkpoints (vocabulary 51864), whose generation config has no language/task tables."
        )
    ct2_config = _read_json(source / CT2_CONFIG_FILE, "the generation settings (suppress_ids, alignment_heads)")
    for key in ("suppress_ids", "suppress_ids_begin", "alignment_heads"):
        if key not in ct2_config:
            raise CT2FormatError(f"{source / CT2_CONFIG_FILE} has no {key!r}; expected CTranslate2's WhisperConfig.")
    source_tokenizer = _read_json(source / CT2_TOKENIZER_FILE, "Whisper's tokenizer.json")
    special = _special_tokens(source_tokenizer, source / CT2_TOKENIZER_FILE)
    tokenizer = whisper_tokenizer_json(source_tokenizer, special, dims.vocab_size, source / CT2_TOKENIZER_FILE)
    for name in CT2_VOCABULARY_FILES:
        if (source / name).is_file():
            _check_against_vocabulary(tokenizer, source / name, dims.vocab_size)

    tensors = whisper_state_dict(model, dims, dtype)
    tokenizer_config, special_map = whisper_tokenizer_config(tokenizer)

    if overwrite and output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file  # deferred: only conversion needs the writer

    weights = output / "model.safetensors"
    save_file(dict(sorted(tensors.items())), weights, metadata={"format": "pt"})
    os.chmod(weights, 0o644)  # the writer creates it 0600; the other files are ordinary readable files
    _write_json(output / "config.json", whisper_config(dims, special, ct2_config, dtype))
    _write_json(output / "generation_config.json", whisper_generation_config(dims, special, ct2_config))
    _write_json(output / "tokenizer.json", tokenizer)
    _write_json(output / "tokenizer_config.json", tokenizer_config)
    _write_json(output / "special_tokens_map.json", special_map)
    _write_json(output / "preprocessor_config.json", whisper_preprocessor_config(dims))
    logger.info("Converted CTranslate2 Whisper %s (%d tensors, %s) to %s", source, len(tensors), dtype, output)
    return output
