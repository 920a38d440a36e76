"""Zero-shot classification speed, hugkit vs transformers, one process, interleaved (issue 4, item 4).

    python bench/zero_shot.py [--quick] [--texts 100] [--repeats 2] [--threads 2]

NLI mode: a bart-base-size NLI model with seeded random weights (transformers' BartConfig reduced to bart-base:
d_model 768, 6+6 layers, 12 heads, ffn 3072, 3 labels; GPT-2 BPE tokenizer files), built once into bench/.cache/.
`--texts` mixed-length texts (common.mixed_texts), 3 and 10 labels, batch_size 1 and 8, sequences/s, medians.
batch_size means what each library means by it: transformers counts (text, label) pairs per forward, hugkit counts
texts (a forward holds batch_size x labels pairs, at most 64): `batch_size=1` is each library's one-text-at-a-time
setting. Output agreement (same top label, max score difference) is checked on the last repeat.

Bi-encoder: hugkit's embedding mode on all-MiniLM-L6-v2 with 10 / 100 / 1,000 labels, cold (label embeddings not yet
cached: a fresh pipeline) and warm (cached), against transformers' NLI pipeline on the bart-base model at batch 8 and
the same label counts. The reference is timed on a subset of the texts (all of them at 10 labels, 1/10 at 100, 1/100 at
1,000, at least one) and its sequences/s used as is: that is the extrapolation, printed with the subset size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import common

NLI_LABELS = {0: "contradiction", 1: "neutral", 2: "entailment"}
TOPICS = ["politics", "sports", "technology", "business", "health", "science", "entertainment", "travel", "food",
          "education"]


def bart_nli_checkpoint():
    """bart-base-size BartForSequenceClassification, random seeded weights, GPT-2 BPE tokenizer (RoBERTa/BART vocab)."""
    folder = common.CACHE_DIR / "bart-base-nli-random-fp32"
    if (folder / "config.json").is_file():
        return folder
    import torch
    import transformers

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gpt2 = common._require(common.ASSETS / "gpt2-encoder" / "package")
    shutil.copy(gpt2 / "encoder.json", tmp / "vocab.json")
    shutil.copy(gpt2 / "vocab.bpe", tmp / "merges.txt")
    (tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BartTokenizer", "model_max_length": 1024}))
    # GPT-2's vocab.json has no <s>/</s>/<pad>: the tokenizer appends them after id 50256; the config must agree.
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    config = transformers.BartConfig(
        vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
        num_labels=3, id2label=NLI_LABELS, label2id={v: k for k, v in NLI_LABELS.items()}, **special,
    )
    transformers.BartForSequenceClassification(config).eval().save_pretrained(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # built by another process meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def labels_for(count: int) -> list[str]:
    return (TOPICS + [f"category number {i}" for i in range(count)])[:count]


def timed(pipe, texts, labels, batch_size) -> tuple[float, list]:
    start = time.perf_counter()
    out = pipe(texts, candidate_labels=labels, batch_size=batch_size)
    return time.perf_counter() - start, out


def agreement(ours: list, theirs: list) -> str:
    same = sum(a["labels"][0] == b["labels"][0] for a, b in zip(ours, theirs)) / len(ours)
    gap = max(abs(x - dict(zip(b["labels"], b["scores"]))[label])
              for a, b in zip(ours, theirs) for label, x in zip(a["labels"], a["scores"]))
    return f"top-1 {same:.0%}, max |d| {gap:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--label-counts", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--bi-encoder-labels", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: 6 texts, 1 repeat, 10/50 bi-encoder labels")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.texts, args.repeats, args.bi_encoder_labels = 6, 1, [10, 50]
    common.print_header("zero_shot", f"texts={args.texts} repeats={args.repeats} threads={args.threads}")

    import torch
    import transformers

    import hugkit

    torch.set_num_threads(args.threads)
    folder = str(bart_nli_checkpoint())
    texts = common.mixed_texts(args.texts)
    pipes = {
        "hugkit": hugkit.pipeline("zero-shot-classification", model=folder),
        "transformers": transformers.pipeline("zero-shot-classification", model=folder, device="cpu", dtype=torch.float32),
    }

    rows, results = [], []
    for count in args.label_counts:
        labels = labels_for(count)
        for batch in args.batch_sizes:
            for pipe in pipes.values():  # warm-up
                pipe(texts[:2], candidate_labels=labels, batch_size=batch)
            runs, outputs = {name: [] for name in pipes}, {}
            for repeat in range(args.repeats):
                for name in list(pipes) if repeat % 2 == 0 else list(reversed(pipes)):
                    torch.set_num_threads(args.threads)
                    seconds, outputs[name] = timed(pipes[name], texts, labels, batch)
                    runs[name].append(seconds)
            speed = {name: len(texts) / common.median(runs[name]) for name in pipes}
            check = agreement(outputs["hugkit"], outputs["transformers"])
            speedup = common.ratio(speed["hugkit"], speed["transformers"])
            for name in pipes:
                rows.append([f"{count} labels", f"b{batch}", name, speed[name], spread([len(texts) / s for s in runs[name]]),
                             common.fmt_ratio(speedup) if name == "hugkit" else "-", check if name == "hugkit" else ""])
            results.append({"labels": count, "batch": batch, "sequences_per_s": speed, "agreement": check})
    common.print_table(
        f"NLI zero-shot, bart-base-size random NLI model, {len(texts)} mixed texts, fp32 (medians of {args.repeats})",
        ["labels", "batch", "library", "seq/s", "range", "hugkit/transformers", "agreement"],
        rows, ["target (issue 4): >= 2x transformers at batch 1"],
    )

    # --- bi-encoder vs transformers' NLI pipeline ---------------------------------------------------------
    minilm = str(common._require(common.MINILM_DIR))
    reference = pipes["transformers"]
    rows, bi_results = [], []
    for count in args.bi_encoder_labels:
        labels = labels_for(count)
        cold_pipe = hugkit.pipeline("zero-shot-classification", model=minilm, batch_size=32)
        cold, _ = timed(cold_pipe, texts, labels, 32)  # embeds the labels, then the texts
        warm = common.median(timed(cold_pipe, texts, labels, 32)[0] for _ in range(args.repeats))
        subset = texts[: max(1, len(texts) * 10 // count)]
        reference_seconds, _ = timed(reference, subset, labels, 8)
        reference_speed = len(subset) / reference_seconds
        speeds = {"cold": len(texts) / cold, "warm": len(texts) / warm}
        rows.append([count, speeds["cold"], speeds["warm"], reference_speed, f"{len(subset)} texts",
                     common.fmt_ratio(common.ratio(speeds["cold"], reference_speed)),
                     common.fmt_ratio(common.ratio(speeds["warm"], reference_speed))])
        bi_results.append({"labels": count, "hugkit_cold": speeds["cold"], "hugkit_warm": speeds["warm"],
                           "transformers_nli_b8": reference_speed, "reference_texts": len(subset)})
    common.print_table(
        f"bi-encoder (hugkit, all-MiniLM-L6-v2, batch 32) vs transformers' NLI pipeline (bart-base size, batch 8), seq/s",
        ["labels", "hugkit cold", "hugkit warm", "transformers NLI", "reference timed on", "cold ratio", "warm ratio"],
        rows,
        ["cold: a fresh pipeline, so the call also embeds every label once; warm: label embeddings cached",
         "the reference's seq/s is measured on the subset shown and taken as its rate for all texts (extrapolation)",
         "target (issue 4): bi-encoder >= 20x transformers' NLI at 100 labels"],
    )
    if args.json is not None:
        common.save_json("zero_shot", {"args": vars(args), "nli": results, "bi_encoder": bi_results}, args.json or None)


def spread(values) -> str:
    return common.spread(values, ".1f")


if __name__ == "__main__":
    main()
