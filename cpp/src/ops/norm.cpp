// Normalizations: BatchNormalization (inference), InstanceNormalization,
// LayerNormalization, GroupNormalization, LRN.
#include <cmath>

#include "core/parallel.h"
#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {


void require_f32(const std::vector<TensorInfo>& in, const Node& node) {
  for (auto& t : in)
    PYCNN_CHECK(!t.present || t.dtype == DType::f32, ErrorCode::Unsupported, where(node), ": dtype ",
                dtype_name(t.dtype), " is not supported (float32 only)");
}

// y = x * a[c] + b[c] over (N, C, plane) with the fused activation.
void channel_affine(const float* x, float* y, int64_t batch, int64_t C, int64_t plane, const float* a, const float* b,
                    const kernels::Activation& act) {
  const auto& kt = kernels::active();
  parallel_for(batch * C, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const int64_t c = i % C;
      const float* xs = x + i * plane;
      float* ys = y + i * plane;
      kt.binary(kernels::BinaryKind::Mul, xs, 1, a + c, 0, ys, plane);
      kt.bias_act(ys, plane, b[c], act);
    }
  });
}

class BatchNormOp : public Op {
 public:
  explicit BatchNormOp(const OpContext& c) : node_(c.node) {
    eps_ = float(c.attrs().get_float("epsilon", 1e-5));
    PYCNN_CHECK(c.attrs().get_int("training_mode", 0) == 0, ErrorCode::Unsupported, where(node_),
                ": training_mode=1 is not supported (pycnn is an inference engine)");
    act_ = fused_activation(c.attrs());
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    require_f32(in, node_);
    PYCNN_CHECK(in.size() == 5, ErrorCode::InvalidModel, where(node_), ": needs 5 inputs (X, scale, B, mean, var)");
    PYCNN_CHECK(in[0].shape.size() >= 2, ErrorCode::InvalidArgument, where(node_), ": input must be (N, C, ...), got ",
                shape_str(in[0].shape));
    const int64_t C = in[0].shape[1];
    const char* names[] = {"", "scale", "B", "mean", "var"};
    for (int i = 1; i < 5; ++i) require_channel_vector(in[i], C, names[i], node_);
    return {TensorInfo{DType::f32, in[0].shape}};
  }
  size_t scratch_bytes(const std::vector<TensorInfo>& in) override { return 2 * size_t(in[0].shape[1]) * sizeof(float); }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Shape& s = in[0].shape;
    const int64_t C = s[1], plane = in[0].numel() / std::max<int64_t>(1, s[0] * C);
    float* a = static_cast<float*>(scratch);
    float* b = a + C;
    for (int64_t c = 0; c < C; ++c) {
      a[c] = in[1].ptr<float>()[c] / std::sqrt(in[4].ptr<float>()[c] + eps_);
      b[c] = in[2].ptr<float>()[c] - in[3].ptr<float>()[c] * a[c];
    }
    channel_affine(in[0].ptr<float>(), out[0].ptr<float>(), s[0], C, plane, a, b, act_);
  }

 private:
  Node node_;
  float eps_;
  kernels::Activation act_;
};

// Mean and 1/sqrt(var + eps) of n values (two passes in double for accuracy).
void moments(const float* x, int64_t n, float eps, float& mean, float& inv_std) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const double m = s / double(n);
  double v = 0;
  for (int64_t i = 0; i < n; ++i) v += (x[i] - m) * (x[i] - m);
  mean = float(m);
  inv_std = float(1.0 / std::sqrt(v / double(n) + eps));
}

class InstanceNormOp : public Op {
 public:
  explicit InstanceNormOp(const OpContext& c) : node_(c.node), eps_(float(c.attrs().get_float("epsilon", 1e-5))) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    require_f32(in, node_);
    PYCNN_CHECK(in.size() == 3 && in[0].shape.size() >= 3, ErrorCode::InvalidArgument, where(node_),
                ": needs X (N, C, spatial...), scale and B; got X ", shape_str(in[0].shape));
    require_channel_vector(in[1], in[0].shape[1], "scale", node_);
    require_channel_vector(in[2], in[0].shape[1], "B", node_);
    return {TensorInfo{DType::f32, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const int64_t C = in[0].shape[1], planes = in[0].shape[0] * C, n = in[0].numel() / std::max<int64_t>(planes, 1);
    const float *x = in[0].ptr<float>(), *scale = in[1].ptr<float>(), *bias = in[2].ptr<float>();
    float* y = out[0].ptr<float>();
    parallel_for(planes, [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) {
        float m, r;
        moments(x + p * n, n, eps_, m, r);
        // (x - mean) first: with a tiny variance, x * a and mean * a are huge and cancel.
        const float a = scale[p % C] * r, b = bias[p % C];
        for (int64_t i = 0; i < n; ++i) y[p * n + i] = (x[p * n + i] - m) * a + b;
      }
    });
  }

 private:
  Node node_;
  float eps_;
};

class LayerNormOp : public Op {
 public:
  explicit LayerNormOp(const OpContext& c) : node_(c.node) {
    axis_ = c.attrs().get_int("axis", -1);
    eps_ = float(c.attrs().get_float("epsilon", 1e-5));
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    require_f32(in, node_);
    const Shape& x = in[0].shape;
    const int64_t axis = normalize_axis(axis_, int64_t(x.size()), node_);
    const Shape norm(x.begin() + axis, x.end());
    for (size_t i = 1; i < in.size() && i < 3; ++i)
      if (in[i].present)
        PYCNN_CHECK(broadcast_shapes(in[i].shape, norm, node_) == norm, ErrorCode::InvalidArgument, where(node_),
                    ": ", i == 1 ? "scale " : "B ", shape_str(in[i].shape), " must broadcast to ", shape_str(norm));
    Shape stat(x.begin(), x.begin() + axis);
    stat.resize(x.size(), 1);
    return {TensorInfo{DType::f32, x}, TensorInfo{DType::f32, stat}, TensorInfo{DType::f32, stat}};
  }
  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    const int64_t axis = normalize_axis(axis_, int64_t(x.size()), node_);
    return 2 * size_t(shape_numel(Shape(x.begin() + axis, x.end()))) * sizeof(float);
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Shape& x = in[0].shape;
    const int64_t axis = normalize_axis(axis_, int64_t(x.size()), node_);
    const Shape norm(x.begin() + axis, x.end());
    const int64_t n = shape_numel(norm), rows = in[0].numel() / std::max<int64_t>(n, 1);
    float* scale = static_cast<float*>(scratch);
    float* bias = scale + n;
    expand_param(in[1], norm, scale, 1.f);
    expand_param(in.size() > 2 ? in[2] : Tensor(), norm, bias, 0.f);
    const float* xp = in[0].ptr<float>();
    float* yp = out[0].ptr<float>();
    float* mean_out = out.size() > 1 ? out[1].ptr<float>() : nullptr;
    float* inv_out = out.size() > 2 ? out[2].ptr<float>() : nullptr;
    parallel_for(rows, [&](int64_t s, int64_t e) {
      for (int64_t r = s; r < e; ++r) {
        float m, inv;
        moments(xp + r * n, n, eps_, m, inv);
        if (mean_out) mean_out[r] = m;
        if (inv_out) inv_out[r] = inv;
        for (int64_t i = 0; i < n; ++i) yp[r * n + i] = (xp[r * n + i] - m) * inv * scale[i] + bias[i];
      }
    });
  }

 private:
  // Broadcasts a scale/bias tensor to the normalized shape (or fills `fill`).
  static void expand_param(const Tensor& t, const Shape& norm, float* out, float fill) {
    const int64_t n = shape_numel(norm);
    if (!t.data) {
      for (int64_t i = 0; i < n; ++i) out[i] = fill;
      return;
    }
    BroadcastWalk walk(norm, {t.shape});
    for (int64_t o = 0; o < walk.outer_count; ++o) {
      int64_t off;
      walk.offsets(o, &off);
      for (int64_t i = 0; i < walk.inner; ++i) out[o * walk.inner + i] = t.ptr<float>()[off + i * walk.inner_stride[0]];
    }
  }
  Node node_;
  int64_t axis_;
  float eps_;
};

class GroupNormOp : public Op {
 public:
  explicit GroupNormOp(const OpContext& c) : node_(c.node) {
    groups_ = c.attrs().get_int("num_groups", 0);
    eps_ = float(c.attrs().get_float("epsilon", 1e-5));
    PYCNN_CHECK(groups_ >= 1, ErrorCode::InvalidModel, where(node_), ": attribute num_groups must be >= 1");
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    require_f32(in, node_);
    const Shape& x = in[0].shape;
    PYCNN_CHECK(x.size() >= 2 && x[1] % groups_ == 0, ErrorCode::InvalidArgument, where(node_), ": input ", shape_str(x),
                " must be (N, C, ...) with C divisible by num_groups=", groups_);
    for (size_t i = 1; i < 3; ++i) {
      const int64_t n = shape_numel(in[i].shape);
      PYCNN_CHECK(n == x[1] || n == groups_, ErrorCode::InvalidArgument, where(node_), ": ", i == 1 ? "scale " : "bias ",
                  shape_str(in[i].shape), " must have C=", x[1], " (opset 21) or num_groups=", groups_, " (opset 18) values");
    }
    return {TensorInfo{DType::f32, x}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& x = in[0].shape;
    const int64_t C = x[1], cg = C / groups_, plane = in[0].numel() / std::max<int64_t>(1, x[0] * C);
    const float *xp = in[0].ptr<float>(), *scale = in[1].ptr<float>(), *bias = in[2].ptr<float>();
    const bool per_channel = in[1].numel() == C;
    float* yp = out[0].ptr<float>();
    parallel_for(x[0] * groups_, [&](int64_t s, int64_t e) {
      for (int64_t gi = s; gi < e; ++gi) {
        const int64_t n = cg * plane, g = gi % groups_;
        float m, inv;
        moments(xp + gi * n, n, eps_, m, inv);
        for (int64_t c = 0; c < cg; ++c) {
          const int64_t ch = g * cg + c, pi = per_channel ? ch : g;
          const float a = scale[pi] * inv, b = bias[pi];
          const float* xs = xp + gi * n + c * plane;
          float* ys = yp + gi * n + c * plane;
          for (int64_t i = 0; i < plane; ++i) ys[i] = (xs[i] - m) * a + b;
        }
      }
    });
  }

 private:
  Node node_;
  int64_t groups_;
  float eps_;
};

class LRNOp : public Op {
 public:
  explicit LRNOp(const OpContext& c) : node_(c.node) {
    size_ = c.attrs().get_int("size", 0);
    alpha_ = float(c.attrs().get_float("alpha", 1e-4));
    beta_ = float(c.attrs().get_float("beta", 0.75));
    bias_ = float(c.attrs().get_float("bias", 1.0));
    PYCNN_CHECK(size_ >= 1, ErrorCode::InvalidModel, where(node_), ": attribute size must be >= 1");
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    require_f32(in, node_);
    PYCNN_CHECK(in[0].shape.size() >= 2, ErrorCode::InvalidArgument, where(node_), ": input must be (N, C, ...)");
    return {TensorInfo{DType::f32, in[0].shape}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Shape& x = in[0].shape;
    const int64_t C = x[1], plane = in[0].numel() / std::max<int64_t>(1, x[0] * C);
    const int64_t before = (size_ - 1) / 2, after = size_ - 1 - before;
    const float* xp = in[0].ptr<float>();
    float* yp = out[0].ptr<float>();
    parallel_for(x[0] * C, [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) {
        const int64_t n = p / C, c = p % C;
        for (int64_t i = 0; i < plane; ++i) {
          double sq = 0;
          for (int64_t k = std::max<int64_t>(0, c - before); k <= std::min(C - 1, c + after); ++k) {
            const float v = xp[(n * C + k) * plane + i];
            sq += double(v) * v;
          }
          yp[p * plane + i] = float(xp[p * plane + i] / std::pow(bias_ + alpha_ / size_ * sq, beta_));
        }
      }
    });
  }

 private:
  Node node_;
  int64_t size_;
  float alpha_, beta_, bias_;
};

}  // namespace

std::unique_ptr<Op> make_batch_norm(const OpContext& c) { return std::make_unique<BatchNormOp>(c); }
std::unique_ptr<Op> make_instance_norm(const OpContext& c) { return std::make_unique<InstanceNormOp>(c); }
std::unique_ptr<Op> make_layer_norm(const OpContext& c) { return std::make_unique<LayerNormOp>(c); }
std::unique_ptr<Op> make_group_norm(const OpContext& c) { return std::make_unique<GroupNormOp>(c); }
std::unique_ptr<Op> make_lrn(const OpContext& c) { return std::make_unique<LRNOp>(c); }

}  // namespace pycnn
