#include "pycnn/functional.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "ops/common.h"
#include "ops/op.h"
#include "pycnn/errors.h"
#include "pycnn/graph.h"

namespace pycnn::functional {

void activation(const std::string& kind, const float* x, float* y, int64_t n, float alpha, float beta, int threads) {
  using kernels::UnaryKind;
  static const std::map<std::string, UnaryKind> kinds = {
      {"relu", UnaryKind::Relu},         {"leaky_relu", UnaryKind::LeakyRelu}, {"elu", UnaryKind::Elu},
      {"selu", UnaryKind::Selu},         {"sigmoid", UnaryKind::Sigmoid},      {"hard_sigmoid", UnaryKind::HardSigmoid},
      {"hardswish", UnaryKind::HardSwish}, {"silu", UnaryKind::SiLU},          {"tanh", UnaryKind::Tanh},
      {"softplus", UnaryKind::Softplus}, {"softsign", UnaryKind::Softsign},    {"gelu", UnaryKind::GeluErf},
      {"gelu_tanh", UnaryKind::GeluTanh}, {"clip", UnaryKind::Clip}};
  auto it = kinds.find(kind);
  if (it == kinds.end()) fail(ErrorCode::InvalidArgument, "unknown activation '", kind, "'");
  const kernels::Activation act{it->second, alpha, beta};
  const auto& kt = kernels::active();
  ThreadScope scope(threads);
  parallel_elements(n, [&](int64_t b, int64_t e) { kt.unary(act, x + b, y + b, e - b); });
}

namespace {
// Scratch reused from call to call on each calling thread: a fresh buffer
// of a few MB costs more in page faults than a small layer's compute. It
// keeps the largest size asked for (release_scratch frees it).
thread_local std::shared_ptr<void> t_scratch;
thread_local size_t t_scratch_bytes = 0;

void* scratch_of(size_t bytes) {
  if (bytes > t_scratch_bytes) {
    t_scratch.reset();
    t_scratch = aligned_buffer(bytes, false);
    t_scratch_bytes = bytes;
  }
  return t_scratch.get();
}

// Ops read attributes as this opset defines them (Softmax over one axis,
// GroupNormalization's per-channel scale).
constexpr int kOpset = 21;
}  // namespace

// A one-node graph: inputs are graph inputs or constants viewing the
// caller's buffers (no copy), so the op sees exactly what a session gives it.
struct OpCall::Impl {
  std::string op_type, name;
  Attributes attrs;
  Graph graph;
  std::vector<Tensor> inputs;  // views; null data for an omitted input
  std::vector<char> is_constant;
  std::vector<std::string> input_names;
  std::unique_ptr<Op> op;
  std::vector<TensorInfo> in_infos, out_infos;
  int outputs = 0;
};

OpCall::OpCall(const std::string& op_type, const std::string& name) : impl_(std::make_unique<Impl>()) {
  impl_->op_type = op_type;
  impl_->name = name;
  PYCNN_CHECK(find_op(op_type), ErrorCode::Unsupported, name, ": operator ", op_type, " is not registered");
}
OpCall::~OpCall() = default;

void OpCall::set_int(const std::string& key, int64_t v) { impl_->attrs.set_int(key, v); }
void OpCall::set_ints(const std::string& key, const std::vector<int64_t>& v) {
  Attribute a;
  a.kind = Attribute::Ints;
  a.ints = v;
  impl_->attrs.items[key] = a;
}
void OpCall::set_float(const std::string& key, double v) {
  Attribute a;
  a.kind = Attribute::Float;
  a.f = v;
  impl_->attrs.items[key] = a;
}
void OpCall::set_string(const std::string& key, const std::string& v) {
  Attribute a;
  a.kind = Attribute::String;
  a.s = v;
  impl_->attrs.items[key] = a;
}

void OpCall::add_input(const float* data, const std::vector<int64_t>& shape, bool constant) {
  Impl& m = *impl_;
  PYCNN_CHECK(!m.op, ErrorCode::Runtime, m.name, ": inputs are added before prepare");
  const std::string vname = "input" + std::to_string(m.inputs.size());
  const bool is_constant = data && constant;
  Tensor t(DType::f32, shape, const_cast<float*>(data));
  if (is_constant) m.graph.add_constant(vname, t);
  else m.graph.add_input(vname, DType::f32, {}, false);
  m.inputs.push_back(t);
  m.is_constant.push_back(is_constant);
  m.input_names.push_back(vname);
}

void OpCall::add_absent_input() {
  Impl& m = *impl_;
  m.inputs.emplace_back();
  m.is_constant.push_back(1);  // nothing to bind
  m.input_names.emplace_back();  // node input -1: omitted
}

void OpCall::prepare(int outputs, int threads) {
  Impl& m = *impl_;
  PYCNN_CHECK(!m.op, ErrorCode::Runtime, m.name, ": prepare called twice");
  std::vector<std::string> outs;
  for (int i = 0; i < outputs; ++i) outs.push_back("output" + std::to_string(i));
  const Node& node = m.graph.add_node(m.op_type, m.name, "", kOpset, m.input_names, outs, m.attrs);
  ThreadScope scope(threads);
  m.op = (*find_op(m.op_type))(OpContext{node, m.graph});
  m.outputs = outputs;
}

void OpCall::bind(int i, const float* data, const std::vector<int64_t>& shape) {
  Impl& m = *impl_;
  PYCNN_CHECK(i >= 0 && size_t(i) < m.inputs.size() && !m.is_constant[size_t(i)], ErrorCode::Runtime, m.name,
              ": input ", i, " cannot be bound");
  m.inputs[size_t(i)] = Tensor(DType::f32, shape, const_cast<float*>(data));
}

void OpCall::infer(int threads) {
  Impl& m = *impl_;
  PYCNN_CHECK(m.op, ErrorCode::Runtime, m.name, ": infer needs prepare");
  m.in_infos.clear();
  for (size_t i = 0; i < m.inputs.size(); ++i) {
    const Tensor& t = m.inputs[i];
    m.in_infos.push_back(TensorInfo{DType::f32, t.shape, m.is_constant[i] && t.data ? &t : nullptr, t.data != nullptr});
  }
  ThreadScope scope(threads);
  m.out_infos = m.op->infer(m.in_infos);
  PYCNN_CHECK(int(m.out_infos.size()) >= m.outputs, ErrorCode::Runtime, m.name, ": ", m.op_type, " has ",
              m.out_infos.size(), " outputs, ", m.outputs, " asked for");
  m.out_infos.resize(size_t(m.outputs));
}

std::vector<int64_t> OpCall::output_shape(int i) const { return impl_->out_infos.at(size_t(i)).shape; }
int OpCall::output_dtype(int i) const { return int(impl_->out_infos.at(size_t(i)).dtype); }

void OpCall::run(const std::vector<void*>& outputs, int threads) {
  Impl& m = *impl_;
  PYCNN_CHECK(m.op && int(outputs.size()) == m.outputs && m.in_infos.size() == m.inputs.size(), ErrorCode::Runtime,
              m.name, ": run needs prepare, infer and ", m.outputs, " output buffers");
  std::vector<Tensor> out;
  for (size_t i = 0; i < outputs.size(); ++i) out.emplace_back(m.out_infos[i].dtype, m.out_infos[i].shape, outputs[i]);
  ThreadScope scope(threads);
  m.op->run(m.inputs, out, scratch_of(m.op->scratch_bytes(m.in_infos)));
}

bool same_bytes(const void* a, const void* b, size_t n, int threads) {
  constexpr size_t kChunk = size_t(1) << 18;  // per task: enough to hide the fork, 256 KB
  const int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
  std::atomic<bool> differ{false};
  ThreadScope scope(threads);
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1 && !differ.load(std::memory_order_relaxed); ++c) {
      const size_t at = size_t(c) * kChunk, len = std::min(kChunk, n - at);
      if (std::memcmp(static_cast<const char*>(a) + at, static_cast<const char*>(b) + at, len) != 0) differ = true;
    }
  });
  return !differ;
}

std::string OpCall::algorithm() const { return impl_->op ? impl_->op->algorithm() : ""; }

void release_scratch() {
  t_scratch.reset();
  t_scratch_bytes = 0;
}

}  // namespace pycnn::functional
