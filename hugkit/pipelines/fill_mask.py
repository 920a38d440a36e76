"""fill-mask: the most likely tokens for each mask token, with transformers' call and output formats.

Per text: a list of ``{'score', 'token', 'token_str', 'sequence'}`` sorted by score (``top_k``, default 5);
with several masks in one text, one such list per mask (each ``sequence`` fills only its own mask and keeps
the special tokens, as transformers does). A list of texts gives one result per text, except that a list of
exactly one text gives that text's result unwrapped (transformers' quirk, kept). ``targets`` restricts the
candidates; a target that is not a vocabulary entry is replaced by the first token it tokenizes to.

Unlike transformers, inputs longer than the model's limit are truncated (an error then says if the mask was
cut off) instead of crashing, and the vocabulary projection runs on the masked positions only.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from .base import Pipeline
from .text_classification import _check_text

logger = logging.getLogger(__name__)

# Mask spellings of the common model families: named in the error when a text uses another family's mask.
_KNOWN_MASKS = ("[MASK]", "<mask>", "[mask]", "<MASK>")


class FillMaskPipeline(Pipeline):
    default_top_k = 5

    def __init__(self, *args: Any, **kwargs: Any):
        tokenizer = kwargs.get("tokenizer", args[1] if len(args) > 1 else None)
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise ValueError(
                "This tokenizer defines no mask token, so it cannot be used for 'fill-mask'. "
                "Use a checkpoint trained with masked language modelling (e.g. a BERT or RoBERTa model)."
            )
        super().__init__(*args, **kwargs)

    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if kwargs.get("top_k") is not None:
            top_k = kwargs.pop("top_k")
            if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
            options["top_k"] = top_k
        kwargs.pop("top_k", None)
        targets = kwargs.pop("targets", None)
        if targets is not None:
            options["target_ids"] = self._target_ids(targets)
        tokenizer_kwargs = kwargs.pop("tokenizer_kwargs", None) or {}
        unknown = set(tokenizer_kwargs) - {"truncation", "max_length"}
        if unknown:
            raise ValueError(f"tokenizer_kwargs supports 'truncation' and 'max_length'; got {sorted(unknown)}.")
        options.update(tokenizer_kwargs)
        return {**options, **super().check_kwargs(kwargs)}

    def _target_ids(self, targets: Any) -> list[int]:
        """Token ids of ``targets``, as transformers picks them: the vocabulary entry, else the first token."""
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise TypeError(f"targets must be a string or a list of strings, got {targets!r:.80}.")
        vocab = self.tokenizer.get_vocab()
        ids: list[int] = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(target, add_special_tokens=False)["input_ids"]
                if not pieces:
                    logger.warning("The target %r tokenizes to nothing; it is ignored.", target)
                    continue
                token_id = pieces[0]
                logger.warning(
                    "The target %r is not in the vocabulary; using its first token %r instead.",
                    target, self.tokenizer.convert_ids_to_tokens(token_id),
                )
            if token_id not in ids:
                ids.append(token_id)
        if not ids:
            raise ValueError(f"None of the targets {targets!r} could be turned into a token; pass at least one word.")
        return ids

    def validate_input(self, item: Any) -> Any:
        _check_text(item, "input")
        return item

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and len(inputs) == 1:
            return result[0]  # transformers unwraps a list of one text
        return result

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        encoded = self.tokenizer(
            items,
            truncation=options.get("truncation", True),
            max_length=options.get("max_length") or self.max_input_length(),
        )
        names = [n for n in ("input_ids", "token_type_ids") if n in encoded]
        features = [{name: encoded[name][i] for name in names} for i in range(len(items))]
        mask_id = self.tokenizer.mask_token_id
        for text, feature in zip(items, features):
            if mask_id not in feature["input_ids"]:
                raise ValueError(self._no_mask_message(text))
        return features

    def _no_mask_message(self, text: str) -> str:
        mask = self.tokenizer.mask_token
        found = [m for m in _KNOWN_MASKS if m in text and m != mask]
        if mask in text:
            where = "the mask token is past the model's input limit and was cut off; move it nearer the start"
        elif found:
            where = f"the text uses {found[0]!r}, which is another model family's mask token"
        else:
            where = "the text has no mask token"
        return (
            f"No mask_token ({mask}) found in the input {text!r:.100}: {where}. "
            f"Write {mask} where the missing word goes."
        )

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        torch = self.torch
        is_mask = batch["input_ids"] == self.tokenizer.mask_token_id
        with self._project_only(is_mask):
            logits = self.model(**batch).logits
        if logits.dim() == 3:  # no separate vocabulary projection to narrow: pick the masked rows here
            logits = logits[is_mask]
        probs = logits.float().softmax(-1)
        target_ids = options.get("target_ids")
        if target_ids is not None:
            probs = probs[:, torch.tensor(target_ids, device=probs.device)]
        top_k = min(options.get("top_k", self.default_top_k), probs.shape[-1])
        values, indices = probs.topk(top_k, dim=-1)
        if target_ids is not None:
            indices = torch.tensor(target_ids, device=indices.device)[indices]
        counts = is_mask.sum(-1).tolist()
        values, indices = values.tolist(), indices.tolist()
        rows, start = [], 0
        for count in counts:
            rows.append((values[start : start + count], indices[start : start + count]))
            start += count
        return rows

    @contextlib.contextmanager
    def _project_only(self, rows):
        """Feed only the masked positions to the vocabulary projection, which is most of an MLM head's cost."""
        projection = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if projection is None:
            yield
            return
        handle = projection.register_forward_pre_hook(lambda module, args: (args[0][rows], *args[1:]))
        try:
            yield
        finally:
            handle.remove()

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        values, predictions = outputs[index]
        ids = feature["input_ids"]
        mask_positions = [i for i, token in enumerate(ids) if token == self.tokenizer.mask_token_id]
        single = len(mask_positions) == 1
        pad_id = self.tokenizer.pad_token_id
        result = []
        for position, scores, tokens in zip(mask_positions, values, predictions):
            row = []
            for score, token in zip(scores, tokens):
                filled = [token if i == position else t for i, t in enumerate(ids)]
                filled = [t for t in filled if t != pad_id]  # as transformers, which decodes padded rows
                row.append({
                    "score": score,
                    "token": token,
                    "token_str": self.tokenizer.decode([token]),
                    # Several masks: special tokens are kept so the other masks stay visible.
                    "sequence": self.tokenizer.decode(filled, skip_special_tokens=single),
                })
            result.append(row)
        return result[0] if single else result


__all__ = ["FillMaskPipeline"]
