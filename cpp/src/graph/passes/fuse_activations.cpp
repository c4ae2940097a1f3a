#include <algorithm>
#include <limits>

#include "graph/passes/passes.h"
#include "kernels/kernels.h"

namespace pycnn::passes {
namespace {

using kernels::UnaryKind;

// The activation node `n` as an epilogue, if it can be one.
bool as_activation(const Graph& g, const Node& n, kernels::Activation& act) {
  const Attributes& a = n.attrs;
  const std::string& t = n.op_type;
  if (t == "Relu") act = {UnaryKind::Relu, 0, 0};
  else if (t == "LeakyRelu") act = {UnaryKind::LeakyRelu, float(a.get_float("alpha", 0.01)), 0};
  else if (t == "Sigmoid") act = {UnaryKind::Sigmoid, 0, 0};
  else if (t == "HardSigmoid") act = {UnaryKind::HardSigmoid, float(a.get_float("alpha", 0.2)), float(a.get_float("beta", 0.5))};
  else if (t == "HardSwish") act = {UnaryKind::HardSwish, 0, 0};
  else if (t == "Tanh") act = {UnaryKind::Tanh, 0, 0};
  else if (t == "Clip") {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (n.opset < 11) {
      lo = float(a.get_float("min", lo));
      hi = float(a.get_float("max", hi));
    }
    for (size_t k = 1; k < n.inputs.size() && k < 3; ++k) {
      if (n.inputs[k] < 0) continue;
      const Value& v = g.values[n.inputs[k]];
      if (!v.constant || v.constant->dtype != DType::f32 || v.constant->numel() != 1) return false;
      (k == 1 ? lo : hi) = v.constant->ptr<float>()[0];
    }
    act = {UnaryKind::Clip, lo, hi};
  } else {
    return false;
  }
  return true;
}

bool fusable_producer(const Node& n) {
  return (n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "Gemm" || n.op_type == "BatchNormalization") &&
         !n.attrs.has("_fused_act");
}

void set_activation(Node& n, const kernels::Activation& act) {
  auto set = [&](const char* k, Attribute v) { n.attrs.items[k] = std::move(v); };
  Attribute kind, alpha, beta;
  kind.kind = Attribute::Int;
  kind.i = int64_t(act.kind);
  alpha.kind = beta.kind = Attribute::Float;
  alpha.f = act.alpha;
  beta.f = act.beta;
  set("_fused_act", kind);
  set("_fused_alpha", alpha);
  set("_fused_beta", beta);
}

}  // namespace

void fuse_activations(Graph& g) {
  auto readers = g.consumers();
  std::vector<char> drop(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& p = g.nodes[i];
    if (!fusable_producer(p) || p.outputs.empty() || p.outputs[0] < 0) continue;
    if (std::count_if(p.outputs.begin(), p.outputs.end(), [](int v) { return v >= 0; }) != 1) continue;
    const int y = p.outputs[0];
    if (g.is_graph_output(y)) continue;
    kernels::Activation act;
    const int r = single_reader(g, readers, y);
    if (r >= 0 && as_activation(g, g.nodes[r], act) && g.nodes[r].inputs[0] == y) {
      set_activation(p, act);
      p.outputs[0] = g.nodes[r].outputs[0];
      drop[r] = 1;
      continue;
    }
    // SiLU written as Mul(y, Sigmoid(y)).
    if (readers[y].size() != 2) continue;
    int sig = -1, mul = -1;
    for (int k : readers[y]) {
      if (g.nodes[k].op_type == "Sigmoid") sig = k;
      else if (g.nodes[k].op_type == "Mul") mul = k;
    }
    if (sig < 0 || mul < 0) continue;
    const int s = g.nodes[sig].outputs[0];
    const auto& mi = g.nodes[mul].inputs;
    if (g.is_graph_output(s) || readers[s].size() != 1 || mi.size() != 2 ||
        !((mi[0] == y && mi[1] == s) || (mi[0] == s && mi[1] == y)))
      continue;
    set_activation(p, kernels::Activation{UnaryKind::SiLU, 0, 0});
    p.outputs[0] = g.nodes[mul].outputs[0];
    drop[sig] = drop[mul] = 1;
  }
  erase_nodes(g, drop);
}

void fuse_residual_adds(Graph& g) {
  auto readers = g.consumers();
  std::vector<char> drop(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& p = g.nodes[i];
    if (p.op_type != "Conv" || p.attrs.has("_fused_act") || p.outputs.size() != 1 || p.inputs.size() < 2 ||
        p.inputs.size() > 3)
      continue;
    const int y = p.outputs[0];
    const int add = single_reader(g, readers, y);
    if (add < 0 || drop[add] || g.nodes[add].op_type != "Add" || g.nodes[add].inputs.size() != 2) continue;
    const Node& a = g.nodes[add];
    const int other = a.inputs[0] == y ? a.inputs[1] : a.inputs[0];
    if (other == y || other < 0 || g.values[other].dtype != DType::f32) continue;
    p.inputs.resize(3, -1);
    p.inputs.push_back(other);
    p.outputs[0] = a.outputs[0];
    drop[add] = 1;
    // The activation after the Add, if any.
    const int s = a.outputs[0];
    const int r = single_reader(g, readers, s);
    kernels::Activation act;
    if (r >= 0 && !drop[r] && g.nodes[r].inputs[0] == s && as_activation(g, g.nodes[r], act)) {
      set_activation(p, act);
      p.outputs[0] = g.nodes[r].outputs[0];
      drop[r] = 1;
    }
  }
  erase_nodes(g, drop);
  g.sort_and_validate();
}

}  // namespace pycnn::passes
