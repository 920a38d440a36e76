"""Chat templates: render a conversation with the tokenizer's Jinja template, as transformers does.

Templates come from checkpoints, so they are untrusted: they run in jinja2's ``ImmutableSandboxedEnvironment``
with transformers' settings (``trim_blocks``, ``lstrip_blocks``, loop controls) and helpers (``raise_exception``,
``strftime_now``, a ``tojson`` that does not HTML-escape). Compiled templates are cached by their text.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
_HOW_TO_SET = (
    "Set one with `tokenizer.chat_template = \"{% for message in messages %}...{% endfor %}\"`, pass "
    "chat_template= to this call, or put a chat_template.jinja file (or a \"chat_template\" entry in "
    "tokenizer_config.json) in the tokenizer's folder."
)


def normalize_templates(value: Any) -> str | dict[str, str] | None:
    """A ``chat_template`` setting as stored: a string, or a list of ``{"name", "template"}`` -> a dict by name."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        try:
            return {entry["name"]: entry["template"] for entry in value}
        except (TypeError, KeyError):
            pass
    raise TypeError(
        "chat_template must be a Jinja string, or a list of {'name': ..., 'template': ...} entries, "
        f"found {type(value).__name__}: {value!r:.120}"
    )


def select_template(tokenizer_template: Any, chat_template: str | None, tools: Any) -> str:
    """The template text to render: by name from a dict of templates, the argument, or the tokenizer's."""
    templates = normalize_templates(tokenizer_template)
    if isinstance(templates, dict):
        if chat_template is not None and chat_template in templates:
            return templates[chat_template]
        if chat_template is None:
            if tools is not None and "tool_use" in templates:
                return templates["tool_use"]
            if "default" in templates:
                return templates["default"]
            raise ValueError(
                "This tokenizer has several chat templates and none is named 'default'. Pass chat_template= one of "
                f"{sorted(templates)} (or a template string)."
            )
        return chat_template
    if chat_template is not None:
        if not isinstance(chat_template, str):
            raise TypeError(f"chat_template must be a Jinja template string, found {type(chat_template).__name__}.")
        return chat_template
    if templates is None:
        raise ValueError(f"This tokenizer has no chat template (tokenizer.chat_template is None). {_HOW_TO_SET}")
    return templates


@lru_cache(maxsize=32)
def compile_template(template: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Jinja's own tojson HTML-escapes (<, >, &, '); chat templates expect plain JSON.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, _generation_tag_class()]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    try:
        return environment.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as error:
        raise ValueError(f"The chat template is not valid Jinja (line {error.lineno}): {error.message}") from None


@lru_cache(maxsize=1)
def _generation_tag_class():
    import jinja2.ext
    import jinja2.nodes

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` marks assistant text in some templates; it renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    return GenerationTag


def check_conversation(conversation: Any, what: str = "conversation") -> list[dict]:
    """A list of message dicts with a string ``role``; None values dropped (as transformers does)."""
    if hasattr(conversation, "messages"):
        conversation = conversation.messages
    if not isinstance(conversation, (list, tuple)):
        raise TypeError(
            f"A {what} must be a list of messages like [{{'role': 'user', 'content': 'Hi'}}], "
            f"found {type(conversation).__name__}: {conversation!r:.120}"
        )
    if not conversation:
        raise ValueError(f"The {what} is empty: give at least one message, e.g. [{{'role': 'user', 'content': 'Hi'}}].")
    messages = []
    for index, message in enumerate(conversation):
        if not isinstance(message, dict):
            raise TypeError(
                f"Message {index} of the {what} should be a dict with 'role' and 'content' keys, "
                f"found {type(message).__name__}: {message!r:.120}"
            )
        if "role" not in message:
            raise ValueError(f"Message {index} of the {what} has no 'role' key (keys: {sorted(message)}).")
        if not isinstance(message["role"], str):
            raise TypeError(
                f"Message {index} of the {what} has role {message['role']!r} ({type(message['role']).__name__}); "
                "a role is a string such as 'system', 'user', 'assistant' or 'tool'."
            )
        if "content" not in message and "tool_calls" not in message:
            raise ValueError(
                f"Message {index} of the {what} has no 'content' (keys: {sorted(message)}): "
                "every message needs its text under 'content'."
            )
        messages.append({key: value for key, value in message.items() if value is not None})
    return messages


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value and "content" in value


def is_batch_of_conversations(conversation: Any) -> bool:
    return isinstance(conversation, (list, tuple)) and bool(conversation) and (
        isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")
    )


def render(
    template: str,
    conversations: list[list[dict]],
    *,
    add_generation_prompt: bool,
    continue_final_message: bool | str,
    tools: Any,
    documents: Any,
    variables: dict[str, Any],
) -> list[str]:
    """Render each conversation; ``continue_final_message`` cuts the text after the final message."""
    import copy
    import inspect

    if continue_final_message and add_generation_prompt:
        raise ValueError(
            "continue_final_message and add_generation_prompt cannot both be set: continue_final_message lets the "
            "model go on with the last message, add_generation_prompt starts a new assistant message."
        )
    if tools is not None:
        for tool in tools:
            if not isinstance(tool, dict):
                kind = "a function" if inspect.isfunction(tool) or inspect.ismethod(tool) else type(tool).__name__
                raise TypeError(
                    f"Each tool must be a JSON schema dict (found {kind}); hugkit does not convert Python functions "
                    "to schemas."
                )
    if documents is not None and not all(isinstance(document, dict) for document in documents):
        raise TypeError("documents must be a list of dicts with 'title' and 'text' keys.")
    compiled = compile_template(template)
    rendered = []
    for chat in conversations:
        chat = copy.deepcopy(chat)
        final_text = None
        if continue_final_message:
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final_text = chat[-1].get(field)
            if final_text is None:
                raise ValueError(f"continue_final_message is set but the final message has no {field!r} to continue.")
            if isinstance(final_text, (list, tuple)):
                for block in reversed(final_text):
                    if isinstance(block, dict) and "text" in block:
                        final_text = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ValueError("continue_final_message is set but the final message has no text to continue.")
            else:
                chat[-1][field] = final_text + _CONTINUE_TAG
        text = compiled.render(
            messages=chat, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt, **variables
        )
        if continue_final_message:
            tag = _CONTINUE_TAG.strip()
            if final_text.strip() not in text or tag not in text:
                raise ValueError(
                    "continue_final_message is set but the final message does not appear in the rendered chat: the "
                    "template changes or drops it."
                )
            where = text.rindex(tag)
            text = text[:where] if text[where : where + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:where].rstrip()
        rendered.append(text)
    return rendered


def apply_chat_template(
    tokenizer,
    conversation,
    *,
    tools=None,
    documents=None,
    chat_template=None,
    add_generation_prompt=False,
    continue_final_message=False,
    tokenize=True,
    padding=False,
    truncation=False,
    max_length=None,
    return_tensors=None,
    return_dict=True,
    tokenizer_kwargs=None,
    **template_kwargs,
):
    """See ``PreTrainedTokenizerFast.apply_chat_template``."""
    template = select_template(tokenizer.chat_template, chat_template, tools)
    if template_kwargs.pop("return_assistant_tokens_mask", False):
        raise NotImplementedError("return_assistant_tokens_mask is not supported by hugkit yet.")
    if template_kwargs.pop("sanitize_control_tokens", False):
        raise NotImplementedError("sanitize_control_tokens is not supported by hugkit yet.")
    batched = is_batch_of_conversations(conversation)
    if batched:
        conversations = [check_conversation(chat, f"conversation {i}") for i, chat in enumerate(conversation)]
    else:
        conversations = [check_conversation(conversation)]
    variables = {**tokenizer.special_tokens_map, **template_kwargs}
    rendered = render(
        template, conversations, add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message, tools=tools, documents=documents, variables=variables,
    )
    text = rendered if batched else rendered[0]
    if not tokenize:
        return text
    encoded = tokenizer(
        text, padding=padding, truncation=truncation, max_length=max_length, add_special_tokens=False,
        return_tensors=return_tensors, **(tokenizer_kwargs or {}),
    )
    return encoded if return_dict else encoded["input_ids"]
