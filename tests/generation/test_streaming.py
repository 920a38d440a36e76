"""Streaming: joined chunks == decode(new tokens) on byte-level BPE and SentencePiece byte-fallback vocabularies;
hugkit.stream / astream end states; early stop frees the generator; TextStreamer/TextIteratorStreamer like transformers."""

import asyncio
import contextlib
import gc
import io
import random
import threading
import weakref

import pytest
import torch

import hugkit
from hugkit.generation.streaming import IncrementalDecoder, TextIteratorStreamer, TextStreamer

from .text_models import (
    TEXTS, byte_fallback_tokenizer_folder, llama_with_byte_fallback_tokenizer, llama_with_gpt2_tokenizer, load_both,
)


def _chunks(tokenizer, ids, **kwargs):
    decoder = IncrementalDecoder(tokenizer, **kwargs)
    chunks = [decoder.push(token) for token in ids]
    chunks.append(decoder.flush())
    return chunks


def _check_invariant(tokenizer, ids, skip_special_tokens=True):
    chunks = _chunks(tokenizer, ids, skip_special_tokens=skip_special_tokens)
    assert "".join(chunks) == tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    # Only the final flush may carry an incomplete character.
    assert not any(chunk.endswith("\ufffd") for chunk in chunks[:-1] if chunk and "\ufffd" not in tokenizer.decode(ids))
    return chunks


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    return hugkit.AutoTokenizer.from_pretrained(llama_with_gpt2_tokenizer())


@pytest.fixture(scope="module")
def spm_tokenizer():
    return hugkit.AutoTokenizer.from_pretrained(byte_fallback_tokenizer_folder())


@pytest.mark.parametrize("which", ["gpt2_tokenizer", "spm_tokenizer"])
def test_joined_chunks_equal_decode_of_real_text(request, which):
    tokenizer = request.getfixturevalue(which)
    for text in TEXTS:
        ids = tokenizer.encode(text)
        chunks = _check_invariant(tokenizer, ids)
        _check_invariant(tokenizer, ids, skip_special_tokens=False)
        # A multi-byte character split over tokens is never cut: every chunk is valid text.
        assert all("\ufffd" not in chunk for chunk in chunks)
    if which == "spm_tokenizer":  # the emoji really are byte-fallback pieces here
        assert "<0xF0>" in tokenizer.convert_ids_to_tokens(tokenizer.encode(TEXTS[3]))


def test_joined_chunks_equal_decode_of_random_byte_level_ids(gpt2_tokenizer):
    """Random ids: stray continuation bytes, cut characters, special tokens mid-stream."""
    rng = random.Random(0)
    size = len(gpt2_tokenizer)
    for _ in range(30):
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 40))]
        _check_invariant(gpt2_tokenizer, ids)
        _check_invariant(gpt2_tokenizer, ids, skip_special_tokens=False)


def test_joined_chunks_equal_decode_of_random_byte_fallback_ids(spm_tokenizer):
    """Random mixes of byte-piece characters (emoji, CJK, accents), ordinary pieces and special tokens.

    Byte pieces come in runs that are valid UTF-8, as in any real text: ``decode`` turns a whole run into U+FFFD
    per byte when any part of it is invalid, which no stream can know in advance (documented in streaming.py).
    """
    rng = random.Random(0)
    pieces = [i for i, t in enumerate(spm_tokenizer.convert_ids_to_tokens(list(range(len(spm_tokenizer)))))
              if not t.startswith("<0x")]
    characters = list("🙂🚀👩‍東京は日本我喜欢éüñçß—·") + ["\u200d", " ", "a"]
    for _ in range(30):
        ids = []
        for _ in range(rng.randint(1, 15)):
            if rng.random() < 0.5:
                ids += spm_tokenizer.encode("".join(rng.choices(characters, k=rng.randint(1, 3))), add_special_tokens=False)
            else:
                ids.append(rng.choice(pieces))
        _check_invariant(spm_tokenizer, ids)
        _check_invariant(spm_tokenizer, ids, skip_special_tokens=False)


@pytest.fixture(scope="module")
def gpt2_pair():
    return load_both(llama_with_gpt2_tokenizer())


@pytest.fixture(scope="module")
def spm_pair():
    return load_both(llama_with_byte_fallback_tokenizer())


@pytest.mark.parametrize("pair", ["gpt2_pair", "spm_pair"])
def test_stream_matches_generate_and_reports_length(request, pair):
    model, tokenizer, _, _ = request.getfixturevalue(pair)
    prompt = "Emoji 🙂 and 東京"
    expected = model.generate(**tokenizer(prompt, return_tensors="pt"), max_new_tokens=24, do_sample=False, eos_token_id=None)
    new = expected[0, tokenizer(prompt, return_tensors="pt")["input_ids"].shape[1]:].tolist()
    stream = hugkit.stream(model, tokenizer, prompt, max_new_tokens=24, do_sample=False, eos_token_id=None)
    assert stream.result is None
    chunks = list(stream)
    assert "".join(chunks) == tokenizer.decode(new, skip_special_tokens=True) == stream.result.text
    assert stream.result.finish_reason == "length"
    assert stream.result.completion_tokens == 24 and stream.result.token_ids == new
    assert stream.result.prompt_tokens == len(tokenizer(prompt)["input_ids"])
    assert list(stream) == []  # exhausted


def test_stream_finish_reasons_stop_and_stop_string(gpt2_pair):
    model, tokenizer, _, _ = gpt2_pair
    free = hugkit.stream(model, tokenizer, "Hello", max_new_tokens=10, do_sample=False, eos_token_id=None)
    "".join(free)
    ids = free.result.token_ids
    first_new = next(i for i in range(2, 10) if ids[i] not in ids[:i])  # a token the model emits first at step i
    stopped = hugkit.stream(model, tokenizer, "Hello", max_new_tokens=10, do_sample=False, eos_token_id=ids[first_new])
    text = "".join(stopped)
    assert stopped.result.finish_reason == "stop" and stopped.result.completion_tokens == first_new + 1
    assert text == tokenizer.decode(ids[: first_new + 1], skip_special_tokens=True)
    target = tokenizer.decode(ids[5:6]).strip()[:2]
    by_string = hugkit.stream(model, tokenizer, "Hello", max_new_tokens=10, do_sample=False, eos_token_id=None,
                              stop_strings=[target])
    text = "".join(by_string)
    assert by_string.result.finish_reason == "stop_string" and target in text
    assert by_string.result.completion_tokens <= 6


def test_stream_chat_messages_use_the_template(gpt2_pair):
    model, tokenizer, _, _ = gpt2_pair
    messages = [{"role": "user", "content": "Hi there"}]
    stream = hugkit.stream(model, tokenizer, messages, max_new_tokens=5, do_sample=False)
    "".join(stream)
    expected_prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert stream.result.prompt_tokens == len(expected_prompt)


def test_breaking_out_closes_the_generator(gpt2_pair):
    model, tokenizer, _, _ = gpt2_pair
    stream = hugkit.stream(model, tokenizer, "Hello", max_new_tokens=50, do_sample=False, eos_token_id=None)
    for _ in stream:
        break
    stream.close()
    assert stream._tokens.gi_frame is None  # the token loop (and its KV cache) is gone
    assert stream.result.finish_reason == "cancelled" and list(stream) == []
    with hugkit.stream(model, tokenizer, "Hello", max_new_tokens=50, do_sample=False) as managed:
        next(managed)
    assert managed._tokens.gi_frame is None
    # Breaking out of a loop over a stream nobody keeps drops the token loop with it.
    for _ in hugkit.stream(model, tokenizer, "Hello", max_new_tokens=50, do_sample=False):
        break
    stream = hugkit.stream(model, tokenizer, "Hello", max_new_tokens=50, do_sample=False)
    tokens_ref = weakref.ref(stream._tokens)
    next(stream)
    del stream
    gc.collect()
    assert tokens_ref() is None


def test_stream_errors_surface_at_the_call(gpt2_pair):
    model, tokenizer, _, _ = gpt2_pair
    with pytest.raises(TypeError, match="max_new_tokenz"):
        hugkit.stream(model, tokenizer, "Hello", max_new_tokenz=5)
    with pytest.raises(ValueError, match="empty"):
        hugkit.stream(model, tokenizer, "")
    with pytest.raises(TypeError, match="role"):
        hugkit.stream(model, tokenizer, [{"role": 1, "content": "x"}])


def test_astream_yields_the_same_chunks(gpt2_pair):
    model, tokenizer, _, _ = gpt2_pair
    expected = list(hugkit.stream(model, tokenizer, "Hello", max_new_tokens=12, do_sample=False, eos_token_id=None))

    async def collect():
        stream = hugkit.astream(model, tokenizer, "Hello", max_new_tokens=12, do_sample=False, eos_token_id=None)
        chunks = [chunk async for chunk in stream]
        return chunks, stream.result

    chunks, result = asyncio.run(collect())
    assert chunks == expected and result.finish_reason == "length"

    async def stop_early():
        stream = hugkit.astream(model, tokenizer, "Hello", max_new_tokens=100, do_sample=False, eos_token_id=None)
        async for _ in stream:
            break
        await stream.aclose()
        return stream

    stream = asyncio.run(stop_early())
    assert stream.result.finish_reason == "cancelled" and stream.result.completion_tokens < 100


def test_text_streamer_prints_like_transformers(gpt2_pair):
    import transformers

    model, tokenizer, reference, reference_tokenizer = gpt2_pair
    inputs = tokenizer("Naïve café 🙂", return_tensors="pt")
    outputs = {}
    for name, (streamer_class, m, tok) in {
        "ours": (TextStreamer, model, tokenizer), "reference": (transformers.TextStreamer, reference, reference_tokenizer),
    }.items():
        for skip_prompt in (False, True):
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                m.generate(inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=15,
                           do_sample=False, streamer=streamer_class(tok, skip_prompt=skip_prompt, skip_special_tokens=True))
            outputs[name, skip_prompt] = buffer.getvalue()
    assert outputs["ours", False] == outputs["reference", False]
    assert outputs["ours", True] == outputs["reference", True]
    with pytest.raises(ValueError, match="batch size 1"):
        TextStreamer(tokenizer).put(torch.zeros(2, 3, dtype=torch.long))


def test_text_iterator_streamer_in_a_thread(gpt2_pair):
    model, tokenizer, _, _ = gpt2_pair
    inputs = tokenizer("Hello world", return_tensors="pt")
    expected = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, timeout=30, skip_special_tokens=True)
    worker = threading.Thread(target=model.generate, kwargs=dict(**inputs, max_new_tokens=12, do_sample=False, streamer=streamer))
    worker.start()
    text = "".join(streamer)
    worker.join()
    assert text == tokenizer.decode(expected[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
