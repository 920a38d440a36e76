"""question-answering: extractive answers, with transformers v4's call and output formats and scoring.

transformers v5 removed this pipeline; hugkit keeps v4's behaviour (its fast-tokenizer path): the question
and context are encoded as a pair, a context too long for ``max_seq_len`` is read in overlapping windows
(``doc_stride`` tokens shared), and each window scores every span of context tokens (at most
``max_answer_len`` long) as p(start) * p(end), softmaxes taken over the window's context tokens and [CLS].
Answers with the same text (ignoring case) have their scores added; ``handle_impossible_answer`` adds the
empty answer, scored by the lowest [CLS]-to-[CLS] score of any window. With ``align_to_words`` (default)
an answer is widened to whole words. Each answer is ``{'score', 'start', 'end', 'answer'}`` (character
offsets into the context); ``top_k`` > 1 gives a list, unless only one answer was found.

Calls: ``qa(question=..., context=...)`` (each a string or a list), ``qa({"question": ..., "context": ...})``,
a list of such dicts, or ``qa(question, context)``. As in transformers, a single question (or a list of one)
gives a single result.

Where transformers would crash, hugkit decides: the default window never exceeds the model's positions, a
default ``doc_stride`` too large for a long question is reduced, and a question that leaves no room for the
context is an error that names ``max_question_len`` (which truncates the question; transformers' fast path
ignores it). When a window has fewer valid spans than asked for, fewer answers are returned, where
transformers pads with zero-score spans.
"""

from __future__ import annotations

from typing import Any

from .base import Pipeline

_INTEGER_OPTIONS = (("top_k", 1), ("max_answer_len", 1), ("max_seq_len", 2), ("max_question_len", 1), ("doc_stride", 0))
_NO_NULL = 1_000_000.0  # larger than any probability: "no window has proposed the empty answer yet"


class QuestionAnsweringPipeline(Pipeline):
    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if kwargs.get("top_k") is None and kwargs.get("topk") is not None:  # v4's deprecated spelling
            kwargs["top_k"] = kwargs["topk"]
        kwargs.pop("topk", None)
        kwargs.pop("padding", None)  # padding never changes the answers; accepted for compatibility
        for name, smallest in _INTEGER_OPTIONS:
            value = kwargs.pop(name, None)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < smallest:
                raise ValueError(f"{name} must be an integer >= {smallest}, got {value!r}.")
            options[name] = value
        for name in ("handle_impossible_answer", "align_to_words"):
            value = kwargs.pop(name, None)
            if value is not None:
                if not isinstance(value, bool):
                    raise TypeError(f"{name} must be True or False, got {value!r}.")
                options[name] = value
        return {**options, **super().check_kwargs(kwargs)}

    # --- inputs ----------------------------------------------------------------------------------------------
    def __call__(
        self, *args: Any, question: Any = None, context: Any = None, batch_size: int | None = None, **kwargs: Any
    ) -> Any:
        inputs = _collect_inputs(args, question, context)
        result = super().__call__(inputs, batch_size=batch_size, **kwargs)
        if isinstance(inputs, list) and len(inputs) == 1:
            return result[0]  # transformers gives a single question's result unwrapped
        return result

    def is_single_input(self, inputs: Any) -> bool:
        return isinstance(inputs, dict)

    def validate_input(self, item: Any) -> Any:
        if not isinstance(item, dict) or {"question", "context"} - set(item):
            found = f"keys {sorted(item)}" if isinstance(item, dict) else f"{type(item).__name__} {item!r:.60}"
            raise ValueError(f'Each input must be a dict {{"question": ..., "context": ...}}; got {found}.')
        for key in ("question", "context"):
            value = item[key]
            if not isinstance(value, str):
                raise TypeError(f"The {key} must be a string, got {type(value).__name__}: {value!r:.80}.")
            if not value.strip():
                raise ValueError(f"The {key} is empty; pass a non-empty {key} (question={item['question']!r:.60}).")
        return {"question": item["question"], "context": item["context"]}

    # --- preprocessing: windows of (question, part of the context) ------------------------------------------
    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        limit = self.max_input_length()
        max_seq_len = options.get("max_seq_len") or min(limit, 384)
        if max_seq_len > limit:
            raise ValueError(
                f"max_seq_len ({max_seq_len}) is larger than this model's input limit ({limit}); use at most {limit}."
            )
        stride_given = "doc_stride" in options
        doc_stride = options["doc_stride"] if stride_given else min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise ValueError(
                f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len}); use a smaller doc_stride."
            )
        special = self.tokenizer.num_special_tokens_to_add(pair=True)
        cls_id = self.tokenizer.cls_token_id
        features = []
        for owner, item in enumerate(items):
            question = self._shorten_question(item["question"], options.get("max_question_len"))
            question_length = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
            context_length = len(self.tokenizer(item["context"], add_special_tokens=False)["input_ids"])
            if context_length == 0:
                raise ValueError(
                    f"The context {item['context']!r:.60} has no tokens to answer from; pass a longer context."
                )
            room = max_seq_len - special - question_length
            if room < 1:
                raise ValueError(
                    f"The question is {question_length} tokens long, which leaves no room for the context in "
                    f"max_seq_len={max_seq_len} tokens. Shorten it, or pass max_question_len= to truncate it."
                )
            stride = doc_stride
            if context_length > room and stride >= room:  # the engine needs windows that move forward
                if stride_given:
                    raise ValueError(
                        f"doc_stride ({doc_stride}) must be smaller than the {room} context tokens that fit beside "
                        f"this question in max_seq_len={max_seq_len}; use a smaller doc_stride."
                    )
                stride = room // 2
            encoded = self.tokenizer(
                question, item["context"], truncation="only_second", max_length=max_seq_len, stride=stride,
                return_overflowing_tokens=True, return_offsets_mapping=True,
            )
            for row, encoding in enumerate(encoded.encodings):
                ids = encoded["input_ids"][row]
                feature = {name: encoded[name][row] for name in ("input_ids", "token_type_ids") if name in encoded}
                # Answers may start or end on context tokens, or on [CLS] (the "no answer" position).
                allowed = [sequence == 1 or token == cls_id for sequence, token in zip(encoding.sequence_ids, ids)]
                feature.update(item=owner, encoding=encoding, allowed=allowed, context=item["context"])
                features.append(feature)
        return features

    def _shorten_question(self, question: str, max_question_len: int | None) -> str:
        if max_question_len is None:
            return question
        offsets = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return question if len(offsets) <= max_question_len else question[: offsets[max_question_len - 1][1]]

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        outputs = self.model(**batch)
        return outputs.start_logits.float().cpu(), outputs.end_logits.float().cpu()

    # --- postprocessing: best spans per window, then answers merged per input --------------------------------
    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        torch = self.torch
        length = len(feature["input_ids"])
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        window = slice(-length, None) if left else slice(0, length)
        allowed = torch.tensor(feature["allowed"])
        start = torch.where(allowed, outputs[0][index, window], -10000.0).softmax(-1)
        end = torch.where(allowed, outputs[1][index, window], -10000.0).softmax(-1)
        null_score = float(start[0] * end[0])
        start[0] = end[0] = 0.0  # the empty answer is scored separately
        max_answer_len = options.get("max_answer_len", 15)
        scores = torch.outer(start, end).triu().tril(max_answer_len - 1)
        scores = scores.masked_fill(~(allowed[:, None] & allowed[None, :]), 0.0)
        top_k = options.get("top_k", 1)
        # Some candidates collapse into the same words when aligned, so v4 looks at more than top_k.
        wanted = top_k * 2 + 10 if options.get("align_to_words", True) else top_k
        values, flat = scores.flatten().topk(min(wanted, int((scores > 0).sum())))
        align = options.get("align_to_words", True)
        answers = []
        for score, position in zip(values.tolist(), flat.tolist()):
            first, last = divmod(position, length)
            begin, finish = _char_span(feature["encoding"], first, last, align)
            answers.append({"score": score, "start": begin, "end": finish, "answer": feature["context"][begin:finish]})
        return feature["item"], answers, null_score

    def gather(self, items: list[Any], results: list[Any], options: dict[str, Any]) -> list[Any]:
        per_item: list[list[dict[str, Any]]] = [[] for _ in items]
        null_scores = [_NO_NULL] * len(items)
        for owner, answers, null_score in results:
            merged = per_item[owner]
            for answer in answers:
                same = next((a for a in merged if a["answer"].lower() == answer["answer"].lower()), None)
                if same is not None:
                    same["score"] += answer["score"]
                else:
                    merged.append(answer)
            null_scores[owner] = min(null_scores[owner], null_score)
        top_k = options.get("top_k", 1)
        final = []
        for answers, null_score in zip(per_item, null_scores):
            if options.get("handle_impossible_answer", False):
                answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
            answers = sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]
            final.append(answers[0] if len(answers) == 1 else answers)
        return final


def _char_span(encoding: Any, first: int, last: int, align_to_words: bool) -> tuple[int, int]:
    """Character offsets in the context of tokens first..last, widened to whole words if asked."""
    if align_to_words:
        try:
            begin = encoding.word_to_chars(encoding.token_to_word(first), sequence_index=1)[0]
            finish = encoding.word_to_chars(encoding.token_to_word(last), sequence_index=1)[1]
            return begin, finish
        except (TypeError, IndexError):  # a token outside any word ([CLS]): use its own offsets
            pass
    return encoding.offsets[first][0], encoding.offsets[last][1]


def _collect_inputs(args: tuple[Any, ...], question: Any, context: Any) -> Any:
    """Turn transformers' calling conventions into one dict or a list of dicts (or an iterable of them)."""
    if question is not None or context is not None:
        if args:
            raise TypeError("Pass the question and context either as keywords or positionally, not both.")
        if question is None or context is None:
            raise ValueError("Both question= and context= are needed.")
        if isinstance(question, str) and isinstance(context, str):
            return [{"question": question, "context": context}]
        if isinstance(question, list) and isinstance(context, str):
            return [{"question": q, "context": context} for q in question]
        if isinstance(question, list) and isinstance(context, list):
            if len(question) != len(context):
                raise ValueError(
                    f"Got {len(question)} questions but {len(context)} contexts; pass one context per question."
                )
            return [{"question": q, "context": c} for q, c in zip(question, context)]
        raise ValueError(
            "question= must be a string or a list of strings, and context= a string or a list of the same length; "
            f"got {type(question).__name__} and {type(context).__name__}."
        )
    if len(args) == 2 and all(isinstance(arg, str) for arg in args):
        return [{"question": args[0], "context": args[1]}]
    if len(args) == 1:
        inputs = args[0]
        return list(inputs) if isinstance(inputs, tuple) else inputs
    if not args:
        raise ValueError('Nothing to answer: pass question= and context=, or {"question": ..., "context": ...}.')
    return list(args)


__all__ = ["QuestionAnsweringPipeline"]
