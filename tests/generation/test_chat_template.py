"""apply_chat_template: text and ids equal to transformers' on the real Llama-3 tokenizer and a ChatML template;
templates from tokenizer_config.json (string or named list) and chat_template.jinja; sandboxing; clear errors."""

import json
import shutil

import pytest
import transformers

import hugkit

from .text_models import CHATML, LLAMA3, llama_with_gpt2_tokenizer
from tests.assets import require

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are terse. "},
        {"role": "user", "content": "Héllo 🙂 — 東京?"},
        {"role": "assistant", "content": "  Hi <b>there</b> & more  "},
        {"role": "user", "content": "Again"},
    ],
    [{"role": "user", "content": "Start my answer"}, {"role": "assistant", "content": "Sure, the answer is"}],
]
OPTIONS = [
    dict(tokenize=False),
    dict(tokenize=False, add_generation_prompt=True),
    dict(return_dict=False),
    dict(return_dict=False, add_generation_prompt=True),
    dict(),
    dict(return_tensors="pt"),
    dict(tokenize=False, continue_final_message=True),
    dict(return_dict=False, continue_final_message=True),
]


def _same(ours, reference):
    if hasattr(reference, "keys"):
        assert sorted(ours.keys()) == sorted(reference.keys())
        for key in reference.keys():
            value, expected = ours[key], reference[key]
            if hasattr(expected, "tolist"):
                value, expected = value.tolist(), expected.tolist()
            assert value == expected, key
    else:
        assert ours == reference


@pytest.fixture(scope="module")
def llama3_pair():
    folder = require(LLAMA3)
    return hugkit.AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def chatml_pair():
    folder = llama_with_gpt2_tokenizer()
    return hugkit.AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("pair", ["llama3_pair", "chatml_pair"])
def test_matches_transformers(request, pair):
    ours, reference = request.getfixturevalue(pair)
    for conversation in CONVERSATIONS:
        for options in OPTIONS:
            _same(ours.apply_chat_template(conversation, **options), reference.apply_chat_template(conversation, **options))


@pytest.mark.parametrize("pair", ["llama3_pair", "chatml_pair"])
def test_batched_conversations_match_transformers(request, pair):
    ours, reference = request.getfixturevalue(pair)
    for options in (dict(tokenize=False, add_generation_prompt=True), dict(return_dict=False), dict()):
        _same(ours.apply_chat_template(CONVERSATIONS, **options), reference.apply_chat_template(CONVERSATIONS, **options))
    if ours.pad_token is not None:
        options = dict(padding=True, return_tensors="pt", add_generation_prompt=True)
        _same(ours.apply_chat_template(CONVERSATIONS, **options), reference.apply_chat_template(CONVERSATIONS, **options))


def test_template_variables_tools_and_json_match_transformers(chatml_pair):
    ours, reference = chatml_pair
    template = (
        "{{ bos_token }}{% if tools %}Tools: {{ tools | tojson }}\n{% endif %}"
        "{% for d in documents or [] %}[{{ d.title }}] {{ d.text }}\n{% endfor %}"
        "{% for m in messages %}{{ m.role }}: {{ m.content | tojson(indent=2) }} {{ custom }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    documents = [{"title": "Doc <1>", "text": "Café & co"}]
    for tokenize in (False, True):
        kwargs = dict(chat_template=template, tools=tools, documents=documents, custom="x&y", tokenize=tokenize,
                      add_generation_prompt=True)
        _same(ours.apply_chat_template(CONVERSATIONS[1], **kwargs), reference.apply_chat_template(CONVERSATIONS[1], **kwargs))
    text = ours.apply_chat_template(CONVERSATIONS[1], chat_template=template, tokenize=False)
    assert '"  Hi <b>there</b> & more  "' in text  # tojson does not HTML-escape


def test_templates_from_files_and_named_lists(tmp_path):
    source = llama_with_gpt2_tokenizer()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(source / name, tmp_path / name)
    config = {"tokenizer_class": "GPT2Tokenizer"}
    # chat_template.jinja beside the tokenizer files
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "chat_template.jinja").write_text(CHATML)
    ours, reference = hugkit.AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert ours.chat_template == CHATML
    _same(ours.apply_chat_template(CONVERSATIONS[1], tokenize=False), reference.apply_chat_template(CONVERSATIONS[1], tokenize=False))
    # a list of named templates in tokenizer_config.json
    (tmp_path / "chat_template.jinja").unlink()
    config["chat_template"] = [{"name": "default", "template": CHATML}, {"name": "short", "template": "{{ messages[0].content }}"}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours, reference = hugkit.AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    for name in (None, "short"):
        _same(ours.apply_chat_template(CONVERSATIONS[1], chat_template=name, tokenize=False),
              reference.apply_chat_template(CONVERSATIONS[1], chat_template=name, tokenize=False))
    assert ours.get_chat_template("short") == "{{ messages[0].content }}"
    # saved and reloaded, the templates survive
    ours.save_pretrained(tmp_path / "saved")
    again = hugkit.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert again.apply_chat_template(CONVERSATIONS[0], tokenize=False) == ours.apply_chat_template(CONVERSATIONS[0], tokenize=False)


def test_helpers_and_sandbox(chatml_pair):
    ours, _ = chatml_pair
    with pytest.raises(Exception, match="no system messages"):
        ours.apply_chat_template(CONVERSATIONS[1], chat_template="{{ raise_exception('no system messages') }}")
    year = ours.apply_chat_template(CONVERSATIONS[0], chat_template="{{ strftime_now('%Y') }}", tokenize=False)
    assert year.isdigit() and len(year) == 4
    with pytest.raises(Exception) as error:
        ours.apply_chat_template(CONVERSATIONS[0], chat_template="{{ ''.__class__.__mro__[1].__subclasses__() }}", tokenize=False)
    assert "unsafe" in str(error.value) or "Security" in type(error.value).__name__
    with pytest.raises(Exception):  # an immutable sandbox: no mutation of the caller's messages
        ours.apply_chat_template(CONVERSATIONS[0], chat_template="{{ messages.append(1) }}", tokenize=False)
    assert len(CONVERSATIONS[0]) == 1


def test_clear_errors(chatml_pair, tmp_path):
    ours, _ = chatml_pair
    no_template = hugkit.AutoTokenizer.from_pretrained(ours.name_or_path)
    no_template.chat_template = None
    with pytest.raises(ValueError, match="chat_template"):
        no_template.apply_chat_template(CONVERSATIONS[0])
    with pytest.raises(TypeError, match="list of messages"):
        ours.apply_chat_template("Hello")
    with pytest.raises(ValueError, match="empty"):
        ours.apply_chat_template([])
    with pytest.raises(TypeError, match="Message 1"):
        ours.apply_chat_template([{"role": "user", "content": "a"}, "b"])
    with pytest.raises(TypeError, match="role"):
        ours.apply_chat_template([{"role": 3, "content": "a"}])
    with pytest.raises(ValueError, match="'role'"):
        ours.apply_chat_template([{"content": "a"}])
    with pytest.raises(ValueError, match="content"):
        ours.apply_chat_template([{"role": "user", "text": "a"}])
    with pytest.raises(ValueError, match="not valid Jinja"):
        ours.apply_chat_template(CONVERSATIONS[0], chat_template="{% for m in messages %}")
    with pytest.raises(ValueError, match="continue_final_message"):
        ours.apply_chat_template(CONVERSATIONS[2], add_generation_prompt=True, continue_final_message=True)
