"""Encoder-decoder generation speed (issue 11): hugkit vs transformers 5 ``generate`` vs CTranslate2, one process.

    python bench/seq2seq.py [--models bart-base t5-small] [--inputs 100] [--threads 2] [--quick] [--json [PATH]]

Checkpoints: bart-base's and t5-small's real configs with seeded random weights (no seq2seq weights exist offline),
built once into bench/.cache with a word-level tokenizer over the same vocabulary (CTranslate2's converter needs
one). Inputs: ``--inputs`` token sequences of 100-400 tokens (seeded), the shape of summarization. Settings, as the
issue asks: greedy and ``num_beams=4``, batch 1 and 8, exactly 64 new tokens (min = max, so every engine does the
same work whatever the random weights predict). CTranslate2 gets the same checkpoint through its own converter
(float32, ``intra_threads``=threads), tokens by id.

The inputs are split into chunks; each chunk runs on every engine in turn, the order rotating chunk by chunk, so
load changes on this shared machine fall on all engines alike. Reported: inputs/s per engine (total time over all
chunks), ratios hugkit / transformers and hugkit / CTranslate2, and how many greedy outputs hugkit and transformers
agree on token for token (beam outputs too; CTranslate2 is a different implementation, so it is not compared).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import common

NEW_TOKENS = 64
SETTINGS = (("greedy", 1, 1), ("greedy", 1, 8), ("beam 4", 4, 1), ("beam 4", 4, 8))  # (name, beams, batch)

CONFIGS = {
    "bart-base": ("bart", dict(
        vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
        bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        activation_function="gelu", scale_embedding=False,
        normalize_before=False,  # bart-base's config.json has it (fairseq's post-norm flag); CTranslate2 reads it
    )),
    "t5-small": ("t5", dict(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
        relative_attention_num_buckets=32, feed_forward_proj="relu", tie_word_embeddings=True,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )),
}
SPECIALS = {"bart": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}, "t5": {"<pad>": 0, "</s>": 1, "<unk>": 2}}


def build_checkpoint(name: str) -> Path:
    folder = common.CACHE_DIR / f"seq2seq-{name}"
    if (folder / "config.json").is_file():
        return folder
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    model_type, config_kwargs = CONFIGS[name]
    config = transformers.AutoConfig.for_model(model_type, **config_kwargs)
    torch.manual_seed(0)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config).eval()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    specials = SPECIALS[model_type]
    vocab = {**specials, **{f"w{i}": i for i in range(len(specials), config.vocab_size)}}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    names = {"bart": dict(bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"),
             "t5": dict(eos_token="</s>", pad_token="<pad>", unk_token="<unk>")}[model_type]
    transformers.PreTrainedTokenizerFast(tokenizer_object=word_level, **names).save_pretrained(tmp)
    # transformers 5 names its class TokenizersBackend, unknown to the v4 that runs CTranslate2's converter.
    tokenizer_config = json.loads((tmp / "tokenizer_config.json").read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    tmp.rename(folder)
    return folder


def build_ct2(folder: Path) -> Path | None:
    target = folder.with_name(folder.name + "-ct2")
    if (target / "model.bin").is_file():
        return target
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        logging.warning("ctranslate2 is not installed (pip install ctranslate2): its column is left out.")
        return None
    # CTranslate2 4.8's converter reads config fields transformers 5 dropped (BART's normalize_before): it runs on
    # transformers v4, which the pipeline tests install into .assets, in a child process.
    import sys

    sys.path.insert(0, str(common.REPO))
    from tests.pipelines.reference_v4 import install_v4

    code = ("import sys, ctranslate2.converters as c; "
            "c.TransformersConverter(sys.argv[1]).convert(sys.argv[2], force=True)")
    env = {**common.CHILD_ENV, "PYTHONPATH": str(install_v4())}
    import subprocess

    done = subprocess.run([sys.executable, "-c", code, str(folder), str(target)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        logging.warning("CTranslate2's converter failed on %s: %s; its column is left out.", folder.name, done.stderr[-800:])
        shutil.rmtree(target, ignore_errors=True)
        return None
    return target


def make_inputs(count: int, vocab_size: int, low_id: int, seed: int = 0) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 401, size=count)
    return [rng.integers(low_id, vocab_size, size=int(n)).tolist() for n in lengths]


def torch_engine(model, pad_id: int, eos_id: int) -> Callable[[list[list[int]], int], list[list[int]]]:
    import torch

    def run(batch: list[list[int]], beams: int) -> list[list[int]]:
        longest = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids, attention_mask=mask, num_beams=beams, do_sample=False, max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS, early_stopping=True, length_penalty=1.0,
            )
        return out.tolist()

    return run


def ct2_engine(folder: Path, threads: int) -> Callable[[list[list[int]], int], list[list[int]]]:
    import ctranslate2

    translator = ctranslate2.Translator(str(folder), device="cpu", compute_type="float32", intra_threads=threads,
                                        inter_threads=1)
    vocabulary = json.loads((folder / "shared_vocabulary.json").read_text())

    def run(batch: list[list[int]], beams: int) -> list[list[int]]:
        source = [[vocabulary[i] for i in ids] for ids in batch]
        results = translator.translate_batch(
            source, beam_size=beams, max_decoding_length=NEW_TOKENS, min_decoding_length=NEW_TOKENS,
            max_batch_size=len(batch),
        )
        return [r.hypotheses[0] for r in results]

    return run


def bench_model(name: str, args) -> list[dict[str, Any]]:
    import torch
    import transformers

    import hugkit

    folder = build_checkpoint(name)
    ct2_folder = None if args.no_ct2 else build_ct2(folder)
    model_type = CONFIGS[name][0]
    config = json.loads((folder / "config.json").read_text())
    pad_id, eos_id = config["pad_token_id"], config["eos_token_id"]
    engines = {
        "hugkit": torch_engine(hugkit.AutoModelForSeq2SeqLM.from_pretrained(folder).eval(), pad_id, eos_id),
        "transformers": torch_engine(transformers.AutoModelForSeq2SeqLM.from_pretrained(folder).eval(), pad_id, eos_id),
    }
    if ct2_folder is not None:
        engines["ctranslate2"] = ct2_engine(ct2_folder, args.threads)
    inputs = make_inputs(args.inputs, config["vocab_size"], len(SPECIALS[model_type]))
    rows = []
    for setting, beams, batch_size in SETTINGS:
        seconds = {engine: 0.0 for engine in engines}
        outputs: dict[str, list] = {engine: [] for engine in engines}
        chunk = max(batch_size, args.chunk)
        for turn, start in enumerate(range(0, len(inputs), chunk)):
            part = inputs[start : start + chunk]
            order = list(engines)[turn % len(engines):] + list(engines)[: turn % len(engines)]
            for engine in order:
                begin = time.perf_counter()
                for offset in range(0, len(part), batch_size):
                    outputs[engine].extend(engines[engine](part[offset : offset + batch_size], beams))
                seconds[engine] += time.perf_counter() - begin
        same = sum(a == b for a, b in zip(outputs["hugkit"], outputs["transformers"]))
        rate = {engine: len(inputs) / seconds[engine] for engine in engines}
        rows.append({
            "model": name, "setting": setting, "batch": batch_size, "inputs_per_s": rate, "seconds": seconds,
            "vs_transformers": common.ratio(rate["hugkit"], rate["transformers"]),
            "vs_ctranslate2": common.ratio(rate["hugkit"], rate.get("ctranslate2")),
            "identical_to_transformers": f"{same}/{len(inputs)}",
        })
        print(f"  {name} {setting} batch {batch_size}: " + ", ".join(f"{e} {r:.2f}/s" for e, r in rate.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=8, help="inputs per interleaving turn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ct2", action="store_true", help="leave CTranslate2 out")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 inputs")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.inputs = 8
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    common.print_header("seq2seq", f"inputs={args.inputs} threads={args.threads} new_tokens={NEW_TOKENS}")
    rows = [row for name in args.models for row in bench_model(name, args)]
    table = []
    for row in rows:
        rate = row["inputs_per_s"]
        table.append([
            row["model"], row["setting"], row["batch"], common.fmt(rate["hugkit"]), common.fmt(rate["transformers"]),
            common.fmt(rate.get("ctranslate2")), common.fmt_ratio(row["vs_transformers"]),
            common.fmt_ratio(row["vs_ctranslate2"]), row["identical_to_transformers"],
        ])
    common.print_table(
        "Encoder-decoder generation, inputs/s (64 new tokens each)",
        ["model", "decoding", "batch", "hugkit", "transformers", "CTranslate2", "vs transformers", "vs CT2", "same tokens"],
        table,
        notes=["targets: >= 1.5x transformers at batch 1 (greedy and beam), >= 1.3x at batch 8; CT2's README claims ~3.5x"],
    )
    if args.json is not None:
        common.save_json("seq2seq", {"args": vars(args), "versions": common.library_versions(), "rows": rows}, args.json or None)


if __name__ == "__main__":
    main()
