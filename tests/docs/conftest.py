"""Tiny local checkpoints standing in for the hub models of transformers' documentation snippets.

- ``causal_lm``: a random Llama with the real GPT-2 byte-level BPE tokenizer and a ChatML chat template (the docs'
  gpt2 / Llama-2 / Mistral / zephyr), context 1024 so the pipelines' 256-token default fits, pad = eos = <|endoftext|>;
- ``t5``: a random T5 with a T5 SentencePiece tokenizer (``<extra_id_N>`` included) trained here (the docs'
  t5-small);
- ``bart_summarizer``: a random BART in distilbart-cnn's layout (the pipeline tutorial's summarizer);
- ``sst2_classifier``: a random DistilBERT sentiment classifier with a real BERT tokenizer (distilbert-sst-2).

Each is written by transformers (the reference) once per session; hugkit and transformers load the same folder.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.assets import GPT2_FILES, require
from tests.generation.text_models import CHATML


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny models on a shared machine: one thread avoids start-up cost and contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def causal_lm(tmp_path_factory) -> str:
    import torch
    import transformers

    require(GPT2_FILES)
    folder = tmp_path_factory.mktemp("docs-causal-lm")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=50257, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=1024, initializer_range=0.2, tie_word_embeddings=True,
        bos_token_id=50256, eos_token_id=50256,
    )
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)
    shutil.copy(GPT2_FILES / "encoder.json", folder / "vocab.json")
    shutil.copy(GPT2_FILES / "vocab.bpe", folder / "merges.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "chat_template": CHATML, "model_max_length": 1024,
         "pad_token": "<|endoftext|>"}
    ))
    return str(folder)


@pytest.fixture(scope="session")
def t5(tmp_path_factory) -> str:
    import sentencepiece
    import torch
    import transformers

    from tests.tokenization.helpers import make_folder
    from tests.tokenization.test_seq2seq_tokenizers import EN, FR, _corpus

    root = tmp_path_factory.mktemp("docs-t5")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(_corpus() + ["translate English to French:", "translate English to German:"] * 40 + [
        "Configuration files are easy to use!", "The house is wonderful.", *EN, *FR]), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(  # T5's layout: <pad>=0 </s>=1 <unk>=2, no <s>
        input=str(corpus), model_prefix=str(root / "spiece"), model_type="unigram", vocab_size=300, pad_id=0,
        eos_id=1, unk_id=2, bos_id=-1, minloglevel=2, num_threads=1, hard_vocab_limit=False,
    )
    source = make_folder(root / "spm", {"spiece.model": root / "spiece.model"}, {"tokenizer_class": "T5Tokenizer"})
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ))
    with torch.no_grad():  # strong random weights: different settings give different texts
        for param in model.parameters():
            param.normal_(0.0, 0.3)
    folder = root / "t5-small"
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def bart_summarizer(tmp_path_factory) -> str:
    from tests.pipelines.seq2seq_checkpoints import tiny_bart

    generation = {"num_beams": 2, "max_length": 24, "min_length": 4, "no_repeat_ngram_size": 3,
                  "length_penalty": 2.0, "early_stopping": True}
    return str(tiny_bart(tmp_path_factory.mktemp("docs-bart") / "distilbart", generation=generation))


@pytest.fixture(scope="session")
def sst2_classifier(tmp_path_factory) -> str:
    from tests.pipelines.conftest import _bert_like

    folder = _bert_like("distilbert", tmp_path_factory.mktemp("docs-sst2"), "DistilBertForSequenceClassification")
    config_path = folder / "tokenizer_config.json"  # the tiny model has 128 positions: the tokenizer says so too
    config = json.loads(config_path.read_text())
    config["model_max_length"] = 128
    config_path.write_text(json.dumps(config))
    return str(folder)
