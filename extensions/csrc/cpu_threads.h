// The CPU kernels' threads, shared by rasterize_cpu.cpp and packed_cpu.cpp: how work is spread
// over them, and the per-thread gradient sums that keep results independent of the split.
#pragma once

#include <ATen/Parallel.h>  // at::get_num_threads, at::parallel_for

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace lib3dr {

inline int thread_slots() { return std::max(1, at::get_num_threads()); }

// Runs work(t) for every t in [0, threads), concurrently. Built with OpenMP (Linux), these are
// torch's own OpenMP threads: after a torch operation they keep spinning for a while, and threads
// of our own would compete with them for the cores. ATen's parallel_for runs serially in code
// built without OpenMP (Clang, macOS), hence std::thread there.
template <typename Work>
void run_threads(int64_t threads, const Work& work) {
#ifdef _OPENMP
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) work(t);
  });
#else
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& thread : pool) thread.join();
#endif
}

// The parallel loops below run at most `slots` threads, thread_slots() by default. A kernel with
// per-thread buffers passes their count: torch's thread count may change between the two calls
// (torch.set_num_threads elsewhere), and a thread index must never exceed the buffers.

// Runs body(thread, item) for every item in [0, count), round-robin over up to `slots` threads:
// items of uneven cost (tiles, rows) even out, and the split is fixed.
template <typename Body>
void parallel_round_robin(int64_t count, const Body& body, int64_t slots = thread_slots()) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(slots, count));
  run_threads(threads, [&](int64_t t) {
    for (int64_t item = t; item < count; item += threads) body(t, item);
  });
}

// Runs body(thread, begin, end) over [0, count) cut into one contiguous range per thread (at most
// `slots`, each at least `grain` items): for items of even cost (fragments, pixels).
template <typename Body>
void parallel_ranges(int64_t count, int64_t grain, const Body& body,
                     int64_t slots = thread_slots()) {
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(slots, count / std::max<int64_t>(grain, 1)));
  run_threads(threads, [&](int64_t t) { body(t, count * t / threads, count * (t + 1) / threads); });
}

// Per-thread accumulators of `size` values in double (float sums would depend on how the work
// was split), allocated on a thread's first use and summed in thread order into `out`. Pass
// slots() to the parallel loop that fills them.
struct ThreadSums {
  std::vector<std::vector<double>> buffers;
  int64_t size;
  explicit ThreadSums(int64_t size) : buffers(thread_slots()), size(size) {}
  int64_t slots() const { return int64_t(buffers.size()); }
  double* of(int64_t thread) {
    std::vector<double>& b = buffers[thread];
    if (b.empty()) b.assign(size_t(size), 0.0);
    return b.data();
  }
  template <typename T>
  void reduce(T* out) const {
    for (int64_t i = 0; i < size; ++i) {
      double sum = 0.0;
      for (const auto& b : buffers) sum += b.empty() ? 0.0 : b[i];
      out[i] = T(sum);
    }
  }
};

}  // namespace lib3dr
