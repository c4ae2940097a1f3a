// Softmax / LogSoftmax and ReduceMean / ReduceSum / ReduceMax.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/parallel.h"
#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {


class SoftmaxOp : public Op {
 public:
  SoftmaxOp(const OpContext& c, bool log) : node_(c.node), log_(log) {
    legacy_ = c.node.opset < 13;  // before opset 13: flatten to 2-D at axis
    axis_ = c.attrs().get_int("axis", legacy_ ? 1 : -1);
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in[0].dtype == DType::f32, ErrorCode::Unsupported, where(node_), ": only float32 is supported");
    normalize_axis(axis_, int64_t(in[0].shape.size()), node_);
    return {TensorInfo{DType::f32, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& s = in[0].shape;
    const int64_t axis = s.empty() ? 0 : normalize_axis(axis_, int64_t(s.size()), node_);
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t i = 0; i < int64_t(s.size()); ++i) {
      if (i < axis) outer *= s[i];
      else if (i == axis || legacy_) len *= s[i];
      else inner *= s[i];
    }
    const float* x = in[0].ptr<float>();
    float* y = out[0].ptr<float>();
    parallel_for(outer * inner, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t base = (r / inner) * len * inner + r % inner;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < len; ++i) m = std::max(m, x[base + i * inner]);
        double sum = 0;
        for (int64_t i = 0; i < len; ++i) sum += std::exp(double(x[base + i * inner] - m));
        const double ls = std::log(sum);
        for (int64_t i = 0; i < len; ++i) {
          const double v = double(x[base + i * inner] - m);
          y[base + i * inner] = float(log_ ? v - ls : std::exp(v - ls));
        }
      }
    });
  }

 private:
  Node node_;
  bool log_, legacy_;
  int64_t axis_;
};

enum class Reduce { Mean, Sum, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp };

class ReduceOp : public Op {
 public:
  ReduceOp(const OpContext& c, Reduce kind) : node_(c.node), kind_(kind) {
    keepdims_ = c.attrs().get_int("keepdims", 1) != 0;
    noop_empty_ = c.attrs().get_int("noop_with_empty_axes", 0) != 0;
    attr_axes_ = c.attrs().get_ints("axes");
  }
  std::vector<int> value_inputs() const override { return {1}; }
  // Which dims are reduced, from the attribute or the (known) axes input.
  std::vector<bool> reduced(const std::vector<TensorInfo>& in) const {
    const int64_t r = int64_t(in[0].shape.size());
    std::vector<int64_t> axes = attr_axes_;
    if (in.size() > 1 && in[1].present) {
      PYCNN_CHECK(in[1].value, ErrorCode::Unsupported, where(node_),
                  ": axes must be a constant or computable from shapes (it comes from data computed at run time)");
      axes = in[1].value->as_ints();
    }
    std::vector<bool> red(size_t(r), axes.empty() && !noop_empty_);
    for (int64_t a : axes) red[size_t(normalize_axis(a, r, node_))] = true;
    return red;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const DType t = in[0].dtype;
    const bool bytes_ok = (kind_ == Reduce::Max || kind_ == Reduce::Min) && (t == DType::u8 || t == DType::i8 || t == DType::boolean);
    PYCNN_CHECK(t == DType::f32 || t == DType::i64 || t == DType::i32 || t == DType::f64 || bytes_ok, ErrorCode::Unsupported,
                where(node_), ": dtype ", dtype_name(t), " is not supported");
    const auto red = reduced(in);
    Shape out;
    for (size_t i = 0; i < red.size(); ++i)
      if (!red[i]) out.push_back(in[0].shape[i]);
      else if (keepdims_) out.push_back(1);
    return {TensorInfo{t, out}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const auto red = reduced(infos_of(in));
    const DType t = in[0].dtype == DType::boolean ? DType::u8 : in[0].dtype;  // max of bools is their any()
    PYCNN_DISPATCH_NUMERIC(t, T, node_, reduce_typed<T>(in[0], red, out[0]));
  }

 private:
  template <class T>
  void reduce_typed(const Tensor& x, const std::vector<bool>& red, Tensor& y) const {
    const Shape& s = x.shape;
    const int64_t r = int64_t(s.size()), n_out = y.numel();
    // Output strides for each input dim (0 for reduced dims).
    std::vector<int64_t> ostride(size_t(r), 0);
    int64_t st = 1, count = 1;
    for (int64_t i = r - 1; i >= 0; --i) {
      if (red[size_t(i)]) { count *= s[size_t(i)]; continue; }
      ostride[size_t(i)] = st;
      st *= s[size_t(i)];
    }
    const double inf = std::numeric_limits<double>::infinity();
    const double init = kind_ == Reduce::Max ? -inf : kind_ == Reduce::Min ? inf : kind_ == Reduce::Prod ? 1.0 : 0.0;
    std::vector<double> acc(size_t(n_out), init);
    std::vector<int64_t> idx(size_t(r), 0);
    const T* xp = x.ptr<T>();
    int64_t o = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double v = double(xp[i]);
      double& a = acc[size_t(o)];
      switch (kind_) {
        case Reduce::Max: a = (v > a || v != v) ? v : a; break;
        case Reduce::Min: a = (v < a || v != v) ? v : a; break;
        case Reduce::Prod: a *= v; break;
        case Reduce::L1: a += std::fabs(v); break;
        case Reduce::L2: case Reduce::SumSquare: a += v * v; break;
        case Reduce::LogSumExp: a += std::exp(v); break;
        default: a += v;
      }
      for (int64_t d = r - 1; d >= 0; --d) {  // advance the multi-index, tracking the output offset
        o += ostride[size_t(d)];
        if (++idx[size_t(d)] < s[size_t(d)]) break;
        o -= ostride[size_t(d)] * s[size_t(d)];
        idx[size_t(d)] = 0;
      }
    }
    T* yp = y.ptr<T>();
    for (int64_t i = 0; i < n_out; ++i) {
      double v = acc[size_t(i)];
      if (kind_ == Reduce::Mean) v /= double(count);
      else if (kind_ == Reduce::L2) v = std::sqrt(v);
      else if (kind_ == Reduce::LogSum || kind_ == Reduce::LogSumExp) v = std::log(v);
      if constexpr (std::is_integral_v<T>) {  // the max (min) of nothing is the type's lowest (highest) value
        if (std::isinf(v)) v = v < 0 ? double(std::numeric_limits<T>::lowest()) : double(std::numeric_limits<T>::max());
      }
      yp[i] = T(v);
    }
  }
  Node node_;
  Reduce kind_;
  bool keepdims_, noop_empty_;
  std::vector<int64_t> attr_axes_;
};

class ArgOp : public Op {
 public:
  ArgOp(const OpContext& c, bool is_max) : node_(c.node), is_max_(is_max) {
    axis_ = c.attrs().get_int("axis", 0);
    keepdims_ = c.attrs().get_int("keepdims", 1) != 0;
    last_ = c.attrs().get_int("select_last_index", 0) != 0;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_);
    PYCNN_CHECK(x[size_t(a)] > 0, ErrorCode::InvalidArgument, where(node_), ": axis ", a, " of ", shape_str(x), " is empty");
    Shape out;
    for (size_t i = 0; i < x.size(); ++i)
      if (int64_t(i) != a) out.push_back(x[i]);
      else if (keepdims_) out.push_back(1);
    return {TensorInfo{DType::i64, out}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& x = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_), len = x[size_t(a)];
    const int64_t outer = shape_numel(Shape(x.begin(), x.begin() + a)), inner = shape_numel(Shape(x.begin() + a + 1, x.end()));
    int64_t* y = out[0].ptr<int64_t>();
    const DType t = in[0].dtype == DType::boolean ? DType::u8 : in[0].dtype;
    PYCNN_DISPATCH_NUMERIC(t, T, node_, {
      const T* xp = in[0].ptr<T>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const T* s = xp + o * len * inner + i;
          int64_t best = 0;
          for (int64_t k = 1; k < len; ++k) {
            const T v = s[k * inner], b = s[best * inner];
            const bool better = is_max_ ? (last_ ? v >= b : v > b) : (last_ ? v <= b : v < b);
            if (better) best = k;
          }
          y[o * inner + i] = best;
        }
    });
  }

 private:
  Node node_;
  bool is_max_, keepdims_ = true, last_ = false;
  int64_t axis_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_arg_max(const OpContext& c) { return std::make_unique<ArgOp>(c, true); }
std::unique_ptr<Op> make_arg_min(const OpContext& c) { return std::make_unique<ArgOp>(c, false); }
std::unique_ptr<Op> make_reduce(const OpContext& c) {
  static const std::map<std::string, Reduce> kinds = {
      {"ReduceMean", Reduce::Mean}, {"ReduceSum", Reduce::Sum}, {"ReduceMax", Reduce::Max},
      {"ReduceMin", Reduce::Min}, {"ReduceProd", Reduce::Prod}, {"ReduceL1", Reduce::L1}, {"ReduceL2", Reduce::L2},
      {"ReduceSumSquare", Reduce::SumSquare}, {"ReduceLogSum", Reduce::LogSum}, {"ReduceLogSumExp", Reduce::LogSumExp}};
  return std::make_unique<ReduceOp>(c, kinds.at(c.node.op_type));
}

std::unique_ptr<Op> make_softmax(const OpContext& c) { return std::make_unique<SoftmaxOp>(c, false); }
std::unique_ptr<Op> make_log_softmax(const OpContext& c) { return std::make_unique<SoftmaxOp>(c, true); }

}  // namespace pycnn
