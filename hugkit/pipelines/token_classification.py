"""token-classification (alias ner), with transformers' call and output formats and grouping rules.

Per text, a list of entities. ``aggregation_strategy="none"`` (the default) gives one dict per token,
``{'entity', 'score', 'index', 'word', 'start', 'end'}``; "simple" groups adjacent tokens whose B-/I- tags
continue one another into ``{'entity_group', 'score', 'word', 'start', 'end'}``; "first", "average" and "max"
first make every word take one label (from its first token, its averaged scores, or its most confident token),
then group. Labels in ``ignore_labels`` (default ``["O"]``) are dropped. With ``stride``, a text longer than
the model's limit is read in overlapping windows and overlapping entities are merged as transformers does
(the longer one wins, then the more confident). ``is_split_into_words=True`` takes lists of words.

Scores are Python floats where transformers returns numpy float32 values.
"""

from __future__ import annotations

from typing import Any

from .base import Pipeline
from .text_classification import _check_text

STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(Pipeline):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.id2label = self.model.config.id2label
        model = self.tokenizer.backend_tokenizer.model
        # WordPiece marks word continuations ("##ing"): a token is inside a word when its text is not the
        # same length as the span it covers. Other tokenizers fall back to "no space before it".
        self.marks_subwords = bool(getattr(model, "continuing_subword_prefix", None))

    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        strategy = kwargs.pop("aggregation_strategy", None)
        if strategy is not None:
            name = str(getattr(strategy, "value", strategy)).lower()
            if name not in STRATEGIES:
                raise ValueError(f"aggregation_strategy must be one of {STRATEGIES}, got {strategy!r}.")
            options["aggregation_strategy"] = name
        labels = kwargs.pop("ignore_labels", None)
        if labels is not None:
            if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
                raise TypeError(f"ignore_labels must be a list of label names such as ['O'], got {labels!r}.")
            options["ignore_labels"] = list(labels)
        stride = kwargs.pop("stride", None)
        if stride is not None:
            if not isinstance(stride, int) or isinstance(stride, bool) or stride < 0:
                raise ValueError(
                    f"stride must be a non-negative integer (tokens shared by adjacent windows), got {stride!r}."
                )
            options["stride"] = stride
        if kwargs.pop("is_split_into_words", False):
            options["is_split_into_words"] = True
        delimiter = kwargs.pop("delimiter", None)
        if delimiter is not None:
            options["delimiter"] = delimiter
        return {**options, **super().check_kwargs(kwargs)}

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        split = kwargs.get("is_split_into_words", self.call_defaults.get("is_split_into_words", False))
        if split and isinstance(inputs, (list, tuple)) and all(isinstance(word, str) for word in inputs):
            return super().__call__([inputs], **kwargs)  # one list of words is one input (nested, as transformers)
        return super().__call__(inputs, **kwargs)

    def validate_input(self, item: Any) -> Any:
        if isinstance(item, (list, tuple)):
            if not item:
                raise ValueError("A list of words is empty; there is nothing to classify.")
            for word in item:
                if not isinstance(word, str):
                    raise TypeError(f"A list of words must hold strings, got {type(word).__name__}: {word!r:.80}.")
            return list(item)
        _check_text(item, "input")
        return item

    # --- preprocessing: one feature per window of each input ---------------------------------------------
    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        split = options.get("is_split_into_words", False)
        for item in items:
            if split and isinstance(item, str):
                raise ValueError(
                    f"With is_split_into_words=True each input must be a list of words, got the string {item!r:.80}."
                )
            if not split and isinstance(item, list):
                raise ValueError(
                    "Got a list of words where a text was expected; pass is_split_into_words=True to classify "
                    "pre-split words, or join them into a string."
                )
        max_length = self.max_input_length()
        windows = {}
        stride = options.get("stride")
        if stride is not None:
            if options.get("aggregation_strategy") == "none":
                raise ValueError(
                    'stride reads the whole text in overlapping windows, which needs aggregation_strategy "simple", '
                    '"first", "average" or "max" to merge them; got aggregation_strategy="none".'
                )
            room = max_length - self.tokenizer.num_special_tokens_to_add()
            if stride >= room:
                raise ValueError(
                    f"stride ({stride}) must be smaller than the {room} text tokens that fit in one window of "
                    f"{max_length} tokens; use a smaller stride (e.g. {room // 4})."
                )
            windows = {"stride": stride, "return_overflowing_tokens": True}
        encoded = self.tokenizer(
            items, truncation=True, max_length=max_length, is_split_into_words=split,
            return_special_tokens_mask=True, return_offsets_mapping=True, **windows,
        )
        owners = encoded["overflow_to_sample_mapping"] if windows else range(len(items))
        delimiter = options.get("delimiter", " ")
        sentences, word_starts = [], []
        for item in items:
            if split:
                starts, position = [], 0
                for word in item:
                    starts.append(position)
                    position += len(word) + len(delimiter)
                sentences.append(delimiter.join(item))
                word_starts.append(starts)
            else:
                sentences.append(item)
                word_starts.append(None)
        features = []
        for row, owner in enumerate(owners):
            feature = {name: encoded[name][row] for name in ("input_ids", "token_type_ids") if name in encoded}
            offsets = encoded["offset_mapping"][row]
            if split:  # offsets of pre-split words count from the start of each word
                word_ids, starts = encoded.word_ids(row), word_starts[owner]
                offsets = [
                    (s + starts[w], e + starts[w]) if w is not None else (s, e) for (s, e), w in zip(offsets, word_ids)
                ]
            feature.update(
                item=owner, sentence=sentences[owner], offsets=offsets, special=encoded["special_tokens_mask"][row]
            )
            features.append(feature)
        return features

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        return self.model(**batch).logits.float().softmax(-1).cpu().numpy()

    # --- postprocessing: entities of one window, then merged per input ------------------------------------
    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        length = len(feature["input_ids"])
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        scores = outputs[index, -length:] if left else outputs[index, :length]
        strategy = options.get("aggregation_strategy", "none")
        tokens = self._tokens(feature, scores)
        if strategy == "none":
            entities = [self._token_entity(token) for token in tokens]
        else:
            if strategy == "simple":
                labelled = [self._token_entity(token) for token in tokens]
            else:
                labelled = [self._word_entity(word, strategy) for word in _words(tokens)]
            entities = self._group(labelled)
        ignore = options.get("ignore_labels", ["O"])
        kept = [e for e in entities if e.get("entity") not in ignore and e.get("entity_group") not in ignore]
        return feature["item"], kept

    def gather(self, items: list[Any], results: list[Any], options: dict[str, Any]) -> list[Any]:
        per_item: list[list[dict[str, Any]]] = [[] for _ in items]
        windows = [0] * len(items)
        for owner, entities in results:
            per_item[owner].extend(entities)
            windows[owner] += 1
        return [_merge_overlapping(entities) if count > 1 else entities for entities, count in zip(per_item, windows)]

    def _tokens(self, feature: dict[str, Any], scores: Any) -> list[dict[str, Any]]:
        """The non-special tokens of one window, with their text, character span and class scores."""
        sentence, tokens = feature["sentence"], []
        unk_id = self.tokenizer.unk_token_id
        for index, token_id in enumerate(feature["input_ids"]):
            if feature["special"][index]:
                continue
            start, end = feature["offsets"][index]
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            covered = sentence[start:end]
            if self.marks_subwords:
                is_subword = len(word) != len(covered)
            else:
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
            if token_id == unk_id:  # show the text the unknown token stands for
                word, is_subword = covered, False
            tokens.append({"word": word, "scores": scores[index], "start": start, "end": end, "index": index,
                           "is_subword": is_subword})
        return tokens

    def _token_entity(self, token: dict[str, Any]) -> dict[str, Any]:
        best = int(token["scores"].argmax())
        return {"entity": self.id2label[best], "score": float(token["scores"][best]), "index": token["index"],
                "word": token["word"], "start": token["start"], "end": token["end"]}

    def _word_entity(self, tokens: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
        """One label for a whole word, so a word is never split between two entities."""
        import numpy as np

        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([token["scores"] for token in tokens]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.id2label[best], "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([token["word"] for token in tokens]),
                "start": tokens[0]["start"], "end": tokens[-1]["end"]}

    def _group(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Join adjacent entities with the same tag where the later one does not begin a new one (B-)."""
        groups: list[list[dict[str, Any]]] = []
        for entity in entities:
            if groups:
                begins, tag = _split_tag(entity["entity"])
                if tag == _split_tag(groups[-1][-1]["entity"])[1] and not begins:
                    groups[-1].append(entity)
                    continue
            groups.append([entity])
        return [self._group_entity(group) for group in groups]

    def _group_entity(self, group: list[dict[str, Any]]) -> dict[str, Any]:
        import numpy as np

        return {
            "entity_group": group[0]["entity"].split("-", 1)[-1],
            "score": float(np.nanmean(np.array([entity["score"] for entity in group], dtype=np.float32))),
            "word": self.tokenizer.convert_tokens_to_string([entity["word"] for entity in group]),
            "start": group[0]["start"],
            "end": group[-1]["end"],
        }


def _words(tokens: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Tokens grouped into words: a sub-word token joins the word before it."""
    words: list[list[dict[str, Any]]] = []
    for token in tokens:
        if words and token["is_subword"]:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def _split_tag(label: str) -> tuple[bool, str]:
    """("B-PER" -> begins, "PER"); a label without a B-/I- prefix continues like I-."""
    if label.startswith("B-"):
        return True, label[2:]
    if label.startswith("I-"):
        return False, label[2:]
    return False, label


def _merge_overlapping(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entities found twice where windows overlap: keep the longer span, then the more confident one."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda entity: entity["start"])
    merged, current = [], entities[0]
    for entity in entities:
        if current["start"] <= entity["start"] < current["end"]:
            length, current_length = entity["end"] - entity["start"], current["end"] - current["start"]
            if length > current_length or (length == current_length and entity["score"] > current["score"]):
                current = entity
        else:
            merged.append(current)
            current = entity
    merged.append(current)
    return merged


NerPipeline = TokenClassificationPipeline

__all__ = ["TokenClassificationPipeline", "NerPipeline"]
