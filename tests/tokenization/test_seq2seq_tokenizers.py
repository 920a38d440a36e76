"""Seq2seq tokenizers (T5, Pegasus, mBART, mBART-50, NLLB, Marian) give transformers 5's ids, id for id.

Tiny SentencePiece models are trained here on a small English/French corpus (Unigram for T5, Pegasus and Marian, BPE
for mBART and NLLB). The reference folders are built with transformers' own tokenizer classes: loaded from the bare
model files, then written with save_pretrained, as checkpoints ship them. Each folder is loaded by transformers'
AutoTokenizer (the reference) and by hugkit's, fresh for every test (the language tokenizers keep state).
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import pytest

from hugkit.tokenization import AutoTokenizer
from tests.tokenization.helpers import assert_same_call, assert_same_metadata, make_folder

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")

EN = [
    "The quick brown fox jumps over the lazy dog.",
    "I am a small frog and I live near the river.",
    "Tom asked his teacher for advice about the exam.",
    "The weather is nice today, let us go for a walk.",
    "She reads a book every evening before going to sleep.",
    "We translated the letter into French yesterday.",
    "How many languages do you speak?",
    "The museum opens at nine o'clock in the morning.",
    "My brother works in a bakery in Paris.",
    "Please close the window, it is cold outside.",
]
FR = [
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "Je suis une petite grenouille et j'habite près de la rivière.",
    "Tom a demandé conseil à son professeur au sujet de l'examen.",
    "Il fait beau aujourd'hui, allons nous promener.",
    "Elle lit un livre chaque soir avant de s'endormir.",
    "Nous avons traduit la lettre en français hier.",
    "Combien de langues parlez-vous ?",
    "Le musée ouvre à neuf heures du matin.",
    "Mon frère travaille dans une boulangerie à Paris.",
    "Fermez la fenêtre, s'il vous plaît, il fait froid dehors.",
    "Ça coûte 12,50 € — c'est déjà trop cher ! Où est l'hôtel « Bellevue » ?",
]
# Inputs that stress the pipelines: spaces, special tokens and language codes written in the text, Unicode
# normalization, characters no model knows.
TEXTS = [
    "Hello world",
    EN[0],
    FR[1],
    FR[-1],
    "",
    " ",
    "  leading and   runs  of spaces ",
    "Tabs\tand\nnewlines\n",
    "</s> after eos",
    "<s>Hello",
    "text<pad>pad <unk> unk <mask> mask",
    "<extra_id_0> sentinel <extra_id_99>.",
    "<mask_1> masked <mask_2> x <unk_7>",
    "en_XX fr_XX eng_Latn codes",
    "ﬁ ① ｆｕｌｌｗｉｄｔｈ",
    "zzqqx 漢字 🙂 unknown",
    EN[3] + " " + FR[3],
]
TARGETS = [FR[0], FR[4], "", "Bonjour  le monde !", FR[-1], "</s> fin"]


def _corpus() -> list[str]:
    rng = random.Random(7)
    words = " ".join(EN + FR).split()
    lines = (EN + FR) * 40
    lines += [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(600)]
    return lines


@pytest.fixture(scope="session")
def s2s_models(tmp_path_factory) -> dict[str, Path]:
    return train_models(tmp_path_factory.mktemp("s2s-spm"))


def train_models(folder: Path) -> dict[str, Path]:
    """Tiny SentencePiece models in the layouts of the real checkpoints (the translation pipeline tests use them too)."""
    import sentencepiece

    both = folder / "both.txt"
    both.write_text("\n".join(_corpus()), encoding="utf-8")
    (folder / "en.txt").write_text("\n".join(EN * 40), encoding="utf-8")
    (folder / "fr.txt").write_text("\n".join(FR * 40), encoding="utf-8")
    common = dict(minloglevel=2, num_threads=1, hard_vocab_limit=False)
    layouts = {
        # T5 and Pegasus: <pad>=0 </s>=1 <unk>=2, no <s>
        "t5": dict(input=both, model_type="unigram", vocab_size=300, pad_id=0, eos_id=1, unk_id=2, bos_id=-1),
        # Marian: one model per language, <unk>=0 <s>=1 </s>=2
        "source": dict(input=folder / "en.txt", model_type="unigram", vocab_size=150),
        "target": dict(input=folder / "fr.txt", model_type="unigram", vocab_size=170),
        # mBART / NLLB: fairseq's BPE model, <unk>=0 <s>=1 </s>=2
        "bpe": dict(input=both, model_type="bpe", vocab_size=400),
    }
    paths = {}
    for name, options in layouts.items():
        options = dict(options, input=str(options["input"]))
        sentencepiece.SentencePieceTrainer.train(model_prefix=str(folder / name), **common, **options)
        paths[name] = folder / f"{name}.model"
    return paths


def _saved(source: Path, target: Path, **kwargs) -> Path:
    """Load `source` with transformers' AutoTokenizer and save it as a checkpoint does."""
    import transformers

    shutil.rmtree(target, ignore_errors=True)
    transformers.AutoTokenizer.from_pretrained(str(source), **kwargs).save_pretrained(str(target))
    return target


def _as_transformers_4_wrote_it(folder: Path, normalizer: list, pre_tokenizer: dict) -> Path:
    """Replace a saved tokenizer.json's normalizer and pre-tokenizer with the ones transformers 4's converters
    wrote (which transformers 5 does not read for these classes), and drop the config's added_tokens_decoder."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    charsmap = next(step for step in data["normalizer"]["normalizers"] if step["type"] == "Precompiled") \
        if data["normalizer"]["type"] == "Sequence" else data["normalizer"]
    data["normalizer"] = {"type": "Sequence", "normalizers": [charsmap, *normalizer]}
    data["pre_tokenizer"] = pre_tokenizer
    path.write_text(json.dumps(data), encoding="utf-8")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("added_tokens_decoder", None)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return folder


_V4_METASPACE = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
_V4_NORMALIZER = [{"type": "Strip", "strip_left": False, "strip_right": True},
                  {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}]


def _marian_vocab(*models, codes=(), extra=()) -> dict[str, int]:
    """vocab.json as opus-mt ships it: </s> <unk>, (language codes,) the pieces of both models, <pad> last."""
    import sentencepiece

    vocab = {"</s>": 0, "<unk>": 1}
    for token in [*codes, *extra]:
        vocab.setdefault(token, len(vocab))
    for model in models:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
        for index in range(3, processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(index), len(vocab))
    vocab["<pad>"] = len(vocab)
    return vocab


def _marian(root: Path, name: str, models, vocab, target_vocab=None, **settings) -> Path:
    from transformers import MarianTokenizer

    raw = make_folder(root / f"{name}-files", {"source.spm": models["source"], "target.spm": models["target"]})
    (raw / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    if target_vocab is not None:
        (raw / "target_vocab.json").write_text(json.dumps(target_vocab), encoding="utf-8")
        settings["target_vocab_file"] = str(raw / "target_vocab.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = MarianTokenizer(source_spm=str(raw / "source.spm"), target_spm=str(raw / "target.spm"),
                                    vocab=str(raw / "vocab.json"), **settings)
    tokenizer.save_pretrained(str(root / name))
    return root / name


def _build(name: str, root: Path, models: dict[str, Path], get) -> Path:
    from hugkit.tokenization.language_codes import NLLB_LANGUAGE_CODES

    folder = root / name
    if name == "t5_spm":
        return make_folder(folder, {"spiece.model": models["t5"]}, {"tokenizer_class": "T5Tokenizer"})
    if name == "t5_saved":
        return _saved(get("t5_spm"), folder)
    if name == "t5_v4_json":
        shutil.copytree(get("t5_saved"), folder, dirs_exist_ok=True)
        return _as_transformers_4_wrote_it(folder, _V4_NORMALIZER, _V4_METASPACE)
    if name == "pegasus_spm":
        return make_folder(folder, {"spiece.model": models["t5"]}, {"tokenizer_class": "PegasusTokenizer"})
    if name == "pegasus_hub_config":  # the config google/pegasus-* checkpoints carry
        return make_folder(folder, {"spiece.model": models["t5"]}, {
            "tokenizer_class": "PegasusTokenizer", "mask_token": "<mask_2>", "mask_token_sent": "<mask_1>",
            "offset": 103, "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 512,
            "additional_special_tokens": ["<mask_1>"] + [f"<unk_{index}>" for index in range(2, 103)]})
    if name == "pegasus_saved":
        return _saved(get("pegasus_spm"), folder)
    if name == "pegasus_v4_json":
        shutil.copytree(get("pegasus_saved"), folder, dirs_exist_ok=True)
        return _as_transformers_4_wrote_it(folder, _V4_NORMALIZER[1:], {
            "type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, _V4_METASPACE]})
    if name == "mbart_spm":
        return make_folder(folder, {"sentencepiece.bpe.model": models["bpe"]}, {"tokenizer_class": "MBartTokenizer"})
    if name == "mbart_saved":
        return _saved(get("mbart_spm"), folder, src_lang="en_XX", tgt_lang="ro_RO")
    if name == "mbart50_spm":
        return make_folder(folder, {"sentencepiece.bpe.model": models["bpe"]},
                           {"tokenizer_class": "MBart50Tokenizer", "src_lang": "fr_XX", "tgt_lang": "de_DE"})
    if name == "mbart50_saved":
        return _saved(get("mbart50_spm"), folder)
    if name == "nllb_spm":  # no config naming the codes: transformers 5 adds none
        return make_folder(folder, {"sentencepiece.bpe.model": models["bpe"]}, {"tokenizer_class": "NllbTokenizer"})
    if name == "nllb_saved":  # as facebook/nllb-200-* ship it: the 202 codes are added tokens
        return _saved(get("nllb_spm"), folder, extra_special_tokens=list(NLLB_LANGUAGE_CODES))
    if name == "nllb_legacy_saved":
        base = make_folder(root / "nllb_legacy_spm", {"sentencepiece.bpe.model": models["bpe"]},
                           {"tokenizer_class": "NllbTokenizer", "legacy_behaviour": True, "src_lang": "fra_Latn"})
        return _saved(base, folder, extra_special_tokens=list(NLLB_LANGUAGE_CODES))
    if name == "marian_shared":
        return _marian(root, name, models, _marian_vocab(models["source"], models["target"]),
                       source_lang="en", target_lang="fr")
    if name == "marian_multilingual":
        return _marian(root, name, models, _marian_vocab(models["source"], models["target"],
                                                         codes=[">>fr<<", ">>es<<", ">>de<<"]))
    if name == "marian_separate":
        return _marian(root, name, models, _marian_vocab(models["source"]),
                       _marian_vocab(models["target"], extra=["▁only", "▁target"]), separate_vocabs=True)
    raise KeyError(name)


CASES = {
    "t5_spm": "T5Tokenizer",
    "t5_saved": "T5Tokenizer",
    "t5_v4_json": "T5Tokenizer",
    "pegasus_spm": "PegasusTokenizer",
    "pegasus_hub_config": "PegasusTokenizer",
    "pegasus_saved": "PegasusTokenizer",
    "pegasus_v4_json": "PegasusTokenizer",
    "mbart_spm": "MBartTokenizer",
    "mbart_saved": "MBartTokenizer",
    "mbart50_spm": "MBart50Tokenizer",
    "mbart50_saved": "MBart50Tokenizer",
    "nllb_spm": "NllbTokenizer",
    "nllb_saved": "NllbTokenizer",
    "nllb_legacy_saved": "NllbTokenizer",
    "marian_shared": "MarianTokenizer",
    "marian_multilingual": "MarianTokenizer",
    "marian_separate": "MarianTokenizer",
}
LANGUAGE_CASES = ["mbart_spm", "mbart_saved", "mbart50_spm", "mbart50_saved", "nllb_saved", "nllb_legacy_saved"]
MARIAN_CASES = [case for case in CASES if case.startswith("marian")]


@pytest.fixture(scope="session")
def s2s_folder(tmp_path_factory, s2s_models):
    root = tmp_path_factory.mktemp("s2s-folders")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = _build(name, root, s2s_models, get)
        return built[name]

    return get


@pytest.fixture(scope="session")
def load(s2s_folder):
    """(transformers tokenizer, hugkit tokenizer), freshly loaded from the case's folder."""
    import transformers

    def get(case: str, **kwargs):
        folder = s2s_folder(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
        assert type(reference).__name__ == CASES[case], (case, type(reference).__name__)
        return reference, AutoTokenizer.from_pretrained(str(folder), **kwargs)

    return get


def _words(texts):
    return [text.split() or ["x"] for text in texts]


# ---------------------------------------------------------------- every case


@pytest.mark.parametrize("case", CASES)
def test_vocabulary_and_special_tokens_match(case, load):
    reference, ours = load(case)
    assert ours.tokenizer_class == CASES[case]
    assert_same_metadata(reference, ours)
    assert ours.decode(list(range(len(reference)))) == reference.decode(list(range(len(reference))))


@pytest.mark.parametrize("case", CASES)
def test_texts_and_pairs_match(case, load):
    reference, ours = load(case)
    for text in TEXTS:
        assert_same_call(reference, ours, text)
        assert_same_call(reference, ours, text, return_special_tokens_mask=True, return_length=True)
        assert_same_call(reference, ours, text, "a second text", return_special_tokens_mask=True)
        assert ours.tokenize(text) == reference.tokenize(text), text
        assert ours.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)
    assert_same_call(reference, ours, _words(TEXTS[:4])[0], is_split_into_words=True)


@pytest.mark.parametrize("case", CASES)
def test_batches_match(case, load):
    reference, ours = load(case)
    assert_same_call(reference, ours, TEXTS)
    assert_same_call(reference, ours, TEXTS, padding=True, return_special_tokens_mask=True)
    assert_same_call(reference, ours, TEXTS, padding="max_length", truncation=True, max_length=12)
    assert_same_call(reference, ours, TEXTS, padding=True, truncation=True, max_length=9, return_tensors="pt")
    assert_same_call(reference, ours, TEXTS[:3], padding=True, return_tensors="np", padding_side="left")
    assert_same_call(reference, ours, _words(TEXTS), is_split_into_words=True, padding=True)


@pytest.mark.parametrize("case", CASES)
def test_targets_match(case, load):
    reference, ours = load(case)
    for target in TARGETS:
        assert_same_call(reference, ours, text_target=target)
        assert_same_call(reference, ours, TEXTS[1], text_target=target)
    batch = dict(padding=True, truncation=True, max_length=16, return_tensors="pt")
    assert_same_call(reference, ours, TEXTS[:len(TARGETS)], text_target=TARGETS, **batch)
    assert_same_call(reference, ours, TEXTS[:3], text_target=TARGETS[:3], max_target_length=4, truncation=True)
    assert_same_call(reference, ours, TEXTS[:3], text_target=TARGETS[:3], max_target_length=4)  # not truncated
    # Sources are framed as sources again after targets.
    assert_same_call(reference, ours, TEXTS[0])


@pytest.mark.parametrize("case", CASES)
def test_decoding_matches(case, load):
    reference, ours = load(case)
    sequences = [reference(text)["input_ids"] for text in TEXTS] + [reference(text_target=t)["input_ids"]
                                                                     for t in TARGETS]
    for ids in sequences:
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(ids, skip_special_tokens=skip), ids
        assert ours.convert_ids_to_tokens(ids) == reference.convert_ids_to_tokens(ids)
    assert ours.batch_decode(sequences, skip_special_tokens=True) == reference.batch_decode(
        sequences, skip_special_tokens=True)


def test_every_case_round_trips_through_hugkit_save(load, s2s_folder, tmp_path):
    """Folders hugkit saves load in transformers (and hugkit) to the same tokenizer."""
    import transformers

    for case in ("t5_spm", "pegasus_hub_config", "mbart50_saved", "nllb_saved", "marian_separate"):
        reference, ours = load(case)
        ours.save_pretrained(tmp_path / case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again_reference = transformers.AutoTokenizer.from_pretrained(str(tmp_path / case))
        again = AutoTokenizer.from_pretrained(tmp_path / case)
        for text in TEXTS[:6]:
            expected = reference(text, text_target=TARGETS[0])
            assert dict(again(text, text_target=TARGETS[0])) == dict(expected), (case, text)
            assert dict(again_reference(text, text_target=TARGETS[0])) == dict(expected), (case, text)


# ---------------------------------------------------------------- T5 and Pegasus layouts


def test_t5_sentinels_end_the_vocabulary(load):
    reference, ours = load("t5_spm")
    assert (ours.pad_token_id, ours.eos_token_id, ours.unk_token_id) == (0, 1, 2)
    assert len(ours) == len(reference)
    last = len(ours) - 1
    assert ours.convert_tokens_to_ids("<extra_id_0>") == reference.convert_tokens_to_ids("<extra_id_0>") == last
    assert ours.convert_tokens_to_ids("<extra_id_99>") == last - 99
    assert ours.get_sentinel_tokens() == [f"<extra_id_{index}>" for index in range(100)]
    assert ours.get_sentinel_token_ids() == list(range(last, last - 100, -1))
    assert ours("Hello")["input_ids"][-1] == 1
    ids = ours("<extra_id_0> world <extra_id_1>")["input_ids"]
    assert ids[0] == last and ours.decode(ids, skip_special_tokens=True) == "world"


def test_pegasus_reserves_offset_ids(load):
    reference, ours = load("pegasus_spm")
    expected = ["<pad>", "</s>", "<mask_1>", "<mask_2>"] + [f"<unk_{index}>" for index in range(2, 103)]
    assert ours.convert_ids_to_tokens(list(range(105))) == expected == reference.convert_ids_to_tokens(
        list(range(105)))
    assert ours.unk_token_id == reference.unk_token_id == 105
    assert ours.mask_token == "<mask_2>" and ours.extra_special_tokens[0] == "<mask_1>"
    assert ours("a", "b")["input_ids"][-1] == 1  # pairs: A B </s>


# ---------------------------------------------------------------- language codes


@pytest.mark.parametrize("case", LANGUAGE_CASES)
def test_source_and_target_languages_frame_as_in_transformers(case, load):
    reference, ours = load(case)
    codes = ["fr_XX", "de_DE", "ro_RO"] if case.startswith("mbart") else ["fra_Latn", "deu_Latn", "ron_Latn"]
    assert ours.src_lang == reference.src_lang and ours.tgt_lang == reference.tgt_lang
    for source, target in zip(codes, codes[1:] + codes[:1]):
        reference.src_lang = ours.src_lang = source
        reference.tgt_lang = ours.tgt_lang = target
        assert_same_call(reference, ours, TEXTS[1], text_target=TARGETS[0])
        assert_same_call(reference, ours, TEXTS[:3], "pair", padding=True)
        assert ours.prefix_tokens == reference.prefix_tokens and ours.suffix_tokens == reference.suffix_tokens
        source_id, target_id = ours.convert_tokens_to_ids(source), ours.convert_tokens_to_ids(target)
        framed = ours("Hello", text_target="Bonjour")
        code_first = case.startswith("mbart50") or case == "nllb_saved"
        position = 0 if code_first else -1
        assert framed["input_ids"][position] == source_id and framed["labels"][position] == target_id
        assert ours.eos_token_id in framed["input_ids"][-2:]


@pytest.mark.parametrize("case", LANGUAGE_CASES)
def test_target_language_defaults_to_the_source_one(case, load):
    reference, ours = load(case, src_lang="ro_RO" if case.startswith("mbart") else "ron_Latn", tgt_lang=None)
    assert_same_call(reference, ours, "Hello", text_target="Salut")
    assert ours.tgt_lang == reference.tgt_lang == ours.src_lang


@pytest.mark.parametrize("case", ["mbart_saved", "mbart50_saved", "nllb_saved"])
def test_language_lookups_and_forced_bos(case, load):
    reference, ours = load(case)
    code = "fr_XX" if case.startswith("mbart") else "fra_Latn"
    assert ours.convert_tokens_to_ids(code) == reference.convert_tokens_to_ids(code)
    if case.startswith("mbart"):
        assert ours.lang_code_to_id == reference.lang_code_to_id
        assert ours.lang_code_to_id[code] == reference.convert_tokens_to_ids(code)
        assert ours.fairseq_tokens_to_ids == reference.fairseq_tokens_to_ids
    else:
        assert not hasattr(ours, "lang_code_to_id") and not hasattr(reference, "lang_code_to_id")
    assert code in ours.language_codes
    source = "en_XX" if case.startswith("mbart") else "eng_Latn"
    expected = reference._build_translation_inputs(["Hello world", "Hi"], "pt", source, code, padding=True)
    actual = ours._build_translation_inputs(["Hello world", "Hi"], "pt", source, code, padding=True)
    assert actual["forced_bos_token_id"] == expected["forced_bos_token_id"] == ours.convert_tokens_to_ids(code)
    assert actual["input_ids"].tolist() == expected["input_ids"].tolist()


@pytest.mark.parametrize("case", ["mbart_saved", "mbart50_saved", "nllb_saved"])
def test_languages_can_be_given_per_call(case, load):
    reference, ours = load(case)
    source, target = ("de_DE", "fr_XX") if case.startswith("mbart") else ("deu_Latn", "fra_Latn")
    before = (ours.src_lang, ours.tgt_lang)
    actual = ours(TEXTS[:2], text_target=TARGETS[:2], src_lang=source, tgt_lang=target, padding=True)
    reference.src_lang, reference.tgt_lang = source, target
    assert dict(actual) == dict(reference(TEXTS[:2], text_target=TARGETS[:2], padding=True))
    assert (ours.src_lang, ours.tgt_lang) == before  # only for that call
    assert dict(ours("Hello")) == dict(load(case)[1]("Hello"))


@pytest.mark.parametrize("case", ["mbart_saved", "mbart50_saved", "nllb_saved"])
def test_unknown_language_codes_are_refused_with_the_valid_ones(case, load):
    _, ours = load(case)
    valid = "fr_XX" if case.startswith("mbart") else "fra_Latn"
    with pytest.raises(ValueError, match=f"Unknown src_lang 'xx_YY'.*Valid codes: .*{valid}"):
        ours.src_lang = "xx_YY"
    with pytest.raises(ValueError, match="Unknown tgt_lang 'fr'"):
        ours.tgt_lang = "fr"
    with pytest.raises(ValueError, match="Unknown src_lang"):
        ours("Hello", src_lang="english")
    with pytest.raises(ValueError, match="Unknown tgt_lang"):
        ours._build_translation_inputs("Hello", None, ours.src_lang, "klingon")
    with pytest.raises(ValueError, match="Unknown src_lang"):
        AutoTokenizer.from_pretrained(ours.name_or_path, src_lang="xx_YY")
    with pytest.raises(TypeError, match="language code"):
        ours.src_lang = 5
    piece = ours.convert_ids_to_tokens(10)
    with pytest.raises(ValueError, match="Unknown src_lang"):
        ours.src_lang = piece  # a piece of the vocabulary, not a language
    ours.add_special_tokens({"extra_special_tokens": ["__new_lang__"]}, replace_extra_special_tokens=False)
    ours.src_lang = "__new_lang__"
    assert ours.src_lang == "__new_lang__" and ours.convert_tokens_to_ids("__new_lang__") in ours("x")["input_ids"]
    ours.src_lang = valid
    fresh = load(case)[1]
    fresh.src_lang = valid
    assert ours("Hello")["input_ids"] == fresh("Hello")["input_ids"]  # refused codes changed nothing


def test_nllb_without_codes_frames_with_unk_like_transformers(load, caplog):
    reference, ours = load("nllb_spm")
    assert ours("Hello")["input_ids"] == reference("Hello")["input_ids"]
    assert ours("Hello")["input_ids"][0] == ours.unk_token_id
    assert ours.language_codes == []
    with pytest.raises(ValueError, match="none \\(the tokenizer files name no language codes\\)"):
        ours.src_lang = "fra_Latn"


# ---------------------------------------------------------------- Marian


def test_marian_language_codes_lead_as_one_token(load):
    reference, ours = load("marian_multilingual")
    for text in (">>fr<< Bonjour le monde", ">>es<<hola", ">>de<< ", "x >>fr<< inside", " >>fr<< space first",
                 ">>xx<< unknown code", ">>fr<< >>es<< two"):
        assert_same_call(reference, ours, text)
        assert_same_call(reference, ours, text_target=text)
        assert ours.tokenize(text) == reference.tokenize(text), text
    assert ours.tokenize(">>fr<< Bonjour")[0] == ">>fr<<"
    assert ours(">>fr<< Bonjour")["input_ids"][0] == ours.convert_tokens_to_ids(">>fr<<") == ours.encoder[">>fr<<"]
    assert ours.supported_language_codes == reference.supported_language_codes == [">>fr<<", ">>es<<", ">>de<<"]
    assert_same_call(reference, ours, [">>fr<< a", ">>es<< b c", "d"], padding=True, return_offsets_mapping=False)


def test_marian_decodes_with_either_model(load):
    for case in MARIAN_CASES:
        reference, ours = load(case)
        for target in TARGETS + TEXTS:
            ids = reference(text_target=target)["input_ids"]
            for use_source in (None, True, False):
                options = {} if use_source is None else {"use_source_tokenizer": use_source}
                for skip in (False, True):
                    assert ours.decode(ids, skip_special_tokens=skip, **options) == reference.decode(
                        ids, skip_special_tokens=skip, **options), (case, target, options)
        tokens = reference.convert_ids_to_tokens(reference(TARGETS[0])["input_ids"])
        assert ours.convert_tokens_to_string(tokens) == reference.convert_tokens_to_string(tokens)


def test_marian_separate_vocabularies_keep_the_source_special_ids(load):
    reference, ours = load("marian_separate")
    assert ours.separate_vocabs and ours.target_encoder != ours.encoder
    assert ours.pad_token_id == ours.encoder["<pad>"] != ours.target_encoder["<pad>"]
    labels = ours(text_target=["Bonjour", "Le musée ouvre à neuf heures"], padding=True)["input_ids"]
    assert labels == reference(text_target=["Bonjour", "Le musée ouvre à neuf heures"], padding=True)["input_ids"]
    assert labels[0][-1] == ours.pad_token_id
    assert ours.get_tgt_vocab()["▁only"] == ours.target_encoder["▁only"]


def test_marian_needs_its_three_files(s2s_folder, tmp_path):
    folder = tmp_path / "marian"
    shutil.copytree(s2s_folder("marian_shared"), folder)
    (folder / "target.spm").unlink()
    with pytest.raises(OSError, match="target.spm"):
        AutoTokenizer.from_pretrained(folder)
    (folder / "target.spm").write_bytes((folder / "source.spm").read_bytes())
    (folder / "vocab.json").write_text(json.dumps({"</s>": 0, "<unk>": 5}), encoding="utf-8")
    with pytest.raises(ValueError, match="without gaps"):
        AutoTokenizer.from_pretrained(folder)


# ---------------------------------------------------------------- choosing the class


@pytest.mark.parametrize(("case", "model_type"), [("t5_spm", "t5"), ("pegasus_spm", "pegasus"),
                                                  ("mbart_spm", "mbart"), ("marian_shared", "marian")])
def test_class_follows_config_json_without_a_tokenizer_config(case, model_type, s2s_folder, tmp_path):
    import transformers

    folder = tmp_path / case
    shutil.copytree(s2s_folder(case), folder)
    (folder / "tokenizer_config.json").unlink()
    for name in ("tokenizer.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.AutoTokenizer.from_pretrained(str(folder))
    ours = AutoTokenizer.from_pretrained(folder)
    assert ours.tokenizer_class == type(reference).__name__ == CASES[case]
    for text in TEXTS[:4]:
        assert dict(ours(text, text_target=TARGETS[0])) == dict(reference(text, text_target=TARGETS[0]))


def test_a_tokenizer_json_of_the_wrong_model_type_is_refused(s2s_folder, tmp_path):
    folder = tmp_path / "t5-with-bpe"
    shutil.copytree(s2s_folder("nllb_saved"), folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}), encoding="utf-8")
    with pytest.raises(ValueError, match="T5Tokenizer reads a Unigram tokenizer.json .* BPE model"):
        AutoTokenizer.from_pretrained(folder)
