"""A small C++ kernel for decode-sized GGUF matmuls: ``y = x @ (q * scale + zero)^T`` read straight from int8 blocks.

Why: at batch 1 a matmul is bound by the bytes of weight it reads. torch's CPU int4/int8 kernels have no fast path
on AVX2 (see linear.py) and dequantizing to fp32 first writes and re-reads 4 bytes per weight, so both lose to fp32
weights. This kernel reads 1 byte per weight (+ 8 bytes of scale/zero per 32) and accumulates per block:
``y[n] = sum_g scale[n,g] * (x_g . q[n,g]) + zero[n,g] * sum(x_g)`` -- the same value as the dequantized matmul up
to fp32 rounding order.

It is compiled once per machine with torch's cpp_extension (cached under ~/.cache/torch_extensions, or
TORCH_EXTENSIONS_DIR) the first time a GGUF model runs; without a compiler, or with ``HUGKIT_GGUF_KERNEL=0``,
GGUFLinear falls back to dequantize + fp32 matmul. Used for inputs of at most ``MAX_ROWS`` rows (decode);
longer inputs (prefill) are compute-bound and go to BLAS after ``dequant`` (the same module's vectorized
``q * scale + zero``, compiled with ``-ffp-contract=off`` so it is bit-identical to gguf's dequantization;
~6x faster than the same expression in torch ops here).
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
#include <ATen/Parallel.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

// y (M, N) = x (M, K) @ (q * scale + zero)^T, q int8 (N, K), scale/zero float (N, K/32); M <= 8 per pass.
// (Measured: interleaving two output rows per iteration was slower here than this simple form.)
static void rows(const float* X, const float* XS, const int8_t* Q, const float* S, const float* Z, float* Y,
                 int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  const int64_t G = K / 32;
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* qn = Q + n * K;
    const float* sn = S + n * G;
    const float* zn = Z + n * G;
    for (int64_t m0 = 0; m0 < M; m0 += 8) {
      const int64_t mc = std::min<int64_t>(8, M - m0);
      float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#if defined(__AVX2__) && defined(__FMA__)
      __m256 acc[8];
      for (int64_t m = 0; m < mc; ++m) acc[m] = _mm256_setzero_ps();
      for (int64_t g = 0; g < G; ++g) {
        const int8_t* qg = qn + g * 32;
        __m128i raw0 = _mm_loadu_si128((const __m128i*)qg);
        __m128i raw1 = _mm_loadu_si128((const __m128i*)(qg + 16));
        __m256 q0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw0));
        __m256 q1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw0, 8)));
        __m256 q2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw1));
        __m256 q3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw1, 8)));
        __m256 sg = _mm256_set1_ps(sn[g]);
        for (int64_t m = 0; m < mc; ++m) {
          const float* xg = X + (m0 + m) * K + g * 32;
          __m256 p = _mm256_mul_ps(q0, _mm256_loadu_ps(xg));
          p = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xg + 8), p);
          p = _mm256_fmadd_ps(q2, _mm256_loadu_ps(xg + 16), p);
          p = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xg + 24), p);
          acc[m] = _mm256_fmadd_ps(sg, p, acc[m]);
          tail[m] += zn[g] * XS[(m0 + m) * G + g];
        }
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
          for (int k = 0; k < 32; ++k) dot += xm[g * 32 + k] * (float)qn[g * 32 + k];
          acc += sn[g] * dot + zn[g] * XS[(m0 + m) * G + g];
        }
        Y[(m0 + m) * N + n] = acc;
      }
#endif
    }
  }
}

// w (N, K) float = q * scale + zero, per block of 32 (the prefill path's dequantization, vectorized).
torch::Tensor dequant(torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t K) {
  TORCH_CHECK(q.scalar_type() == torch::kChar && q.is_contiguous() && scale.is_contiguous() && zero.is_contiguous() &&
              scale.scalar_type() == torch::kFloat && zero.scalar_type() == torch::kFloat && K % 32 == 0, "dequant");
  const int64_t N = q.numel() / K, blocks = N * (K / 32);
  TORCH_CHECK(scale.numel() == blocks && zero.numel() == blocks, "dequant shapes");
  auto w = torch::empty({N, K}, scale.options());
  const int8_t* Q = q.data_ptr<int8_t>();
  const float* S = scale.data_ptr<float>();
  const float* Z = zero.data_ptr<float>();
  float* W = w.data_ptr<float>();
  at::parallel_for(0, blocks, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* qb = Q + b * 32;
      float* wb = W + b * 32;
      const float s = S[b], z = Z[b];
      for (int k = 0; k < 32; ++k) wb[k] = (float)qb[k] * s + z;
    }
  });
  return w;
}

torch::Tensor block_mm(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor zero) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous(), "x: contiguous float32 (M, K)");
  TORCH_CHECK(q.scalar_type() == torch::kChar && q.is_contiguous(), "q: contiguous int8");
  TORCH_CHECK(scale.is_contiguous() && zero.is_contiguous() && scale.scalar_type() == torch::kFloat &&
              zero.scalar_type() == torch::kFloat, "scale/zero: contiguous float32");
  const int64_t M = x.size(0), K = x.size(1), N = q.numel() / K, G = K / 32;
  TORCH_CHECK(K % 32 == 0 && q.numel() == N * K && scale.numel() == N * G && zero.numel() == N * G, "shapes");
  auto y = torch::empty({M, N}, x.options());
  auto xs = x.view({M, G, 32}).sum(-1).contiguous();
  const float* X = x.data_ptr<float>();
  const float* XS = xs.data_ptr<float>();
  const int8_t* Q = q.data_ptr<int8_t>();
  const float* S = scale.data_ptr<float>();
  const float* Z = zero.data_ptr<float>();
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) { rows(X, XS, Q, S, Z, Y, M, K, N, begin, end); });
  return y;
}
"""

_lock = threading.Lock()
_module = None
_failed = False


def block_mm_kernel():
    """The compiled ``block_mm(x, q, scale, zero)``, or None when unavailable (logged once)."""
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

            logger.info("Loading the GGUF decode kernel (compiled once per machine, ~1 minute the first time).")
            flags = ["-O3", "-ffp-contract=off"]  # dequant: two roundings, exactly as gguf
            if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
                flags += ["-mavx2", "-mfma"]
            _module = load_inline(
                name="hugkit_gguf_kernels_1", cpp_sources=[_SOURCE + "\n"], functions=["block_mm", "dequant"],
                extra_cflags=flags, verbose=False,
            )
        except Exception as error:  # no compiler, no headers, ...: the torch fallback is correct, only slower
            _failed = True
            logger.info("GGUF decode kernel unavailable (%s: %s); using dequantize + fp32 matmul.", type(error).__name__,
                        str(error).splitlines()[0] if str(error) else "")
    return _module
