"""Small C++ kernels for decode-sized matmuls over quantized weights: ``y = x @ (q * scale + zero)^T`` computed
straight from the int8 values (or packed int4 nibbles), never inflating the weight to fp32.

Why: at batch 1 a matmul is bound by the bytes of weight it reads. torch's CPU int4/int8 kernels have no fast path
on AVX2 (see gguf/linear.py) and dequantizing to fp32 first writes and re-reads 4 bytes per weight, so both lose to
fp32 weights. These kernels read 1 byte (int8) or half a byte (int4) per weight plus a scale (and zero) per group,
and accumulate per group: ``y[n] = sum_g scale[n,g] * (x_g . q[n,g]) + zero[n,g] * sum(x_g)`` -- the same value as
the dequantized matmul up to fp32 rounding order.

Weight layouts (N output rows, K inputs, groups of ``group_size`` inputs, a multiple of 32):

- int8 values: ``q`` int8 (N, K); GGUF Q4_0/Q4_1/Q8_0 blocks (group 32) and hugkit's per-channel int8
  (group K) both use it.
- int4 nibbles: ``q`` uint8 (N, K/2); each run of 32 weights is 16 bytes, weight ``j`` in the low nibble of byte
  ``j`` and weight ``j + 16`` in the high nibble (GGUF's order), values 0..15 (hugkit.quantization.int4).
- ``scale`` float32 (N, K/group_size); ``zero`` float32 of the same shape, or empty for symmetric schemes.

Compiled once per machine with torch's cpp_extension (cached under ~/.cache/torch_extensions, or
TORCH_EXTENSIONS_DIR) the first time a quantized model runs; without a compiler, or with ``HUGKIT_GGUF_KERNEL=0``,
callers fall back to dequantize + fp32 matmul. Used for inputs of at most ``MAX_ROWS`` rows (decode); longer inputs
(prefill) are compute-bound and go to BLAS after ``group_dequant`` (vectorized ``q * scale + zero``, compiled with
``-ffp-contract=off`` so it is bit-identical to gguf's dequantization; ~6x faster than the same expression in torch
ops here). ``block_mm`` / ``dequant`` are the group-32 int8 forms GGUFLinear has always called.
"""

from __future__ import annotations

import logging
import os
import threading

import torch

logger = logging.getLogger(__name__)

MAX_ROWS = 16  # measured: up to ~16 rows the kernel beats dequantize + BLAS; beyond, BLAS wins
_SOURCE = r"""
#include <torch/extension.h>
#include <vector>
#include <ATen/Parallel.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

// The 32 weights of run r of row n as floats: 4 vectors of 8 (AVX2) -- int8 values or int4 nibbles.
#if defined(__AVX2__) && defined(__FMA__)
template <bool NIBBLES>
static inline void load32(const uint8_t* row, int64_t r, __m256* q) {
  if (NIBBLES) {
    const __m128i raw = _mm_loadu_si128((const __m128i*)(row + r * 16));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(raw, mask);                     // weights 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);  // weights 16..31
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
  } else {
    const int8_t* qg = (const int8_t*)row + r * 32;
    const __m128i raw0 = _mm_loadu_si128((const __m128i*)qg);
    const __m128i raw1 = _mm_loadu_si128((const __m128i*)(qg + 16));
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw0));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw0, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw1));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw1, 8)));
  }
}
#endif

template <bool NIBBLES>
static inline float weight_at(const uint8_t* row, int64_t k) {
  if (NIBBLES) {
    const uint8_t byte = row[(k / 32) * 16 + (k % 32) % 16];
    return (float)((k % 32) < 16 ? (byte & 0x0F) : (byte >> 4));
  }
  return (float)((const int8_t*)row)[k];
}

// y (M, N) = x (M, K) @ (q * scale + zero)^T for output rows [n0, n1), input rows [m0, m0 + mc), mc <= 8.
// Each run of 32 weights is converted to floats once and used for every input row; its dot product is scaled and
// accumulated at once (scale * sum(x q) per run, as the dequantized weight would give up to rounding order).
// MC > 0 fixes the row count at compile time so the accumulators stay in registers (decode at batch 1: MC = 1);
// MC = 0 takes it from mc. (Measured: a per-group partial sum in a stack array, or interleaving two output rows,
// was 2-4x slower here.)
template <bool NIBBLES, int MC>
static void row_block(const float* X, const float* XS, const uint8_t* Q, const float* S, const float* Z, float* Y,
                      int64_t K, int64_t N, int64_t GS, int64_t n0, int64_t n1, int64_t m0, int64_t mc_runtime) {
  const int64_t G = K / GS, runs = GS / 32, row_bytes = NIBBLES ? K / 2 : K;
  const int64_t mc = MC > 0 ? MC : mc_runtime;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* qn = Q + n * row_bytes;
    const float* sn = S + n * G;
    const float* zn = Z ? Z + n * G : nullptr;
    float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[8];
    for (int64_t m = 0; m < mc; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t g = 0; g < G; ++g) {
      const __m256 sg = _mm256_set1_ps(sn[g]);
      for (int64_t r = g * runs; r < (g + 1) * runs; ++r) {
        __m256 q[4];
        load32<NIBBLES>(qn, r, q);
        for (int64_t m = 0; m < mc; ++m) {
          const float* xr = X + (m0 + m) * K + r * 32;
          __m256 p = _mm256_mul_ps(q[0], _mm256_loadu_ps(xr));
          p = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xr + 8), p);
          p = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xr + 16), p);
          p = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xr + 24), p);
          acc[m] = _mm256_fmadd_ps(sg, p, acc[m]);
        }
      }
      if (zn)
        for (int64_t m = 0; m < mc; ++m) tail[m] += zn[g] * XS[(m0 + m) * G + g];
    }
    for (int64_t m = 0; m < mc; ++m) {
      __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
      lo = _mm_hadd_ps(lo, lo);
      lo = _mm_hadd_ps(lo, lo);
      Y[(m0 + m) * N + n] = _mm_cvtss_f32(lo) + tail[m];
    }
#else
    for (int64_t m = 0; m < mc; ++m) {
      const float* xm = X + (m0 + m) * K;
      float acc = 0.f;
      for (int64_t g = 0; g < G; ++g) {
        float dot = 0.f;
        for (int64_t k = g * GS; k < (g + 1) * GS; ++k) dot += xm[k] * weight_at<NIBBLES>(qn, k);
        acc += sn[g] * dot + (zn ? zn[g] * XS[(m0 + m) * G + g] : 0.f);
      }
      Y[(m0 + m) * N + n] = acc;
    }
#endif
  }
}

template <bool NIBBLES>
static void rows(const float* X, const float* XS, const uint8_t* Q, const float* S, const float* Z, float* Y,
                 int64_t M, int64_t K, int64_t N, int64_t GS, int64_t n0, int64_t n1) {
  if (M == 1) return row_block<NIBBLES, 1>(X, XS, Q, S, Z, Y, K, N, GS, n0, n1, 0, 1);
  for (int64_t m0 = 0; m0 < M; m0 += 8)
    row_block<NIBBLES, 0>(X, XS, Q, S, Z, Y, K, N, GS, n0, n1, m0, std::min<int64_t>(8, M - m0));
}

static void check_weights(const torch::Tensor& q, const torch::Tensor& scale, const torch::Tensor& zero, int64_t K,
                          int64_t group_size, bool nibbles) {
  TORCH_CHECK(q.is_contiguous() && q.scalar_type() == (nibbles ? torch::kByte : torch::kChar),
              "q: contiguous ", nibbles ? "uint8 nibbles" : "int8");
  TORCH_CHECK(group_size > 0 && group_size % 32 == 0 && K % group_size == 0, "group_size must be a multiple of 32 dividing K");
  const int64_t N = q.numel() / (nibbles ? K / 2 : K), groups = N * (K / group_size);
  TORCH_CHECK(q.numel() == N * (nibbles ? K / 2 : K), "q shape");
  TORCH_CHECK(scale.is_contiguous() && scale.scalar_type() == torch::kFloat && scale.numel() == groups, "scale: float32 (N, K/group)");
  TORCH_CHECK(zero.numel() == 0 || (zero.is_contiguous() && zero.scalar_type() == torch::kFloat && zero.numel() == groups),
              "zero: float32 (N, K/group) or empty");
}

// y (M, N) = x (M, K) @ (q * scale + zero)^T with one scale/zero per group of group_size inputs.
torch::Tensor group_mm(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t group_size,
                       bool nibbles) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous(), "x: contiguous float32 (M, K)");
  const int64_t M = x.size(0), K = x.size(1);
  check_weights(q, scale, zero, K, group_size, nibbles);
  const int64_t N = q.numel() / (nibbles ? K / 2 : K), G = K / group_size;
  auto y = torch::empty({M, N}, x.options());
  const bool has_zero = zero.numel() > 0;
  const float* X = x.data_ptr<float>();
  // Per-group sums of x for the zero term, here rather than as a torch op (a decode step makes ~200 such calls).
  std::vector<float> xs(has_zero ? M * G : 0);
  for (int64_t i = 0; has_zero && i < M * G; ++i) {
    float total = 0.f;
    for (int64_t k = 0; k < group_size; ++k) total += X[i * group_size + k];
    xs[i] = total;
  }
  const float* XS = has_zero ? xs.data() : nullptr;
  const uint8_t* Q = (const uint8_t*)q.data_ptr();
  const float* S = scale.data_ptr<float>();
  const float* Z = has_zero ? zero.data_ptr<float>() : nullptr;
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    if (nibbles) rows<true>(X, XS, Q, S, Z, Y, M, K, N, group_size, begin, end);
    else rows<false>(X, XS, Q, S, Z, Y, M, K, N, group_size, begin, end);
  });
  return y;
}

// w (N, K) float = q * scale + zero per group (the prefill path's dequantization, vectorized by the compiler).
torch::Tensor group_dequant(torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t K, int64_t group_size,
                            bool nibbles) {
  check_weights(q, scale, zero, K, group_size, nibbles);
  const int64_t N = q.numel() / (nibbles ? K / 2 : K), runs = N * (K / 32), per_group = group_size / 32;
  auto w = torch::empty({N, K}, scale.options());
  const uint8_t* Q = (const uint8_t*)q.data_ptr();
  const float* S = scale.data_ptr<float>();
  const float* Z = zero.numel() ? zero.data_ptr<float>() : nullptr;
  float* W = w.data_ptr<float>();
  at::parallel_for(0, runs, 1024, [&](int64_t begin, int64_t end) {
    float values[32];
    for (int64_t r = begin; r < end; ++r) {
      if (nibbles) {
        const uint8_t* qb = Q + r * 16;
        for (int k = 0; k < 16; ++k) { values[k] = (float)(qb[k] & 0x0F); values[k + 16] = (float)(qb[k] >> 4); }
      } else {
        const int8_t* qb = (const int8_t*)Q + r * 32;
        for (int k = 0; k < 32; ++k) values[k] = (float)qb[k];
      }
      const int64_t g = r / per_group;
      const float s = S[g], z = Z ? Z[g] : 0.f;
      float* wb = W + r * 32;
      if (Z) for (int k = 0; k < 32; ++k) wb[k] = values[k] * s + z;
      else for (int k = 0; k < 32; ++k) wb[k] = values[k] * s;
    }
  });
  return w;
}

// The group-32 int8 forms GGUFLinear calls (kept for compatibility).
torch::Tensor block_mm(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor zero) {
  return group_mm(x, q, scale, zero, 32, false);
}

torch::Tensor dequant(torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t K) {
  return group_dequant(q, scale, zero, K, 32, false);
}
"""

_lock = threading.Lock()
_module = None
_failed = False


def block_mm_kernel():
    """The compiled module (``group_mm``, ``group_dequant``, ``block_mm``, ``dequant``), or None when unavailable
    (logged once)."""
    global _module, _failed
    if _module is not None or _failed:
        return _module
    with _lock:
        if _module is not None or _failed:
            return _module
        if os.environ.get("HUGKIT_GGUF_KERNEL", "1") == "0":
            _failed = True
            return None
        try:
            from torch.utils.cpp_extension import load_inline

            logger.info("Loading the quantized-matmul kernel (compiled once per machine, ~1 minute the first time).")
            flags = ["-O3", "-ffp-contract=off"]  # dequant: two roundings, exactly as gguf
            if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
                flags += ["-mavx2", "-mfma"]
            _module = load_inline(
                name="hugkit_gguf_kernels_4", cpp_sources=[_SOURCE + "\n"],
                functions=["group_mm", "group_dequant", "block_mm", "dequant"], extra_cflags=flags, verbose=False,
            )
        except Exception as error:  # no compiler, no headers, ...: the torch fallback is correct, only slower
            _failed = True
            logger.info("Quantized-matmul kernel unavailable (%s: %s); using dequantize + fp32 matmul.",
                        type(error).__name__, str(error).splitlines()[0] if str(error) else "")
    return _module
