// Op: one ONNX operator compiled for a session. Created once per node
// (validate attributes, pre-pack constant weights), asked for output shapes
// per input shape (infer), then run many times on planned memory.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "pycnn/graph.h"

namespace pycnn {

// What an op knows about one input or output at reshape time. `value` is set
// when the data is already known (a constant or shape-derived value).
struct TensorInfo {
  DType dtype = DType::f32;
  Shape shape;
  const Tensor* value = nullptr;
  bool present = true;  // false for an omitted optional input
};

struct OpContext {
  const Node& node;
  const Graph& graph;
  // The constant behind input i, or null.
  const Tensor* constant(size_t i) const;
  size_t num_inputs() const { return node.inputs.size(); }
  bool has_input(size_t i) const { return i < node.inputs.size() && node.inputs[i] >= 0; }
  const Attributes& attrs() const { return node.attrs; }
};

class Op {
 public:
  virtual ~Op() = default;
  // Output dtypes and shapes from the inputs; throws InvalidArgument when the
  // inputs cannot be taken.
  virtual std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) = 0;
  // Scratch memory (bytes) one run needs for these input shapes.
  virtual size_t scratch_bytes(const std::vector<TensorInfo>& in) { (void)in; return 0; }
  // Computes outputs (already sized and allocated) from inputs. Omitted
  // optional inputs/outputs are tensors with null data.
  virtual void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) = 0;
  // Shape-only ops (Shape, Size) produce known values from unknown data.
  virtual bool shape_only() const { return false; }
  // Inputs whose values (not just shapes) output shapes depend on, such as
  // Reshape's shape: they must be known before run.
  virtual std::vector<int> value_inputs() const { return {}; }
  // Whether the op holds its own copy of constant input i (packed weights),
  // so the graph's copy can be freed; its shape stays for shape inference.
  virtual bool keeps_copy_of(size_t i) const { (void)i; return false; }
  // For the profiler: the algorithm chosen and the floating-point operations of one run.
  virtual std::string algorithm() const { return ""; }
  virtual double flops(const std::vector<Tensor>& in, const std::vector<Tensor>& out) const { return 0; }
};

using OpFactory = std::function<std::unique_ptr<Op>(const OpContext&)>;

// The one list of operators: op_type -> factory (see ops/registry.cpp).
const OpFactory* find_op(const std::string& op_type);
std::vector<std::string> registered_ops();

// Helpers shared by op files.
// "node 'name' (OpType)": how every op error message starts.
std::string where(const Node& node);
// The run-time inputs described as TensorInfo, values known (for ops that
// re-derive their geometry from value inputs at run time).
std::vector<TensorInfo> infos_of(const std::vector<Tensor>& tensors);
int64_t normalize_axis(int64_t axis, int64_t rank, const Node& node);
Shape broadcast_shapes(const Shape& a, const Shape& b, const Node& node);
// The activation a fusion pass set: `prefix`_act, _alpha, _beta (prefix
// "_fused": after the op; "_input": Conv's input map).
kernels::Activation fused_activation(const Attributes& a, const std::string& prefix = "_fused");
// Fails unless t holds C values (one per channel); `what` names it.
void require_channel_vector(const TensorInfo& t, int64_t C, const char* what, const Node& node);

#define PYCNN_DISPATCH_NUMERIC(dt, T, node, ...)                                                  \
  switch (dt) {                                                                                 \
    case DType::f32: { using T = float; __VA_ARGS__; break; }                                   \
    case DType::f64: { using T = double; __VA_ARGS__; break; }                                  \
    case DType::i64: { using T = int64_t; __VA_ARGS__; break; }                                 \
    case DType::i32: { using T = int32_t; __VA_ARGS__; break; }                                 \
    case DType::i8: { using T = int8_t; __VA_ARGS__; break; }                                   \
    case DType::u8: { using T = uint8_t; __VA_ARGS__; break; }                                  \
    default:                                                                                    \
      ::pycnn::fail(ErrorCode::Unsupported, "node '", (node).name, "' (", (node).op_type,        \
                    "): dtype ", dtype_name(dt), " is not supported");                          \
  }

}  // namespace pycnn
