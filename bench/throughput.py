"""Throughput (texts/s), hugkit vs transformers pipelines on the same inputs, in one process, interleaved.

    python bench/throughput.py [--texts 1000] [--repeats 3] [--batch-sizes 1 32] [--cases ...] [--datasets ...]
    python bench/throughput.py --quick            # smoke test: 24 texts, 2 repeats

Cases (all fp32 on CPU for both libraries, torch.set_num_threads(--threads) before every timed run):
  distilbert-cls     text-classification, a DistilBERT-base-size classifier with random seeded weights
                     (transformers' DistilBertConfig() defaults, 2 labels; built once into bench/.cache/)
  minilm-cls         text-classification with hugkit's built-in sentiment model (MiniLM, fp16 file loaded as fp32)
  minilm-features    feature-extraction (token hidden states, return_tensors=True on both sides) with all-MiniLM-L6-v2
  minilm-embeddings  hugkit's sentence-embeddings pipeline vs transformers AutoModel + mean pooling + L2 normalise
                     (the model card's recipe; transformers has no pooled-embedding pipeline), and vs
                     sentence-transformers' encode() when it is installed
Datasets (1,000 texts each, deterministic): "uniform" = movie-review snippets of 18-22 words; "mixed" = real texts of
5-60 words, half movie-review snippets, half SMS messages.
Each timed run processes the whole dataset with one call `pipe(texts, batch_size=B)`; the libraries alternate which
goes first in each repeat; the table shows medians and the range of the per-repeat ratios. Outputs are checked
against each other: label agreement (classification), token counts and max |diff| (features), cosine (embeddings).
Targets (hugkit/transformers): >= 1.5x at batch 1 and >= 1.3x at batch 32 on mixed lengths; >= 1.0x on uniform.
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import common

TARGETS = {("mixed", 1): 1.5, ("mixed", 32): 1.3}  # anything else: no regression
DEFAULT_TARGET = 1.0

Runner = Callable[[list, int], list]


@dataclass
class Case:
    name: str
    kind: str  # "labels" | "features" | "vectors": how outputs are compared
    hugkit: Runner
    references: dict[str, Runner] = field(default_factory=dict)
    checkpoint: str = ""


# --------------------------------------------------------------------------------------------------
# building the runners (each returns outputs for a list of texts at a batch size)
# --------------------------------------------------------------------------------------------------
def classification_case(name: str, folder: str) -> Case:
    import torch
    import transformers

    import hugkit

    hk = hugkit.pipeline("text-classification", model=folder, dtype=torch.float32)
    tf = transformers.pipeline("text-classification", model=folder, dtype=torch.float32, device="cpu")
    return Case(
        name, "labels",
        hugkit=lambda texts, bs: hk(texts, batch_size=bs),
        references={"transformers": lambda texts, bs: tf(texts, batch_size=bs)},
        checkpoint=folder,
    )


def features_case(folder: str) -> Case:
    import torch
    import transformers

    import hugkit

    hk = hugkit.pipeline("feature-extraction", model=folder, dtype=torch.float32)
    tf = transformers.pipeline("feature-extraction", model=folder, dtype=torch.float32, device="cpu")
    return Case(
        "minilm-features", "features",
        hugkit=lambda texts, bs: hk(texts, batch_size=bs, return_tensors=True),
        references={"transformers": lambda texts, bs: tf(texts, batch_size=bs, return_tensors=True)},
        checkpoint=folder,
    )


def embeddings_case(folder: str) -> Case:
    import torch
    import transformers

    import hugkit

    hk = hugkit.pipeline("sentence-embeddings", model=folder, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()

    def transformers_mean_pool(texts: list, bs: int) -> list:
        # The all-MiniLM-L6-v2 model card's recipe, batched in input order (max_seq_length 256 as in its files).
        vectors = []
        with torch.inference_mode():
            for start in range(0, len(texts), bs):
                encoded = tokenizer(texts[start : start + bs], padding=True, truncation=True, max_length=256, return_tensors="pt")
                states = model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors.extend(torch.nn.functional.normalize(pooled, p=2, dim=1))
        return vectors

    references: dict[str, Runner] = {"transformers AutoModel+mean-pool": transformers_mean_pool}
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(folder, device="cpu")
        references["sentence-transformers"] = lambda texts, bs: list(
            st.encode(texts, batch_size=bs, convert_to_tensor=True, show_progress_bar=False)
        )
    except ImportError:
        print("# sentence-transformers is not installed: the embeddings case compares with transformers only.")
    return Case(
        "minilm-embeddings", "vectors",
        hugkit=lambda texts, bs: hk(texts, batch_size=bs, return_tensors=True),
        references=references,
        checkpoint=folder,
    )


def build_cases(names: list[str], sentiment_model: str | None) -> list[Case]:
    builders: dict[str, Callable[[], Case]] = {
        "distilbert-cls": lambda: classification_case("distilbert-cls", str(common.distilbert_base_checkpoint())),
        "minilm-cls": lambda: classification_case("minilm-cls", str(common.sentiment_checkpoint(sentiment_model)[0])),
        "minilm-features": lambda: features_case(str(common.MINILM_DIR)),
        "minilm-embeddings": lambda: embeddings_case(str(common.MINILM_DIR)),
    }
    unknown = set(names) - set(builders)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; choose from {sorted(builders)}.")
    return [builders[name]() for name in names]


# --------------------------------------------------------------------------------------------------
# comparing outputs
# --------------------------------------------------------------------------------------------------
def _one(result: Any) -> Any:
    """transformers and hugkit wrap some single results in a list; unwrap one level."""
    return result[0] if isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict) else result


def agreement(kind: str, ours: list, theirs: list) -> tuple[str, dict[str, Any]]:
    """A short text for the table and the numbers behind it."""
    if len(ours) != len(theirs):
        return f"COUNT {len(ours)}!={len(theirs)}", {"count_mismatch": [len(ours), len(theirs)]}
    if kind == "labels":
        pairs = [(_one(a), _one(b)) for a, b in zip(ours, theirs)]
        same = [a["label"] == b["label"] for a, b in pairs]
        score_diff = max((abs(a["score"] - b["score"]) for a, b in pairs if a["label"] == b["label"]), default=0.0)
        pct = 100.0 * sum(same) / len(same)
        return f"{pct:.1f}% labels, |dscore|<={score_diff:.1e}", {"label_agreement_pct": pct, "max_score_diff": score_diff}
    if kind == "features":
        import torch

        # transformers' feature-extraction returns each text padded to its batch's longest (batch_size > 1), so
        # compare the first n rows, n = the text's token count (hugkit returns exactly those); a shorter reference
        # output means the two disagree on tokenization.
        longer, shorter, worst = 0, 0, 0.0
        for a, b in zip(ours, theirs):
            a, b = torch.as_tensor(a).float().reshape(-1, a.shape[-1]), torch.as_tensor(b).float().reshape(-1, b.shape[-1])
            longer += b.shape[0] > a.shape[0]
            shorter += b.shape[0] < a.shape[0]
            n = min(a.shape[0], b.shape[0])
            worst = max(worst, (a[:n] - b[:n]).abs().max().item())
        text = f"max|d|={worst:.1e}" + (f", ref padded {100 * longer / len(ours):.0f}%" if longer else "")
        if shorter:
            text += f", TOKEN COUNT MISMATCH {100 * shorter / len(ours):.0f}%"
        return text, {"max_abs_diff": worst, "ref_padded_pct": 100 * longer / len(ours),
                      "ref_shorter_pct": 100 * shorter / len(ours)}
    if kind == "vectors":
        import torch

        a = torch.stack([torch.as_tensor(v).float().flatten() for v in ours])
        b = torch.stack([torch.as_tensor(v).float().flatten() for v in theirs])
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=1)
        return f"min cos={cosine.min().item():.6f}", {"min_cosine": cosine.min().item(), "mean_cosine": cosine.mean().item()}
    raise ValueError(kind)


# --------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------
def timed(runner: Runner, texts: list, batch_size: int, threads: int) -> tuple[float, list]:
    import torch

    torch.set_num_threads(threads)
    gc.collect()
    start = time.perf_counter()
    outputs = runner(texts, batch_size)
    if not isinstance(outputs, list):
        outputs = list(outputs)
    elapsed = time.perf_counter() - start
    return len(texts) / elapsed, outputs


def measure(case: Case, texts: list, batch_size: int, repeats: int, threads: int) -> dict[str, Any]:
    runners = {"hugkit": case.hugkit, **case.references}
    warm = texts[: max(2 * batch_size, 8)]
    for runner in runners.values():  # warm-up: first-call allocations, kernel selection
        runner(warm, batch_size)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    last: dict[str, list] = {}
    for repeat in range(repeats):
        order = list(runners) if repeat % 2 == 0 else list(reversed(runners))
        for name in order:
            rate, last[name] = timed(runners[name], texts, batch_size, threads)
            rates[name].append(rate)
    result: dict[str, Any] = {"texts_per_s": rates, "vs": {}}
    for name in case.references:
        per_repeat = [h / r for h, r in zip(rates["hugkit"], rates[name])]
        summary, numbers = agreement(case.kind, last["hugkit"], last[name])
        result["vs"][name] = {
            "ratio": common.ratio(common.median(rates["hugkit"]), common.median(rates[name])),
            "ratio_range": [min(per_repeat), max(per_repeat)],
            "agreement": summary,
            **numbers,
        }
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000, help="texts per dataset")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per library per setting (medians)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--cases", default="distilbert-cls,minilm-cls,minilm-features,minilm-embeddings")
    parser.add_argument("--datasets", default="mixed,uniform")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both libraries")
    parser.add_argument("--sentiment-model", default=None, help="folder for minilm-cls (default: the built-in model)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 24 texts, 2 repeats")
    parser.add_argument("--json", nargs="?", const="", default=None, help="write JSON (default bench/results/throughput.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.texts, args.repeats = min(args.texts, 24), min(args.repeats, 2)
    common.print_header("throughput", f"texts={args.texts} repeats={args.repeats} threads={args.threads}")

    import torch

    torch.set_num_threads(args.threads)
    datasets = {name: common.DATASETS[name](args.texts) for name in args.datasets.split(",")}
    stats_rows = []
    for name, texts in datasets.items():
        info = common.describe_texts(texts, common.MINILM_DIR / "tokenizer.json")
        b = 32
        waste_in_order = 1 - info["real_tokens"] / info[f"padded_tokens_input_order_b{b}"]
        waste_sorted = 1 - info["real_tokens"] / info[f"padded_tokens_sorted_b{b}"]
        stats_rows.append([name, info["texts"], f"{info['words_min']}/{info['words_median']:g}/{info['words_max']}",
                           f"{info['tokens_min']}/{info['tokens_median']:g}/{info['tokens_max']}",
                           f"{100 * waste_in_order:.0f}%", f"{100 * waste_sorted:.0f}%"])
    common.print_table("Datasets", ["dataset", "texts", "words min/med/max", "tokens min/med/max",
                                    "padding b32 input order", "padding b32 sorted"], stats_rows)

    cases = build_cases(args.cases.split(","), args.sentiment_model)
    rows, results = [], []
    for case in cases:
        for dataset, texts in datasets.items():
            for batch_size in args.batch_sizes:
                print(f"... {case.name} / {dataset} / batch {batch_size}", flush=True)
                measured = measure(case, texts, batch_size, args.repeats, args.threads)
                hugkit_rate = common.median(measured["texts_per_s"]["hugkit"])
                target = TARGETS.get((dataset, batch_size), DEFAULT_TARGET)
                for ref, versus in measured["vs"].items():
                    low, high = versus["ratio_range"]
                    rows.append([
                        case.name, dataset, str(batch_size), f"{hugkit_rate:,.1f}",
                        f"{common.median(measured['texts_per_s'][ref]):,.1f}", ref,
                        common.fmt_ratio(versus["ratio"]), f"{low:.2f}–{high:.2f}",
                        f">={target:g}x {common.target_check(versus['ratio'], target)}", versus["agreement"],
                    ])
                results.append({"case": case.name, "checkpoint": case.checkpoint, "dataset": dataset,
                                "batch_size": batch_size, "target": target, **measured})

    common.print_table(
        f"Throughput, texts/s (medians of {args.repeats}; {args.texts} texts; {args.threads} threads; fp32)",
        ["case", "data", "batch", "hugkit/s", "ref/s", "reference", "hugkit/ref", "ratio range", "target", "outputs agree"],
        rows,
        notes=["ratio range: min–max of per-repeat ratios (runs interleaved, order alternating).",
               "targets from the foundation issue: mixed b1 >= 1.5x, mixed b32 >= 1.3x, otherwise no regression."],
    )
    payload = {"args": vars(args), "results": results, "versions": common.library_versions()}
    if args.json is not None:
        common.save_json("throughput", payload, args.json or None)
    return payload


if __name__ == "__main__":
    main()
