// Element-wise ops: unary activations and math, binary ops with numpy
// broadcasting, variadic Sum/Mean/Max/Min, Clip, Cast, Identity, Dropout.
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel.h"
#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {

using kernels::Activation;
using kernels::BinaryKind;
using kernels::UnaryKind;


// ------------------------------------------------------------- unary ----
class UnaryOp : public Op {
 public:
  UnaryOp(const Node& node, Activation act) : node_(node), act_(act) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    check_dtype(in[0].dtype);
    return {TensorInfo{in[0].dtype, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const int64_t n = in[0].numel();
    if (in[0].dtype == DType::f32) {
      const auto& kt = kernels::active();
      const float* x = in[0].ptr<float>();
      float* y = out[0].ptr<float>();
      parallel_elements(n, [&](int64_t b, int64_t e) { kt.unary(act_, x + b, y + b, e - b); });
      return;
    }
    PYCNN_DISPATCH_NUMERIC(in[0].dtype, T, node_, run_typed<T>(in[0].ptr<T>(), out[0].ptr<T>(), n));
  }

 private:
  void check_dtype(DType t) const {
    if (t == DType::f32) return;
    const bool ok = (act_.kind == UnaryKind::Identity || act_.kind == UnaryKind::Neg || act_.kind == UnaryKind::Sign ||
                     act_.kind == UnaryKind::Abs || act_.kind == UnaryKind::Relu) ||
                    t == DType::f64;
    PYCNN_CHECK(ok && t != DType::boolean, ErrorCode::Unsupported, "node '", node_.name, "' (", node_.op_type,
                "): dtype ", dtype_name(t), " is not supported; pycnn computes this op in float32");
  }
  template <class T>
  void run_typed(const T* x, T* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const double v = double(x[i]);
      double r = v;
      switch (act_.kind) {
        case UnaryKind::Neg: r = -v; break;
        case UnaryKind::Abs: r = std::fabs(v); break;
        case UnaryKind::Relu: r = v > 0 ? v : 0; break;
        case UnaryKind::Sign: r = double((v > 0) - (v < 0)); break;
        case UnaryKind::Identity: r = v; break;
        default: {  // f64: compute in float32, as stated for every non-float32 path
          float f = float(v);
          kernels::scalar_table().unary(act_, &f, &f, 1);
          r = f;
        }
      }
      y[i] = T(r);
    }
  }
  Node node_;
  Activation act_;
};

Activation activation_for(const Node& node) {
  const Attributes& a = node.attrs;
  const std::string& t = node.op_type;
  Activation act;
  auto f = [&](const char* k, double d) { return float(a.get_float(k, d)); };
  if (t == "Relu") act.kind = UnaryKind::Relu;
  else if (t == "LeakyRelu") act = {UnaryKind::LeakyRelu, f("alpha", 0.01), 0};
  else if (t == "Elu") act = {UnaryKind::Elu, f("alpha", 1.0), 0};
  else if (t == "Selu") act = {UnaryKind::Selu, f("alpha", 1.67326319217681884765625), f("gamma", 1.05070102214813232421875)};
  else if (t == "Sigmoid") act.kind = UnaryKind::Sigmoid;
  else if (t == "HardSigmoid") act = {UnaryKind::HardSigmoid, f("alpha", 0.2), f("beta", 0.5)};
  else if (t == "HardSwish") act.kind = UnaryKind::HardSwish;
  else if (t == "Tanh") act.kind = UnaryKind::Tanh;
  else if (t == "Softplus") act.kind = UnaryKind::Softplus;
  else if (t == "Softsign") act.kind = UnaryKind::Softsign;
  else if (t == "Erf") act.kind = UnaryKind::Erf;
  else if (t == "Gelu") {
    const std::string approx = a.get_string("approximate", "none");
    PYCNN_CHECK(approx == "none" || approx == "tanh", ErrorCode::InvalidModel, "node '", node.name,
                "' (Gelu): approximate must be 'none' or 'tanh', got '", approx, "'");
    act.kind = approx == "tanh" ? UnaryKind::GeluTanh : UnaryKind::GeluErf;
  } else if (t == "Sqrt") act.kind = UnaryKind::Sqrt;
  else if (t == "Exp") act.kind = UnaryKind::Exp;
  else if (t == "Log") act.kind = UnaryKind::Log;
  else if (t == "Neg") act.kind = UnaryKind::Neg;
  else if (t == "Abs") act.kind = UnaryKind::Abs;
  else if (t == "Reciprocal") act.kind = UnaryKind::Reciprocal;
  else if (t == "Floor") act.kind = UnaryKind::Floor;
  else if (t == "Ceil") act.kind = UnaryKind::Ceil;
  else if (t == "Round") act.kind = UnaryKind::Round;
  else if (t == "Sign") act.kind = UnaryKind::Sign;
  return act;  // Identity, Dropout
}

// ------------------------------------------------------------ binary ----
template <class T>
T apply_binary(BinaryKind op, T a, T b) {
  switch (op) {
    case BinaryKind::Add: return a + b;
    case BinaryKind::Sub: return a - b;
    case BinaryKind::Mul: return a * b;
    case BinaryKind::Div:
      if constexpr (std::is_integral_v<T>) return b == 0 ? T(0) : T(a / b);
      else return a / b;
    case BinaryKind::Pow: return T(std::pow(double(a), double(b)));
    case BinaryKind::Max: return a > b ? a : b;
    case BinaryKind::Min: return a < b ? a : b;
    case BinaryKind::PRelu: return a < 0 ? T(a * b) : a;
  }
  return a;
}

double load_as_double(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::f32: return t.ptr<float>()[i];
    case DType::f64: return t.ptr<double>()[i];
    case DType::i64: return double(t.ptr<int64_t>()[i]);
    case DType::i32: return t.ptr<int32_t>()[i];
    case DType::i8: return t.ptr<int8_t>()[i];
    default: return t.ptr<uint8_t>()[i];
  }
}

// out = a op b with broadcasting; a and b may alias out.
void binary_broadcast(BinaryKind op, const Tensor& a, const Tensor& b, Tensor& out, const Node& node) {
  BroadcastWalk walk(out.shape, {a.shape, b.shape});
  const int64_t inner = walk.inner;
  if (a.dtype != b.dtype) {  // Pow with an exponent of another dtype
    PYCNN_DISPATCH_NUMERIC(out.dtype, T, node, {
      T* y = out.ptr<T>();
      for (int64_t o = 0; o < walk.outer_count; ++o) {
        int64_t off[2];
        walk.offsets(o, off);
        for (int64_t i = 0; i < inner; ++i)
          y[o * inner + i] = T(std::pow(load_as_double(a, off[0] + i * walk.inner_stride[0]),
                                        load_as_double(b, off[1] + i * walk.inner_stride[1])));
      }
    });
    return;
  }
  if (a.dtype == DType::f32) {
    const auto& kt = kernels::active();
    const float *pa = a.ptr<float>(), *pb = b.ptr<float>();
    float* y = out.ptr<float>();
    const int64_t sa = walk.inner_stride[0], sb = walk.inner_stride[1];
    if (walk.outer_count == 1) {
      parallel_elements(inner, [&](int64_t s, int64_t e) { kt.binary(op, pa + s * sa, sa, pb + s * sb, sb, y + s, e - s); });
    } else {
      auto rows = [&](int64_t s, int64_t e) {
        for (int64_t o = s; o < e; ++o) {
          int64_t off[2];
          walk.offsets(o, off);
          kt.binary(op, pa + off[0], sa, pb + off[1], sb, y + o * inner, inner);
        }
      };
      if (out.numel() < kParallelMinElements) rows(0, walk.outer_count);
      else parallel_for(walk.outer_count, rows);
    }
    return;
  }
  PYCNN_DISPATCH_NUMERIC(a.dtype, T, node, {
    const T *pa = a.ptr<T>(), *pb = b.ptr<T>();
    T* y = out.ptr<T>();
    for (int64_t o = 0; o < walk.outer_count; ++o) {
      int64_t off[2];
      walk.offsets(o, off);
      for (int64_t i = 0; i < inner; ++i)
        y[o * inner + i] = apply_binary<T>(op, pa[off[0] + i * walk.inner_stride[0]], pb[off[1] + i * walk.inner_stride[1]]);
    }
  });
}

class BinaryOp : public Op {
 public:
  BinaryOp(const Node& node, BinaryKind op, bool mean = false) : node_(node), op_(op), mean_(mean) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(!in.empty(), ErrorCode::InvalidModel, "node '", node_.name, "' (", node_.op_type, ") has no inputs");
    Shape s = in[0].shape;
    if (in.size() == 2 && op_ == BinaryKind::PRelu && node_.opset < 7 && in[1].shape.size() == 1 &&
        in[0].shape.size() >= 2 && in[1].shape[0] == in[0].shape[1])
      return {TensorInfo{in[0].dtype, in[0].shape}};  // legacy per-channel slope
    for (size_t i = 1; i < in.size(); ++i) {
      const bool mixed_ok = op_ == BinaryKind::Pow;
      PYCNN_CHECK(in[i].dtype == in[0].dtype || mixed_ok, ErrorCode::InvalidArgument, "node '", node_.name, "' (",
                  node_.op_type, "): input dtypes differ (", dtype_name(in[0].dtype), " and ", dtype_name(in[i].dtype), ")");
      s = broadcast_shapes(s, in[i].shape, node_);
    }
    PYCNN_CHECK(in[0].dtype != DType::boolean, ErrorCode::Unsupported, "node '", node_.name, "' (", node_.op_type,
                "): bool inputs are not supported");
    if (op_ == BinaryKind::PRelu)
      PYCNN_CHECK(s == in[0].shape, ErrorCode::InvalidArgument, "node '", node_.name,
                  "' (PRelu): slope ", shape_str(in[1].shape), " must broadcast to X ", shape_str(in[0].shape));
    return {TensorInfo{in[0].dtype, s}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    Tensor& y = out[0];
    if (in.size() == 1) {  // Sum/Max/Min/Mean of one tensor
      std::memcpy(y.data, in[0].data, y.nbytes());
      return;
    }
    if (legacy_channel_slope(in)) {
      Tensor slope = in[1];
      slope.shape = Shape{in[1].numel()};
      slope.shape.resize(size_t(in[0].rank() - 1), 1);
      binary_broadcast(op_, in[0], slope, y, node_);
    } else {
      binary_broadcast(op_, in[0], in[1], y, node_);
    }
    for (size_t i = 2; i < in.size(); ++i) binary_broadcast(op_, y, in[i], y, node_);
    if (mean_) {
      PYCNN_DISPATCH_NUMERIC(y.dtype, T, node_, {
        T* p = y.ptr<T>();
        for (int64_t i = 0; i < y.numel(); ++i) p[i] = T(p[i] / T(in.size()));
      });
    }
  }

 private:
  bool legacy_channel_slope(const std::vector<Tensor>& in) const {
    return op_ == BinaryKind::PRelu && node_.opset < 7 && in[1].rank() == 1 && in[0].rank() >= 2 &&
           in[1].shape[0] == in[0].shape[1];
  }
  Node node_;
  BinaryKind op_;
  bool mean_;
};

// -------------------------------------------------------------- Clip ----
class ClipOp : public Op {
 public:
  explicit ClipOp(const OpContext& c) : node_(c.node) {
    lo_ = float(c.attrs().get_float("min", -std::numeric_limits<float>::infinity()));
    hi_ = float(c.attrs().get_float("max", std::numeric_limits<float>::infinity()));
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    for (size_t i = 1; i < in.size(); ++i)
      PYCNN_CHECK(!in[i].present || in[i].shape.empty() || shape_numel(in[i].shape) == 1, ErrorCode::InvalidArgument,
                  "node '", node_.name, "' (Clip): min/max must be scalars, got ", shape_str(in[i].shape));
    PYCNN_CHECK(in[0].dtype == DType::f32 || in[0].dtype == DType::i64 || in[0].dtype == DType::i32 ||
                    in[0].dtype == DType::f64 || in[0].dtype == DType::i8 || in[0].dtype == DType::u8,
                ErrorCode::Unsupported, "node '", node_.name, "' (Clip): dtype ", dtype_name(in[0].dtype),
                " is not supported");
    return {TensorInfo{in[0].dtype, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const int64_t n = in[0].numel();
    PYCNN_DISPATCH_NUMERIC(in[0].dtype, T, node_, {
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if (node_.opset < 11) { lo = T(std::max<double>(lo_, double(lo))); hi = T(std::min<double>(hi_, double(hi))); }
      if (in.size() > 1 && in[1].data) lo = in[1].ptr<T>()[0];
      if (in.size() > 2 && in[2].data) hi = in[2].ptr<T>()[0];
      if constexpr (std::is_same_v<T, float>) {
        const auto& kt = kernels::active();
        Activation act{UnaryKind::Clip, float(lo), float(hi)};
        parallel_elements(n, [&](int64_t b, int64_t e) { kt.unary(act, in[0].ptr<float>() + b, out[0].ptr<float>() + b, e - b); });
      } else {
        const T* x = in[0].ptr<T>();
        T* y = out[0].ptr<T>();
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
      }
    });
  }

 private:
  Node node_;
  float lo_, hi_;
};

// -------------------------------------------------------------- Cast ----
template <class From, class To>
void cast_loop(const From* x, To* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<To, uint8_t> && std::is_floating_point_v<From>) y[i] = To(int64_t(x[i]));
    else y[i] = To(x[i]);
  }
}

// Cast (to a fixed dtype) and CastLike (to the dtype of input 1).
class CastOp : public Op {
 public:
  CastOp(const Node& node, DType to, bool like) : node_(node), to_(to), like_(like) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    return {TensorInfo{like_ ? in[1].dtype : to_, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const int64_t n = in[0].numel();
    const DType to = out[0].dtype;
    if (to == DType::boolean) {
      uint8_t* y = out[0].ptr<uint8_t>();
      for (int64_t i = 0; i < n; ++i) y[i] = load_as_double(in[0], i) != 0.0;
      return;
    }
    auto from = in[0].dtype == DType::boolean ? DType::u8 : in[0].dtype;
    PYCNN_DISPATCH_NUMERIC(from, F, node_, {
      PYCNN_DISPATCH_NUMERIC(to, Tt, node_, cast_loop<F, Tt>(in[0].ptr<F>(), out[0].ptr<Tt>(), n));
    });
  }

 private:
  Node node_;
  DType to_;
  bool like_;
};

// ONNX TensorProto.DataType codes.
DType onnx_dtype(int64_t code, const Node& node) {
  switch (code) {
    case 1: return DType::f32;
    case 2: return DType::u8;
    case 3: return DType::i8;
    case 6: return DType::i32;
    case 7: return DType::i64;
    case 9: return DType::boolean;
    case 11: return DType::f64;
  }
  fail(ErrorCode::Unsupported, "node '", node.name, "' (", node.op_type, "): ONNX data type ", code,
       " is not supported (pycnn supports float32, float64, int64, int32, int8, uint8, bool)");
}

}  // namespace

std::unique_ptr<Op> make_unary(const OpContext& c) { return std::make_unique<UnaryOp>(c.node, activation_for(c.node)); }

std::unique_ptr<Op> make_binary(const OpContext& c) {
  const std::string& t = c.node.op_type;
  BinaryKind k = BinaryKind::Add;
  if (t == "Sub") k = BinaryKind::Sub;
  else if (t == "Mul") k = BinaryKind::Mul;
  else if (t == "Div") k = BinaryKind::Div;
  else if (t == "Pow") k = BinaryKind::Pow;
  else if (t == "Max") k = BinaryKind::Max;
  else if (t == "Min") k = BinaryKind::Min;
  else if (t == "PRelu") k = BinaryKind::PRelu;
  return std::make_unique<BinaryOp>(c.node, k, t == "Mean");
}

std::unique_ptr<Op> make_clip(const OpContext& c) { return std::make_unique<ClipOp>(c); }

std::unique_ptr<Op> make_cast(const OpContext& c) {
  if (c.node.op_type == "CastLike") return std::make_unique<CastOp>(c.node, DType::f32, true);
  PYCNN_CHECK(c.attrs().has("to"), ErrorCode::InvalidModel, "node '", c.node.name, "' (Cast): attribute 'to' is required");
  return std::make_unique<CastOp>(c.node, onnx_dtype(c.attrs().get_int("to", 1), c.node), false);
}

DType dtype_from_onnx(int64_t code, const Node& node) { return onnx_dtype(code, node); }

}  // namespace pycnn
