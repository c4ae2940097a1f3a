// Concatenation without copies. A Concat whose axis has only size-1 dims
// before it (batch 1, channel axis) lays its inputs out back to back, so an
// input computed at run time can be written straight into its slice of the
// output; and a Concat whose inputs are a leading run of a bigger Concat's
// (DenseNet concatenates every earlier feature map at each layer) is the
// leading part of that output. The planner gives such values no buffer of
// their own; the Concat op skips slices already in place.
#pragma once
#include <cstddef>
#include <vector>

#include "pycnn/graph.h"
#include "pycnn/tensor.h"

namespace pycnn {

struct ValueHome {
  int root = -1;      // the value whose buffer holds this one; -1: its own
  size_t offset = 0;  // bytes into the root's buffer
};

// step_nodes: the nodes run at run time, in order; values: every value's
// planned shape and dtype; produced: per value, whether a step computes it;
// own_buffer: per value, whether it must keep a buffer of its own (as graph
// outputs do). Roots are never placed in another root.
std::vector<ValueHome> place_concat_inputs(const Graph& g, const std::vector<int>& step_nodes,
                                           const std::vector<Tensor>& values, const std::vector<char>& produced,
                                           const std::vector<char>& own_buffer);

}  // namespace pycnn
