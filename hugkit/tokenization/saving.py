"""save_pretrained: the three files transformers (v4 and v5) and hugkit read back."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .special_tokens import SPECIAL_TOKENS_ATTRIBUTES, _added_token_state

if TYPE_CHECKING:
    from .base import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

# Config keys that describe where files were, or that tokenizer.json now carries.
_NOT_SAVED = {
    "name_or_path", "tokenizer_file", "vocab_file", "merges_file", "special_tokens_map_file", "tokenizer_config_file",
    "add_bos_token", "add_eos_token", "added_tokens_decoder", "additional_special_tokens", "extra_special_tokens",
    "auto_map", "files_loaded",
}


def _json_safe(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: Path, filename_prefix: str | None) -> tuple[str, ...]:
    if directory.is_file():
        raise ValueError(f"save_pretrained needs a directory, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"{filename_prefix}-" if filename_prefix else ""

    config = {key: _json_safe(value) for key, value in tokenizer.init_kwargs.items() if key not in _NOT_SAVED}
    config.update(
        tokenizer_class=tokenizer.tokenizer_class,
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
        clean_up_tokenization_spaces=tokenizer.clean_up_tokenization_spaces,
    )
    if tokenizer.model_input_names != type(tokenizer).model_input_names:
        config["model_input_names"] = list(tokenizer.model_input_names)
    if tokenizer.split_special_tokens:
        config["split_special_tokens"] = True
    config.update(tokenizer.special_tokens_map)
    if tokenizer.extra_special_tokens:
        config["extra_special_tokens"] = tokenizer.extra_special_tokens
    if tokenizer.chat_template is not None:
        config["chat_template"] = tokenizer.chat_template
    # Older readers (transformers 4) rebuild added tokens from this table.
    config["added_tokens_decoder"] = {
        str(index): _added_token_state(token) for index, token in sorted(tokenizer.added_tokens_decoder.items())
    }

    special_map = {name: str(value) for name, value in tokenizer._special_tokens.items()
                   if name in SPECIAL_TOKENS_ATTRIBUTES and value is not None}
    if tokenizer.extra_special_tokens:
        special_map["additional_special_tokens"] = tokenizer.extra_special_tokens

    config_path = directory / f"{prefix}tokenizer_config.json"
    special_map_path = directory / f"{prefix}special_tokens_map.json"
    tokenizer_path = directory / f"{prefix}tokenizer.json"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    special_map_path.write_text(json.dumps(special_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    # Truncation is per call: do not freeze the last call's setting into the file.
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(tokenizer_path))
    logger.info("Saved tokenizer files to %s", directory)
    return str(config_path), str(special_map_path), str(tokenizer_path)
