#include <memory>

#include "graph/passes/passes.h"
#include "ops/op.h"

namespace pycnn::passes {

void fold_constants(Graph& g) {
  std::vector<Node> kept;
  for (Node& n : g.nodes) {
    const OpFactory* make = find_op(n.op_type);
    bool all_const = make != nullptr && !n.inputs.empty();
    for (int v : n.inputs) all_const = all_const && (v < 0 || g.values[v].constant);
    if (!all_const) {
      kept.push_back(std::move(n));
      continue;
    }
    // Errors here are left for the session to report against the node.
    try {
      auto op = (*make)(OpContext{n, g});
      std::vector<TensorInfo> in;
      std::vector<Tensor> in_t;
      for (int v : n.inputs) {
        if (v < 0) {
          in.push_back(TensorInfo{DType::f32, {}, nullptr, false});
          in_t.emplace_back();
        } else {
          const Tensor& t = *g.values[v].constant;
          in.push_back(TensorInfo{t.dtype, t.shape, &t, true});
          in_t.push_back(t);
        }
      }
      auto out_info = op->infer(in);
      std::vector<Tensor> out;
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        if (n.outputs[i] < 0 || i >= out_info.size()) out.emplace_back();
        else out.push_back(Tensor::allocate(out_info[i].dtype, out_info[i].shape));
      }
      auto scratch = aligned_buffer(op->scratch_bytes(in));
      op->run(in_t, out, scratch.get());
      for (size_t i = 0; i < n.outputs.size(); ++i)
        if (n.outputs[i] >= 0 && out[i].data) {
          g.values[n.outputs[i]].constant = out[i];
          g.values[n.outputs[i]].dtype = out[i].dtype;
        }
    } catch (const Error&) {
      kept.push_back(std::move(n));
    }
  }
  g.nodes = std::move(kept);
}

}  // namespace pycnn::passes
