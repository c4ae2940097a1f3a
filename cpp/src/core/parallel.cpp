#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define PYCNN_X86 1
#endif

namespace pycnn {
namespace {
thread_local int tls_threads = 1;

unsigned read_fp_state() {
#ifdef PYCNN_X86
  return _mm_getcsr();
#else
  return 0;
#endif
}
void write_fp_state(unsigned s) {
#ifdef PYCNN_X86
  _mm_setcsr(s);
#else
  (void)s;
#endif
}
// Flush-to-zero (bit 15) and denormals-are-zero (bit 6): trained weights with
// denormals can make kernels 5-100x slower.
void flush_denormals() {
#ifdef PYCNN_X86
  _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}
}  // namespace

ThreadScope::ThreadScope(int num_threads)
    : saved_threads_(tls_threads), saved_fp_state_(read_fp_state()) {
  tls_threads = std::max(1, num_threads);
  flush_denormals();
}

ThreadScope::~ThreadScope() {
  tls_threads = saved_threads_;
  write_fp_state(saved_fp_state_);
}

int current_num_threads() { return tls_threads; }

void parallel_for_indexed(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int chunks_per_thread) {
  if (n <= 0) return;
  int threads = int(std::min<int64_t>(tls_threads, n));
  if (threads <= 1) {
    fn(0, n, 0);
    return;
  }
#if defined(_OPENMP)
  // Equal chunks. Each thread owns an equal run of them and takes its own in
  // order, so a thread keeps to the same part of every layer, which its core
  // wrote in the layer before (taken by whichever thread came free, a
  // chunk's input was the other core's half the time: a 1x1 convolution 16
  // -> 64 at 55x55 on 2 threads 73 -> 56 us). A thread done early takes
  // what is left of the others' runs, chunk by chunk: on a shared machine a
  // thread whose core is taken for a while holds up the rest by a chunk,
  // not by its whole share.
  const int64_t chunks = std::min<int64_t>(n, int64_t(threads) * std::max(1, chunks_per_thread));
  struct alignas(64) Run {
    std::atomic<int64_t> next;
    int64_t end;
  };
  std::vector<Run> runs(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    runs[size_t(t)].next.store(chunks * t / threads, std::memory_order_relaxed);
    runs[size_t(t)].end = chunks * (t + 1) / threads;
  }
#pragma omp parallel num_threads(threads)
  {
    flush_denormals();
    const int t = omp_get_thread_num();
    for (int i = 0; i < threads; ++i) {
      Run& r = runs[size_t((t + i) % threads)];
      for (int64_t c = r.next.fetch_add(1, std::memory_order_relaxed); c < r.end;
           c = r.next.fetch_add(1, std::memory_order_relaxed))
        fn(n * c / chunks, n * (c + 1) / chunks, t);
    }
  }
#else
  fn(0, n, 0);
#endif
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int chunks_per_thread) {
  parallel_for_indexed(n, [&](int64_t b, int64_t e, int) { fn(b, e); }, chunks_per_thread);
}

}  // namespace pycnn
