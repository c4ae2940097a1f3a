// Comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual), logic
// (And, Or, Xor, Not), Where, CastLike and Size: the glue exporters emit
// around dynamic shapes and masks. Numpy broadcasting throughout.
#include <cstring>

#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {


enum class Cmp { Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor };

template <class T>
bool compare(Cmp op, T a, T b) {
  switch (op) {
    case Cmp::Equal: return a == b;
    case Cmp::Less: return a < b;
    case Cmp::Greater: return a > b;
    case Cmp::LessOrEqual: return a <= b;
    case Cmp::GreaterOrEqual: return a >= b;
    case Cmp::And: return a && b;
    case Cmp::Or: return a || b;
    case Cmp::Xor: return bool(a) != bool(b);
  }
  return false;
}

class CompareOp : public Op {
 public:
  CompareOp(const Node& node, Cmp op) : node_(node), op_(op) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in.size() == 2 && in[0].dtype == in[1].dtype, ErrorCode::InvalidArgument, where(node_),
                ": needs two inputs of one dtype, got ", dtype_name(in[0].dtype), " and ", dtype_name(in[1].dtype));
    const bool logic = op_ == Cmp::And || op_ == Cmp::Or || op_ == Cmp::Xor;
    PYCNN_CHECK(!logic || in[0].dtype == DType::boolean, ErrorCode::InvalidArgument, where(node_), ": inputs must be bool");
    return {TensorInfo{DType::boolean, broadcast_shapes(in[0].shape, in[1].shape, node_)}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    BroadcastWalk walk(out[0].shape, {in[0].shape, in[1].shape});
    uint8_t* y = out[0].ptr<uint8_t>();
    const DType t = in[0].dtype == DType::boolean ? DType::u8 : in[0].dtype;
    PYCNN_DISPATCH_NUMERIC(t, T, node_, {
      const T *a = in[0].ptr<T>(), *b = in[1].ptr<T>();
      for (int64_t o = 0; o < walk.outer_count; ++o) {
        int64_t off[2];
        walk.offsets(o, off);
        for (int64_t i = 0; i < walk.inner; ++i)
          y[o * walk.inner + i] = compare<T>(op_, a[off[0] + i * walk.inner_stride[0]], b[off[1] + i * walk.inner_stride[1]]);
      }
    });
  }

 private:
  Node node_;
  Cmp op_;
};

class NotOp : public Op {
 public:
  explicit NotOp(const Node& node) : node_(node) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in[0].dtype == DType::boolean, ErrorCode::InvalidArgument, where(node_), ": input must be bool");
    return {TensorInfo{DType::boolean, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].ptr<uint8_t>()[i] = !in[0].ptr<uint8_t>()[i];
  }

 private:
  Node node_;
};

class WhereOp : public Op {
 public:
  explicit WhereOp(const Node& node) : node_(node) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in.size() == 3 && in[0].dtype == DType::boolean && in[1].dtype == in[2].dtype, ErrorCode::InvalidArgument,
                where(node_), ": needs a bool condition and two inputs of one dtype");
    const Shape s = broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, node_), in[2].shape, node_);
    return {TensorInfo{in[1].dtype, s}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    BroadcastWalk walk(out[0].shape, {in[0].shape, in[1].shape, in[2].shape});
    const size_t es = dtype_size(in[1].dtype);
    const uint8_t* c = in[0].ptr<uint8_t>();
    const char *x = static_cast<const char*>(in[1].data), *y = static_cast<const char*>(in[2].data);
    char* o = static_cast<char*>(out[0].data);
    for (int64_t k = 0; k < walk.outer_count; ++k) {
      int64_t off[3];
      walk.offsets(k, off);
      for (int64_t i = 0; i < walk.inner; ++i) {
        const bool pick = c[off[0] + i * walk.inner_stride[0]];
        const char* src = pick ? x + (off[1] + i * walk.inner_stride[1]) * es : y + (off[2] + i * walk.inner_stride[2]) * es;
        std::memcpy(o + (k * walk.inner + i) * es, src, es);
      }
    }
  }

 private:
  Node node_;
};

class SizeOp : public Op {
 public:
  bool shape_only() const override { return true; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>&) override { return {TensorInfo{DType::i64, Shape{}}}; }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    out[0].ptr<int64_t>()[0] = shape_numel(in[0].shape);
  }
};

Cmp cmp_of(const std::string& t) {
  if (t == "Less") return Cmp::Less;
  if (t == "Greater") return Cmp::Greater;
  if (t == "LessOrEqual") return Cmp::LessOrEqual;
  if (t == "GreaterOrEqual") return Cmp::GreaterOrEqual;
  if (t == "And") return Cmp::And;
  if (t == "Or") return Cmp::Or;
  if (t == "Xor") return Cmp::Xor;
  return Cmp::Equal;
}

}  // namespace

std::unique_ptr<Op> make_compare(const OpContext& c) { return std::make_unique<CompareOp>(c.node, cmp_of(c.node.op_type)); }
std::unique_ptr<Op> make_not(const OpContext& c) { return std::make_unique<NotOp>(c.node); }
std::unique_ptr<Op> make_where(const OpContext& c) { return std::make_unique<WhereOp>(c.node); }
std::unique_ptr<Op> make_size(const OpContext&) { return std::make_unique<SizeOp>(); }

}  // namespace pycnn
