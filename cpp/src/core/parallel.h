// Threads: one parallel_for over a range, split into equal chunks, an equal
// run of them owned by each thread (which helps the others when done). The
// thread count comes from the session that is running (ThreadScope), so
// what the user asks for is exactly what runs.
#pragma once
#include <cstdint>
#include <functional>

namespace pycnn {

// Sets the thread count and flushes denormals (FTZ/DAZ) on the calling
// thread for its lifetime; restores both afterwards.
class ThreadScope {
 public:
  explicit ThreadScope(int num_threads);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_threads_;
  unsigned saved_fp_state_;
};

int current_num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n): up to
// chunks_per_thread equal chunks a thread, each thread taking its own run of
// them in order, then what is left of the others'. Runs on one thread when
// n is small or the scope has one thread. Which thread runs a chunk never changes what it
// computes, so results do not depend on the thread count.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int chunks_per_thread = 4);
// The same, also passing the running thread's index in [0,
// current_num_threads()), for per-thread scratch.
void parallel_for_indexed(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int chunks_per_thread = 4);

}  // namespace pycnn
