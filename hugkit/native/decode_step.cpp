// One decode step of a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3, SmolLM2) in one compiled call per token.
//
// hugkit/native/loader.py builds this file with torch's cpp_extension, after writing hugkit/gguf/kernel.py's C++
// source next to it as "gguf_kernels.h": the quantized matmuls below ARE kernel.py's group_mm / group_mm_q8, called
// with the arguments QuantizedLinear.forward passes them and compiled with kernel.py's flags, so every matmul gives
// the Python modules' bits. Float matmuls call at::linear (what F.linear is).
//
// What the step computes per token, for rows b of a batch decoded together (mirrors hugkit/models/llama.py):
//   h = embed(token)
//   per layer: x = rms(h) * w;  q, k, v = Wq x, Wk x, Wv x  [+ per-head q/k RMSNorm (Qwen3)]
//              q, k rotated (cos/sin rows of the runner's table at each row's position)
//              k, v written into the static cache at `slot`; attention of q over the cache slots the row may see
//              (keep mask, causal, sliding window: kv_cache.causal_mask's rule), grouped kv heads
//              h += Wo ctx;  x = rms(h) * w2;  h += Wdown(silu(Wgate x) * Wup x)
//   logits = Whead (rms(h) * wf)
//
// Two modes (spec "exact"):
// - exact (the default): the few operations whose float32 result depends on an implementation -- the norms' mean,
//   SiLU's exp, attention -- go through the very torch ops the modules call (at::mean, at::silu,
//   at::scaled_dot_product_attention on the same shapes); every other operation is a single IEEE operation done
//   here in the modules' order (no contraction: -ffp-contract=off). Logits are bit-identical to the Python path
//   (tests/native), which matters with int8 activations: a last-bit difference can move an activation across a
//   rounding boundary of its int8 quantization and change a token.
// - fast: norms, SiLU and attention (over the visible slots only) in loops here; last-bit differences (float
//   activations: same greedy tokens in the tests, logits within 1e-4).
//
// Threads (at::get_num_threads(), i.e. torch.set_num_threads): quantized matmuls that read the same input (q/k/v,
// gate/up, o, down, head) are shared out by output rows between the caller and the step's own workers (Pool, below:
// not OpenMP) when they hold at least parallel_weights weights; the fast mode's attention by (row, head) for long
// caches; torch ops (float matmuls, SDPA, means) run on the calling thread. bench/decode_profile.py measures the
// thresholds (1 vs 2 threads per matmul and per step).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "gguf_kernels.h"  // hugkit/gguf/kernel.py's _SOURCE: group_mm, group_mm_q8 (+ AVX2 helpers)

namespace hugkit_native {

using Clock = std::chrono::steady_clock;

// ---- timers (profile=True): where the time of a step goes ---------------------------------------------
enum Part { QUANT_MM = 0, FLOAT_MM = 1, ATTENTION = 2, PARTS = 3 };

struct Profile {
  bool on = false;
  double seconds[PARTS] = {0, 0, 0};
  int64_t regions = 0;  // parallel regions opened (matmuls split over threads + attention)
  int64_t steps = 0;
};

struct Timer {
  Profile& p;
  Part part;
  Clock::time_point start;
  Timer(Profile& profile, Part which) : p(profile), part(which) {
    if (p.on) start = Clock::now();
  }
  ~Timer() {
    if (p.on) p.seconds[part] += std::chrono::duration<double>(Clock::now() - start).count();
  }
};

// ---- the step's own worker threads ----------------------------------------------------------------------------
// Why not at::parallel_for: (1) in an extension it is a header template whose OpenMP body is compiled only with
// -fopenmp (torch's cpp_extension does not add it), so kernel.py's parallel_for runs on one thread -- measured here,
// the SmolLM2 head took the same time at 1 and 2 threads; (2) with -fopenmp, an OpenMP region waits at its end for
// every thread of the team to have run, and on this shared 2-vCPU machine the second thread was often not scheduled
// for a whole time slice: a 43 us matmul took ~8 ms (llama.cpp's thread pool collapses the same way, to under 1
// token/s). Here the calling thread and the workers claim tasks from a shared counter, and the caller waits only
// for tasks a worker has actually started: a worker that is not running leaves its share to the caller, which then
// decodes at one-thread speed instead of stalling. Workers spin ~200 us for the next job (consecutive matmuls of a
// step are microseconds apart), then sleep on a condition variable. Tasks write disjoint outputs, and every
// kernel computes each output row on its own, so who runs which task never changes a bit.
class Pool {
 public:
  static Pool& get() {
    // Never destroyed: workers are detached and end with the process. A forked child (DataLoader workers, ...)
    // gets a fresh pool: the parent's workers do not exist there, and a mutex might have been held at the fork.
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { instance() = new Pool(); }); });
    return *instance();
  }

  // fn(t) for t in [0, tasks), on the calling thread and up to threads - 1 workers.
  void run(int64_t tasks, int64_t threads, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> mine(run_mutex_, std::try_to_lock);  // one job at a time: another caller's
    if (tasks <= 1 || threads <= 1 || inside_ || !mine.owns_lock()) {  // thread (or a nested call) runs inline
      for (int64_t t = 0; t < tasks; ++t) fn(t);
      return;
    }
    start_workers(threads - 1);
    Job job{&fn, tasks};
    while (active_.load() != 0) pause();  // a late worker still looking at the previous job
    current_.store(&job);
    generation_.fetch_add(1);
    if (sleeping_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    inside_ = true;
    work(job);
    inside_ = false;
    while (job.done.load() != tasks) pause();  // tasks a worker started: finished when it finishes them
    current_.store(nullptr);
    while (active_.load() != 0) pause();  // no worker may still hold &job
  }

 private:
  struct Job {
    const std::function<void(int64_t)>* fn;
    int64_t tasks;
    std::atomic<int64_t> next{0}, done{0};
    Job(const std::function<void(int64_t)>* f, int64_t n) : fn(f), tasks(n) {}
  };

  static Pool*& instance() {
    static Pool* pool = new Pool();
    return pool;
  }

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
  }

  static void work(Job& job) {
    for (int64_t t = job.next.fetch_add(1); t < job.tasks; t = job.next.fetch_add(1)) {
      (*job.fn)(t);
      job.done.fetch_add(1);
    }
  }

  void start_workers(int64_t count) {
    std::lock_guard<std::mutex> lock(start_mutex_);
    while (started_ < count) {
      std::thread(&Pool::loop, this).detach();
      ++started_;
    }
  }

  void loop() {
    inside_ = true;
    uint64_t seen = generation_.load();
    for (;;) {
      const auto deadline = Clock::now() + std::chrono::microseconds(200);
      int64_t spins = 0;
      while (generation_.load() == seen) {
        pause();
        if (++spins % 256 == 0 && Clock::now() > deadline) {
          std::unique_lock<std::mutex> lock(mutex_);
          sleeping_.fetch_add(1);
          wake_.wait(lock, [&] { return generation_.load() != seen; });
          sleeping_.fetch_sub(1);
          break;
        }
      }
      active_.fetch_add(1);
      seen = generation_.load();
      Job* job = current_.load();
      if (job != nullptr) work(*job);
      active_.fetch_sub(1);
    }
  }

  std::atomic<uint64_t> generation_{0};
  std::atomic<Job*> current_{nullptr};
  std::atomic<int64_t> active_{0}, sleeping_{0};
  std::mutex mutex_, start_mutex_, run_mutex_;
  std::condition_variable wake_;
  int64_t started_ = 0;
  static thread_local bool inside_;
};
thread_local bool Pool::inside_ = false;

// ---- linear layers -------------------------------------------------------------------------------------------
// kind 0: float weight (N, K) + optional bias: at::linear, as nn.Linear.
// kind 1: kernel.py group blocks (q, scales, zeros, group_size, nibbles) + bias as QuantizedLinear passes it
//         (a float32 bias or an empty tensor); int8 = the layer's activations are "int8" (group_mm_q8).
struct Linear {
  int64_t kind = 0, in = 0, out = 0, group_size = 0;
  bool nibbles = false, int8 = false;
  torch::Tensor weight, bias, q, scales, zeros;
};

static Linear make_linear(const py::dict& d) {
  Linear l;
  l.kind = d["kind"].cast<int64_t>();
  l.in = d["in_features"].cast<int64_t>();
  l.out = d["out_features"].cast<int64_t>();
  l.bias = d["bias"].cast<torch::Tensor>();
  if (l.kind == 0) {
    l.weight = d["weight"].cast<torch::Tensor>();
    TORCH_CHECK(l.weight.scalar_type() == torch::kFloat && l.weight.dim() == 2,
                "float linear: float32 (out, in) weight");
  } else {
    l.q = d["q"].cast<torch::Tensor>();
    l.scales = d["scales"].cast<torch::Tensor>();
    l.zeros = d["zeros"].cast<torch::Tensor>();
    l.group_size = d["group_size"].cast<int64_t>();
    l.nibbles = d["nibbles"].cast<bool>();
    l.int8 = d["int8"].cast<bool>();
  }
  return l;
}

// Rows [n0, n1) of a quantized matmul: kernel.py's function on those rows of the weights (row slices of the
// weight, scale, zero and bias tensors are contiguous). The kernels compute every output row on its own, so a
// slice gives the very same bits as the whole matmul.
static torch::Tensor group_rows(const Linear& l, const torch::Tensor& x, int64_t n0, int64_t n1) {
  const int64_t n = n1 - n0;
  auto q = l.q.narrow(0, n0, n), scales = l.scales.narrow(0, n0, n);
  auto zeros = l.zeros.numel() ? l.zeros.narrow(0, n0, n) : l.zeros;
  auto bias = l.bias.numel() ? l.bias.narrow(0, n0, n) : l.bias;
  return l.int8 ? group_mm_q8(x, q, scales, zeros, l.group_size, l.nibbles, bias)
                : group_mm(x, q, scales, zeros, l.group_size, l.nibbles, bias);
}

// y (B, N) = x (B, K) W^T + b, in the calling thread (or, for a float weight, as at::linear threads it).
static torch::Tensor linear(const Linear& l, const torch::Tensor& x, Profile& prof) {
  if (l.kind == 0) {
    Timer t(prof, FLOAT_MM);
    // nn.Linear in the decode step sees (B, 1, K): keep that shape so at::linear takes the same path.
    auto y = at::linear(x.view({x.size(0), 1, x.size(1)}), l.weight,
                        l.bias.numel() ? c10::optional<at::Tensor>(l.bias) : c10::nullopt);
    return y.view({x.size(0), l.out});
  }
  Timer t(prof, QUANT_MM);
  return group_rows(l, x, 0, l.out);
}

// Quantized matmuls reading the same x, shared out between `threads` threads (the Pool): each matmul's output rows
// in chunks of about a 4 * threads-th of the group's weights, each chunk kernel.py's function on its rows
// (group_rows). Bit-identical to whole calls.
static std::vector<torch::Tensor> split_rows(const std::vector<const Linear*>& ls, const torch::Tensor& x,
                                             int64_t threads) {
  const int64_t B = x.size(0);
  std::vector<torch::Tensor> out(ls.size());
  int64_t weights = 0;
  for (size_t i = 0; i < ls.size(); ++i) {
    out[i] = torch::empty({B, ls[i]->out}, x.options());
    weights += ls[i]->out * ls[i]->in;
  }
  const int64_t chunk_weights = std::max<int64_t>(1, weights / (4 * threads));
  struct Chunk {
    size_t layer;
    int64_t n0, n1;
  };
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < ls.size(); ++i) {
    const int64_t rows = std::max<int64_t>(8, chunk_weights / ls[i]->in);
    for (int64_t n0 = 0; n0 < ls[i]->out; n0 += rows) chunks.push_back({i, n0, std::min(ls[i]->out, n0 + rows)});
  }
  const std::function<void(int64_t)> task = [&](int64_t t) {
    const Chunk& c = chunks[t];
    const Linear& l = *ls[c.layer];
    auto part = group_rows(l, x, c.n0, c.n1);
    const int64_t n = c.n1 - c.n0;
    const float* src = part.data_ptr<float>();
    float* dst = out[c.layer].data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) std::copy(src + b * n, src + (b + 1) * n, dst + b * l.out + c.n0);
  };
  Pool::get().run((int64_t)chunks.size(), threads, task);
  return out;
}

// One linear layer as the step runs it, for bench/decode_profile.py's per-matmul timings: tasks 1 = in the calling
// thread (a float weight: at::linear), more = split_rows over that many tasks.
class Matmul {
 public:
  explicit Matmul(const py::dict& spec) : l_(make_linear(spec)) {}
  torch::Tensor run(const torch::Tensor& x, int64_t tasks) const {
    at::NoGradGuard no_grad;
    if (tasks <= 1 || l_.kind == 0) {
      Profile off;
      return linear(l_, x, off);
    }
    return split_rows({&l_}, x, tasks)[0];
  }

 private:
  Linear l_;
};

// ---- small vector helpers ------------------------------------------------------------------------------------
static inline float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  float total = 0.f;
#if defined(__AVX2__) && defined(__FMA__)
  if (n >= 16) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    total = hsum(_mm256_add_ps(acc0, acc1));
  }
#endif
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// y += a * x over n floats
static inline void axpy(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 va = _mm256_set1_ps(a);
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
  for (; i < n; ++i) y[i] += a * x[i];
}

// LlamaRMSNorm in float32: y = w * (x * rsqrt(mean(x^2) + eps)), rounding after each operation as torch does.
// The mean is accumulated in double (torch's own float reduction is pairwise: both are within an ulp of exact).
static inline void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double squares = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float s = x[i] * x[i];
    squares += s;
  }
  const float mean = (float)(squares / (double)n);
  const float r = 1.f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * r;
    y[i] = w[i] * v;
  }
}

// apply_rotary on one head: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[half:], x[:half]).
static inline void rotate(float* x, const float* cos, const float* sin, int64_t d, float* tmp) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < d; ++i) {
    const float rotated = i < half ? -x[i + half] : x[i - half];
    const float a = x[i] * cos[i];
    const float b = rotated * sin[i];
    tmp[i] = a + b;
  }
  std::copy(tmp, tmp + d, x);
}

// F.silu: x / (1 + exp(-x)), then * up (LlamaMLP: act(gate) * up)
static inline void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float s = g / (1.f + std::exp(-g));
    out[i] = s * up[i];
  }
}

// torch's CPU SDPA with a one-token query, at two threads, took 9-16 ms per call instead of ~12 us whenever another
// process held the second core (measured here, interleaved: bench/decode_profile.py; the Python path suffers the
// same), while a parallel region of our own matmuls cost microseconds. So the exact path runs SDPA on one thread:
// switching costs ~0.2 us, and every (row, head) of SDPA is computed by one thread either way, so the bits do not
// change (tests/native check logits bit-identical at two threads).
struct SerialThreads {
  int threads;
  SerialThreads() : threads(at::get_num_threads()) {
    if (threads > 1) at::set_num_threads(1);
  }
  ~SerialThreads() {
    if (threads > 1) at::set_num_threads(threads);
  }
};

// ---- the model -------------------------------------------------------------------------------------------------
struct Layer {
  torch::Tensor in_norm, post_norm, q_norm, k_norm;  // q_norm/k_norm: empty unless per-head q/k norms
  double eps_in = 1e-6, eps_post = 1e-6, eps_q = 1e-6, eps_k = 1e-6;
  Linear q, k, v, o, gate, up, down;
  int64_t heads = 0, kv_heads = 0, window = 0;  // window 0: full attention
  torch::Tensor keys, values;                     // the runner's StaticCache buffers (B, kv_heads, T, head_dim)
};

class DecodeStep {
 public:
  // spec (built by hugkit/generation/native_runner.py):
  //   embed: {"kind": 0, "weight"} (float table) or {"kind": 1, "q", "scales", "zeros", "nibbles"} (GGUF blocks)
  //   layers: [{"in_norm", "post_norm", "eps_in", "eps_post", "q_norm"?, "k_norm"?, "eps_q"?, "eps_k"?,
  //             "q", "k", "v", "o", "gate", "up", "down" (linear dicts), "heads", "kv_heads", "window",
  //             "keys", "values"}]
  //   norm, eps (final norm), head (linear dict), head_dim, cos, sin (T, head_dim): the rotary table by position
  explicit DecodeStep(const py::dict& spec) {
    const py::dict embed = spec["embed"].cast<py::dict>();
    embed_kind_ = embed["kind"].cast<int64_t>();
    if (embed_kind_ == 0) {
      embed_weight_ = embed["weight"].cast<torch::Tensor>();
    } else {
      embed_q_ = embed["q"].cast<torch::Tensor>();
      embed_scales_ = embed["scales"].cast<torch::Tensor>();
      embed_zeros_ = embed["zeros"].cast<torch::Tensor>();
      embed_nibbles_ = embed["nibbles"].cast<bool>();
    }
    hidden_ = spec["hidden"].cast<int64_t>();
    exact_ = spec["exact"].cast<bool>();
    head_dim_ = spec["head_dim"].cast<int64_t>();
    vocab_ = spec["vocab"].cast<int64_t>();
    norm_ = spec["norm"].cast<torch::Tensor>();
    eps_ = spec["eps"].cast<double>();
    head_ = make_linear(spec["head"].cast<py::dict>());
    cos_ = spec["cos"].cast<torch::Tensor>();
    sin_ = spec["sin"].cast<torch::Tensor>();
    for (const auto& item : spec["layers"].cast<py::list>()) {
      const py::dict d = item.cast<py::dict>();
      Layer l;
      l.in_norm = d["in_norm"].cast<torch::Tensor>();
      l.post_norm = d["post_norm"].cast<torch::Tensor>();
      l.eps_in = d["eps_in"].cast<double>();
      l.eps_post = d["eps_post"].cast<double>();
      if (d.contains("q_norm")) {
        l.q_norm = d["q_norm"].cast<torch::Tensor>();
        l.k_norm = d["k_norm"].cast<torch::Tensor>();
        l.eps_q = d["eps_q"].cast<double>();
        l.eps_k = d["eps_k"].cast<double>();
      }
      l.q = make_linear(d["q"].cast<py::dict>());
      l.k = make_linear(d["k"].cast<py::dict>());
      l.v = make_linear(d["v"].cast<py::dict>());
      l.o = make_linear(d["o"].cast<py::dict>());
      l.gate = make_linear(d["gate"].cast<py::dict>());
      l.up = make_linear(d["up"].cast<py::dict>());
      l.down = make_linear(d["down"].cast<py::dict>());
      l.heads = d["heads"].cast<int64_t>();
      l.kv_heads = d["kv_heads"].cast<int64_t>();
      l.window = d["window"].cast<int64_t>();
      l.keys = d["keys"].cast<torch::Tensor>();
      l.values = d["values"].cast<torch::Tensor>();
      TORCH_CHECK(l.keys.is_contiguous() && l.values.is_contiguous() && l.keys.scalar_type() == torch::kFloat,
                  "the static cache must hold contiguous float32 buffers");
      layers_.push_back(std::move(l));
    }
  }

  // One token per row: tokens (B,) int64; positions (B, 1) int64, advanced by one in place after the step;
  // keep (B, T) int64 padding mask over cache slots, keep[:, slot] set to 1 here; slot: the cache index written.
  // Returns float32 logits (B, vocab).
  torch::Tensor step(const torch::Tensor& tokens, torch::Tensor positions, torch::Tensor keep, int64_t slot) {
    TORCH_CHECK(tokens.dim() == 1 && tokens.scalar_type() == torch::kLong && tokens.is_contiguous(),
                "tokens: contiguous int64 (rows,)");
    const int64_t B = tokens.size(0), T = keep.size(1);
    TORCH_CHECK(positions.scalar_type() == torch::kLong && positions.numel() == B && positions.is_contiguous(),
                "positions: contiguous int64 (rows, 1)");
    TORCH_CHECK(keep.scalar_type() == torch::kLong && keep.dim() == 2 && keep.size(0) == B && keep.is_contiguous(),
                "keep: contiguous int64 (rows, cache slots)");
    TORCH_CHECK(slot >= 0 && slot < T, "slot ", slot, " outside the cache of ", T, " slots");
    at::NoGradGuard no_grad;  // float weights may require grad: at::linear must not record a graph
    const int64_t* ids = tokens.data_ptr<int64_t>();
    int64_t* pos = positions.data_ptr<int64_t>();
    int64_t* kp = keep.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      TORCH_CHECK(ids[b] >= 0 && ids[b] < vocab_, "token id ", ids[b], " outside the vocabulary of ", vocab_);
      TORCH_CHECK(pos[b] >= 0 && pos[b] < cos_.size(0), "position ", pos[b], " outside the rotary table of ",
                  cos_.size(0), " positions");
      kp[b * T + slot] = 1;
    }
    const int64_t H = hidden_, D = head_dim_;
    auto h = torch::empty({B, H}, torch::TensorOptions().dtype(torch::kFloat));
    float* hp = h.data_ptr<float>();
    embed(ids, B, hp);
    const float* cos = cos_.data_ptr<float>();
    const float* sin = sin_.data_ptr<float>();
    std::vector<float> tmp(D);
    masks_.clear();
    for (auto& l : layers_) {
      const int64_t NH = l.heads, NKV = l.kv_heads;
      auto x = norm(h, l.in_norm, l.eps_in);
      auto qkv = linears({&l.q, &l.k, &l.v}, x);
      auto q = qkv[0], k = qkv[1], v = qkv[2];
      if (l.q_norm.defined()) {  // Qwen3: per head, before the rotation
        q = norm(q.view({B * NH, D}), l.q_norm, l.eps_q).view({B, NH * D});
        k = norm(k.view({B * NKV, D}), l.k_norm, l.eps_k).view({B, NKV * D});
      }
      float* qp = q.data_ptr<float>();
      float* kq = k.data_ptr<float>();
      const float* vp = v.data_ptr<float>();
      float* kc = l.keys.data_ptr<float>();
      float* vc = l.values.data_ptr<float>();
      const int64_t TS = l.keys.size(2);
      for (int64_t b = 0; b < B; ++b) {
        const float* cb = cos + pos[b] * D;
        const float* sb = sin + pos[b] * D;
        for (int64_t hh = 0; hh < NH; ++hh) rotate(qp + (b * NH + hh) * D, cb, sb, D, tmp.data());
        for (int64_t hh = 0; hh < NKV; ++hh) {
          float* head = kq + (b * NKV + hh) * D;
          rotate(head, cb, sb, D, tmp.data());
          std::copy(head, head + D, kc + ((b * NKV + hh) * TS + slot) * D);
          const float* vh = vp + (b * NKV + hh) * D;
          std::copy(vh, vh + D, vc + ((b * NKV + hh) * TS + slot) * D);
        }
      }
      auto ctx = attention(l, q, kp, T, slot, B);
      auto o = linears({&l.o}, ctx)[0];
      const float* op = o.data_ptr<float>();
      for (int64_t i = 0; i < B * H; ++i) hp[i] = hp[i] + op[i];
      x = norm(h, l.post_norm, l.eps_post);
      auto gu = linears({&l.gate, &l.up}, x);
      auto d = linears({&l.down}, silu_mul(gu[0], gu[1]))[0];
      const float* dp = d.data_ptr<float>();
      for (int64_t i = 0; i < B * H; ++i) hp[i] = hp[i] + dp[i];
    }
    auto logits = linears({&head_}, norm(h, norm_, eps_))[0];
    for (int64_t b = 0; b < B; ++b) pos[b] += 1;
    if (prof_.on) prof_.steps += 1;
    return logits;
  }

  // Matmuls reading the same input (q/k/v; gate/up; or one alone), with the threads they are worth: when they are
  // all quantized and hold at least parallel_weights_ weights, split_rows over at::get_num_threads() tasks, so two
  // threads cost one fork/join per group instead of one per matmul, and kernel.py's own per-call split (1M weights
  // per task, tuned for calls from Python) does not leave the small matmuls of a small model on one core.
  // Otherwise one matmul at a time, each as kernel.py / at::linear thread it.
  std::vector<torch::Tensor> linears(std::initializer_list<const Linear*> group, const torch::Tensor& x) {
    const std::vector<const Linear*> ls(group);
    int64_t weights = 0;
    bool quantized = true;
    for (const Linear* l : ls) {
      weights += l->in * l->out;
      quantized = quantized && l->kind == 1;
    }
    const int64_t threads = at::get_num_threads();
    if (!quantized || threads < 2 || weights < parallel_weights_) {
      std::vector<torch::Tensor> out(ls.size());
      for (size_t i = 0; i < ls.size(); ++i) out[i] = linear(*ls[i], x, prof_);
      return out;
    }
    Timer t(prof_, QUANT_MM);
    if (prof_.on) prof_.regions += 1;
    return split_rows(ls, x, threads);
  }

  void set_parallel_weights(int64_t weights) { parallel_weights_ = std::max<int64_t>(0, weights); }
  int64_t parallel_weights() const { return parallel_weights_; }
  void set_attention_split_work(int64_t work) { attention_split_work_ = std::max<int64_t>(0, work); }
  int64_t attention_split_work() const { return attention_split_work_; }

  void set_profile(bool on) { prof_.on = on; }
  py::dict profile() const {
    py::dict out;
    out["quantized matmul"] = prof_.seconds[QUANT_MM];
    out["float matmul"] = prof_.seconds[FLOAT_MM];
    out["attention"] = prof_.seconds[ATTENTION];
    out["parallel regions"] = prof_.regions;
    out["steps"] = prof_.steps;
    return out;
  }
  void reset_profile() {
    const bool on = prof_.on;
    prof_ = Profile{};
    prof_.on = on;
  }

 private:
  // LlamaRMSNorm over the last dimension of x (rows, n). exact: the torch ops the module runs, so the very same
  // kernels give the very same bits; fast: one pass in C++ (mean accumulated in double: within an ulp).
  // In exact mode only the mean goes through torch (its reduction order is its own); x^2, + eps, rsqrt and the two
  // products are single IEEE operations, computed here exactly as torch's kernels compute them (rsqrt: 1 / sqrt).
  torch::Tensor norm(const torch::Tensor& x, const torch::Tensor& w, double eps) const {
    auto y = torch::empty_like(x);
    const int64_t n = x.size(-1), rows = x.numel() / n;
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    if (!exact_) {
      for (int64_t r = 0; r < rows; ++r) rms_norm(xp + r * n, wp, yp + r * n, n, (float)eps);
      return y;
    }
    for (int64_t i = 0; i < rows * n; ++i) yp[i] = xp[i] * xp[i];  // x.pow(2)
    auto mean = at::mean(y, -1, true);                                // .mean(-1, keepdim=True)
    const float* mp = mean.data_ptr<float>();
    const float e = (float)eps;
    for (int64_t r = 0; r < rows; ++r) {
      const float shifted = mp[r] + e;
      const float inv = 1.f / std::sqrt(shifted);  // torch.rsqrt
      for (int64_t i = 0; i < n; ++i) {
        const float v = xp[r * n + i] * inv;
        yp[r * n + i] = wp[i] * v;
      }
    }
    return y;
  }

  // LlamaMLP's act_fn(gate) * up with SiLU.
  torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) const {
    if (exact_) {  // F.silu itself (its exp is torch's), then the product here (one IEEE multiply)
      auto out = at::silu(gate);
      float* op = out.data_ptr<float>();
      const float* up_p = up.data_ptr<float>();
      for (int64_t i = 0; i < out.numel(); ++i) op[i] = op[i] * up_p[i];
      return out;
    }
    auto out = torch::empty_like(gate);
    hugkit_native::silu_mul(gate.data_ptr<float>(), up.data_ptr<float>(), out.data_ptr<float>(), gate.numel());
    return out;
  }

  // Attention of the rotated q (B, NH * D) over the layer's cache: (B, NH * D).
  // exact: F.scaled_dot_product_attention over every cache slot with kv_cache.causal_mask's additive mask
  // (0 where a row may look, float32's lowest value elsewhere), built here for each distinct window once per step;
  // fast: attend() below, over the visible slots only.
  torch::Tensor attention(const Layer& l, const torch::Tensor& q, const int64_t* keep, int64_t T, int64_t slot,
                          int64_t B) {
    const int64_t NH = l.heads, NKV = l.kv_heads, D = head_dim_;
    if (!exact_) {
      auto ctx = torch::empty({B, NH * D}, q.options());
      attend(l, q.data_ptr<float>(), keep, T, slot, B, ctx.data_ptr<float>());
      return ctx;
    }
    Timer t(prof_, ATTENTION);
    auto found = masks_.find(l.window);
    if (found == masks_.end()) {
      auto mask = torch::empty({B, 1, 1, T}, q.options());
      float* m = mask.data_ptr<float>();
      const float lowest = std::numeric_limits<float>::lowest();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < T; ++s) {
          const bool allowed = s <= slot && keep[b * T + s] != 0 && (l.window <= 0 || s > slot - l.window);
          m[b * T + s] = allowed ? 0.f : lowest;
        }
      found = masks_.emplace(l.window, mask).first;
    }
    auto query = q.view({B, 1, NH, D}).transpose(1, 2);  // the layout LlamaAttention hands SDPA
    const auto& mask = found->second;
    // torch ops run on the calling thread only (a worker of ours calling SDPA would have OpenMP start a second
    // team from it), and on one thread (SerialThreads).
    SerialThreads serial;
    auto context = at::scaled_dot_product_attention(query, l.keys, l.values, mask, 0.0, false, c10::nullopt,
                                                    NKV != NH);
    return context.transpose(1, 2).reshape({B, NH * D});
  }

  void embed(const int64_t* ids, int64_t B, float* out) const {
    const int64_t H = hidden_;
    for (int64_t b = 0; b < B; ++b) {
      float* row = out + b * H;
      if (embed_kind_ == 0) {
        const float* w = embed_weight_.data_ptr<float>() + ids[b] * H;
        std::copy(w, w + H, row);
        continue;
      }
      // GGUFEmbedding.forward: block values * scale + zero, per block of 32 (two roundings, as torch).
      const float* s = embed_scales_.data_ptr<float>() + ids[b] * (H / 32);
      const float* z = embed_zeros_.data_ptr<float>() + ids[b] * (H / 32);
      if (embed_nibbles_) {
        const uint8_t* q = embed_q_.data_ptr<uint8_t>() + ids[b] * (H / 2);
        for (int64_t r = 0; r < H / 32; ++r)
          for (int64_t j = 0; j < 32; ++j) {
            const uint8_t byte = q[r * 16 + (j % 16)];
            const float value = (float)(j < 16 ? (byte & 0x0F) : (byte >> 4));
            const float scaled = value * s[r];
            row[r * 32 + j] = scaled + z[r];
          }
      } else {
        const int8_t* q = embed_q_.data_ptr<int8_t>() + ids[b] * H;
        for (int64_t i = 0; i < H; ++i) {
          const float scaled = (float)q[i] * s[i / 32];
          row[i] = scaled + z[i / 32];
        }
      }
    }
  }

  // ctx (B, NH * D): softmax(q k^T / sqrt(D)) v over the slots each row may see (kv_cache.causal_mask's rule:
  // slot s <= current, keep[b, s] != 0, and s > current - window with a sliding window). Query head h reads kv
  // head h / (NH / NKV) (SDPA's enable_gqa).
  void attend(const Layer& l, const float* q, const int64_t* keep, int64_t T, int64_t slot, int64_t B,
              float* ctx) {
    Timer t(prof_, ATTENTION);
    const int64_t NH = l.heads, NKV = l.kv_heads, D = head_dim_, TS = l.keys.size(2), groups = NH / NKV;
    const int64_t first = l.window > 0 ? std::max<int64_t>(0, slot - l.window + 1) : 0;
    const float* kc = l.keys.data_ptr<float>();
    const float* vc = l.values.data_ptr<float>();
    const float scale = 1.f / std::sqrt((float)D);
    const int64_t span = slot - first + 1;
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<float> scores(span);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / NH, hh = task % NH, kvh = hh / groups;
        const float* qh = q + (b * NH + hh) * D;
        const float* kb = kc + (b * NKV + kvh) * TS * D;
        const float* vb = vc + (b * NKV + kvh) * TS * D;
        const int64_t* kr = keep + b * T;
        float top = -INFINITY;
        for (int64_t s = first; s <= slot; ++s) {
          float score = -INFINITY;
          if (kr[s]) score = dot(qh, kb + s * D, D) * scale;
          scores[s - first] = score;
          top = std::max(top, score);
        }
        float* out = ctx + (b * NH + hh) * D;
        std::fill(out, out + D, 0.f);
        float total = 0.f;
        for (int64_t s = first; s <= slot; ++s) {
          const float score = scores[s - first];
          if (score == -INFINITY) continue;
          const float p = std::exp(score - top);
          total += p;
          axpy(p, vb + s * D, out, D);
        }
        const float inv = 1.f / total;
        for (int64_t i = 0; i < D; ++i) out[i] *= inv;
      }
    };
    // Split over threads (one region, the (row, head) pairs shared out) only from attention_split_work_
    // multiply-adds: below that, waking a thread costs more than it saves.
    const int64_t tasks = B * NH, threads = at::get_num_threads();
    if (threads > 1 && tasks > 1 && tasks * span * D >= attention_split_work_) {
      if (prof_.on) prof_.regions += 1;
      const std::function<void(int64_t)> one = [&](int64_t t) { work(t, t + 1); };
      Pool::get().run(tasks, threads, one);
    } else {
      work(0, tasks);
    }
  }

  // Attention is split over the threads from this many query-key multiply-adds per layer (exact: per kv head).
  static constexpr int64_t kAttentionSplitWork = int64_t(1) << 17;
  // A group of matmuls is split over threads from this many weights (bench/decode_profile.py sweeps it).
  static constexpr int64_t kParallelWeights = int64_t(1) << 17;

  bool exact_ = true;
  int64_t parallel_weights_ = kParallelWeights;
  int64_t attention_split_work_ = kAttentionSplitWork;
  std::map<int64_t, torch::Tensor> masks_;  // this step's attention masks by window (exact mode)

  int64_t embed_kind_ = 0, hidden_ = 0, head_dim_ = 0, vocab_ = 0;
  bool embed_nibbles_ = false;
  torch::Tensor embed_weight_, embed_q_, embed_scales_, embed_zeros_, norm_, cos_, sin_;
  double eps_ = 1e-6;
  Linear head_;
  std::vector<Layer> layers_;
  Profile prof_;
};

}  // namespace hugkit_native

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "hugkit's native decode step (hugkit/native/decode_step.cpp) and kernel.py's matmuls";
  // module_local: the AVX2 and the portable builds may both be loaded, each with its own DecodeStep type.
  py::class_<hugkit_native::DecodeStep>(m, "DecodeStep", py::module_local())
      .def(py::init<const py::dict&>())
      .def("step", &hugkit_native::DecodeStep::step, py::call_guard<py::gil_scoped_release>())
      .def("set_profile", &hugkit_native::DecodeStep::set_profile)
      .def("profile", &hugkit_native::DecodeStep::profile)
      .def("reset_profile", &hugkit_native::DecodeStep::reset_profile)
      .def_property("parallel_weights", &hugkit_native::DecodeStep::parallel_weights,
                    &hugkit_native::DecodeStep::set_parallel_weights)
      .def_property("attention_split_work", &hugkit_native::DecodeStep::attention_split_work,
                    &hugkit_native::DecodeStep::set_attention_split_work);
  py::class_<hugkit_native::Matmul>(m, "Matmul", py::module_local())
      .def(py::init<const py::dict&>())
      .def("run", &hugkit_native::Matmul::run, py::call_guard<py::gil_scoped_release>());
  m.def("group_mm", &group_mm);
  m.def("group_mm_q8", &group_mm_q8);
  m.def("group_dequant", &group_dequant);
}
