#include <algorithm>
#include <cmath>

#include "graph/passes/passes.h"

namespace pycnn::passes {
namespace {

// A 1x1 convolution, stride 1, no pads, one group: its input is the GEMM's B
// matrix, packed block by block, so a per-channel map of it can run there.
bool pointwise_conv(const Graph& g, const Node& n) {
  if (n.op_type != "Conv" || n.inputs.size() < 2 || n.inputs.size() > 4 || n.attrs.get_int("group", 1) != 1)
    return false;
  const Value& w = g.values[n.inputs[1]];
  if (!w.constant || w.constant->rank() < 3) return false;
  for (size_t d = 2; d < w.constant->shape.size(); ++d)
    if (w.constant->shape[d] != 1) return false;
  for (int64_t s : n.attrs.get_ints("strides"))
    if (s != 1) return false;
  for (int64_t p : n.attrs.get_ints("pads"))
    if (p != 0) return false;
  const std::string auto_pad = n.attrs.get_string("auto_pad", "NOTSET");
  return auto_pad == "NOTSET" || auto_pad == "VALID" || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
}

// Whether value v is (N, C, 1, ...): a global pooling, then only 1x1
// unpadded convolutions and element-wise activations (a squeeze-and-excitation
// branch).
bool spatially_one(const Graph& g, const std::vector<int>& producer, int v, int depth = 0) {
  if (v < 0 || producer[v] < 0 || depth > 8) return false;
  const Node& n = g.nodes[producer[v]];
  if (n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool") return true;
  static const char* unary[] = {"Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "LeakyRelu", "Tanh"};
  const bool passes_through = pointwise_conv(g, n) || std::any_of(std::begin(unary), std::end(unary),
                                                                 [&](const char* t) { return n.op_type == t; });
  return passes_through && !n.inputs.empty() && spatially_one(g, producer, n.inputs[0], depth + 1);
}

// Mul(x, s) with s of shape (N, C, 1, 1), read only by a 1x1 convolution:
// the convolution scales its input channels while packing (input 4).
void fuse_channel_scales(Graph& g) {
  auto readers = g.consumers();
  std::vector<int> producer(g.values.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int v : g.nodes[i].outputs)
      if (v >= 0) producer[v] = int(i);
  std::vector<char> drop(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& mul = g.nodes[i];
    if (mul.op_type != "Mul" || mul.inputs.size() != 2 || mul.outputs.size() != 1) continue;
    const int y = mul.outputs[0];
    const int r = single_reader(g, readers, y);
    if (r < 0 || g.is_graph_output(y) || !pointwise_conv(g, g.nodes[r]) || g.nodes[r].inputs[0] != y) continue;
    const int s = spatially_one(g, producer, mul.inputs[1]) ? 1 : spatially_one(g, producer, mul.inputs[0]) ? 0 : -1;
    if (s < 0 || g.values[mul.inputs[0]].dtype != DType::f32 || g.values[mul.inputs[1]].dtype != DType::f32) continue;
    Node& conv = g.nodes[r];
    conv.inputs[0] = mul.inputs[1 - s];
    conv.inputs.resize(4, -1);
    conv.inputs.push_back(mul.inputs[s]);
    drop[i] = 1;
  }
  erase_nodes(g, drop);
}

// BatchNormalization (constant statistics) read only by a 1x1 convolution.
void fuse_norms(Graph& g) {
  auto readers = g.consumers();
  std::vector<char> drop(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || bn.inputs.size() != 5 || bn.outputs.empty() || bn.outputs[0] < 0 ||
        bn.attrs.get_int("training_mode", 0) != 0)
      continue;
    if (bn.outputs.size() > 1 && std::any_of(bn.outputs.begin() + 1, bn.outputs.end(), [](int v) { return v >= 0; }))
      continue;
    const int y = bn.outputs[0];
    const int r = single_reader(g, readers, y);
    if (r < 0 || g.is_graph_output(y) || !pointwise_conv(g, g.nodes[r]) || g.nodes[r].inputs[0] != y) continue;
    const Tensor* p[4];
    bool constant = true;
    for (int k = 0; k < 4; ++k) {
      const Value& v = g.values[bn.inputs[k + 1]];
      constant = constant && v.constant && v.constant->dtype == DType::f32 && v.constant->rank() == 1;
      p[k] = constant ? &*v.constant : nullptr;
    }
    const Value& w = g.values[g.nodes[r].inputs[1]];
    const int64_t C = w.constant->shape[1];
    if (!constant || p[0]->numel() != C || p[1]->numel() != C || p[2]->numel() != C || p[3]->numel() != C) continue;
    // BN(x) = x * a + (beta - mean * a), a = gamma / sqrt(var + eps).
    const float eps = float(bn.attrs.get_float("epsilon", 1e-5));
    Tensor scale = Tensor::allocate(DType::f32, Shape{C}), shift = Tensor::allocate(DType::f32, Shape{C});
    for (int64_t c = 0; c < C; ++c) {
      const float a = p[0]->ptr<float>()[c] / std::sqrt(p[3]->ptr<float>()[c] + eps);
      scale.ptr<float>()[c] = a;
      shift.ptr<float>()[c] = p[1]->ptr<float>()[c] - p[2]->ptr<float>()[c] * a;
    }
    const int sid = g.value_id(bn.name + "/input_scale#" + std::to_string(i));
    const int tid = g.value_id(bn.name + "/input_shift#" + std::to_string(i));
    g.values[sid].constant = scale;
    g.values[tid].constant = shift;
    const Node& norm = g.nodes[i];  // value_id may have grown g.values, not g.nodes
    Node& conv = g.nodes[r];
    conv.inputs[0] = norm.inputs[0];
    conv.inputs.resize(4, -1);
    conv.inputs.push_back(sid);
    conv.inputs.push_back(tid);
    // The norm's activation (ReLU in DenseNet) runs after the map.
    const std::pair<const char*, const char*> act_attrs[] = {
        {"_fused_act", "_input_act"}, {"_fused_alpha", "_input_alpha"}, {"_fused_beta", "_input_beta"}};
    for (const auto& [from, to] : act_attrs) {
      auto it = norm.attrs.items.find(from);
      if (it != norm.attrs.items.end()) conv.attrs.items[to] = it->second;
    }
    drop[i] = 1;
  }
  erase_nodes(g, drop);
}

}  // namespace

void fuse_input_affine(Graph& g) {
  fuse_norms(g);
  fuse_channel_scales(g);
}

}  // namespace pycnn::passes
