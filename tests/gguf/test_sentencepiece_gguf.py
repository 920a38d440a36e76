"""GGUF files with a SentencePiece ("llama") tokenizer, as llama.cpp writes them for Llama 1/2, Mistral and TinyLlama:
pieces, scores and token types, no merges. hugkit's conversion must give transformers' ids, id for id."""

import pytest

import gguf
import sentencepiece

from hugkit import AutoTokenizer

from ..tokenization.helpers import training_corpus
from .test_smollm2 import CORPUS
from .test_tiny_gguf import write_llama_gguf

# sentencepiece piece types -> llama.cpp token types (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6)
TOKEN_TYPES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 5}
TEXTS = CORPUS + ["Hello world", " leading space", "trailing space ", "two  spaces", "tab\there", "<s> literal",
                  "emoji 🙂 and 漢字", "kari tomune salovi", "<sep> user word"]


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(training_corpus()), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "llama"), model_type="bpe", vocab_size=400, byte_fallback=True,
        character_coverage=0.995, user_defined_symbols=["<sep>"], minloglevel=2,
    )
    return sentencepiece.SentencePieceProcessor(model_file=str(folder / "llama.model"))


def _write(path, processor, **flags):
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    scores = [processor.get_score(i) for i in range(len(pieces))]
    types = []
    for index in range(len(pieces)):
        kind = 1
        if processor.is_unknown(index):
            kind = 2
        elif processor.is_control(index):
            kind = 3
        elif processor.is_byte(index):
            kind = 6
        elif pieces[index] == "<sep>":
            kind = 4
        types.append(kind)

    def tokenizer_metadata(writer):
        writer.add_tokenizer_model("llama")
        writer.add_token_list(pieces)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(processor.bos_id())
        writer.add_eos_token_id(processor.eos_id())
        writer.add_unk_token_id(processor.unk_id())
        for name, value in flags.items():
            getattr(writer, f"add_{name}")(value)

    return write_llama_gguf(path, vocab_size=len(pieces), metadata=tokenizer_metadata)


@pytest.mark.parametrize("flags", [{}, {"add_bos_token": False}, {"add_bos_token": True, "add_eos_token": True}],
                         ids=["bos-by-default", "no-bos", "bos-and-eos"])
def test_ids_match_transformers(tmp_path, spm_model, flags):
    import transformers

    path = _write(tmp_path / "spm.gguf", spm_model, **flags)
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    ours = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    assert ours.bos_token == reference.bos_token == "<s>" and ours.unk_token == reference.unk_token == "<unk>"
    for text in TEXTS:
        ids = ours(text)["input_ids"]
        assert ids == reference(text)["input_ids"], text
        assert ours.decode(ids) == reference.decode(ids), text
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True), text
    ours.pad_token = reference.pad_token = ours.unk_token  # the file names no pad token: both refuse to pad without one
    assert ours(TEXTS[:4], padding=True)["input_ids"] == reference(TEXTS[:4], padding=True)["input_ids"]


def test_pieces_agree_with_sentencepiece(tmp_path, spm_model):
    """Merges derived from scores reproduce SentencePiece's own segmentation on ordinary text."""
    path = _write(tmp_path / "spm.gguf", spm_model, add_bos_token=False)
    ours = AutoTokenizer.from_pretrained(path)
    for text in ["Hello world", "kari tomune salovi", "The quick brown fox jumps over the lazy dog."]:
        assert ours(text)["input_ids"] == spm_model.encode(text), text
    assert ours.decode(ours("emoji 🙂 and 漢字")["input_ids"]) == "emoji 🙂 and 漢字"  # byte fallback round trip


def test_gemma_sentencepiece_refused(tmp_path):
    from hugkit.tokenization.converters.gguf import convert_gguf

    with pytest.raises(ValueError, match=r"'gemma' model with a SentencePiece tokenizer.*original tokenizer files"):
        convert_gguf({"model": "llama", "architecture": "gemma", "tokens": ["<unk>"], "scores": [0.0], "token_type": [2]})


def test_scores_required():
    from hugkit.tokenization.converters.gguf import convert_gguf

    with pytest.raises(ValueError, match="tokenizer.ggml.scores"):
        convert_gguf({"model": "llama", "architecture": "llama", "tokens": ["<unk>", "a"], "token_type": [2, 1]})
