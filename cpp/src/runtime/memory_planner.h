// Memory planner on lifetime intervals: each buffer is {first step, last
// step, bytes}; buffers whose lifetimes overlap never share bytes. Greedy:
// largest first, each at the lowest offset that fits (XNNPACK does the same).
#pragma once
#include <cstddef>
#include <vector>

namespace pycnn {

struct BufferLifetime {
  int first = 0, last = 0;  // step indices, inclusive
  size_t bytes = 0;
  size_t offset = 0;        // filled by plan_memory
};

// Assigns offsets (64-byte aligned); returns the arena size.
size_t plan_memory(std::vector<BufferLifetime>& buffers);

}  // namespace pycnn
