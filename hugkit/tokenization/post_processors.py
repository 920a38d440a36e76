"""Post-processors (how special tokens frame one sequence or a pair) for converted tokenizers.

Built after the special tokens were registered, because the templates need their final ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenizers import processors

if TYPE_CHECKING:
    from .base import PreTrainedTokenizerFast


def _token_and_id(tokenizer: PreTrainedTokenizerFast, name: str) -> tuple[str, int]:
    token = getattr(tokenizer, name)
    if token is None:
        raise ValueError(f"This tokenizer's template needs a {name}, but none is set in its config")
    index = tokenizer.backend_tokenizer.token_to_id(token)
    if index is None:
        raise ValueError(f"The {name} {token!r} is not in the vocabulary")
    return token, index


def build_post_processor(kind: str, tokenizer: PreTrainedTokenizerFast, settings: dict):
    """The post-processor for a template kind of families.py; None for "flags" and "language" (the tokenizer
    builds those)."""
    if kind == "bert":
        cls, cls_id = _token_and_id(tokenizer, "cls_token")
        sep, sep_id = _token_and_id(tokenizer, "sep_token")
        return processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, cls_id), (sep, sep_id)],
        )
    if kind == "roberta":
        cls = _token_and_id(tokenizer, "cls_token")
        sep = _token_and_id(tokenizer, "sep_token")
        return processors.RobertaProcessing(
            sep, cls,
            trim_offsets=bool(settings.get("trim_offsets", True)),
            add_prefix_space=bool(settings.get("add_prefix_space", False)),
        )
    if kind == "clip":  # as transformers' CLIPTokenizer: bos A eos (eos eos B eos for a pair), offsets untrimmed
        bos = _token_and_id(tokenizer, "bos_token")
        eos = _token_and_id(tokenizer, "eos_token")
        return processors.RobertaProcessing(eos, bos, trim_offsets=False, add_prefix_space=False)
    if kind == "fairseq":
        bos, bos_id = _token_and_id(tokenizer, "bos_token")
        eos, eos_id = _token_and_id(tokenizer, "eos_token")
        return processors.TemplateProcessing(
            single=[bos, "$A", eos],
            pair=[bos, "$A", eos, eos, "$B", eos],
            special_tokens=[(bos, bos_id), (eos, eos_id)],
        )
    if kind == "t5":
        eos, eos_id = _token_and_id(tokenizer, "eos_token")
        return processors.TemplateProcessing(
            single=["$A", eos], pair=["$A", eos, "$B", eos], special_tokens=[(eos, eos_id)]
        )
    if kind == "pegasus":
        eos, eos_id = _token_and_id(tokenizer, "eos_token")
        return processors.TemplateProcessing(single=["$A", eos], pair=["$A", "$B", eos], special_tokens=[(eos, eos_id)])
    if kind in ("flags", "language"):  # the tokenizer builds these itself
        return None
    raise ValueError(f"Unknown post-processor kind {kind!r}")
