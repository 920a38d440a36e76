"""Task-head plumbing, written once: resolve the output flags, run the base model, apply the head, compute the loss
when labels are given, and build the output object (or its tuple).

A model file's head class holds only what is its own: its modules (``__init__``) and ``head()``, the step from
the base model's output to logits. Everything else comes from the task class it lists first among its bases (first,
so that the task's ``forward`` and ``__init__`` come before the architecture's)::

    class BertForSequenceClassification(SequenceClassification, BertPreTrainedModel):
        def __init__(self, config): ...  # the classifier's modules
        def head(self, encoded): return self.classifier(self.dropout(encoded.pooler_output))

The task class brings ``forward`` (transformers' argument order for that task), the output dataclass, the loss and
which positions the head reads. An architecture whose argument order differs (DistilBERT) writes its own
``forward`` and hands over to ``run_head``. What the tasks expect of the architecture:

- encoder tasks: ``base_model.encode(<inputs by name>, output_hidden_states=, output_attentions=,
  first_token_only=)`` returning a ``BaseModelOutput`` (``BaseModelOutputWithPooling`` where there is a pooler);
- encoder-decoder tasks: ``base_model.run(<inputs by name>, output_hidden_states=, output_attentions=,
  decoder_query_index=)`` returning a ``Seq2SeqModelOutput`` (written once, in ``encoder_decoder.EncoderDecoderModel``);
- ``CausalLM``: a base model whose forward returns a ``BaseModelOutputWithPast``, and an ``lm_head``.

The losses follow transformers' rules, so a fine-tuning loop gets the numbers it would get there.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .generation.mixin import GenerationMixin
from .outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    ModelOutput,
    QuestionAnsweringModelOutput,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqSequenceClassifierOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)


def resolve_flags(config, output_hidden_states, output_attentions, return_dict) -> tuple[bool, bool, bool]:
    """(output_hidden_states, output_attentions, return_dict) for one call: None means "as the config says"."""
    return (
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        config.output_attentions if output_attentions is None else output_attentions,
        config.return_dict if return_dict is None else return_dict,
    )


# --- losses (computed only when labels are passed; transformers' rules) -----------------------------


def sequence_classification_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Regression, single-label or multi-label loss, chosen by ``config.problem_type`` (inferred and stored when unset)."""
    num_labels = logits.shape[-1]
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    if config.problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(
        f"Unknown config.problem_type {config.problem_type!r}: expected 'regression', "
        "'single_label_classification' or 'multi_label_classification'."
    )


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every position; label -100 marks a position to ignore (also the masked-LM loss)."""
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))


def question_answering_loss(
    start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor, end_positions: torch.Tensor
) -> torch.Tensor:
    """Mean of start and end cross-entropy; positions outside the sequence are clamped to it and ignored."""
    if start_positions.dim() > 1:
        start_positions = start_positions.squeeze(-1)
    if end_positions.dim() > 1:
        end_positions = end_positions.squeeze(-1)
    ignored = start_logits.shape[1]
    start_positions = start_positions.clamp(0, ignored)
    end_positions = end_positions.clamp(0, ignored)
    start_loss = F.cross_entropy(start_logits, start_positions, ignore_index=ignored)
    end_loss = F.cross_entropy(end_logits, end_positions, ignore_index=ignored)
    return (start_loss + end_loss) / 2


def span_labels(start_positions: torch.Tensor | None, end_positions: torch.Tensor | None) -> tuple | None:
    """A question-answering head's labels: the loss needs both positions (transformers' rule), else there is none."""
    if start_positions is None or end_positions is None:
        return None
    return start_positions, end_positions


# --- encoders ---------------------------------------------------------------------------------------


class EncoderModel:
    """The base model's forward for an encoder (BertModel, DebertaV2Model): its ``encode`` output as it is."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        out = self.encode(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )
        return out if return_dict else out.to_tuple()


class EncoderTask:
    """A head on an encoder: flags -> ``base_model.encode`` -> ``head`` -> loss -> ``output_class``.

    A subclass (one per task) sets ``output_class`` and ``loss``; the model's class adds ``head(encoded)``.
    """

    output_class: ClassVar[type[ModelOutput]]
    # A head that reads only position 0 lets the encoder skip padding and run its last layer for that position.
    reads_first_token: ClassVar[bool] = False

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ModelOutput | tuple:
        """transformers' argument order for BERT-style encoders (BERT, RoBERTa, XLM-RoBERTa, DeBERTa-v2)."""
        inputs = dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        return self.run_head(inputs, labels, output_attentions, output_hidden_states, return_dict)

    def run_head(
        self,
        inputs: dict[str, torch.Tensor | None],
        labels: Any,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
        return_dict: bool | None,
    ) -> ModelOutput | tuple:
        """``inputs``: the encoder's inputs by name; ``labels``: what ``loss`` takes, or None for no loss."""
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        encoded = self.base_model.encode(
            **inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            first_token_only=self.reads_first_token,
        )
        head_fields = self.output_fields(self.head(encoded), labels)
        out = self.output_class(**head_fields, hidden_states=encoded.hidden_states, attentions=encoded.attentions)
        return out if return_dict else out.to_tuple()

    def output_fields(self, logits: torch.Tensor, labels: Any) -> dict[str, torch.Tensor | None]:
        """The output's leading fields: the loss (None without labels), then the logits."""
        return {"loss": None if labels is None else self.loss(logits, labels), "logits": logits}


class SequenceClassification(EncoderTask):
    """One set of logits per sequence (``num_labels``; 1 for regression), loss by ``config.problem_type``."""

    output_class = SequenceClassifierOutput
    reads_first_token = True  # every classifier here reads the first token: [CLS] / <s>, or a pooler over it

    def __init__(self, config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.num_labels = config.num_labels

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sequence_classification_loss(self.config, logits, labels)


class TokenClassification(EncoderTask):
    """Logits for every token; the head is the one all these architectures share: ``dropout``, then ``classifier``."""

    output_class = TokenClassifierOutput

    def __init__(self, config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.num_labels = config.num_labels

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        return self.classifier(self.dropout(encoded.last_hidden_state))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return token_classification_loss(logits, labels)


class MaskedLM(EncoderTask):
    """Vocabulary logits for every token; the loss counts the labelled (not -100) positions."""

    output_class = MaskedLMOutput

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return token_classification_loss(logits, labels)


class QuestionAnswering(EncoderTask):
    """A start and an end score for every token (extractive QA); the head is ``qa_outputs`` with 2 outputs."""

    output_class = QuestionAnsweringModelOutput

    def __init__(self, config, *args: Any, **kwargs: Any) -> None:
        if config.num_labels != 2:
            raise ValueError(
                f"{type(self).__name__} predicts a start and an end score, so config.num_labels must be 2; "
                f"found {config.num_labels}."
            )
        super().__init__(config, *args, **kwargs)
        self.num_labels = config.num_labels

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        inputs = dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        labels = span_labels(start_positions, end_positions)
        return self.run_head(inputs, labels, output_attentions, output_hidden_states, return_dict)

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        return self.qa_outputs(encoded.last_hidden_state)

    def output_fields(self, logits: torch.Tensor, labels: tuple | None) -> dict[str, torch.Tensor | None]:
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None if labels is None else question_answering_loss(start_logits, end_logits, *labels)
        return {"loss": loss, "start_logits": start_logits, "end_logits": end_logits}


# --- encoder-decoders -------------------------------------------------------------------------------


def resolve_cache(past_key_values: Any, cache: Any) -> Any:
    """The decoder cache passed as ``past_key_values`` or as ``cache`` (transformers 5's name; it still takes
    ``past_key_values`` too)."""
    if cache is None:
        return past_key_values
    if past_key_values is not None and past_key_values is not cache:
        raise ValueError("Pass the decoder cache once: as past_key_values or as cache (the same argument), not both.")
    return cache


def cache_arguments(
    past_key_values, use_cache: bool | None, cache_position: torch.Tensor | None, cache=None
) -> dict[str, Any]:
    """The decoder-cache arguments every encoder-decoder's ``run`` takes: ``past_key_values`` (an
    ``EncoderDecoderCache`` or None; ``cache`` is its transformers 5 name), ``use_cache`` (True: start a dynamic
    cache when none was passed and return it, like transformers), ``cache_position`` (the cache slots of the new
    decoder tokens; None: after those cached)."""
    return {
        "past_key_values": resolve_cache(past_key_values, cache), "use_cache": bool(use_cache),
        "cache_position": cache_position,
    }


class Seq2SeqModel:
    """The base model's forward for an encoder-decoder (BartModel, T5Model): its ``run`` output as it is.

    transformers 5's argument order: the cache (``past_key_values``, or ``cache`` by keyword) comes right after
    ``encoder_outputs``, so positional callers get what they meant; the rest are best passed by keyword."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        cache=None,
    ) -> Seq2SeqModelOutput | tuple:
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        out = self.run(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            **cache_arguments(past_key_values, use_cache, cache_position, cache),
        )
        return out if return_dict else out.to_tuple()


class Seq2SeqTask:
    """A head on an encoder-decoder: flags -> ``decode`` (``base_model.run``, then the head) -> loss ->
    ``output_class``, which carries the base model's encoder and decoder fields.

    A subclass (one per task) sets ``output_class``, writes ``forward`` (transformers' argument order for that
    task), ``decode`` and ``loss``.
    """

    output_class: ClassVar[type[ModelOutput]]

    def run_head(
        self,
        inputs: dict[str, Any],
        labels: torch.Tensor | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
        return_dict: bool | None,
    ) -> ModelOutput | tuple:
        """``inputs``: ``run``'s inputs by name (and the cache arguments); ``labels``: the targets, or None."""
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        decoded, logits = self.decode(inputs, labels, output_hidden_states, output_attentions)
        loss = None if labels is None else self.loss(logits, labels)
        out = self.output_class(loss=loss, logits=logits, **decoded.seq2seq_states())
        return out if return_dict else out.to_tuple()


class Seq2SeqLM(Seq2SeqTask, GenerationMixin):
    """Vocabulary logits from the decoder (summarization, translation); the model's class adds ``head(decoded)``
    and ``prepare_decoder_input_ids_from_labels`` (its shift-right rule).

    ``labels`` are the target ids: without decoder inputs they also become them, shifted right (teacher forcing),
    and the loss is the cross-entropy of every position's prediction (-100 ignored).

    ``generate`` comes from GenerationMixin (``hugkit.generation``): the encoder runs once (``get_encoder()``), the
    decoder over an ``EncoderDecoderCache`` (the architecture's ``run`` takes ``past_key_values``/``use_cache``/
    ``cache_position``, and ``kv_cache_shape()`` gives the decoder's (layers, heads, head size)).
    """

    output_class = Seq2SeqLMOutput

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        cache=None,
    ) -> Seq2SeqLMOutput | tuple:
        """transformers 5's argument order (BartForConditionalGeneration, T5ForConditionalGeneration): the cache
        (``past_key_values``, or ``cache`` by keyword) right after ``encoder_outputs``."""
        inputs = dict(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds,
            **cache_arguments(past_key_values, use_cache, cache_position, cache),
        )
        if logits_to_keep:
            inputs["logits_to_keep"] = logits_to_keep
        return self.run_head(inputs, labels, output_attentions, output_hidden_states, return_dict)

    def decode(
        self, inputs: dict[str, Any], labels: torch.Tensor | None, output_hidden_states: bool, output_attentions: bool
    ) -> tuple[Seq2SeqModelOutput, torch.Tensor]:
        if labels is not None and inputs["decoder_input_ids"] is None and inputs["decoder_inputs_embeds"] is None:
            inputs = {**inputs, "decoder_input_ids": self.prepare_decoder_input_ids_from_labels(labels)}
        logits_to_keep = inputs.pop("logits_to_keep", 0)
        decoded = self.base_model.run(
            **inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        if logits_to_keep:  # generation needs the last position's logits only
            decoded.last_hidden_state = decoded.last_hidden_state[:, -logits_to_keep:]
        return decoded, self.head(decoded)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return token_classification_loss(logits, labels)


def last_eos_positions(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """The position of the last ``eos_token_id`` of each row, whose decoder state is the sentence representation.

    Like transformers, every row must hold the same (non-zero) number of eos tokens: that is how a batch built
    by the model's tokenizer looks, and a different count means the inputs were not made by it.
    """
    is_eos = input_ids.eq(eos_token_id)
    counts = is_eos.sum(dim=1)
    if bool((counts == 0).any()):
        rows = counts.eq(0).nonzero().flatten().tolist()
        raise ValueError(
            f"Each input row must contain at least one <eos> token (id {eos_token_id}); rows {rows} have none. "
            "The classifier reads the hidden state at the last <eos>: tokenize with the model's tokenizer, "
            "which appends it (and truncate with truncation=True rather than cutting the ids yourself)."
        )
    if bool((counts != counts[0]).any()):
        raise ValueError(
            f"All examples must have the same number of <eos> tokens (id {eos_token_id}); found {counts.tolist()} "
            "per row. The classifier (like transformers') requires it: do not put extra <eos> ids in some rows."
        )
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return torch.where(is_eos, positions, -1).amax(dim=1)


class Seq2SeqSequenceClassification(Seq2SeqTask):
    """One set of logits per sequence from the decoder state at each row's last <eos> (BART's pooling, which its
    kin share), through the model's ``classification_head``; loss by ``config.problem_type``."""

    output_class = Seq2SeqSequenceClassifierOutput

    def __init__(self, config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.num_labels = config.num_labels

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values=None,
        cache_position: torch.Tensor | None = None,
        cache=None,
    ) -> Seq2SeqSequenceClassifierOutput | tuple:
        """transformers 5's argument order for BartForSequenceClassification (it takes no cache positionally)."""
        inputs = dict(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds,
            **cache_arguments(past_key_values, use_cache, cache_position, cache),
        )
        return self.run_head(inputs, labels, output_attentions, output_hidden_states, return_dict)

    def decode(
        self, inputs: dict[str, Any], labels: torch.Tensor | None, output_hidden_states: bool, output_attentions: bool
    ) -> tuple[Seq2SeqModelOutput, torch.Tensor]:
        input_ids = inputs["input_ids"]
        if input_ids is None:
            raise ValueError(
                f"{type(self).__name__} needs input_ids (it pools the hidden state at the last <eos> token); "
                "inputs_embeds alone are not supported, as in transformers."
            )
        last_eos = last_eos_positions(input_ids, self.config.eos_token_id)
        # Only the last <eos> state is classified: unless every position's states were asked for, the last decoder
        # layer computes that one position per row (the layers below still run on every position).
        every_position = output_hidden_states or output_attentions
        decoded = self.base_model.run(
            **inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            decoder_query_index=None if every_position else last_eos,
        )
        if every_position:
            rows = torch.arange(input_ids.shape[0], device=input_ids.device)
            sentence = decoded.last_hidden_state[rows, last_eos]
        else:
            sentence = decoded.last_hidden_state[:, 0]
        return decoded, self.classification_head(sentence)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sequence_classification_loss(self.config, logits, labels)


# --- decoders ---------------------------------------------------------------------------------------


class CausalLM(GenerationMixin):
    """Next-token logits from a decoder-only model (GPT-2, Llama and its kin), and ``generate``.

    The base model runs with its KV cache; GenerationMixin._lm_output applies ``lm_head`` to the kept positions
    and computes the shifted loss.
    """

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.base_model.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        cache_position: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
    ):
        out = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
            cache_position=cache_position, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        result = self._lm_output(out, labels, logits_to_keep, True)
        result.hidden_states, result.attentions = out.hidden_states, out.attentions
        return result if return_dict else result.to_tuple()
