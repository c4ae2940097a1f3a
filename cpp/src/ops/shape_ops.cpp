// Data movement and shape glue: Identity, Dropout, Reshape, Flatten, Squeeze,
// Unsqueeze, Shape, ConstantOfShape, Range, Expand, Tile, Concat, Split,
// Slice, Transpose, Gather, Pad, DepthToSpace, SpaceToDepth. All are dtype
// agnostic: they move elements of any size.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {


// dst[i] = src[offset + sum(idx_d * strides_d)] over `shape` in row-major order.
void strided_copy(const char* src, int64_t offset, const std::vector<int64_t>& strides, char* dst, const Shape& shape,
                  size_t es) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const int r = int(shape.size());
  if (r == 0) {
    std::memcpy(dst, src + offset * es, es);
    return;
  }
  const int64_t inner = shape[r - 1], istride = strides[r - 1];
  std::vector<int64_t> idx(r, 0);
  int64_t src_off = offset;
  for (int64_t o = 0; o < n; o += inner) {
    if (istride == 1) {
      std::memcpy(dst + o * es, src + src_off * es, size_t(inner) * es);
    } else {
      for (int64_t i = 0; i < inner; ++i) std::memcpy(dst + (o + i) * es, src + (src_off + i * istride) * es, es);
    }
    for (int d = r - 2; d >= 0; --d) {
      src_off += strides[d];
      if (++idx[d] < shape[d]) break;
      src_off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

const char* cbytes(const Tensor& t) { return static_cast<const char*>(t.data); }
char* bytes(Tensor& t) { return static_cast<char*>(t.data); }

// Values of input i at reshape (must be known) or at run.
std::vector<int64_t> ints_of(const TensorInfo& t, const Node& node, const char* what) {
  PYCNN_CHECK(t.value, ErrorCode::Unsupported, where(node), ": '", what,
              "' must be a constant or computable from input shapes (it depends on data computed at run time)");
  return t.value->as_ints();
}

// Base for ops whose output is their input's bytes, possibly re-shaped.
class CopyOp : public Op {
 public:
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    if (out[0].data != in[0].data) std::memcpy(out[0].data, in[0].data, out[0].nbytes());
  }
};

class IdentityOp : public CopyOp {
 public:
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override { return {TensorInfo{in[0].dtype, in[0].shape}}; }
};

class DropoutOp : public CopyOp {
 public:
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    return {TensorInfo{in[0].dtype, in[0].shape}, TensorInfo{DType::boolean, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* s) override {
    CopyOp::run(in, out, s);
    if (out.size() > 1 && out[1].data) std::memset(out[1].data, 1, out[1].nbytes());  // inference keeps everything
  }
};

class ReshapeOp : public CopyOp {
 public:
  explicit ReshapeOp(const OpContext& c) : node_(c.node) {
    allowzero_ = c.attrs().get_int("allowzero", 0) != 0;
    attr_shape_ = c.attrs().get_ints("shape");
  }
  std::vector<int> value_inputs() const override { return {1}; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    std::vector<int64_t> target = in.size() > 1 ? ints_of(in[1], node_, "shape") : attr_shape_;
    const Shape& x = in[0].shape;
    int64_t known = 1, infer_at = -1;
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i] == 0 && !allowzero_) {
        PYCNN_CHECK(i < x.size(), ErrorCode::InvalidArgument, where(node_), ": shape ", shape_str(target),
                    " copies dim ", i, " but the input ", shape_str(x), " has rank ", x.size());
        target[i] = x[i];
      }
      if (target[i] == -1) {
        PYCNN_CHECK(infer_at < 0, ErrorCode::InvalidArgument, where(node_), ": shape ", shape_str(target), " has two -1");
        infer_at = int64_t(i);
      } else {
        PYCNN_CHECK(target[i] >= 0, ErrorCode::InvalidArgument, where(node_), ": invalid dim in shape ", shape_str(target));
        known *= target[i];
      }
    }
    const int64_t n = shape_numel(x);
    if (infer_at >= 0) {
      PYCNN_CHECK(known > 0 && n % known == 0, ErrorCode::InvalidArgument, where(node_), ": cannot reshape ", shape_str(x),
                  " to ", shape_str(target));
      target[size_t(infer_at)] = n / known;
    }
    PYCNN_CHECK(shape_numel(target) == n, ErrorCode::InvalidArgument, where(node_), ": cannot reshape ", shape_str(x),
                " (", n, " elements) to ", shape_str(target));
    return {TensorInfo{in[0].dtype, target}};
  }

 private:
  Node node_;
  bool allowzero_;
  std::vector<int64_t> attr_shape_;
};

class FlattenOp : public CopyOp {
 public:
  explicit FlattenOp(const OpContext& c) : node_(c.node), axis_(c.attrs().get_int("axis", 1)) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    const int64_t r = int64_t(x.size());
    PYCNN_CHECK(axis_ >= -r && axis_ <= r, ErrorCode::InvalidArgument, where(node_), ": axis ", axis_, " out of range for rank ", r);
    const int64_t a = axis_ < 0 ? axis_ + r : axis_;
    const int64_t outer = shape_numel(Shape(x.begin(), x.begin() + a));
    return {TensorInfo{in[0].dtype, Shape{outer, shape_numel(x) / std::max<int64_t>(outer, 1) * (outer == 0 ? 0 : 1)}}};
  }

 private:
  Node node_;
  int64_t axis_;
};

class SqueezeOp : public CopyOp {
 public:
  SqueezeOp(const OpContext& c, bool unsqueeze) : node_(c.node), unsqueeze_(unsqueeze), attr_axes_(c.attrs().get_ints("axes")) {}
  std::vector<int> value_inputs() const override { return {1}; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    std::vector<int64_t> axes = in.size() > 1 && in[1].present ? ints_of(in[1], node_, "axes") : attr_axes_;
    const Shape& x = in[0].shape;
    Shape out;
    if (unsqueeze_) {
      const int64_t r = int64_t(x.size() + axes.size());
      std::vector<bool> ins(size_t(r), false);
      for (int64_t a : axes) {
        const int64_t n = normalize_axis(a, r, node_);
        PYCNN_CHECK(!ins[size_t(n)], ErrorCode::InvalidArgument, where(node_), ": axis ", a, " repeated");
        ins[size_t(n)] = true;
      }
      size_t k = 0;
      for (int64_t i = 0; i < r; ++i) out.push_back(ins[size_t(i)] ? 1 : x[k++]);
    } else {
      const int64_t r = int64_t(x.size());
      std::vector<bool> drop(size_t(r), axes.empty());
      if (axes.empty())
        for (int64_t i = 0; i < r; ++i) drop[size_t(i)] = x[size_t(i)] == 1;
      for (int64_t a : axes) {
        const int64_t n = normalize_axis(a, r, node_);
        PYCNN_CHECK(x[size_t(n)] == 1, ErrorCode::InvalidArgument, where(node_), ": cannot squeeze axis ", a, " of shape ",
                    shape_str(x), " (size ", x[size_t(n)], ", not 1)");
        drop[size_t(n)] = true;
      }
      for (int64_t i = 0; i < r; ++i)
        if (!drop[size_t(i)]) out.push_back(x[size_t(i)]);
    }
    return {TensorInfo{in[0].dtype, out}};
  }

 private:
  Node node_;
  bool unsqueeze_;
  std::vector<int64_t> attr_axes_;
};

class ShapeOp : public Op {
 public:
  explicit ShapeOp(const OpContext& c) : start_(c.attrs().get_int("start", 0)), end_(c.attrs().get_int("end", INT64_MAX)) {}
  bool shape_only() const override { return true; }
  void range(int64_t r, int64_t& s, int64_t& e) const {
    s = start_ < 0 ? std::max<int64_t>(0, start_ + r) : std::min(start_, r);
    e = end_ < 0 ? std::max<int64_t>(0, end_ + r) : std::min(end_, r);
    e = std::max(e, s);
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    int64_t s, e;
    range(int64_t(in[0].shape.size()), s, e);
    return {TensorInfo{DType::i64, Shape{e - s}}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    int64_t s, e;
    range(in[0].rank(), s, e);
    for (int64_t i = s; i < e; ++i) out[0].ptr<int64_t>()[i - s] = in[0].shape[size_t(i)];
  }

 private:
  int64_t start_, end_;
};

class ConstantOfShapeOp : public Op {
 public:
  explicit ConstantOfShapeOp(const OpContext& c) : node_(c.node) {
    if (const Attribute* a = c.attrs().find("value")) value_ = a->t;
    else {
      value_ = Tensor::allocate(DType::f32, Shape{1});
    }
    PYCNN_CHECK(value_.numel() == 1, ErrorCode::InvalidModel, where(node_), ": 'value' must hold one element");
  }
  std::vector<int> value_inputs() const override { return {0}; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    Shape s = ints_of(in[0], node_, "input");
    for (int64_t d : s) PYCNN_CHECK(d >= 0, ErrorCode::InvalidArgument, where(node_), ": negative dim in ", shape_str(s));
    return {TensorInfo{value_.dtype, s}};
  }
  void run(const std::vector<Tensor>&, std::vector<Tensor>& out, void*) override {
    const size_t es = dtype_size(value_.dtype);
    for (int64_t i = 0; i < out[0].numel(); ++i) std::memcpy(bytes(out[0]) + i * es, value_.data, es);
  }

 private:
  Node node_;
  Tensor value_;
};

class RangeOp : public Op {
 public:
  explicit RangeOp(const OpContext& c) : node_(c.node) {}
  std::vector<int> value_inputs() const override { return {0, 1, 2}; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    for (int i = 0; i < 3; ++i)
      PYCNN_CHECK(in[size_t(i)].value, ErrorCode::Unsupported, where(node_), ": start/limit/delta must be known before run");
    const double s = in[0].value->as_doubles()[0], l = in[1].value->as_doubles()[0], d = in[2].value->as_doubles()[0];
    PYCNN_CHECK(d != 0, ErrorCode::InvalidArgument, where(node_), ": delta must not be 0");
    const int64_t n = std::max<int64_t>(0, int64_t(std::ceil((l - s) / d)));
    return {TensorInfo{in[0].dtype, Shape{n}}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    PYCNN_DISPATCH_NUMERIC(in[0].dtype, T, node_, {
      const T s = in[0].ptr<T>()[0], d = in[2].ptr<T>()[0];
      T* y = out[0].ptr<T>();
      for (int64_t i = 0; i < out[0].numel(); ++i) y[i] = T(s + T(i) * d);
    });
  }

 private:
  Node node_;
};

class ExpandOp : public Op {
 public:
  explicit ExpandOp(const OpContext& c) : node_(c.node) {}
  std::vector<int> value_inputs() const override { return {1}; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    return {TensorInfo{in[0].dtype, broadcast_shapes(in[0].shape, ints_of(in[1], node_, "shape"), node_)}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& o = out[0].shape;
    const Shape& x = in[0].shape;
    std::vector<int64_t> st(o.size(), 0);
    const auto cs = contiguous_strides(x);
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t d = o.size() - x.size() + i;
      st[d] = x[i] == 1 ? 0 : cs[i];
    }
    strided_copy(cbytes(in[0]), 0, st, bytes(out[0]), o, dtype_size(in[0].dtype));
  }

 private:
  Node node_;
};

class TileOp : public Op {
 public:
  explicit TileOp(const OpContext& c) : node_(c.node) {}
  std::vector<int> value_inputs() const override { return {1}; }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const auto reps = ints_of(in[1], node_, "repeats");
    const Shape& x = in[0].shape;
    PYCNN_CHECK(reps.size() == x.size(), ErrorCode::InvalidArgument, where(node_), ": repeats ", shape_str(reps),
                " must have one value per input dim ", shape_str(x));
    Shape o(x);
    for (size_t i = 0; i < x.size(); ++i) {
      PYCNN_CHECK(reps[i] >= 0, ErrorCode::InvalidArgument, where(node_), ": negative repeat ", reps[i]);
      o[i] *= reps[i];
    }
    return {TensorInfo{in[0].dtype, o}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape &x = in[0].shape, &o = out[0].shape;
    const size_t es = dtype_size(in[0].dtype);
    const auto xs = contiguous_strides(x);
    const int r = int(o.size());
    std::vector<int64_t> idx(size_t(r), 0);
    for (int64_t i = 0; i < out[0].numel(); ++i) {
      int64_t off = 0;
      for (int d = 0; d < r; ++d) off += (idx[size_t(d)] % x[size_t(d)]) * xs[size_t(d)];
      std::memcpy(bytes(out[0]) + i * es, cbytes(in[0]) + off * es, es);
      for (int d = r - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < o[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  }

 private:
  Node node_;
};

class ConcatOp : public Op {
 public:
  explicit ConcatOp(const OpContext& c) : node_(c.node), axis_(c.attrs().get_int("axis", 1)) {
    PYCNN_CHECK(c.attrs().has("axis"), ErrorCode::InvalidModel, where(node_), ": attribute 'axis' is required");
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    Shape o = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(o.size()), node_);
    for (size_t i = 1; i < in.size(); ++i) {
      const Shape& s = in[i].shape;
      bool ok = s.size() == o.size() && in[i].dtype == in[0].dtype;
      for (size_t d = 0; ok && d < s.size(); ++d) ok = int64_t(d) == a || s[d] == o[d];
      PYCNN_CHECK(ok, ErrorCode::InvalidArgument, where(node_), ": input ", i, " ", shape_str(s), " (", dtype_name(in[i].dtype),
                  ") does not match ", shape_str(in[0].shape), " (", dtype_name(in[0].dtype), ") outside axis ", a);
      o[size_t(a)] += s[size_t(a)];
    }
    return {TensorInfo{in[0].dtype, o}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& o = out[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(o.size()), node_);
    const size_t es = dtype_size(out[0].dtype);
    const int64_t outer = shape_numel(Shape(o.begin(), o.begin() + a));
    const int64_t inner = shape_numel(Shape(o.begin() + a + 1, o.end()));
    const int64_t out_row = o[size_t(a)] * inner;
    // The output's elements, split across threads (DenseNet concatenates
    // whole feature maps at every layer): element e of output row i comes
    // from the input whose slice of the row holds e.
    std::vector<int64_t> starts{0};
    for (const Tensor& t : in) starts.push_back(starts.back() + t.shape[size_t(a)] * inner);
    parallel_elements(outer * out_row, [&](int64_t begin, int64_t end) {
      while (begin < end) {
        const int64_t i = begin / out_row, e = begin % out_row;
        const size_t k = size_t(std::upper_bound(starts.begin(), starts.end(), e) - starts.begin() - 1);
        const int64_t row = starts[k + 1] - starts[k], n = std::min(end - begin, starts[k + 1] - e);
        const char* src = cbytes(in[k]) + (i * row + e - starts[k]) * es;
        char* dst = bytes(out[0]) + begin * es;
        if (src != dst) std::memcpy(dst, src, size_t(n) * es);  // equal: the input was written in place
        begin += n;
      }
    });
  }

 private:
  Node node_;
  int64_t axis_;
};

class SplitOp : public Op {
 public:
  explicit SplitOp(const OpContext& c) : node_(c.node), axis_(c.attrs().get_int("axis", 0)), split_(c.attrs().get_ints("split")) {
    outputs_ = int64_t(c.node.outputs.size());
  }
  std::vector<int> value_inputs() const override { return {1}; }
  std::vector<int64_t> sizes(const std::vector<TensorInfo>& in) const {
    const Shape& x = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_), dim = x[size_t(a)];
    std::vector<int64_t> s = in.size() > 1 && in[1].present ? ints_of(in[1], node_, "split") : split_;
    if (s.empty()) {
      const int64_t chunk = (dim + outputs_ - 1) / outputs_;
      for (int64_t i = 0; i < outputs_; ++i) s.push_back(std::max<int64_t>(0, std::min(chunk, dim - i * chunk)));
    }
    int64_t total = 0;
    for (int64_t v : s) total += v;
    PYCNN_CHECK(int64_t(s.size()) == outputs_ && total == dim, ErrorCode::InvalidArgument, where(node_), ": split ",
                shape_str(s), " must have ", outputs_, " parts summing to ", dim);
    return s;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_);
    std::vector<TensorInfo> out;
    for (int64_t s : sizes(in)) {
      Shape o = x;
      o[size_t(a)] = s;
      out.push_back(TensorInfo{in[0].dtype, o});
    }
    return out;
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& x = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_);
    const size_t es = dtype_size(in[0].dtype);
    const int64_t outer = shape_numel(Shape(x.begin(), x.begin() + a));
    const int64_t inner = shape_numel(Shape(x.begin() + a + 1, x.end()));
    const int64_t in_row = x[size_t(a)] * inner;
    int64_t at = 0;
    for (Tensor& t : out) {
      if (!t.data) { at += t.shape[size_t(a)] * inner; continue; }
      const int64_t row = t.shape[size_t(a)] * inner;
      for (int64_t i = 0; i < outer; ++i)
        std::memcpy(bytes(t) + i * row * es, cbytes(in[0]) + (i * in_row + at) * es, size_t(row) * es);
      at += row;
    }
  }

 private:
  Node node_;
  int64_t axis_;
  std::vector<int64_t> split_;
  int64_t outputs_;
};

class SliceOp : public Op {
 public:
  explicit SliceOp(const OpContext& c) : node_(c.node) {
    legacy_ = c.node.opset < 10;
    starts_ = c.attrs().get_ints("starts");
    ends_ = c.attrs().get_ints("ends");
    axes_ = c.attrs().get_ints("axes");
  }
  std::vector<int> value_inputs() const override { return {1, 2, 3, 4}; }
  struct Plan {
    Shape out;
    int64_t offset = 0;
    std::vector<int64_t> strides;
  };
  Plan plan(const Shape& x, const std::vector<TensorInfo>& in) const {
    std::vector<int64_t> st = starts_, en = ends_, ax = axes_, sp;
    if (!legacy_) {
      st = ints_of(in[1], node_, "starts");
      en = ints_of(in[2], node_, "ends");
      ax = in.size() > 3 && in[3].present ? ints_of(in[3], node_, "axes") : std::vector<int64_t>{};
      if (in.size() > 4 && in[4].present) sp = ints_of(in[4], node_, "steps");
    }
    const int64_t r = int64_t(x.size());
    if (ax.empty()) for (size_t i = 0; i < st.size(); ++i) ax.push_back(int64_t(i));
    if (sp.empty()) sp.assign(st.size(), 1);
    PYCNN_CHECK(st.size() == en.size() && st.size() == ax.size() && st.size() == sp.size(), ErrorCode::InvalidArgument,
                where(node_), ": starts, ends, axes and steps must have the same length");
    Plan p;
    p.out = x;
    const auto cs = contiguous_strides(x);
    p.strides = cs;
    for (size_t i = 0; i < st.size(); ++i) {
      const int64_t a = normalize_axis(ax[i], r, node_), dim = x[size_t(a)], step = sp[i];
      PYCNN_CHECK(step != 0, ErrorCode::InvalidArgument, where(node_), ": step must not be 0");
      auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(v, hi)); };
      int64_t s = st[i] < 0 ? st[i] + dim : st[i], e = en[i] < 0 ? en[i] + dim : en[i];
      int64_t n;
      if (step > 0) {
        s = clampi(s, 0, dim);
        e = clampi(e, 0, dim);
        n = e > s ? (e - s + step - 1) / step : 0;
      } else {
        s = clampi(s, 0, dim - 1);
        e = clampi(e, -1, dim - 1);
        n = s > e ? (s - e + (-step) - 1) / (-step) : 0;
      }
      p.out[size_t(a)] = n;
      p.offset += s * cs[size_t(a)];
      p.strides[size_t(a)] = cs[size_t(a)] * step;
    }
    return p;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override { return {TensorInfo{in[0].dtype, plan(in[0].shape, in).out}}; }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const std::vector<TensorInfo> info = infos_of(in);
    const Plan p = plan(in[0].shape, info);
    strided_copy(cbytes(in[0]), p.offset, p.strides, bytes(out[0]), p.out, dtype_size(in[0].dtype));
  }

 private:
  Node node_;
  bool legacy_;
  std::vector<int64_t> starts_, ends_, axes_;
};

class TransposeOp : public Op {
 public:
  explicit TransposeOp(const OpContext& c) : node_(c.node), perm_(c.attrs().get_ints("perm")) {}
  std::vector<int64_t> perm(size_t r) const {
    std::vector<int64_t> p = perm_;
    if (p.empty()) for (size_t i = 0; i < r; ++i) p.push_back(int64_t(r - 1 - i));
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i)
      PYCNN_CHECK(sorted[i] == int64_t(i) && p.size() == r, ErrorCode::InvalidArgument, where(node_), ": perm ",
                  shape_str(p), " is not a permutation of ", r, " axes");
    return p;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const auto p = perm(in[0].shape.size());
    Shape o;
    for (int64_t d : p) o.push_back(in[0].shape[size_t(d)]);
    return {TensorInfo{in[0].dtype, o}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const auto p = perm(in[0].shape.size());
    const auto cs = contiguous_strides(in[0].shape);
    std::vector<int64_t> st;
    for (int64_t d : p) st.push_back(cs[size_t(d)]);
    strided_copy(cbytes(in[0]), 0, st, bytes(out[0]), out[0].shape, dtype_size(in[0].dtype));
  }

 private:
  Node node_;
  std::vector<int64_t> perm_;
};

class GatherOp : public Op {
 public:
  explicit GatherOp(const OpContext& c) : node_(c.node), axis_(c.attrs().get_int("axis", 0)) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    PYCNN_CHECK(in[1].dtype == DType::i64 || in[1].dtype == DType::i32, ErrorCode::InvalidArgument, where(node_),
                ": indices must be int64 or int32, got ", dtype_name(in[1].dtype));
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_);
    Shape o(x.begin(), x.begin() + a);
    o.insert(o.end(), in[1].shape.begin(), in[1].shape.end());
    o.insert(o.end(), x.begin() + a + 1, x.end());
    return {TensorInfo{in[0].dtype, o}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& x = in[0].shape;
    const int64_t a = normalize_axis(axis_, int64_t(x.size()), node_), dim = x[size_t(a)];
    const size_t es = dtype_size(in[0].dtype);
    const int64_t outer = shape_numel(Shape(x.begin(), x.begin() + a));
    const int64_t inner = shape_numel(Shape(x.begin() + a + 1, x.end()));
    const auto idx = in[1].as_ints();
    const int64_t n = int64_t(idx.size());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n; ++j) {
        int64_t k = idx[size_t(j)];
        PYCNN_CHECK(k >= -dim && k < dim, ErrorCode::InvalidArgument, where(node_), ": index ", k,
                    " is out of range for axis of size ", dim);
        if (k < 0) k += dim;
        std::memcpy(bytes(out[0]) + ((o * n + j) * inner) * es, cbytes(in[0]) + ((o * dim + k) * inner) * es, size_t(inner) * es);
      }
  }

 private:
  Node node_;
  int64_t axis_;
};

class PadOp : public Op {
 public:
  explicit PadOp(const OpContext& c) : node_(c.node) {
    mode_ = c.attrs().get_string("mode", "constant");
    attr_pads_ = c.attrs().get_ints("pads");
    attr_value_ = c.attrs().get_float("value", 0.0);
    PYCNN_CHECK(mode_ == "constant" || mode_ == "reflect" || mode_ == "edge" || mode_ == "wrap", ErrorCode::Unsupported,
                where(node_), ": mode '", mode_, "' is not supported (constant, reflect, edge, wrap)");
  }
  std::vector<int> value_inputs() const override { return {1, 3}; }
  std::vector<int64_t> pads(const std::vector<TensorInfo>& in) const {
    const int64_t r = int64_t(in[0].shape.size());
    std::vector<int64_t> p = node_.opset < 11 ? attr_pads_ : ints_of(in[1], node_, "pads");
    if (in.size() > 3 && in[3].present) {  // axes: pads cover only these axes
      const auto axes = ints_of(in[3], node_, "axes");
      PYCNN_CHECK(p.size() == 2 * axes.size(), ErrorCode::InvalidArgument, where(node_), ": pads must have 2 values per axis");
      std::vector<int64_t> full(size_t(2 * r), 0);
      for (size_t i = 0; i < axes.size(); ++i) {
        const int64_t a = normalize_axis(axes[i], r, node_);
        full[size_t(a)] = p[i];
        full[size_t(a + r)] = p[i + axes.size()];
      }
      p = full;
    }
    PYCNN_CHECK(int64_t(p.size()) == 2 * r, ErrorCode::InvalidArgument, where(node_), ": pads has ", p.size(),
                " values, expected ", 2 * r);
    return p;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const auto p = pads(in);
    const Shape& x = in[0].shape;
    Shape o(x);
    for (size_t i = 0; i < x.size(); ++i) {
      o[i] = x[i] + p[i] + p[i + x.size()];
      PYCNN_CHECK(o[i] >= 0, ErrorCode::InvalidArgument, where(node_), ": pads remove more than the input has");
      if (mode_ == "reflect") PYCNN_CHECK(x[i] > std::max(p[i], p[i + x.size()]) || (p[i] <= 0 && p[i + x.size()] <= 0),
                                          ErrorCode::InvalidArgument, where(node_), ": reflect pads must be smaller than the dim");
      if (mode_ != "constant") PYCNN_CHECK(x[i] > 0 || o[i] == 0, ErrorCode::InvalidArgument, where(node_), ": cannot pad an empty dim in mode ", mode_);
    }
    return {TensorInfo{in[0].dtype, o}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const std::vector<TensorInfo> info = infos_of(in);
    const auto p = pads(info);
    const Shape &x = in[0].shape, &o = out[0].shape;
    const int r = int(x.size());
    const size_t es = dtype_size(in[0].dtype);
    // The constant, converted to the tensor's dtype.
    alignas(8) char fill[8] = {};
    double v = attr_value_;
    if (in.size() > 2 && in[2].data) v = in[2].as_doubles()[0];
    PYCNN_DISPATCH_NUMERIC(in[0].dtype, T, node_, { T t = T(v); std::memcpy(fill, &t, sizeof(T)); });
    const auto xs = contiguous_strides(x);
    std::vector<int64_t> idx(size_t(r), 0);
    for (int64_t i = 0; i < out[0].numel(); ++i) {
      int64_t off = 0;
      bool inside = true;
      for (int d = 0; d < r && inside; ++d) {
        int64_t s = idx[size_t(d)] - p[size_t(d)];
        const int64_t n = x[size_t(d)];
        if (s < 0 || s >= n) {
          if (mode_ == "constant") inside = false;
          else if (mode_ == "edge") s = s < 0 ? 0 : n - 1;
          else if (mode_ == "wrap") s = ((s % n) + n) % n;
          else {  // reflect without repeating the edge
            const int64_t period = 2 * (n - 1);
            if (period == 0) s = 0;
            else {
              s = ((s % period) + period) % period;
              if (s >= n) s = period - s;
            }
          }
        }
        off += s * xs[size_t(d)];
      }
      std::memcpy(bytes(out[0]) + i * es, inside ? cbytes(in[0]) + off * es : fill, es);
      for (int d = r - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < o[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  }

 private:
  Node node_;
  std::string mode_;
  std::vector<int64_t> attr_pads_;
  double attr_value_;
};

// DepthToSpace / SpaceToDepth as a 6-D transpose.
class DepthSpaceOp : public Op {
 public:
  DepthSpaceOp(const OpContext& c, bool to_space) : node_(c.node), to_space_(to_space) {
    b_ = c.attrs().get_int("blocksize", 0);
    crd_ = c.attrs().get_string("mode", "DCR") == "CRD";
    PYCNN_CHECK(b_ >= 1, ErrorCode::InvalidModel, where(node_), ": blocksize must be >= 1");
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    PYCNN_CHECK(x.size() == 4, ErrorCode::InvalidArgument, where(node_), ": input must be 4-D (N, C, H, W), got ", shape_str(x));
    if (to_space_) {
      PYCNN_CHECK(x[1] % (b_ * b_) == 0, ErrorCode::InvalidArgument, where(node_), ": channels ", x[1], " not divisible by blocksize^2");
      return {TensorInfo{in[0].dtype, Shape{x[0], x[1] / (b_ * b_), x[2] * b_, x[3] * b_}}};
    }
    PYCNN_CHECK(x[2] % b_ == 0 && x[3] % b_ == 0, ErrorCode::InvalidArgument, where(node_), ": H and W must be divisible by blocksize");
    return {TensorInfo{in[0].dtype, Shape{x[0], x[1] * b_ * b_, x[2] / b_, x[3] / b_}}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& x = in[0].shape;
    const int64_t N = x[0], b = b_;
    Shape view, perm;
    if (to_space_) {
      const int64_t C = x[1] / (b * b), H = x[2], W = x[3];
      if (crd_) { view = {N, C, b, b, H, W}; perm = {0, 1, 4, 2, 5, 3}; }
      else { view = {N, b, b, C, H, W}; perm = {0, 3, 4, 1, 5, 2}; }
    } else {
      const int64_t C = x[1], H = x[2] / b, W = x[3] / b;
      view = {N, C, H, b, W, b};
      perm = crd_ ? Shape{0, 1, 3, 5, 2, 4} : Shape{0, 3, 5, 1, 2, 4};
    }
    const auto cs = contiguous_strides(view);
    Shape oshape;
    std::vector<int64_t> st;
    for (int64_t d : perm) {
      oshape.push_back(view[size_t(d)]);
      st.push_back(cs[size_t(d)]);
    }
    strided_copy(cbytes(in[0]), 0, st, bytes(out[0]), oshape, dtype_size(in[0].dtype));
  }

 private:
  Node node_;
  bool to_space_, crd_;
  int64_t b_;
};

}  // namespace

std::unique_ptr<Op> make_identity(const OpContext&) { return std::make_unique<IdentityOp>(); }
std::unique_ptr<Op> make_dropout(const OpContext&) { return std::make_unique<DropoutOp>(); }
std::unique_ptr<Op> make_reshape(const OpContext& c) { return std::make_unique<ReshapeOp>(c); }
std::unique_ptr<Op> make_flatten(const OpContext& c) { return std::make_unique<FlattenOp>(c); }
std::unique_ptr<Op> make_squeeze(const OpContext& c) { return std::make_unique<SqueezeOp>(c, false); }
std::unique_ptr<Op> make_unsqueeze(const OpContext& c) { return std::make_unique<SqueezeOp>(c, true); }
std::unique_ptr<Op> make_shape(const OpContext& c) { return std::make_unique<ShapeOp>(c); }
std::unique_ptr<Op> make_constant_of_shape(const OpContext& c) { return std::make_unique<ConstantOfShapeOp>(c); }
std::unique_ptr<Op> make_range(const OpContext& c) { return std::make_unique<RangeOp>(c); }
std::unique_ptr<Op> make_expand(const OpContext& c) { return std::make_unique<ExpandOp>(c); }
std::unique_ptr<Op> make_tile(const OpContext& c) { return std::make_unique<TileOp>(c); }
std::unique_ptr<Op> make_concat(const OpContext& c) { return std::make_unique<ConcatOp>(c); }
std::unique_ptr<Op> make_split(const OpContext& c) { return std::make_unique<SplitOp>(c); }
std::unique_ptr<Op> make_slice(const OpContext& c) { return std::make_unique<SliceOp>(c); }
std::unique_ptr<Op> make_transpose(const OpContext& c) { return std::make_unique<TransposeOp>(c); }
std::unique_ptr<Op> make_gather(const OpContext& c) { return std::make_unique<GatherOp>(c); }
std::unique_ptr<Op> make_pad(const OpContext& c) { return std::make_unique<PadOp>(c); }
std::unique_ptr<Op> make_depth_to_space(const OpContext& c) { return std::make_unique<DepthSpaceOp>(c, true); }
std::unique_ptr<Op> make_space_to_depth(const OpContext& c) { return std::make_unique<DepthSpaceOp>(c, false); }

}  // namespace pycnn
