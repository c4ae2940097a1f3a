#include <algorithm>
#include <cmath>

#include "graph/passes/passes.h"

namespace pycnn::passes {

// y = BN(conv(x, W) + B) = conv(x, W * a) + (B - mean) * a + beta, a = gamma / sqrt(var + eps).
void fold_batch_norm(Graph& g) {
  auto readers = g.consumers();
  std::vector<char> drop(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || conv.inputs.size() < 2 || conv.outputs.empty()) continue;
    const int r = single_reader(g, readers, conv.outputs[0]);
    if (r < 0 || g.nodes[r].op_type != "BatchNormalization") continue;
    Node& bn = g.nodes[r];
    if (bn.inputs.size() != 5 || bn.inputs[0] != conv.outputs[0] || bn.attrs.get_int("training_mode", 0) != 0) continue;
    if (bn.outputs.size() > 1 && std::any_of(bn.outputs.begin() + 1, bn.outputs.end(), [](int v) { return v >= 0; })) continue;
    const Value& wv = g.values[conv.inputs[1]];
    if (!wv.constant || wv.constant->dtype != DType::f32 || wv.constant->rank() < 3) continue;
    const int64_t M = wv.constant->shape[0];
    bool ok = true;
    const Tensor* p[4];
    for (int k = 0; k < 4; ++k) {
      const Value& v = g.values[bn.inputs[k + 1]];
      ok = ok && v.constant && v.constant->dtype == DType::f32 && v.constant->numel() == M;
      p[k] = ok ? &*v.constant : nullptr;
    }
    const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] >= 0;
    if (has_bias) {
      const Value& bv = g.values[conv.inputs[2]];
      ok = ok && bv.constant && bv.constant->numel() == M;
    }
    if (!ok) continue;
    const float eps = float(bn.attrs.get_float("epsilon", 1e-5));
    Tensor w = wv.constant->clone();
    Tensor b = Tensor::allocate(DType::f32, Shape{M});
    const int64_t per = w.numel() / M;
    for (int64_t m = 0; m < M; ++m) {
      const float a = p[0]->ptr<float>()[m] / std::sqrt(p[3]->ptr<float>()[m] + eps);
      for (int64_t k = 0; k < per; ++k) w.ptr<float>()[m * per + k] *= a;
      const float b0 = has_bias ? g.values[conv.inputs[2]].constant->ptr<float>()[m] : 0.f;
      b.ptr<float>()[m] = (b0 - p[2]->ptr<float>()[m]) * a + p[1]->ptr<float>()[m];
    }
    // Fresh constants: the originals may be shared with other nodes.
    const int wid = g.value_id(conv.name + "/folded_weight#" + std::to_string(i));
    const int bid = g.value_id(conv.name + "/folded_bias#" + std::to_string(i));
    g.values[wid].constant = w;
    g.values[bid].constant = b;
    Node& c = g.nodes[i];  // value_id may have grown g.values, not g.nodes
    c.inputs[1] = wid;
    if (c.inputs.size() > 2) c.inputs[2] = bid;
    else c.inputs.push_back(bid);
    c.outputs[0] = g.nodes[r].outputs[0];
    drop[r] = 1;
  }
  erase_nodes(g, drop);
}

}  // namespace pycnn::passes
