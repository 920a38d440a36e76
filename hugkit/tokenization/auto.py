"""AutoTokenizer: find a checkpoint's tokenizer files, pick the tokenizer class, build (or convert) the engine.

The class named in tokenizer_config.json (or implied by config.json's model_type, or else by the files present)
decides, as in transformers 5. `tokenizer.json` is used as it is, except for the classes transformers 5 rebuilds
from the file's vocabulary (T5, Pegasus, mBART, mBART-50, NLLB, Llama: converters/class_pipelines.py). Without it
a converter builds the engine from the vocabulary files (a Marian folder always: marian.py). Converted engines are
cached on disk so a conversion runs once. Code shipped with a checkpoint (`auto_map`) is never executed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from tokenizers import Tokenizer

from . import cache
from .base import PreTrainedTokenizerFast
from .config_files import TOKENIZER_FILE_PATTERNS, TokenizerFiles, merge_settings
from .converters import Conversion
from .families import (
    FAMILIES,
    GENERIC,
    GENERIC_MODEL_TYPES,
    MODEL_TYPE_TO_CLASS,
    TokenizerFamily,
    canonical_class_name,
    family_for_class,
)
from .post_processors import build_post_processor

logger = logging.getLogger(__name__)

# Loader arguments transformers accepts that have no meaning for a local, offline-first load.
_IGNORED_LOADER_ARGUMENTS = ("force_download", "proxies", "resume_download", "_from_pipeline", "_commit_hash",
                             "_from_auto", "code_revision", "use_auth_token", "gguf_file")
# Settings the tokenizer object takes as arguments (everything else is kept for save_pretrained).
_TOKENIZER_ARGUMENTS = ("model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces",
                        "split_special_tokens", "chat_template", "model_input_names")


class AutoTokenizer:
    """`AutoTokenizer.from_pretrained(path_or_repo_id, ...)` returns a PreTrainedTokenizerFast."""

    def __init__(self):
        raise OSError("AutoTokenizer is built with AutoTokenizer.from_pretrained(path_or_repo_id)")

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *inputs,
        revision: str | None = None,
        subfolder: str = "",
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        use_fast: bool | None = None,  # accepted for compatibility: every hugkit tokenizer is "fast"
        trust_remote_code: bool | None = None,  # accepted and ignored: checkpoint code is never run
        config=None,
        tokenizer_type: str | None = None,
        **overrides,
    ) -> PreTrainedTokenizerFast:
        if inputs:
            raise TypeError("AutoTokenizer.from_pretrained takes tokenizer settings as keyword arguments only")
        gguf_file = overrides.pop("gguf_file", None)
        for name in _IGNORED_LOADER_ARGUMENTS:
            overrides.pop(name, None)
        started = time.perf_counter()
        source = Path(os.fspath(pretrained_model_name_or_path)) if isinstance(
            pretrained_model_name_or_path, (str, os.PathLike)) else None
        if source is None:
            raise TypeError(
                f"pretrained_model_name_or_path must be a str or a path, got {type(pretrained_model_name_or_path).__name__}"
            )
        if gguf_file is not None or (source.is_file() and source.suffix == ".gguf"):
            return _from_gguf(pretrained_model_name_or_path, gguf_file, overrides,
                              revision=revision, subfolder=subfolder, cache_dir=cache_dir,
                              local_files_only=local_files_only, token=token)
        if source.is_file() and (source.suffix == ".tiktoken" or (source.suffix == ".json" and _is_tiktoken_json(source))):
            return _from_tiktoken(source, overrides)
        if source.is_file() and source.suffix == ".json":
            # A lone tokenizer.json: no config to read.
            return PreTrainedTokenizerFast(Tokenizer.from_file(str(source)), name_or_path=str(source), **overrides)

        folder = _resolve_folder(str(pretrained_model_name_or_path), revision, subfolder, cache_dir,
                                 local_files_only, token)
        files = TokenizerFiles.read(folder)
        if tokenizer_type == "vits" or files.tokenizer_config.get("tokenizer_class") == "VitsTokenizer" or (
            tokenizer_type is None and "tokenizer_class" not in files.tokenizer_config
            and (getattr(config, "model_type", None) or files.model_config.get("model_type")) == "vits"
        ):  # VITS / MMS-TTS: a character vocabulary, tokenized in Python (tokenization/vits.py)
            from .vits import VitsTokenizer

            return VitsTokenizer._from_folder(folder, str(pretrained_model_name_or_path), overrides)
        if "auto_map" in files.tokenizer_config:
            logger.info("Ignoring auto_map in %s: hugkit never runs code shipped with a checkpoint", folder)

        family, class_name = _select_family(files, tokenizer_type, config)
        kind = _source_kind(files, family)
        if kind == "marian":
            from .marian import load_marian

            return load_marian(files, family, overrides, str(pretrained_model_name_or_path))
        # The settings as the files and caller give them, without the class's defaults: what converters read.
        given = merge_settings(files, dataclasses.replace(family, special_tokens={}), overrides,
                               uses_tokenizer_json=kind == "tokenizer.json", derived={}).settings
        if kind == "tokenizer.json" and family.rebuilds_tokenizer_json:
            conversion = _rebuild_cached(files, family, given)
            merged = merge_settings(files, family, overrides, uses_tokenizer_json=True, derived=conversion.derived)
            backend = conversion.tokenizer
        elif kind == "tokenizer.json":
            merged = merge_settings(files, family, overrides, uses_tokenizer_json=True, derived={})
            backend = _load_tokenizer_json(files.tokenizer_json, family, merged.settings)
            conversion = None
        else:
            conversion = _convert_cached(kind, files, family, class_name, given)
            merged = merge_settings(files, family, overrides, uses_tokenizer_json=False, derived=conversion.derived)
            backend = conversion.tokenizer

        tokenizer = _build_tokenizer(backend, family, class_name, merged, str(pretrained_model_name_or_path))
        if conversion is not None:
            processor = build_post_processor(family.template, tokenizer, merged.settings)
            if processor is not None:
                tokenizer.backend_tokenizer.post_processor = processor
        # Languages asked for by the caller are checked (those in the files are taken as they are).
        for name in ("src_lang", "tgt_lang"):
            if overrides.get(name) is not None and hasattr(type(tokenizer), name):
                setattr(tokenizer, name, overrides[name])
        logger.debug("Loaded %s from %s (%s) in %.3fs", class_name, folder, kind, time.perf_counter() - started)
        return tokenizer


def _resolve_folder(path: str, revision, subfolder, cache_dir, local_files_only, token) -> Path:
    # Imported here so that importing hugkit.tokenization stays light; local folders never touch the network.
    from ..hub import resolve

    return Path(
        resolve(path, revision=revision, subfolder=subfolder or "", cache_dir=cache_dir,
                local_files_only=local_files_only, token=token, allow_patterns=TOKENIZER_FILE_PATTERNS)
    )


def _select_family(files: TokenizerFiles, tokenizer_type: str | None, config) -> tuple[TokenizerFamily, str]:
    """(family row, class name to report and save): tokenizer_type= if given, else the config's class, else
    config.json's model_type, else the files present."""
    if tokenizer_type is not None:
        if tokenizer_type not in MODEL_TYPE_TO_CLASS:
            raise ValueError(f"tokenizer_type {tokenizer_type!r} is not one of {sorted(MODEL_TYPE_TO_CLASS)}")
        class_name = MODEL_TYPE_TO_CLASS[tokenizer_type]
    else:
        model_type = getattr(config, "model_type", None) or files.model_config.get("model_type")
        class_name = canonical_class_name(files.tokenizer_config.get("tokenizer_class")) or MODEL_TYPE_TO_CLASS.get(
            model_type or "")
    if class_name is not None:
        family = family_for_class(class_name)
        model_type = getattr(config, "model_type", None) or files.model_config.get("model_type")
        if family is not None and tokenizer_type is None and _read_as_backend(files, family, model_type):
            logger.info("Reading %s's tokenizer files as they are (not as a %s), as transformers does",
                        files.folder, family.name)
            return GENERIC, "TokenizersBackend"
        if family is not None:
            return family, family.name
        logger.info("No hugkit row for tokenizer class %s; the files decide how to read it", class_name)
    # Nothing (known) names a class: the files decide.
    if all(files.path(name) is not None for name in ("source.spm", "target.spm", "vocab.json")):
        family = FAMILIES["MarianTokenizer"]
    elif files.tokenizer_json is not None:
        family = GENERIC
    elif files.vocab_txt is not None:
        family = FAMILIES["BertTokenizer"]
    elif files.vocab_json is not None and files.merges_txt is not None:
        family = FAMILIES["GPT2Tokenizer"]
    else:
        family = GENERIC
    return family, class_name or family.name


def _read_as_backend(files: TokenizerFiles, family: TokenizerFamily, model_type: str | None) -> bool:
    """transformers 5 loads a checkpoint with TokenizersBackend (a tokenizer.json's own pipeline, a SentencePiece
    model's own spec) whatever class its config names when the model type is registered to that backend (Mistral
    checkpoints naming LlamaTokenizer), and a "LlamaTokenizer" whose tokenizer.json is byte-level (Llama 3 style),
    since the class hard-codes SentencePiece's Metaspace."""
    if family.name == GENERIC.name:
        return False
    if model_type in GENERIC_MODEL_TYPES:
        return True
    if family.name == "LlamaTokenizer" and files.tokenizer_json is not None:
        with open(files.tokenizer_json, encoding="utf-8") as handle:
            return '"ByteLevel"' in handle.read()
    return False


def _source_kind(files: TokenizerFiles, family: TokenizerFamily) -> str:
    wanted = family.source
    # transformers' CLIPTokenizer takes only the vocabulary and merges from a tokenizer.json and builds the rest
    # itself (its decoder turns </w> into spaces, which tokenizer.json files do not say).
    if wanted == "marian":  # transformers' MarianTokenizer has no tokenizer.json form
        missing = [name for name in ("source.spm", "target.spm", "vocab.json") if files.path(name) is None]
        if missing:
            raise OSError(f"Cannot build a MarianTokenizer from {files.folder}: it needs source.spm, target.spm and "
                          f"vocab.json, but {', '.join(missing)} is missing; the folder holds: {files.describe()}")
        return "marian"
    if wanted == "clip_bpe" and (files.tokenizer_json is not None
                                 or (files.vocab_json is not None and files.merges_txt is not None)):
        return "clip_bpe"
    if files.tokenizer_json is not None:
        return "tokenizer.json"
    if wanted in (None, "wordpiece") and files.vocab_txt is not None:
        return "wordpiece"
    if wanted in (None, "byte_level_bpe") and files.vocab_json is not None and files.merges_txt is not None:
        return "byte_level_bpe"
    if wanted in (None, "sentencepiece") and files.sentencepiece_model(family.spm_files) is not None:
        return "sentencepiece"
    needed = {
        "wordpiece": "vocab.txt",
        "byte_level_bpe": "vocab.json and merges.txt",
        "clip_bpe": "vocab.json and merges.txt",
        "sentencepiece": " or ".join(family.spm_files or ("a SentencePiece .model file",)),
        None: "tokenizer.json, vocab.txt, vocab.json + merges.txt, or a SentencePiece .model file",
    }[wanted]
    raise OSError(
        f"Cannot build a {family.name} from {files.folder}: it needs tokenizer.json or {needed}, "
        f"but the folder holds: {files.describe()}"
    )


def _convert_cached(kind: str, files: TokenizerFiles, family: TokenizerFamily, class_name: str, settings: dict):
    from .converters import byte_level_bpe, clip_bpe, sentencepiece, wordpiece

    if kind == "wordpiece":
        sources = [files.vocab_txt]
        options = wordpiece.wordpiece_options(settings)
        convert = lambda: wordpiece.convert_wordpiece(files.vocab_txt, options)  # noqa: E731
    elif kind == "byte_level_bpe":
        sources = [files.vocab_json, files.merges_txt]
        options = byte_level_bpe.byte_level_bpe_options(settings)
        convert = lambda: byte_level_bpe.convert_byte_level_bpe(files.vocab_json, files.merges_txt, options)  # noqa: E731
    elif kind == "clip_bpe":
        sources = [files.tokenizer_json] if files.tokenizer_json is not None else [files.vocab_json, files.merges_txt]
        options = clip_bpe.clip_bpe_options(settings)
        convert = lambda: clip_bpe.convert_clip_bpe(sources, options)  # noqa: E731
    else:
        model_path = files.sentencepiece_model(family.spm_files)
        sources = [model_path]
        # Classes without a SentencePiece row follow the model's own spec.
        spm_class = family.name if family.source == "sentencepiece" else "generic"
        options = sentencepiece.sentencepiece_options(spm_class, settings)
        convert = lambda: sentencepiece.convert_sentencepiece(model_path, options)  # noqa: E731

    key = cache.conversion_key(kind, sources, options)
    cached = cache.load_cached(key)
    if cached is not None:
        tokenizer_path, derived = cached
        try:
            return Conversion(Tokenizer.from_file(str(tokenizer_path)), derived)
        except Exception as error:  # a damaged entry is rebuilt below
            logger.info("Rebuilding damaged tokenizer cache entry %s: %s", tokenizer_path, error)
    started = time.perf_counter()
    conversion = convert()
    logger.info("Converted %s (%s) in %.2fs; caching it", class_name, kind, time.perf_counter() - started)
    cache.store(key, conversion.tokenizer.to_str(), conversion.derived)
    return conversion


def _rebuild_cached(files: TokenizerFiles, family: TokenizerFamily, settings: dict) -> Conversion:
    """A tokenizer.json read the way transformers 5 reads it for `family`: the class builds the pipeline."""
    from .converters import class_pipelines

    uses_file_tokens = "added_tokens_decoder" not in files.tokenizer_config
    options = {"class": family.name, **class_pipelines.pipeline_options(family.name, settings),
               "file_added_tokens": uses_file_tokens}
    if family.name == "T5Tokenizer":
        options["extra_ids"] = int(settings.get("extra_ids", 100))
    if family.name == "PegasusTokenizer":
        options["offset"] = int(settings.get("offset", 103))
        options["mask_token_sent"] = str(settings.get("mask_token_sent", "<mask_1>"))

    def rebuild() -> Conversion:
        data = json.loads(files.tokenizer_json.read_text(encoding="utf-8"))
        inputs = class_pipelines.inputs_from_tokenizer_json(data, family.name)
        backend = class_pipelines.PIPELINES[family.name](inputs, options)
        processor = _post_processor_of(data)
        if processor is not None:
            backend.post_processor = processor
        if uses_file_tokens:  # as transformers: with no added_tokens_decoder in the config, the file's own
            for _, token in class_pipelines.file_added_tokens(data):
                backend.add_tokens([token])
        derived = {}
        flags = class_pipelines.token_flags(family.name)
        if flags:
            derived["special_tokens"] = flags
        extras = class_pipelines.constructor_extra_tokens(family.name, settings)
        if extras is not None:
            derived["extra_special_tokens"] = extras
        return Conversion(backend, derived)

    key = cache.conversion_key("tokenizer.json rebuild", [files.tokenizer_json], options)
    return _cached_conversion(key, rebuild)


def _post_processor_of(data: dict):
    """The tokenizer.json's post-processor as an engine object (special-token ids are written in it)."""
    if not data.get("post_processor"):
        return None
    shell = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
             "pre_tokenizer": None, "post_processor": data["post_processor"], "decoder": None,
             "model": {"type": "WordLevel", "vocab": {"<unk>": 0}, "unk_token": "<unk>"}}
    return Tokenizer.from_str(json.dumps(shell)).post_processor


def _load_tokenizer_json(path: Path, family: TokenizerFamily, settings: dict) -> Tokenizer:
    backend = Tokenizer.from_file(str(path))
    patches = {key: settings[key] for key in ("add_prefix_space", "trim_offsets", "do_lower_case", "strip_accents",
                                              "tokenize_chinese_chars") if key in settings}
    if not patches or family.name == GENERIC.name:
        return backend
    data = json.loads(backend.to_str())
    if _patch_tokenizer_json(data, patches):
        backend = Tokenizer.from_str(json.dumps(data))
    return backend


def _patch_tokenizer_json(data: dict, patches: dict) -> bool:
    """Apply explicit add_prefix_space / trim_offsets / lowercasing settings to a tokenizer.json (as transformers'
    class constructors do). Returns whether anything changed."""
    changed = False

    def visit(component: dict | None, fields: dict) -> None:
        nonlocal changed
        if not isinstance(component, dict):
            return
        for child_key in ("pretokenizers", "processors", "normalizers"):
            for child in component.get(child_key) or []:
                visit(child, fields)
        kind = component.get("type")
        for (component_type, field_name), value in fields.items():
            if kind == component_type and field_name in component and component[field_name] != value:
                component[field_name] = value
                changed = True

    prefix_fields = {}
    if "add_prefix_space" in patches:
        value = bool(patches["add_prefix_space"])
        prefix_fields.update({("ByteLevel", "add_prefix_space"): value, ("RobertaProcessing", "add_prefix_space"): value})
    if "trim_offsets" in patches:
        value = bool(patches["trim_offsets"])
        prefix_fields.update({("ByteLevel", "trim_offsets"): value, ("RobertaProcessing", "trim_offsets"): value})
    visit(data.get("pre_tokenizer"), {k: v for k, v in prefix_fields.items() if k[1] == "add_prefix_space"})
    visit(data.get("post_processor"), prefix_fields)
    normalizer_fields = {}
    if "do_lower_case" in patches:
        normalizer_fields[("BertNormalizer", "lowercase")] = bool(patches["do_lower_case"])
    if "strip_accents" in patches:
        normalizer_fields[("BertNormalizer", "strip_accents")] = patches["strip_accents"]
    if "tokenize_chinese_chars" in patches:
        normalizer_fields[("BertNormalizer", "handle_chinese_chars")] = bool(patches["tokenize_chinese_chars"])
    visit(data.get("normalizer"), normalizer_fields)
    return changed


def _build_tokenizer(backend: Tokenizer, family: TokenizerFamily, class_name: str, merged, name_or_path: str):
    settings = dict(merged.settings)
    arguments = {name: settings.pop(name) for name in _TOKENIZER_ARGUMENTS if name in settings}
    arguments.setdefault("model_input_names", list(family.model_input_names))
    arguments.setdefault("padding_side", family.padding_side)
    special = {name: settings.pop(name) for name in list(settings) if name in PreTrainedTokenizerFast.SPECIAL_TOKENS_ATTRIBUTES}
    extras = settings.pop("extra_special_tokens", None)
    for reserved in ("tokenizer_object", "tokenizer_file", "name_or_path", "tokenizer_class"):
        settings.pop(reserved, None)
    add_bos = settings.pop("add_bos_token", None)
    add_eos = settings.pop("add_eos_token", None)
    flags = {}
    # Only classes whose template is driven by add_bos_token/add_eos_token honour them (as in transformers).
    if family.template == "flags" and merged.explicit_bos_eos:
        flags = {"add_bos_token": bool(add_bos), "add_eos_token": bool(add_eos)}
    model_max_length = arguments.get("model_max_length")
    if model_max_length is not None:
        arguments["model_max_length"] = int(model_max_length)
    return _python_class(family.name)(
        backend,
        name_or_path=name_or_path,
        tokenizer_class=class_name,
        extra_special_tokens=extras,
        added_tokens_decoder=merged.added_tokens_decoder,
        **arguments,
        **special,
        **flags,
        **settings,
    )


def _python_class(class_name: str) -> type[PreTrainedTokenizerFast]:
    """The hugkit class for a family: most are served by PreTrainedTokenizerFast; these add behaviour."""
    from . import seq2seq

    return {
        "T5Tokenizer": seq2seq.T5Tokenizer,
        "MBartTokenizer": seq2seq.MBartTokenizer,
        "MBart50Tokenizer": seq2seq.MBart50Tokenizer,
        "NllbTokenizer": seq2seq.NllbTokenizer,
    }.get(class_name, PreTrainedTokenizerFast)


# --- GGUF-embedded and tiktoken tokenizers -----------------------------------------------------------------


def _cached_conversion(key: str, convert):
    cached = cache.load_cached(key)
    if cached is not None:
        tokenizer_path, derived = cached
        try:
            return Conversion(Tokenizer.from_file(str(tokenizer_path)), derived)
        except Exception as error:  # a damaged entry is rebuilt below
            logger.info("Rebuilding damaged tokenizer cache entry %s: %s", tokenizer_path, error)
    started = time.perf_counter()
    conversion = convert()
    logger.info("Converted a tokenizer in %.2fs; caching it", time.perf_counter() - started)
    cache.store(key, conversion.tokenizer.to_str(), conversion.derived)
    return conversion


def _from_gguf(path_or_dir, gguf_file, overrides: dict, **hub_kwargs) -> PreTrainedTokenizerFast:
    """A GGUF's embedded tokenizer. The converted engine is cached under the file's identity (absolute path, size,
    modification time): a hit needs no parsing of the GGUF at all (parsing a 49k vocabulary takes seconds)."""
    import hashlib

    from ..gguf.reader import gguf_path, open_gguf
    from .converters.gguf import convert_gguf, gguf_tokenizer_fields

    hub_kwargs["subfolder"] = hub_kwargs.get("subfolder") or ""
    path = gguf_path(path_or_dir, gguf_file, **hub_kwargs).resolve()
    stat = path.stat()
    identity = {"version": cache.CONVERTER_VERSION, "kind": "gguf", "path": str(path), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    conversion = _cached_conversion(key, lambda: convert_gguf(gguf_tokenizer_fields(open_gguf(path)), f"GGUF file {path}"))
    derived = conversion.derived
    settings = {**{k: v for k, v in derived["special_tokens"].items() if v is not None}, "padding_side": "right"}
    settings["add_bos_token"] = derived.get("add_bos_token", False)
    settings["add_eos_token"] = derived.get("add_eos_token", False)
    if derived.get("chat_template"):
        settings["chat_template"] = derived["chat_template"]
    settings.update(overrides)
    return PreTrainedTokenizerFast(conversion.tokenizer, name_or_path=str(path), **settings)


def _is_tiktoken_json(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    return b'"bpe_ranks"' in head or b'"pat_str"' in head


def _from_tiktoken(path: Path, overrides: dict) -> PreTrainedTokenizerFast:
    """A tiktoken encoding (.tiktoken file, or the npm package's encoder JSON)."""
    from .converters import tiktoken

    options = tiktoken.tiktoken_options(path, overrides.pop("pattern", None), overrides.pop("special_tokens", None))
    key = cache.conversion_key("tiktoken", [path], options)
    conversion = _cached_conversion(key, lambda: tiktoken.convert_tiktoken(path, options))
    settings = {k: v for k, v in conversion.derived.get("special_tokens", {}).items() if v is not None}
    settings.update(overrides)
    settings.setdefault("add_bos_token", False)
    return PreTrainedTokenizerFast(conversion.tokenizer, name_or_path=str(path), **settings)
