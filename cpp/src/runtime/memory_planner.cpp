#include "runtime/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace pycnn {

size_t plan_memory(std::vector<BufferLifetime>& buffers) {
  auto align = [](size_t b) { return (b + 63) / 64 * 64; };
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  std::vector<size_t> placed;
  size_t total = 0;
  for (size_t idx : order) {
    BufferLifetime& buf = buffers[idx];
    const size_t need = align(buf.bytes);
    // Intervals [offset, offset+size) of placed buffers alive at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t p : placed) {
      const BufferLifetime& o = buffers[p];
      if (o.first <= buf.last && buf.first <= o.last) busy.emplace_back(o.offset, o.offset + align(o.bytes));
    }
    std::sort(busy.begin(), busy.end());
    size_t at = 0;
    for (auto& [b, e] : busy) {
      if (at + need <= b) break;
      at = std::max(at, e);
    }
    buf.offset = at;
    total = std::max(total, at + need);
    placed.push_back(idx);
  }
  return total;
}

}  // namespace pycnn
