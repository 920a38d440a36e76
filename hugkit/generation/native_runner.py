"""A decoder-only runner whose decode steps run in one compiled call per token (hugkit/native/decode_step.cpp).

``NativeDecoderRunner`` has runners.DecoderOnlyRunner's interface and behaviour (``rows``, ``prompt``,
``first_logits()``, ``step(tokens)``, ``reorder(rows)``, ``past_key_values``; same constructor). The prompt is
prefilled by the model's own Python modules into the same ``StaticCache``; each later token goes through
``DecodeStep.step`` (embedding, every layer, final norm, head) with no torch op dispatched from Python. Where the
model or the machine does not allow it (``unsupported_reason``), or the step cannot be built (no compiler: one log
line), ``step`` is the Python modules' step, so callers never need to care.

Bit-identical to the Python path (default ``exact=True``): the quantized matmuls are kernel.py's own functions
with the arguments QuantizedLinear passes them, float matmuls are ``at::linear``, the few operations whose result
depends on an implementation (the norms' mean, SiLU, attention) are the modules' own torch ops on the same shapes,
and everything else is single IEEE operations in the modules' order. tests/native check logits with
``torch.equal`` over 64 greedy steps, batched with left padding, sliding windows, every quantization scheme, float
and int8 activations, 1 and 2 threads. (Bit-identity matters with int8 activations: an ulp can move an activation
across a rounding boundary and change a token; ``exact=False``, the step's own norm/attention loops, was ~0.5 ms per
token faster here but changed tokens that way.)

Why a C++ step rather than ``torch.compile`` of the Python step (issue 13, option b). Measured on the built-in
SmolLM2-135M Q4_1 GGUF, batch 1, 2 threads, interleaved medians on the 2-vCPU machine while it was quiet
(``python bench/decode_profile.py --torch-compile --steps 32``):

| ms per token (tokens/s)          | Python modules | torch.compile, kernels as custom ops      | native step  |
| float activations (the default)  | 30.9 (32)      | 30.8, after a 6-45 s compile per process  | 16.0 (63)    |
| int8 activations                 | 23.2 (43)      | 20.9, and its greedy tokens differ        | 11.0 (91)    |
| calls from Python per token      | 1,729 aten ops + 211 kernel calls | one compiled graph     | one          |

In the Python step the matmul kernels are ~85% of the time on this machine, and they run on one thread whatever
torch's setting (kernel.py's at::parallel_for is compiled without OpenMP); ``torch.compile`` can fuse the small ops
around them but not thread them, needs every kernel registered as a ``torch.library`` op, compiles again in every
process and for every new cache length (the static cache's shape), and its fused norms round differently, which
int8 activations turned into other tokens. The native step removes the dispatches, shares the matmuls out between
threads with its own pool (1 -> 2 threads: 26.6 -> 16.0 ms float, 16.9 -> 11.0 ms int8) and stays bit-identical. It
needs a C++ compiler once per machine (a cached ``.so`` after that; without one the runner logs one line and
decodes in Python).

Under contention (another process on the second core) the Python step at two threads collapsed to 200-450 ms per
token (torch's SDPA with a one-token query took 9-16 ms per call at two threads, ~12 us at one) and llama.cpp to
under 1 token/s; the native step runs SDPA on one thread and its pool never waits for a worker that has not started
its share, so it degrades towards its one-thread speed instead.

The native step covers: LlamaForCausalLM and its subclasses (Mistral, Qwen2, Qwen3) with the stock Llama modules,
float32 on CPU, SiLU MLP, RoPE types default / linear / llama3, per-layer head counts and sliding windows, float
``nn.Linear`` weights and every hugkit quantized linear layer (GGUF blocks, int8, int4, dynamic int8) at up to
``kernel.MAX_ROWS`` rows, float or GGUF-block embeddings, no module hooks. Anything else decodes in Python.
"""

from __future__ import annotations

import logging
import weakref

import torch
from torch import nn

from ..kv_cache import StaticCache
from ..quantization.base import NO_BIAS, NO_ZERO, QuantizedLinear
from ..quantization.dynamic import DynamicInt8Linear
from .runners import DecoderOnlyRunner

logger = logging.getLogger(__name__)

# Quantized layers whose forward, for a decode-sized input, is QuantizedLinear._kernel_mm (what the step replays).
_QUANTIZED_FORWARDS = (QuantizedLinear.forward, DynamicInt8Linear.forward)

FLOAT, GROUP = 0, 1  # decode_step.cpp's linear kinds


class _Recorder:
    """Stands in for kernel.py's module: records the call a QuantizedLinear makes for a decode-sized input, so the
    native step calls the same kernel with the same arguments (QuantizedLinear._kernel_mm is the one place that
    decides them)."""

    def __init__(self) -> None:
        self.call = None

    def _record(self, int8: bool, x, q, scales, zeros, group_size, nibbles, bias):
        self.call = dict(q=q, scales=scales, zeros=zeros, group_size=int(group_size), nibbles=bool(nibbles), int8=int8,
                         bias=bias)
        return torch.empty(*x.shape[:-1], scales.shape[0], dtype=torch.float32)

    def group_mm(self, *args):
        return self._record(False, *args)

    def group_mm_q8(self, *args):
        return self._record(True, *args)


_zero_checks: dict[int, tuple] = {}  # id(tensor) -> (weak reference, version counter, all zero)


def _all_zero(tensor: torch.Tensor) -> bool:
    """Whether every element is 0, remembered per tensor until it is modified (its version counter moves): the
    check reads the whole tensor, ~14 ms per runner for SmolLM2 otherwise."""
    known = _zero_checks.get(id(tensor))
    if known is not None and known[0]() is tensor and known[1] == tensor._version:
        return known[2]
    result = not bool(tensor.any())
    if len(_zero_checks) > 4096:  # forget tensors that are gone
        for key in [key for key, entry in _zero_checks.items() if entry[0]() is None]:
            del _zero_checks[key]
    _zero_checks[id(tensor)] = (weakref.ref(tensor), tensor._version, result)
    return result


def _float32(tensor: torch.Tensor | None) -> bool:
    return tensor is None or (tensor.dtype == torch.float32 and tensor.device.type == "cpu")


def _linear_spec(module: nn.Module, where: str) -> dict:
    if type(module).forward is nn.Linear.forward:
        weight, bias = module.weight, module.bias
        if not (_float32(weight) and _float32(bias)):
            raise _Unsupported(f"{where}: a non-float32 weight")
        return dict(kind=FLOAT, in_features=module.in_features, out_features=module.out_features,
                    weight=weight.detach().contiguous(), bias=NO_BIAS if bias is None else bias.detach().contiguous())
    if isinstance(module, QuantizedLinear) and type(module).forward in _QUANTIZED_FORWARDS:
        recorder = _Recorder()
        if module._kernel_mm(recorder, torch.empty(1, module.in_features)) is None or recorder.call is None:
            raise _Unsupported(f"{where}: its decode kernel cannot take this layer")
        call = recorder.call
        if module._parameters["bias"] is not None and call["bias"].numel() == 0:
            raise _Unsupported(f"{where}: a bias that is not float32")
        if call["zeros"].numel() and _all_zero(call["zeros"]):
            # All-zero zeros (GGUF Q8_0 blocks) add exactly 0.0 to every output: skipping them gives the same bits
            # and saves reading them (the Q8_0 head: 3.5 MB per token).
            call["zeros"] = NO_ZERO
        return dict(kind=GROUP, in_features=module.in_features, out_features=module.out_features, **call)
    raise _Unsupported(f"{where} is a {type(module).__name__}")


class _Unsupported(Exception):
    pass


def _check_model(model) -> None:
    from ..gguf.kernel import MAX_ROWS, block_mm_kernel  # noqa: F401
    from ..models.llama import (
        LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP, LlamaModel, LlamaRMSNorm, rope_parameters,
    )

    if not isinstance(model, LlamaForCausalLM) or not isinstance(getattr(model, "model", None), LlamaModel):
        raise _Unsupported(f"{type(model).__name__} is not a Llama-family causal LM")
    if model.dtype != torch.float32 or model.device.type != "cpu":
        raise _Unsupported(f"the model is {model.dtype} on {model.device} (the native step runs float32 on CPU)")
    if type(model.model).forward is not LlamaModel.forward or type(model).forward is not LlamaForCausalLM.forward:
        raise _Unsupported("the model overrides the Llama forward")
    params = rope_parameters(model.config)
    if params["rope_type"] == "dynamic" or params.get("partial_rotary_factor", 1.0) != 1.0:
        raise _Unsupported(f"RoPE {params['rope_type']} / partial rotary (positions are tabled once per runner)")
    if model.config.hidden_act not in ("silu", "swish"):
        raise _Unsupported(f"hidden_act={model.config.hidden_act!r} (the native MLP is SiLU-gated)")
    if model.config.output_attentions or model.config.output_hidden_states:
        raise _Unsupported("the config asks for attentions or hidden states")
    if torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks:
        raise _Unsupported("global module hooks are registered")
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            raise _Unsupported(f"{name or 'the model'} has forward hooks")
    for i, layer in enumerate(model.model.layers):
        checks = [(layer, LlamaDecoderLayer), (layer.self_attn, LlamaAttention), (layer.mlp, LlamaMLP),
                  (layer.input_layernorm, LlamaRMSNorm), (layer.post_attention_layernorm, LlamaRMSNorm)]
        for module, base in checks:
            if type(module).forward is not base.forward:
                raise _Unsupported(f"layer {i}: {type(module).__name__} overrides {base.__name__}.forward")
        if layer.mlp.act_fn is not torch.nn.functional.silu:
            raise _Unsupported(f"layer {i}: the MLP activation is not SiLU")


def _model_has_quantized_layers(model) -> bool:
    from ..quantization.base import QuantizedLinear

    return any(isinstance(m, QuantizedLinear) for m in model.modules())


def unsupported_reason(model, rows: int = 1) -> str | None:
    """None when the native step can decode ``rows`` rows of ``model`` token-identically to its Python modules;
    otherwise why not (the runner then decodes in Python)."""
    from ..gguf.kernel import MAX_ROWS, block_mm_kernel

    try:
        _check_model(model)
        if _model_has_quantized_layers(model):
            if rows > MAX_ROWS:
                raise _Unsupported(f"{rows} rows (quantized layers use the decode kernel up to {MAX_ROWS} rows)")
            if block_mm_kernel() is None:
                raise _Unsupported("kernel.py's quantized matmuls are unavailable (the Python path dequantizes)")
        _embedding_spec(model.model.embed_tokens)
    except _Unsupported as error:
        return str(error)
    return None


def _embedding_spec(embedding: nn.Module) -> dict:
    from ..gguf.linear import GGUFEmbedding, NIBBLE_KINDS

    if type(embedding).forward is nn.Embedding.forward:
        if embedding.max_norm is not None or not _float32(embedding.weight):
            raise _Unsupported("the embedding has max_norm or a non-float32 table")
        return dict(kind=FLOAT, weight=embedding.weight.detach().contiguous())
    if type(embedding) is GGUFEmbedding and embedding.kind in ("Q4_0", "Q4_1", "Q8_0"):
        return dict(kind=GROUP, q=embedding.qweight, scales=embedding.scales.contiguous(),
                    zeros=embedding.zeros.contiguous(), nibbles=embedding.kind in NIBBLE_KINDS)
    raise _Unsupported(f"the input embedding is a {type(embedding).__name__}")


def _norm(module) -> tuple[torch.Tensor, float]:
    weight = module._parameters["weight"].detach()
    if not _float32(weight):
        raise _Unsupported("a norm weight is not float32")
    return weight.contiguous(), float(module.variance_epsilon)


def build_spec(model, cache: StaticCache, total: int, exact: bool = True) -> dict:
    """What decode_step.cpp's DecodeStep is built from: the weights (no copies: the same tensors), the cache
    buffers, and the rotary cos/sin table for positions 0..total, computed by the model's own rotary module.
    ``exact``: norms, SiLU and attention run the torch ops of the Python modules (bit-identical logits); False:
    hand-written loops (fewer dispatches; last-bit differences)."""
    base = model.model
    layers = []
    for i, (layer, window) in enumerate(zip(base.layers, base.layer_windows)):
        attn, mlp = layer.self_attn, layer.mlp
        spec = dict(heads=attn.num_heads, kv_heads=attn.num_kv_heads, window=int(window or 0),
                    keys=cache.keys[i], values=cache.values[i])
        spec["in_norm"], spec["eps_in"] = _norm(layer.input_layernorm)
        spec["post_norm"], spec["eps_post"] = _norm(layer.post_attention_layernorm)
        if attn.qk_norm:
            spec["q_norm"], spec["eps_q"] = _norm(attn.q_norm)
            spec["k_norm"], spec["eps_k"] = _norm(attn.k_norm)
        for key, module in (("q", attn.q_proj), ("k", attn.k_proj), ("v", attn.v_proj), ("o", attn.o_proj),
                            ("gate", mlp.gate_proj), ("up", mlp.up_proj), ("down", mlp.down_proj)):
            spec[key] = _linear_spec(module, f"layer {i} {key}")
        layers.append(spec)
    norm, eps = _norm(base.norm)
    positions = torch.arange(total + 1)[None]
    with torch.no_grad():
        cos, sin = base.rotary_emb(torch.zeros((), dtype=torch.float32), positions)
    return dict(
        embed=_embedding_spec(base.embed_tokens), layers=layers, norm=norm, eps=eps,
        head=_linear_spec(model.lm_head, "lm_head"), hidden=model.config.hidden_size, head_dim=model.config.head_dim,
        vocab=model.lm_head.out_features, cos=cos[0].contiguous(), sin=sin[0].contiguous(), exact=bool(exact),
    )


class NativeDecoderRunner(DecoderOnlyRunner):
    """runners.DecoderOnlyRunner with the decode step in C++ (see the module docstring).

    Only ``step`` differs: it runs ``DecodeStep.step`` when the model allows it (``self.native`` is True), which
    also marks the new cache slot in ``keep`` and advances ``next_position`` in place; otherwise it is
    DecoderOnlyRunner's step (``compile=True`` compiles that Python fallback).
    ``exact=False`` lets the step use its own norm/attention loops instead of the torch ops (see build_spec).
    ``wait_for_build=False`` (generate's choice) decodes in Python when the step is not built on this machine yet,
    rather than waiting for the compiler (the build then runs in the background; see hugkit/native/loader.py).
    """

    def __init__(
        self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new: int, *,
        expand: int = 1, compile: bool = False, exact: bool = True, wait_for_build: bool = True,
    ) -> None:
        super().__init__(model, input_ids, attention_mask, max_new, expand=expand, compile=compile)
        self.next_position = self.next_position.contiguous()  # the step advances it in place
        self._step = None
        device = self.prompt.device
        reason = unsupported_reason(model, self.rows) if device.type == "cpu" else "inputs are not on the CPU"
        if reason is None:
            from .. import native

            module = native.load(wait=wait_for_build)
            if module is not None:
                self._step = module.DecodeStep(build_spec(model, self.cache, self.cache.max_cache_len, exact))
        else:
            logger.debug("Decoding in Python, not with the native step: %s.", reason)

    @property
    def native(self) -> bool:
        """Whether ``step`` runs the compiled step."""
        return self._step is not None

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if self._step is None:
            return super().step(tokens)
        slot = self.cache.seen_tokens
        if slot >= self.cache.max_cache_len:
            raise ValueError(
                f"The static KV cache holds {self.cache.max_cache_len} tokens, but {slot} are stored and 1 more was "
                "fed. Build the runner with a larger max_new."
            )
        logits = self._step.step(tokens.reshape(-1).long().contiguous(), self.next_position, self.keep, slot)
        self.cache.seen_tokens = slot + 1
        return logits

    def reorder(self, rows: torch.Tensor) -> None:
        super().reorder(rows)  # the cache is reordered in place: the native step keeps the same buffers
        self.next_position = self.next_position.contiguous()

    # --- profiling (bench/decode_profile.py) -------------------------------------------------------------
    @property
    def profile(self) -> bool:
        return getattr(self, "_profile", False)

    @profile.setter
    def profile(self, on: bool) -> None:
        self._profile = bool(on)
        if self._step is not None:
            self._step.set_profile(self._profile)
            self._step.reset_profile()

    def profile_seconds(self) -> dict[str, float]:
        """Seconds spent in quantized matmuls, float matmuls and attention since profiling was switched on."""
        if self._step is None:
            return {}
        report = self._step.profile()
        return {k: report[k] for k in ("quantized matmul", "float matmul", "attention")}

    def profile_counts(self) -> dict[str, int]:
        return {} if self._step is None else {k: self._step.profile()[k] for k in ("parallel regions", "steps")}
