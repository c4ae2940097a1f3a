#include "ops/window.h"

#include <algorithm>

namespace pycnn {

SpatialAttrs SpatialAttrs::parse(const Node& node) {
  SpatialAttrs s;
  const Attributes& a = node.attrs;
  s.kernel = a.get_ints("kernel_shape");
  s.strides = a.get_ints("strides");
  s.dilations = a.get_ints("dilations");
  s.pads = a.get_ints("pads");
  s.auto_pad = a.get_string("auto_pad", "NOTSET");
  s.ceil_mode = a.get_int("ceil_mode", 0) != 0;
  if (s.auto_pad.empty()) s.auto_pad = "NOTSET";
  PYCNN_CHECK(s.auto_pad == "NOTSET" || s.auto_pad == "VALID" || s.auto_pad == "SAME_UPPER" || s.auto_pad == "SAME_LOWER",
              ErrorCode::InvalidModel, "node '", node.name, "' (", node.op_type, "): auto_pad '", s.auto_pad,
              "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  return s;
}

void SpatialAttrs::complete(int r, const Node& node) {
  auto need = [&](std::vector<int64_t>& v, size_t n, int64_t def, const char* what, int64_t min) {
    if (v.empty()) v.assign(n, def);
    PYCNN_CHECK(v.size() == n, ErrorCode::InvalidModel, "node '", node.name, "' (", node.op_type, "): '", what,
                "' has ", v.size(), " values, expected ", n, " for ", r, " spatial dims");
    for (int64_t x : v)
      PYCNN_CHECK(x >= min, ErrorCode::InvalidModel, "node '", node.name, "' (", node.op_type, "): '", what,
                  "' values must be >= ", min, ", got ", x);
  };
  rank = r;
  need(kernel, r, 1, "kernel_shape", 1);
  need(strides, r, 1, "strides", 1);
  need(dilations, r, 1, "dilations", 1);
  need(pads, 2 * r, 0, "pads", 0);
  PYCNN_CHECK(r >= 1 && r <= 2, ErrorCode::Unsupported, "node '", node.name, "' (", node.op_type, "): ", r,
              "-D windows are not supported (pycnn supports 1-D and 2-D)");
}

std::vector<int64_t> SpatialAttrs::output_sizes(const std::vector<int64_t>& in, const Node& node,
                                                std::vector<int64_t>* pads_out) const {
  std::vector<int64_t> out(rank), pads_used = pads;
  for (int i = 0; i < rank; ++i) {
    const int64_t ek = (kernel[i] - 1) * dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out[i] = (in[i] + strides[i] - 1) / strides[i];
      const int64_t total = std::max<int64_t>(0, (out[i] - 1) * strides[i] + ek - in[i]);
      const int64_t small = total / 2, big = total - small;
      pads_used[i] = auto_pad == "SAME_UPPER" ? small : big;
      pads_used[i + rank] = auto_pad == "SAME_UPPER" ? big : small;
    } else {
      if (auto_pad == "VALID") pads_used[i] = pads_used[i + rank] = 0;
      const int64_t span = in[i] + pads_used[i] + pads_used[i + rank] - ek;
      PYCNN_CHECK(span >= 0, ErrorCode::InvalidArgument, "node '", node.name, "' (", node.op_type, "): kernel extent ", ek,
                  " is larger than the padded input (", in[i] + pads_used[i] + pads_used[i + rank], ") in spatial dim ", i);
      if (ceil_mode) {
        out[i] = (span + strides[i] - 1) / strides[i] + 1;
        if ((out[i] - 1) * strides[i] >= in[i] + pads_used[i]) --out[i];  // last window must start inside
      } else {
        out[i] = span / strides[i] + 1;
      }
    }
  }
  if (pads_out) *pads_out = pads_used;
  return out;
}

kernels::Window2D make_window2d(const std::vector<int64_t>& in, const std::vector<int64_t>& out, const SpatialAttrs& a,
                                const std::vector<int64_t>& pads) {
  kernels::Window2D g{};
  if (a.rank == 1) {
    g = {1, in[0], 1, out[0], 1, a.kernel[0], 1, a.strides[0], 0, pads[0], 1, a.dilations[0]};
  } else {
    g = {in[0], in[1], out[0], out[1], a.kernel[0], a.kernel[1], a.strides[0], a.strides[1],
         pads[0], pads[1], a.dilations[0], a.dilations[1]};
  }
  return g;
}

}  // namespace pycnn
