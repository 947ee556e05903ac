// The linear recurrence h_t = keep_t * h_{t-1} + write_t on a CPU, one pass over the frames each
// way, with the gates computed inside the pass (see speechrnn/models/scan_kernel.py).
//
// Tensors are (B, T, H) row-major; the two gate inputs a and b may be the halves of one (B, T, 2H)
// tensor, so their rows are `stride` apart. Each step updates a whole row of H channels, which the
// compiler vectorises; batch rows are split over `threads` threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// minGRU: a = W_z x (update), b = W_h x (candidate); keep = 1 - z = sigmoid(-a), write = z g(b).
struct MinGRU {
  // sigmoid(a) and sigmoid(-a) from exp(-|a|) <= 1, so no a overflows
  template <typename T> static void update(T a, T& z, T& keep) {
    T e = std::exp(-std::fabs(a)), p = T(1) / (T(1) + e), q = e * p;
    z = a >= 0 ? p : q;
    keep = a >= 0 ? q : p;
  }
  // the paper's g: b + 1/2 at and above 0, sigmoid(b) below; and its slope
  template <typename T> static void candidate(T b, T& value, T& slope) {
    T e = std::exp(-std::fabs(b)), s = e / (T(1) + e);
    value = b >= 0 ? b + T(0.5) : s;
    slope = b >= 0 ? T(1) : s * (T(1) - s);
  }
  template <typename T> static void forward(T a, T b, T& keep, T& write) {
    T z, value, slope;
    update(a, z, keep);
    candidate(b, value, slope);
    write = z * value;
  }
  template <typename T>
  static void backward(T a, T b, T grad, T previous, T& keep, T& grad_a, T& grad_b) {
    T z, value, slope;
    update(a, z, keep);
    candidate(b, value, slope);
    grad_a = z * keep * grad * (value - previous);  // dz/da = z (1 - z); d keep/da = -z (1 - z)
    grad_b = grad * z * slope;
  }
};

template <typename Body> void over_batch(int64_t batch, int64_t threads, Body body) {
  threads = std::max<int64_t>(1, std::min(threads, batch));
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < threads; ++i) pool.emplace_back(body, batch * i / threads, batch * (i + 1) / threads);
  body(0, batch / threads);
  for (auto& thread : pool) thread.join();
}

// One frame of every channel; the arrays never overlap, which lets the loop be vectorised.
template <typename Gates, typename T>
void forward_frame(const T* __restrict a, const T* __restrict b, const T* __restrict previous,
                   T* __restrict out, int64_t hidden) {
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    T keep, write;
    Gates::forward(a[j], b[j], keep, write);
    out[j] = keep * previous[j] + write;
  }
}

// The adjoint runs backwards: g_t = dL/dh_t + keep_{t+1} g_{t+1}; `grad` and `keep_next` carry
// g_{t+1} and keep_{t+1} in and g_t and keep_t out.
template <typename Gates, typename T>
void backward_frame(const T* __restrict a, const T* __restrict b, const T* __restrict previous,
                    const T* __restrict grad_out, T* __restrict grad, T* __restrict keep_next,
                    T* __restrict grad_a, T* __restrict grad_b, int64_t hidden) {
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    T keep, total = grad_out[j] + keep_next[j] * grad[j];
    Gates::backward(a[j], b[j], total, previous[j], keep, grad_a[j], grad_b[j]);
    grad[j] = total;
    keep_next[j] = keep;
  }
}

template <typename Gates, typename T>
void forward(const T* a, const T* b, int64_t stride, const T* h0, T* h, int64_t batch, int64_t frames,
             int64_t hidden, int64_t threads) {
  over_batch(batch, threads, [=](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n) {
      const T* previous = h0 + n * hidden;
      for (int64_t t = 0; t < frames; ++t) {
        int64_t row = (n * frames + t) * stride;
        T* out = h + (n * frames + t) * hidden;
        forward_frame<Gates>(a + row, b + row, previous, out, hidden);
        previous = out;
      }
    }
  });
}

template <typename Gates, typename T>
void backward(const T* a, const T* b, int64_t stride, const T* h0, const T* h, const T* grad_h, T* grad_a,
              T* grad_b, T* grad_h0, int64_t batch, int64_t frames, int64_t hidden, int64_t threads) {
  over_batch(batch, threads, [=](int64_t first, int64_t last) {
    std::vector<T> grad(hidden), keep_next(hidden);
    for (int64_t n = first; n < last; ++n) {
      std::fill(grad.begin(), grad.end(), T(0));  // nothing follows the last frame
      std::fill(keep_next.begin(), keep_next.end(), T(0));
      for (int64_t t = frames - 1; t >= 0; --t) {
        int64_t row = (n * frames + t) * stride;
        const T* previous = t > 0 ? h + (n * frames + t - 1) * hidden : h0 + n * hidden;
        backward_frame<Gates>(a + row, b + row, previous, grad_h + (n * frames + t) * hidden, grad.data(),
                              keep_next.data(), grad_a + row, grad_b + row, hidden);
      }
      for (int64_t j = 0; j < hidden; ++j) grad_h0[n * hidden + j] = keep_next[j] * grad[j];  // keep_0 g_0
    }
  });
}

}  // namespace

#define SCAN_KERNELS(GATES, T, SUFFIX)                                                                   \
  extern "C" void forward_##SUFFIX(const T* a, const T* b, int64_t stride, const T* h0, T* h,           \
                                   int64_t batch, int64_t frames, int64_t hidden, int64_t threads) {    \
    forward<GATES>(a, b, stride, h0, h, batch, frames, hidden, threads);                                 \
  }                                                                                                      \
  extern "C" void backward_##SUFFIX(const T* a, const T* b, int64_t stride, const T* h0, const T* h,    \
                                    const T* grad_h, T* grad_a, T* grad_b, T* grad_h0, int64_t batch,   \
                                    int64_t frames, int64_t hidden, int64_t threads) {                  \
    backward<GATES>(a, b, stride, h0, h, grad_h, grad_a, grad_b, grad_h0, batch, frames, hidden,        \
                    threads);                                                                            \
  }

SCAN_KERNELS(Given, float, given_float32)
SCAN_KERNELS(Given, double, given_float64)
SCAN_KERNELS(MinGRU, float, mingru_float32)
SCAN_KERNELS(MinGRU, double, mingru_float64)
