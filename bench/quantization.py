"""Quantization: transformers fp32 vs hugkit fp32 / int8 / int4 / dynamic-int8, one run (issue 5, item 6).

    python bench/quantization.py [--quick] [--json]

Each measurement runs in a fresh process (so memory and caches do not leak between rows), same torch thread count:
  classify  DistilBERT-base-size classifier (common.distilbert_base_checkpoint), movie-review texts, batch 32,
            texts/s through each library's text-classification pipeline
  gpt2      GPT-2-124M (generation.gpt2_checkpoint), greedy decode of 32 new tokens after an 8-token prompt, tokens/s
            ("int8"/"int4" decode with int8 activations, their default; "(float activations)" rows without)
  smollm2   the SmolLM2-135M Q4_1 GGUF: transformers' GGUF loading (dequantized fp32) vs hugkit dequantized to fp32
            (gguf_dequantize=True) then quantized; "gguf-q4_1" runs the file's own blocks, float activations by
            default, then int8
  disk      GPT-2-124M saved with save_pretrained: bytes of model.safetensors
  load rss  peak RSS of a fresh process loading GPT-2-124M fp32 (with quantization= on load), psutil polling
Targets (issue 5): int8 classification >= 2.5x transformers fp32; int8 decode >= 2.5x, int4 decode >= 4x.
"""

from __future__ import annotations

import argparse
import json

import common
from generation import SMOLLM2_GGUF, gpt2_checkpoint

SCHEMES = ("fp32", "int8", "int4", "dynamic-int8")
# "scheme:activations": int8/int4 decode with int8 activations (their default) and with float activations
DECODE_SCHEMES = ("fp32", "int8", "int8:float", "int4", "int4:float", "dynamic-int8")


def _label(scheme: str) -> str:
    name, _, activations = scheme.partition(":")
    return f"{name} ({activations} activations)" if activations else name
_PRELUDE = """
import json, time, torch
torch.set_num_threads({threads})
def median_time(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
"""

_CLASSIFY = _PRELUDE + """
import sys; sys.path.insert(0, {bench!r}); import common
texts = common.movie_review_texts()[:{n}]
if {library!r} == "transformers":
    import transformers
    pipe = transformers.pipeline("text-classification", model={folder!r}, device="cpu", dtype=torch.float32)
else:
    import hugkit
    pipe = hugkit.pipeline("text-classification", model={folder!r}, quantization={scheme!r})
pipe(texts[:64], batch_size=32)
seconds = median_time(lambda: pipe(texts, batch_size=32), {repeats})
print("RESULT " + json.dumps({{"texts_per_s": len(texts) / seconds}}))
"""

_DECODE = _PRELUDE + """
if {library!r} == "transformers" and {folder!r}.endswith(".gguf"):  # transformers' GGUF loading, dequantized fp32
    import sys, pathlib; sys.path.insert(0, {bench!r}); import generation
    model = generation.transformers_from_gguf(pathlib.Path({folder!r}))
elif {library!r} == "transformers":
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained({folder!r}, dtype=torch.float32).eval()
else:
    import dataclasses, hugkit
    from hugkit.quantization import resolve_quantization
    kwargs = json.loads({kwargs!r})
    activations = kwargs.pop("activations", None)
    if activations and "quantization" in kwargs:
        kwargs["quantization"] = dataclasses.replace(resolve_quantization(kwargs["quantization"]), activations=activations)
    model = hugkit.AutoModelForCausalLM.from_pretrained({folder!r}, **kwargs)
    if activations and "quantization" not in kwargs:  # a GGUF file's own blocks
        hugkit.set_activations_(model, activations)
ids = torch.randint(0, 1000, (1, 8), generator=torch.Generator().manual_seed(0))
def run():
    with torch.no_grad():
        model.generate(ids, max_new_tokens={new}, min_new_tokens={new}, do_sample=False)
run()
seconds = median_time(run, {repeats})
print("RESULT " + json.dumps({{"tokens_per_s": {new} / seconds}}))
"""

_LOAD = """
import sys, json; sys.path.insert(0, {bench!r}); import common
import torch, hugkit
baseline = common.rss_bytes()
with common.PeakRSS() as peak:
    model = hugkit.AutoModelForCausalLM.from_pretrained({folder!r}, quantization={scheme!r})
model.save_pretrained({save!r})
print("RESULT " + json.dumps({{"peak": peak.peak - baseline, "peak_anon": peak.peak_anon - baseline}}))
"""


def child(code: str, **fields) -> dict:
    result = common.run_python(code.format(bench=str(common.BENCH_DIR), **fields), timeout=1200)
    if not result.ok:
        raise RuntimeError(result.failure(code.split("\n", 3)[2]))
    return result.json_line()


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    repeats, n_texts, new = (1, 128, 16) if args.quick else (3, 512, 32)
    common.print_header("quantization", f"threads={args.threads}")
    results: dict = {"machine": common.machine_info()}

    distilbert = str(common.distilbert_base_checkpoint())
    rows = []
    base = child(_CLASSIFY, threads=args.threads, library="transformers", folder=distilbert, scheme=None, n=n_texts,
                 repeats=repeats)["texts_per_s"]
    rows.append(["transformers fp32", common.fmt(base), "1.00x", ""])
    for scheme in SCHEMES:
        value = child(_CLASSIFY, threads=args.threads, library="hugkit", folder=distilbert,
                      scheme=None if scheme == "fp32" else scheme, n=n_texts, repeats=repeats)["texts_per_s"]
        check = common.target_check(common.ratio(value, base), 2.5) if scheme in ("int8", "dynamic-int8") else ""
        rows.append([f"hugkit {scheme}", common.fmt(value), common.fmt_ratio(common.ratio(value, base)), check])
    results["classify"] = rows
    common.print_table(f"DistilBERT-base classification, {n_texts} texts, batch 32 (texts/s)",
                       ["library", "texts/s", "vs transformers", "target 2.5x"], rows)

    gpt2 = str(gpt2_checkpoint())
    rows = []
    base = child(_DECODE, threads=args.threads, library="transformers", folder=gpt2, kwargs="{}", new=new,
                 repeats=repeats)["tokens_per_s"]
    rows.append(["transformers fp32", common.fmt(base), "1.00x", ""])
    for scheme in DECODE_SCHEMES:
        name, _, activations = scheme.partition(":")
        kwargs = {} if name == "fp32" else {"quantization": name}
        if activations:
            kwargs["activations"] = activations
        value = child(_DECODE, threads=args.threads, library="hugkit", folder=gpt2, kwargs=json.dumps(kwargs),
                      new=new, repeats=repeats)["tokens_per_s"]
        target = {"int8": 2.5, "int4": 4.0}.get(scheme)
        rows.append([f"hugkit {_label(scheme)}", common.fmt(value), common.fmt_ratio(common.ratio(value, base)),
                     common.target_check(common.ratio(value, base), target) if target else ""])
    results["gpt2_decode"] = rows
    common.print_table(f"GPT-2-124M greedy decode, batch 1, {new} new tokens (tokens/s)",
                       ["library", "tokens/s", "vs transformers", "target"], rows)

    rows = []
    smollm2 = str(SMOLLM2_GGUF.parent)
    base = child(_DECODE, threads=args.threads, library="transformers", folder=str(SMOLLM2_GGUF), kwargs="{}", new=new,
                 repeats=repeats)["tokens_per_s"]
    rows.append(["transformers fp32 (from the GGUF)", common.fmt(base), "1.00x"])
    for scheme in ("fp32", "int8", "int4", "gguf-q4_1", "gguf-q4_1:int8"):
        name, _, activations = scheme.partition(":")
        kwargs = {"gguf_file": SMOLLM2_GGUF.name}
        if name == "fp32":
            kwargs["gguf_dequantize"] = True
        elif name != "gguf-q4_1":
            kwargs["quantization"] = name
        if activations:
            kwargs["activations"] = activations
        value = child(_DECODE, threads=args.threads, library="hugkit", folder=smollm2, kwargs=json.dumps(kwargs), new=new,
                      repeats=repeats)["tokens_per_s"]
        rows.append([f"hugkit {_label(scheme)}", common.fmt(value), common.fmt_ratio(common.ratio(value, base))])
    results["smollm2_decode"] = rows
    common.print_table(f"SmolLM2-135M (from GGUF) greedy decode, batch 1, {new} new tokens",
                       ["library", "tokens/s", "vs transformers"], rows)

    rows = []
    fp32_bytes = (common.Path(gpt2) / "model.safetensors").stat().st_size
    for scheme in SCHEMES:
        out = common.CACHE_DIR / f"gpt2-124m-{scheme}"
        memory = child(_LOAD, folder=gpt2, scheme=None if scheme == "fp32" else scheme, save=str(out))
        size = (out / "model.safetensors").stat().st_size
        rows.append([f"hugkit {scheme}", common.mib(size), common.fmt_ratio(common.ratio(size, fp32_bytes)),
                     common.mib(memory["peak"]), common.mib(memory["peak_anon"])])
    results["gpt2_memory"] = rows
    common.print_table("GPT-2-124M: size on disk, peak RSS of a fresh process loading the fp32 checkpoint",
                       ["load", "model.safetensors", "vs fp32 file", "peak RSS (delta)", "peak anon RSS"], rows,
                       notes=["RSS is measured while loading (and saving) in a fresh process, over its post-import baseline"])
    if args.json:
        common.save_json("quantization", results)
    return results


if __name__ == "__main__":
    main()
