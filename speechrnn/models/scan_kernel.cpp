// The linear recurrence h_t = keep_t * h_{t-1} + write_t on a CPU, one pass over the frames each
// way, with the gates computed inside the pass (see speechrnn/models/scan_kernel.py).
//
// Tensors are (B, T, H) row-major; the two gate inputs a and b may be the halves of one (B, T, 2H)
// tensor, so their rows are `stride` apart. Each step updates a whole row of H channels, which the
// compiler vectorises; batch rows are split over `threads` threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// linear_scan: the inputs are the decay and the drive themselves.
struct Given {
  template <typename T> static void forward(T a, T b, T& keep, T& write) {
    keep = a;
    write = b;
  }
  template <typename T>
  static void backward(T a, T b, T grad, T previous, T& keep, T& grad_a, T& grad_b) {
    keep = a;
    grad_a = grad * previous;
    grad_b = grad;
  }
};

// exp(x) for x <= 0, written out so the loops that call it vectorise without a library call:
// exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln 2 / 2, exp(r) by a degree-5 polynomial
// (within 2 ulp). Below -86 it returns exp(-86) ~ 4.5e-38, where p 2^n is still a normal float.
// float64 keeps the library's exp: its gradients are checked by finite differences.
inline float exp_nonpositive(float x) {
  x = std::max(x, -86.0f);
  float shifted = std::fma(x, 1.44269504f, 12582912.0f);  // 1.5 * 2^23 + n: n in the low mantissa bits
  float n = shifted - 12582912.0f;
  float r = std::fma(n, 2.12194440e-4f, std::fma(n, -0.693359375f, x));  // x - n ln 2 in two parts
  float p = 8.2976548001e-3f;  // minimax on |r| <= ln 2 / 2: relative error 7.5e-8, 2e-7 in float
  p = std::fma(p, r, 4.1915383190e-2f);
  p = std::fma(p, r, 1.6667574644e-1f);
  p = std::fma(p, r, 4.9998894334e-1f);
  p = std::fma(p, r, 9.9999970198e-1f);
  p = std::fma(p, r, 1.0000001192e+0f);
  int32_t bits, exponent;
  std::memcpy(&bits, &p, sizeof bits);
  std::memcpy(&exponent, &shifted, sizeof exponent);
  bits += exponent << 23;  // times 2^n: n added to p's exponent field
  std::memcpy(&p, &bits, sizeof p);
  return p;
}
inline double exp_nonpositive(double x) { return std::exp(x); }

// minGRU: a = W_z x (update), b = W_h x (candidate); keep = 1 - z = sigmoid(-a), write = z g(b).
struct MinGRU {
  // z = sigmoid(a) and keep = sigmoid(-a) from e = exp(-|a|) <= 1, so no a overflows; the
  // paper's g(b) = b + 1/2 at and above 0, sigmoid(b) = f / (1 + f) below (f = exp(b)), and its
  // slope; both sigmoids share one division, r = 1 / ((1 + e)(1 + f)).
  template <typename T> static void gates(T a, T b, T& z, T& keep, T& value, T& slope) {
    T e = exp_nonpositive(-std::fabs(a)), f = exp_nonpositive(std::min(b, T(0)));
    T r = T(1) / ((T(1) + e) * (T(1) + f));
    T p = (T(1) + f) * r, s = f * (T(1) + e) * r;  // 1 / (1 + e), and sigmoid(b) below 0
    z = a >= 0 ? p : e * p;
    keep = a >= 0 ? e * p : p;
    value = b >= 0 ? b + T(0.5) : s;
    slope = b >= 0 ? T(1) : s * (T(1) - s);
  }
  template <typename T> static void forward(T a, T b, T& keep, T& write) {
    T z, value, slope;
    gates(a, b, z, keep, value, slope);
    write = z * value;
  }
  template <typename T>
  static void backward(T a, T b, T grad, T previous, T& keep, T& grad_a, T& grad_b) {
    T z, value, slope;
    gates(a, b, z, keep, value, slope);
    grad_a = z * keep * grad * (value - previous);  // dz/da = z (1 - z); d keep/da = -z (1 - z)
    grad_b = grad * z * slope;
  }
};

// sum[j] += scale * row[j]
template <typename T>
[[gnu::always_inline]] inline void add_scaled(T scale, const T* __restrict row, T* __restrict sum, int64_t hidden) {
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) sum[j] += scale * row[j];
}

template <typename Body> void over_batch(int64_t batch, int64_t threads, Body body) {
  threads = std::max<int64_t>(1, std::min(threads, batch));
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < threads; ++i) pool.emplace_back(body, batch * i / threads, batch * (i + 1) / threads);
  body(0, batch / threads);
  for (auto& thread : pool) thread.join();
}

// One frame of every channel, bias added to both gate inputs; the arrays never overlap, which
// lets the loop be vectorised. Inlined, so the gates' constants stay in registers across frames.
template <typename Gates, typename T>
[[gnu::always_inline]] inline void forward_frame(const T* __restrict a, const T* __restrict b,
                                                 const T* __restrict bias_a, const T* __restrict bias_b,
                                                 const T* __restrict previous, T* __restrict out,
                                                 int64_t hidden) {
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    T keep, write;
    Gates::forward(a[j] + bias_a[j], b[j] + bias_b[j], keep, write);
    out[j] = keep * previous[j] + write;
  }
}

// The adjoint runs backwards: g_t = dL/dh_t + keep_{t+1} g_{t+1}; `grad` and `keep_next` carry
// g_{t+1} and keep_{t+1} in and g_t and keep_t out; the bias gradients add up over frames.
template <typename Gates, typename T>
[[gnu::always_inline]] inline void backward_frame(
    const T* __restrict a, const T* __restrict b, const T* __restrict bias_a, const T* __restrict bias_b,
    const T* __restrict previous, const T* __restrict grad_out, T* __restrict grad, T* __restrict keep_next,
    T* __restrict grad_a, T* __restrict grad_b, T* __restrict sum_a, T* __restrict sum_b, int64_t hidden) {
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    T keep, da, db, total = grad_out[j] + keep_next[j] * grad[j];
    Gates::backward(a[j] + bias_a[j], b[j] + bias_b[j], total, previous[j], keep, da, db);
    grad_a[j] = da;
    grad_b[j] = db;
    sum_a[j] += da;
    sum_b[j] += db;
    grad[j] = total;
    keep_next[j] = keep;
  }
}

// a and b (n, T, H) share the row stride `stride`; bias is (2H): a's, then b's. Given `weights`
// (n, T), `pooled` (n, H) gets each batch row's sum of weights_t h_t over frames.
template <typename Gates, typename T>
void forward(const T* a, const T* b, int64_t stride, const T* bias, const T* h0, T* h, const T* weights,
             T* pooled, int64_t batch, int64_t frames, int64_t hidden, int64_t threads) {
  over_batch(batch, threads, [=](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n) {
      const T* previous = h0 + n * hidden;
      if (weights) std::fill(pooled + n * hidden, pooled + (n + 1) * hidden, T(0));
      for (int64_t t = 0; t < frames; ++t) {
        int64_t row = (n * frames + t) * stride;
        T* out = h + (n * frames + t) * hidden;
        forward_frame<Gates>(a + row, b + row, bias, bias + hidden, previous, out, hidden);
        if (weights) add_scaled(weights[n * frames + t], out, pooled + n * hidden, hidden);
        previous = out;
      }
    }
  });
}

// grad_a and grad_b are laid out as a and b; grad_bias (n, 2H) gets each batch row's sums. The
// states' gradient is grad_h (n, T, H), or weights_t grad_pooled (n, H) at frame t, or the sum of
// the two; either may be null.
template <typename Gates, typename T>
void backward(const T* a, const T* b, int64_t stride, const T* bias, const T* h0, const T* h,
              const T* grad_h, const T* weights, const T* grad_pooled, T* grad_a, T* grad_b, T* grad_bias,
              T* grad_h0, int64_t batch, int64_t frames, int64_t hidden, int64_t threads) {
  over_batch(batch, threads, [=](int64_t first, int64_t last) {
    std::vector<T> grad(hidden), keep_next(hidden), grad_out(hidden);
    for (int64_t n = first; n < last; ++n) {
      std::fill(grad.begin(), grad.end(), T(0));  // nothing follows the last frame
      std::fill(keep_next.begin(), keep_next.end(), T(0));
      T* sums = grad_bias + 2 * n * hidden;
      std::fill(sums, sums + 2 * hidden, T(0));
      for (int64_t t = frames - 1; t >= 0; --t) {
        int64_t row = (n * frames + t) * stride;
        const T* previous = t > 0 ? h + (n * frames + t - 1) * hidden : h0 + n * hidden;
        const T* given = grad_h ? grad_h + (n * frames + t) * hidden : nullptr;
        if (!given || grad_pooled) {
          std::fill(grad_out.begin(), grad_out.end(), T(0));
          if (given) add_scaled(T(1), given, grad_out.data(), hidden);
          if (grad_pooled) add_scaled(weights[n * frames + t], grad_pooled + n * hidden, grad_out.data(), hidden);
          given = grad_out.data();
        }
        backward_frame<Gates>(a + row, b + row, bias, bias + hidden, previous, given, grad.data(),
                              keep_next.data(), grad_a + row, grad_b + row, sums, sums + hidden, hidden);
      }
      for (int64_t j = 0; j < hidden; ++j) grad_h0[n * hidden + j] = keep_next[j] * grad[j];  // keep_0 g_0
    }
  });
}

}  // namespace

#define SCAN_KERNELS(GATES, T, SUFFIX)                                                                   \
  extern "C" void forward_##SUFFIX(const T* a, const T* b, int64_t stride, const T* bias, const T* h0,  \
                                   T* h, const T* weights, T* pooled, int64_t batch, int64_t frames,    \
                                   int64_t hidden, int64_t threads) {                                    \
    forward<GATES>(a, b, stride, bias, h0, h, weights, pooled, batch, frames, hidden, threads);          \
  }                                                                                                      \
  extern "C" void backward_##SUFFIX(const T* a, const T* b, int64_t stride, const T* bias, const T* h0, \
                                    const T* h, const T* grad_h, const T* weights, const T* grad_pooled, \
                                    T* grad_a, T* grad_b, T* grad_bias, T* grad_h0, int64_t batch,      \
                                    int64_t frames, int64_t hidden, int64_t threads) {                   \
    backward<GATES>(a, b, stride, bias, h0, h, grad_h, weights, grad_pooled, grad_a, grad_b, grad_bias,  \
                    grad_h0, batch, frames, hidden, threads);                                            \
  }

SCAN_KERNELS(Given, float, given_float32)
SCAN_KERNELS(Given, double, given_float64)
SCAN_KERNELS(MinGRU, float, mingru_float32)
SCAN_KERNELS(MinGRU, double, mingru_float64)
