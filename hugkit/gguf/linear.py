"""GGUF block formats Q4_0 / Q4_1 / Q8_0 kept quantized in memory and multiplied without inflating to fp32.

Block layouts (32 weights per block, little-endian, llama.cpp's ggml-common.h):

- Q4_0, 18 bytes: ``d`` (f16), 16 bytes of nibbles; weight ``j`` is the low nibble of byte ``j`` for j < 16 and the
  high nibble of byte ``j - 16`` otherwise; ``w = (q - 8) * d``.
- Q4_1, 20 bytes: ``d`` (f16), ``m`` (f16), 16 bytes of nibbles (same order); ``w = q * d + m``.
- Q8_0, 34 bytes: ``d`` (f16), 32 signed bytes; ``w = q * d``.

Kernel choice, measured here (2 vCPU Zen 3, AVX2 only, 1 thread, nice'd next to other work; microseconds per call):

| (out, in)    | rows | fp32 weights | aten int4pack_mm | aten int8pack_mm | dequantize + F.linear | kernel.py group_mm |
| (1536, 576)  |   1  |  150 (hot)   |       2090       |       1340       |          970          |    160 (hot)       |
| (1536, 576)  |   1  |  297 (cold)  |                  |                  |                       |    145 (cold)      |
| (1536, 576)  |  32  |     950      |      58860       |      27190       |         1870          |        -           |
| (49152, 576) |   1  |    9300      |      61540       |         -        |        ~290000        |      5750          |

torch's own int4/int8 CPU kernels (``aten._weight_int4pack_mm_for_cpu``, whose ``(q - 8) * scale + zero`` groups
fit Q4_0/Q4_1 exactly) have no fast path on AVX2 and lose even to dequantizing on the fly. So blocks are stored as
Q4_0/Q4_1 nibbles packed two per byte, or Q8_0 int8 values, with a per-block fp32 scale and zero (0.75 / 1.25 bytes
per weight instead of 4; ``w = q * scale + zero`` is bit-identical to gguf's dequantization), and:

- decode-sized inputs (at most ``kernel.MAX_ROWS`` rows) run kernel.py's AVX2 ``group_mm`` (float activations,
  the default: transformers' numbers) or ``group_mm_q8`` (``activations="int8"``, llama.cpp's way), which read the
  int8 blocks directly: ~2x fp32 speed once the weights are not in cache (a model's weights never are);
- longer inputs (prefill) dequantize (row chunks for a large head) and run an fp32 BLAS matmul;
- where the kernel cannot be compiled, everything takes the second path (correct, slower).
``from_pretrained(..., gguf_dequantize=True)`` gives plain fp32 ``nn.Linear`` weights instead (4 bytes per weight).

This module is the home of GGUF block weights, shared with hugkit.quantization: ``quantize_blocks`` turns float
weights into blocks exactly as gguf's own quantizer does (``quantize_(model, GGUFQ4_1())``), and a model holding
GGUFLinear / GGUFEmbedding layers (quantized by hugkit or loaded from a GGUF file) saves with save_pretrained and
reloads through the quantization package (buffers stored as they are in memory; a head tied to the embedding is
stored once).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..quantization.base import QuantizedLinear
from ..quantization.int4 import pack_nibbles

QK = 32  # weights per block, for all three formats
BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}


def _f16(blocks: np.ndarray, offset: int) -> np.ndarray:
    """The f16 at byte ``offset`` of every block (blocks: (..., block_bytes) uint8) as float32, shape (..., 1)."""
    return np.ascontiguousarray(blocks[..., offset : offset + 2]).view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(..., 16) packed bytes -> (..., 32) values 0..15 in GGUF element order (low nibbles first)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def unpack_blocks(raw, kind: str, out_features: int, in_features: int):
    """Raw GGUF bytes of an (out, in) tensor -> (q int8 (out, in/32, 32), scale, zero float32 (out, in/32, 1)),
    with ``w = q * scale + zero`` exactly as gguf dequantizes."""
    if kind not in BLOCK_BYTES:
        raise ValueError(f"Unsupported GGUF block format {kind!r}; supported: {', '.join(BLOCK_BYTES)}.")
    if in_features % QK:
        raise ValueError(f"GGUF {kind} tensor with {in_features} input features: not a multiple of the block size {QK}.")
    raw = raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    blocks = raw.reshape(out_features, in_features // QK, BLOCK_BYTES[kind])
    d = _f16(blocks, 0)
    if kind == "Q4_0":
        q = _nibbles(blocks[..., 2:]).astype(np.int8) - np.int8(8)
        zero = np.zeros_like(d)
    elif kind == "Q4_1":
        q = _nibbles(blocks[..., 4:]).astype(np.int8)
        zero = _f16(blocks, 2)
    else:
        q = np.ascontiguousarray(blocks[..., 2:]).view(np.int8)
        zero = np.zeros_like(d)
    return torch.from_numpy(np.ascontiguousarray(q)), torch.from_numpy(d), torch.from_numpy(zero)


def _round_half_away(values: torch.Tensor) -> torch.Tensor:
    """gguf's ``np_roundf`` (round half away from zero), in the same float32 steps."""
    magnitude = values.abs()
    floored = torch.floor(magnitude)
    return torch.sign(values) * (floored + torch.floor(2 * (magnitude - floored)))


def quantize_blocks(weight: torch.Tensor, kind: str):
    """Float (out, in) -> (q int8 (out, in/32, 32), scale, zero float32 (out, in/32, 1)) in the layout
    ``unpack_blocks`` gives: the same blocks gguf's ``quants.quantize`` writes (f16 scales), so
    ``q * scale + zero`` equals gguf's dequantization of them."""
    if kind not in BLOCK_BYTES:
        raise ValueError(f"Unsupported GGUF block format {kind!r}; supported: {', '.join(BLOCK_BYTES)}.")
    out_features, in_features = weight.shape
    if in_features % QK:
        raise ValueError(f"GGUF {kind} needs in_features to be a multiple of {QK}; this weight has {in_features}.")
    blocks = weight.detach().float().reshape(out_features, in_features // QK, QK)
    zero = torch.zeros(out_features, in_features // QK, 1)
    if kind == "Q8_0":
        d = blocks.abs().amax(dim=-1, keepdim=True) / 127
        inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        q = _round_half_away(blocks * inverse).to(torch.int8)
    elif kind == "Q4_0":
        peak = blocks.gather(-1, blocks.abs().argmax(dim=-1, keepdim=True))  # signed value of largest magnitude
        d = peak / -8
        inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        q = (torch.trunc(blocks * inverse + 8.5).clamp_(0, 15) - 8).to(torch.int8)
    else:  # Q4_1
        low, high = blocks.amin(dim=-1, keepdim=True), blocks.amax(dim=-1, keepdim=True)
        d = (high - low) / 15
        inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        q = torch.trunc((blocks - low) * inverse + 0.5).clamp_(0, 15).to(torch.int8)
        zero = low.half().float()
    return q.contiguous(), d.half().float(), zero


NIBBLE_KINDS = ("Q4_0", "Q4_1")  # kept as packed nibbles in memory and on disk


def block_storage(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, kind: str):
    """Unpacked blocks (``unpack_blocks`` / ``quantize_blocks``) -> the layout GGUFLinear and GGUFEmbedding hold:
    Q8_0 as int8 values (out, in/32, 32); Q4_0 and Q4_1 as nibbles packed two per byte, (out, in/2) uint8 in GGUF's
    order (hugkit.quantization.int4's layout), so they take half a byte per weight, not one. Q4_0's ``q - 8`` offset
    moves into its zero (``-8 * d``): ``q * d + (-8 * d)`` equals ``(q - 8) * d`` exactly (small integer multiples
    of an f16 scale), so the weights stay bit-identical to gguf's dequantization."""
    if kind not in NIBBLE_KINDS:
        return q, scales, zeros
    values = q.reshape(q.shape[0], -1)
    if kind == "Q4_0":
        values, zeros = values + 8, scales * -8
    return pack_nibbles(values), scales, zeros


def _block_values(q: torch.Tensor, kind: str) -> torch.Tensor:
    """Stored blocks of some rows -> their integer values as (rows, in/32, 32), ready for ``* scale + zero``."""
    if kind not in NIBBLE_KINDS:
        return q
    runs = q.reshape(q.shape[0], q.shape[1] // 16, 16)  # 16 bytes = 32 weights: j low, j + 16 high nibble
    return torch.cat([runs & 0x0F, runs >> 4], dim=-1)


def _block_buffers(out_features: int, in_features: int, device: torch.device, kind: str):
    shape = (out_features, in_features // QK)
    if kind in NIBBLE_KINDS:
        q = torch.empty(out_features, in_features // 2, dtype=torch.uint8, device=device)
    else:
        q = torch.empty(*shape, QK, dtype=torch.int8, device=device)
    return q, torch.empty(*shape, 1, device=device), torch.empty(*shape, 1, device=device)


def dequantize_blocks(raw, kind: str, out_features: int, in_features: int) -> torch.Tensor:
    """The float32 (out, in) tensor a GGUF block tensor stands for."""
    q, scale, zero = unpack_blocks(raw, kind, out_features, in_features)
    return (q * scale + zero).reshape(out_features, in_features)


class GGUFLinear(QuantizedLinear):
    """A linear layer whose weight stays quantized (Q4_0, Q4_1 or Q8_0 blocks).

    Buffers ``qweight`` (``block_storage``: Q8_0 int8 (out, in/32, 32), Q4_0/Q4_1 packed nibbles uint8 (out, in/2)),
    ``scales`` and ``zeros`` (float32, (out, in/32, 1)).
    A tied head shares these buffers with its :class:`GGUFEmbedding`. ``bias`` is an optional float parameter
    (Qwen2's q/k/v and GPT-2's projections have one; the loader sets it when the file has one).
    A head tied to the embedding (``tied_to``) holds non-persistent views of the embedding's buffers.
    The forward pass is QuantizedLinear's: kernel.py's group kernels on the blocks for decode-sized inputs (float
    activations unless the config says ``activations="int8"``), row slices dequantized for BLAS otherwise.
    """

    def __init__(self, in_features: int, out_features: int, kind: str, q: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor, bias: torch.Tensor | None = None, *, persistent: bool = True,
                 config=None) -> None:
        from ..quantization.config import SCHEMES

        super().__init__(in_features, out_features, bias, config or SCHEMES[kind.lower()]())
        self.kind, self.nibbles = kind, kind in NIBBLE_KINDS
        self.register_buffer("qweight", q, persistent=persistent)
        self.register_buffer("scales", scales, persistent=persistent)
        self.register_buffer("zeros", zeros, persistent=persistent)
        self.__dict__["_tie_source"] = None  # a GGUFEmbedding, deliberately kept out of the module tree

    @classmethod
    def from_raw(cls, raw, kind: str, out_features: int, in_features: int) -> "GGUFLinear":
        return cls(in_features, out_features, kind,
                   *block_storage(*unpack_blocks(raw, kind, out_features, in_features), kind))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, config) -> "GGUFLinear":
        """Quantize a float (out, in) weight into ``config.kind`` blocks (``hugkit.GGUFQ4_1()`` etc.)."""
        out_features, in_features = weight.shape
        return cls(in_features, out_features, config.kind, *block_storage(*quantize_blocks(weight, config.kind), config.kind),
                   bias, config=config)

    @classmethod
    def empty(cls, in_features: int, out_features: int, bias: torch.Tensor | None, config) -> "GGUFLinear":
        """The layer's structure on the meta device, for a saved checkpoint to fill."""
        return cls(in_features, out_features, config.kind,
                   *_block_buffers(out_features, in_features, torch.device("meta"), config.kind), bias, config=config)

    @classmethod
    def tied_to(cls, embedding: "GGUFEmbedding", activations: str = "float") -> "GGUFLinear":
        """A head sharing ``embedding``'s blocks: saved once (under the embedding), re-shared after loading."""
        config = dataclasses.replace(embedding.quantization, activations=activations)
        head = cls(embedding.embedding_dim, embedding.num_embeddings, embedding.kind, embedding.qweight,
                   embedding.scales, embedding.zeros, persistent=False, config=config)
        head.__dict__["_tie_source"] = embedding
        return head

    @property
    def tie_source(self) -> "GGUFEmbedding | None":
        return self.__dict__.get("_tie_source")

    def _init_buffers(self, device: torch.device) -> None:
        """After a checkpoint filled the embedding (PreTrainedModel._materialize_leftovers): share its blocks."""
        source = self.tie_source
        if source is not None:
            for name in ("qweight", "scales", "zeros"):
                self._buffers[name] = getattr(source, name)
        super()._init_buffers(device)

    def _kernel_mm(self, kernel, x: torch.Tensor) -> torch.Tensor:
        buffers = self._buffers  # direct reads: see QuantizedLinear._group_mm
        return self._group_mm(kernel, x, buffers["qweight"], buffers["zeros"], QK, self.nibbles)

    def _dequantize_rows(self, start: int, stop: int, kernel) -> torch.Tensor:
        """Rows ``start:stop`` of the fp32 weight, bit-identical to gguf's own dequantization."""
        q, scales, zeros = self.qweight[start:stop], self.scales[start:stop], self.zeros[start:stop]
        if kernel is not None:
            return kernel.group_dequant(q, scales, zeros, self.in_features, QK, self.nibbles)
        return (_block_values(q, self.kind) * scales + zeros).view(stop - start, self.in_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kind={self.kind}"


class GGUFEmbedding(nn.Module):
    """An embedding table kept quantized; looked-up rows are dequantized on the fly."""

    is_quantized = True

    def __init__(self, num_embeddings: int, embedding_dim: int, kind: str, q: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.kind = num_embeddings, embedding_dim, kind
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)

    @classmethod
    def empty(cls, num_embeddings: int, embedding_dim: int, kind: str) -> "GGUFEmbedding":
        """The table's structure on the meta device, for a saved checkpoint to fill."""
        return cls(num_embeddings, embedding_dim, kind,
                   *_block_buffers(num_embeddings, embedding_dim, torch.device("meta"), kind))

    @property
    def quantization(self):
        from ..quantization.config import SCHEMES

        return SCHEMES[self.kind.lower()]()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.reshape(-1)
        rows = _block_values(self.qweight[ids], self.kind) * self.scales[ids] + self.zeros[ids]
        return rows.reshape(*input_ids.shape, self.embedding_dim)

    @property
    def weight(self) -> torch.Tensor:
        """The full fp32 table, built on demand (for inspection; the forward pass never builds it)."""
        values = _block_values(self.qweight, self.kind)
        return (values * self.scales + self.zeros).view(self.num_embeddings, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, kind={self.kind}"
