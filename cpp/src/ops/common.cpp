#include "ops/common.h"

#include <algorithm>

#include "core/parallel.h"

namespace pycnn {

const Tensor* OpContext::constant(size_t i) const {
  if (!has_input(i)) return nullptr;
  const auto& v = graph.values[node.inputs[i]];
  return v.constant ? &*v.constant : nullptr;
}

std::string where(const Node& n) { return "node '" + n.name + "' (" + n.op_type + ")"; }

std::vector<TensorInfo> infos_of(const std::vector<Tensor>& tensors) {
  std::vector<TensorInfo> info;
  for (const Tensor& t : tensors) info.push_back(TensorInfo{t.dtype, t.shape, t.data ? &t : nullptr, t.data != nullptr});
  return info;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const Node& node) {
  PYCNN_CHECK(axis >= -rank && axis < std::max<int64_t>(rank, 1), ErrorCode::InvalidArgument, "node '",
              node.name, "' (", node.op_type, "): axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const Node& node) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    PYCNN_CHECK(da == db || da == 1 || db == 1, ErrorCode::InvalidArgument, "node '", node.name, "' (",
                node.op_type, "): shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void require_channel_vector(const TensorInfo& t, int64_t C, const char* what, const Node& node) {
  PYCNN_CHECK(shape_numel(t.shape) == C, ErrorCode::InvalidArgument, where(node), ": ", what, " has shape ",
              shape_str(t.shape), " but the input has ", C, " channels");
}

kernels::Activation fused_activation(const Attributes& a, const std::string& prefix) {
  kernels::Activation act;
  act.kind = kernels::UnaryKind(a.get_int(prefix + "_act", int64_t(kernels::UnaryKind::Identity)));
  act.alpha = float(a.get_float(prefix + "_alpha", 0.0));
  act.beta = float(a.get_float(prefix + "_beta", 0.0));
  return act;
}

BroadcastWalk::BroadcastWalk(const Shape& out, const std::vector<Shape>& inputs) {
  const size_t r = out.size(), n = inputs.size();
  // Full strides of every input aligned to the output rank (0 where broadcast).
  std::vector<std::vector<int64_t>> st(n, std::vector<int64_t>(r, 0));
  for (size_t k = 0; k < n; ++k) {
    const Shape& s = inputs[k];
    int64_t stride = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      const size_t d = s.size() - 1 - i, od = r - 1 - i;
      st[k][od] = s[d] == 1 ? 0 : stride;
      stride *= s[d];
    }
  }
  // Merge dim i into i+1 when every operand is contiguous across them.
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> mst(n);
  for (size_t i = 0; i < r; ++i) {
    if (out[i] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; k < n && merge; ++k) merge = mst[k].back() == st[k][i] * out[i];
    if (merge) {
      dims.back() *= out[i];
      for (size_t k = 0; k < n; ++k) mst[k].back() = st[k][i];
    } else {
      dims.push_back(out[i]);
      for (size_t k = 0; k < n; ++k) mst[k].push_back(st[k][i]);
    }
  }
  strides.assign(n, {});
  inner_stride.assign(n, 0);
  if (dims.empty()) {
    inner = 1;
    for (size_t k = 0; k < n; ++k) inner_stride[k] = 0;
  } else if (std::all_of(mst.begin(), mst.end(), [](auto& v) { return v.back() <= 1; })) {
    inner = dims.back();
    dims.pop_back();
    for (size_t k = 0; k < n; ++k) {
      inner_stride[k] = mst[k].back();
      mst[k].pop_back();
    }
  } else {
    inner = 1;  // innermost dim is strided for some operand: walk it in the outer loop
  }
  outer = dims;
  for (size_t k = 0; k < n; ++k) strides[k] = mst[k];
  for (int64_t d : outer) outer_count *= d;
}

void BroadcastWalk::offsets(int64_t o, int64_t* in_offsets) const {
  const size_t n = strides.size();
  for (size_t k = 0; k < n; ++k) in_offsets[k] = 0;
  for (size_t i = outer.size(); i-- > 0;) {
    const int64_t idx = o % outer[i];
    o /= outer[i];
    for (size_t k = 0; k < n; ++k) in_offsets[k] += idx * strides[k][i];
  }
}

void parallel_elements(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n < kParallelMinElements) {
    fn(0, n);
    return;
  }
  parallel_for(n, fn);
}

}  // namespace pycnn
