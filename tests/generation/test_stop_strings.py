"""generate(..., stop_strings=[...], tokenizer=tok): the same greedy outputs as transformers' StopStringCriteria,
for byte-level BPE (GPT-2, Llama-3) and byte-fallback SentencePiece vocabularies, single rows and padded batches."""

import pytest
import torch

from hugkit.generation.stop_strings import StopStringChecker

from .text_models import llama_with_byte_fallback_tokenizer, llama_with_gpt2_tokenizer, llama_with_llama3_tokenizer, load_both

SETTINGS = dict(max_new_tokens=14, do_sample=False, repetition_penalty=1.5)
FOLDERS = {"gpt2": llama_with_gpt2_tokenizer, "llama3": llama_with_llama3_tokenizer, "spm": llama_with_byte_fallback_tokenizer}


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def models(request):
    return load_both(FOLDERS[request.param]())


def _batch(tokenizer, texts):
    rows = [tokenizer.encode(text) for text in texts]
    longest = max(map(len, rows))
    ids = torch.tensor([[0] * (longest - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def _stop_candidates(tokenizer, new_ids, row):
    """Two stop-string lists from a free run: one across a token boundary, one inside a token (plus a string
    that never occurs). Few lists on purpose: transformers preprocesses the whole vocabulary for each list."""
    pieces = [tokenizer.decode(new_ids[: i + 1]) for i in range(len(new_ids))]
    text = pieces[-1]
    across, inside = None, None
    for step in range(2 + row, len(new_ids) - 1):
        start, end = len(pieces[step - 1]), len(pieces[step])
        pair = text[start - 1 : start + 1]
        if across is None and len(pair) == 2 and pair.strip() and "\ufffd" not in pair:
            across = [pair]
        word = text[start:end].strip()
        if inside is None and len(word) >= 3 and "\ufffd" not in word:
            inside = [word[1:3], "zzzq"]
    lists = [stops for stops in (across, inside) if stops]
    clean = text.split("\ufffd")[0]
    for i in (1, 2):  # tiny vocabularies with single-character tokens: two-character windows of the text
        window = clean[i : i + 2]
        if len(lists) < 2 and len(window) == 2 and window.strip() and [window] not in lists:
            lists.append([window])
    return lists


def test_stop_strings_match_transformers(models):
    model, tokenizer, reference, reference_tokenizer = models
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    kwargs = dict(SETTINGS, pad_token_id=pad)
    ids, mask = _batch(tokenizer, ["Hello world, this", "Emoji 🙂 and café"])
    free = reference.generate(ids, attention_mask=mask, **kwargs)
    tried = stopped_early = 0
    for row in range(2):
        for stops in _stop_candidates(tokenizer, free[row, ids.shape[1]:].tolist(), row):
            expected = reference.generate(ids, attention_mask=mask, stop_strings=stops, tokenizer=reference_tokenizer, **kwargs)
            got = model.generate(ids, attention_mask=mask, stop_strings=stops, tokenizer=tokenizer, **kwargs)
            assert torch.equal(got, expected), stops
            start = int(mask[row].argmax())
            single = reference.generate(ids[row:row + 1, start:], stop_strings=stops, tokenizer=reference_tokenizer, **kwargs)
            got = model.generate(ids[row:row + 1, start:], stop_strings=stops, tokenizer=tokenizer, **kwargs)
            assert torch.equal(got, single), stops
            tried += 1
            stopped_early += got.shape[1] - (ids.shape[1] - start) < SETTINGS["max_new_tokens"]
    assert tried >= 2 and stopped_early >= 2


def test_stop_string_overlap_rule():
    """A stop string must end inside the last token; text after it in that token does not matter."""

    class Tiny:
        backend_tokenizer = None

        def __init__(self):
            self.vocab = ["abcdef", "st", "op", "stop", "opera", "las", "topper", "at", "xstopy"]

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0]}

        def convert_ids_to_tokens(self, ids):
            return [self.vocab[i] for i in ids] if isinstance(ids, list) else self.vocab[ids]

        def convert_tokens_to_string(self, tokens):
            return "".join(tokens)

    tok = Tiny()
    check = StopStringChecker(["stop"], tok)
    index = {t: i for i, t in enumerate(tok.vocab)}

    def hits(*tokens):
        return check([[index[t] for t in tokens]])[0]

    assert hits("st", "op") and hits("stop") and hits("st", "opera") and hits("las", "topper") and hits("xstopy")
    assert not hits("stop", "at") and not hits("st", "op", "at") and not hits("abcdef")


def test_stop_strings_need_a_tokenizer_and_strings(models):
    model, tokenizer, _, _ = models
    ids = torch.tensor([tokenizer.encode("Hello")])
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(ids, max_new_tokens=3, stop_strings=["x"])
    with pytest.raises(ValueError, match="stop_strings"):
        model.generate(ids, max_new_tokens=3, stop_strings=[""], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="stop_strings"):
        model.generate(ids, max_new_tokens=3, stop_strings=[3], tokenizer=tokenizer)
