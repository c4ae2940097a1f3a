// Conv (1-D/2-D): depthwise kernel when each group is one channel, otherwise
// im2col into packed panels + SGEMM with bias and activation in the epilogue.
// ConvTranspose (1-D/2-D): SGEMM (W^T X) then col2im.
#include <cstring>

#include "core/parallel.h"
#include "kernels/conv/im2col.h"
#include "kernels/gemm.h"
#include "ops/common.h"
#include "ops/op_list.h"
#include "ops/window.h"

namespace pycnn {
namespace {

using kernels::KernelTable;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }


class ConvOp : public Op {
 public:
  explicit ConvOp(const OpContext& c) : node_(c.node), attrs_(SpatialAttrs::parse(c.node)), kt_(&kernels::active()) {
    group_ = c.attrs().get_int("group", 1);
    PYCNN_CHECK(group_ >= 1, ErrorCode::InvalidModel, where(node_), ": group must be >= 1, got ", group_);
    act_ = fused_activation(c.attrs());
    if (const Tensor* w = c.constant(1)) prepack(*w);
  }

  std::string algorithm() const override {
    const bool fused = !act_.is_identity();
    return std::string(algo_) + (fused ? "+act" : "");
  }
  double flops(const std::vector<Tensor>& in, const std::vector<Tensor>& out) const override {
    return 2.0 * double(out[0].numel()) * double(in[1].numel() / std::max<int64_t>(in[1].shape[0], 1));
  }

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape &x = in[0].shape, &w = in[1].shape;
    PYCNN_CHECK(in[0].dtype == DType::f32 && in[1].dtype == DType::f32, ErrorCode::Unsupported, where(node_),
                ": only float32 is supported, got ", dtype_name(in[0].dtype));
    PYCNN_CHECK(x.size() >= 3 && w.size() == x.size(), ErrorCode::InvalidArgument, where(node_), ": input ",
                shape_str(x), " and weight ", shape_str(w), " must both be (N, C, spatial...) of the same rank");
    SpatialAttrs a = attrs_;
    if (a.kernel.empty()) a.kernel = spatial(w);
    a.complete(int(x.size()) - 2, node_);
    PYCNN_CHECK(a.kernel == spatial(w), ErrorCode::InvalidModel, where(node_), ": kernel_shape ", shape_str(a.kernel),
                " does not match the weight ", shape_str(w));
    PYCNN_CHECK(x[1] == w[1] * group_ && w[0] % group_ == 0, ErrorCode::InvalidArgument, where(node_), ": input has ",
                x[1], " channels but weight ", shape_str(w), " with group=", group_, " expects ", w[1] * group_,
                " (and output channels divisible by group)");
    if (in.size() > 2 && in[2].present)
      PYCNN_CHECK(in[2].shape == Shape{w[0]}, ErrorCode::InvalidArgument, where(node_), ": bias ", shape_str(in[2].shape),
                  " must have shape (", w[0], ",)");
    Shape out{x[0], w[0]};
    for (int64_t d : a.output_sizes(spatial(x), node_, nullptr)) out.push_back(d);
    return {TensorInfo{DType::f32, out}};
  }

  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    const Shape &x = in[0].shape, &w = in[1].shape, y = infer(in)[0].shape;
    if (is_depthwise(x, w)) {
      SpatialAttrs a = attrs_;
      if (a.kernel.empty()) a.kernel = spatial(w);
      a.complete(int(x.size()) - 2, node_);
      std::vector<int64_t> pads;
      const auto osz = a.output_sizes(spatial(x), node_, &pads);
      const int64_t per = kernels::depthwise_work_floats(make_window2d(spatial(x), osz, a, pads));
      return size_t(per) * size_t(current_num_threads()) * sizeof(float) + 64;
    }
    const int64_t K = shape_numel(w) / std::max<int64_t>(w[0], 1), N = shape_numel(spatial(y));
    // Pointwise convolutions read their input in place: only partial panels are packed.
    size_t floats = b_scratch_floats(x, w, K, N);
    if (packed_w_.empty()) floats += kernels::packed_a_floats(w[0] / group_, K, kt_->gemm_mr) * group_;
    return floats * sizeof(float) + 64;
  }

  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Tensor &x = in[0], &w = in[1];
    Tensor& y = out[0];
    const float* bias = in.size() > 2 && in[2].data ? in[2].ptr<float>() : nullptr;
    SpatialAttrs a = attrs_;
    if (a.kernel.empty()) a.kernel = spatial(w.shape);
    a.complete(x.rank() - 2, node_);
    std::vector<int64_t> pads;
    const auto osz = a.output_sizes(spatial(x.shape), node_, &pads);
    const kernels::Window2D g = make_window2d(spatial(x.shape), osz, a, pads);
    const int64_t batch = x.shape[0], C = x.shape[1], M = w.shape[0];
    const int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow;
    const KernelTable& kt = *kt_;

    if (is_depthwise(x.shape, w.shape)) {
      const float* xp = x.ptr<float>();
      float* yp = y.ptr<float>();
      const float* wp = w.ptr<float>();
      const int64_t per_thread = kernels::depthwise_work_floats(g);
      parallel_for_indexed(batch * C, [&](int64_t b, int64_t e, int t) {
        float* work = static_cast<float*>(scratch) + t * per_thread;
        for (int64_t i = b; i < e; ++i) {
          const int64_t c = i % C;
          kt.depthwise2d(g, xp + i * in_plane, wp + c * g.kh * g.kw, bias ? bias[c] : 0.f, yp + i * out_plane, work);
          if (!act_.is_identity()) kt.unary(act_, yp + i * out_plane, yp + i * out_plane, out_plane);
        }
      });
      return;
    }
    const int64_t Cg = C / group_, Mg = M / group_, K = Cg * g.kh * g.kw;
    float* packed_b = static_cast<float*>(scratch);
    const float* packed_w = packed_w_.data();
    if (packed_w_.empty()) {  // weights fed at run time: pack them into scratch
      float* pw = packed_b + b_scratch_floats(x.shape, w.shape, K, out_plane);
      const size_t per_group = kernels::packed_a_floats(Mg, K, kt.gemm_mr);
      for (int64_t gi = 0; gi < group_; ++gi)
        kernels::pack_a(w.ptr<float>() + gi * Mg * K, K, 1, Mg, K, kt.gemm_mr, pw + gi * per_group);
      packed_w = pw;
    }
    const size_t a_stride = kernels::packed_a_floats(Mg, K, kt.gemm_mr);
    const int64_t panels = (out_plane + kt.gemm_nr - 1) / kt.gemm_nr;
    const bool pointwise = is_pointwise(x.shape, w.shape);
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t gi = 0; gi < group_; ++gi) {
        const float* xg = x.ptr<float>() + (n * C + gi * Cg) * in_plane;
        kernels::GemmB b{packed_b, 0, nullptr};
        if (pointwise) {
          b = kernels::GemmB{xg, in_plane, packed_b};
        } else {
          parallel_for(panels, [&](int64_t p0, int64_t p1) { kernels::im2col_packed(xg, Cg, g, kt.gemm_nr, packed_b, p0, p1); });
        }
        kernels::Epilogue ep;
        ep.row_bias = bias ? bias + gi * Mg : nullptr;
        ep.act = act_;
        float* yg = y.ptr<float>() + (n * M + gi * Mg) * out_plane;
        kernels::gemm(kt, Mg, out_plane, K, packed_w + gi * a_stride, b, yg, out_plane, ep);
      }
    }
  }

 private:
  bool is_depthwise(const Shape& x, const Shape& w) const { return group_ > 1 && group_ == x[1] && w[0] == group_; }
  // 1x1, stride 1, no padding: the input is already the GEMM's B matrix.
  bool is_pointwise(const Shape& x, const Shape& w) const {
    SpatialAttrs a = attrs_;
    if (a.kernel.empty()) a.kernel = spatial(w);
    a.complete(int(x.size()) - 2, node_);
    for (size_t i = 0; i < a.kernel.size(); ++i)
      if (a.kernel[i] != 1 || a.strides[i] != 1 || a.pads[i] != 0 || a.pads[i + a.kernel.size()] != 0) return false;
    return true;  // (auto_pad pads of a 1x1 stride-1 window are zero too)
  }
  // Scratch floats for the B operand: packed im2col panels, or the tail panel per thread.
  size_t b_scratch_floats(const Shape& x, const Shape& w, int64_t K, int64_t N) const {
    return is_pointwise(x, w) ? kernels::gemm_tail_floats(K, kt_->gemm_nr) * size_t(current_num_threads())
                              : kernels::packed_b_floats(K, N, kt_->gemm_nr);
  }

  void prepack(const Tensor& w) {
    if (w.dtype != DType::f32 || w.rank() < 3 || w.shape[0] % group_ != 0) return;  // infer() reports it
    if (group_ > 1 && w.shape[1] == 1 && w.shape[0] == group_) {  // depthwise reads W directly
      algo_ = "depthwise-direct";
      return;
    }
    bool pointwise = true;
    for (int64_t d : spatial(w.shape)) pointwise = pointwise && d == 1;
    algo_ = pointwise ? "pointwise-gemm" : "im2col-gemm";
    const int64_t M = w.shape[0], Mg = M / group_, K = w.numel() / M;
    const size_t per_group = kernels::packed_a_floats(Mg, K, kt_->gemm_mr);
    storage_ = aligned_buffer(per_group * group_ * sizeof(float));
    float* p = static_cast<float*>(storage_.get());
    for (int64_t gi = 0; gi < group_; ++gi) kernels::pack_a(w.ptr<float>() + gi * Mg * K, K, 1, Mg, K, kt_->gemm_mr, p + gi * per_group);
    packed_w_ = Span{p, per_group * group_};
  }

  struct Span {
    float* ptr = nullptr;
    size_t n = 0;
    bool empty() const { return n == 0; }
    const float* data() const { return ptr; }
  };

  Node node_;
  SpatialAttrs attrs_;
  const KernelTable* kt_;
  int64_t group_ = 1;
  kernels::Activation act_;
  std::shared_ptr<void> storage_;
  Span packed_w_;
  const char* algo_ = "im2col-gemm";
};

class ConvTransposeOp : public Op {
 public:
  explicit ConvTransposeOp(const OpContext& c) : node_(c.node), attrs_(SpatialAttrs::parse(c.node)), kt_(&kernels::active()) {
    group_ = c.attrs().get_int("group", 1);
    PYCNN_CHECK(group_ >= 1, ErrorCode::InvalidModel, where(node_), ": group must be >= 1, got ", group_);
    output_padding_ = c.attrs().get_ints("output_padding");
    output_shape_ = c.attrs().get_ints("output_shape");
    act_ = fused_activation(c.attrs());
  }

  std::string algorithm() const override { return "gemm-col2im"; }
  double flops(const std::vector<Tensor>& in, const std::vector<Tensor>&) const override {
    return 2.0 * double(in[0].numel()) * double(in[1].numel() / std::max<int64_t>(in[1].shape[0], 1));
  }

  // Resolves kernel, pads and output size for input x and weight w.
  std::vector<int64_t> geometry(const Shape& x, const Shape& w, SpatialAttrs& a, std::vector<int64_t>& pads) const {
    const int r = int(x.size()) - 2;
    if (a.kernel.empty()) a.kernel = spatial(w);
    a.complete(r, node_);
    std::vector<int64_t> op = output_padding_.empty() ? std::vector<int64_t>(r, 0) : output_padding_;
    PYCNN_CHECK(int(op.size()) == r, ErrorCode::InvalidModel, where(node_), ": output_padding needs ", r, " values");
    pads = a.pads;
    std::vector<int64_t> out(r);
    for (int i = 0; i < r; ++i) {
      const int64_t ek = (a.kernel[i] - 1) * a.dilations[i] + 1;
      const int64_t full = a.strides[i] * (x[2 + i] - 1) + op[i] + ek;
      if (!output_shape_.empty()) {
        const int64_t want = output_shape_[output_shape_.size() - r + i];
        // As the spec's reference: SAME_UPPER puts the smaller half first;
        // a negative total (output_shape larger than the natural size) extends the end.
        const int64_t total = full - want, half = floor_div(total, 2);
        pads[i] = a.auto_pad == "SAME_UPPER" ? half : total - half;
        pads[i + r] = total - pads[i];
        out[i] = want;
      } else if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
        out[i] = x[2 + i] * a.strides[i];
        const int64_t total = std::max<int64_t>(0, full - out[i]);
        pads[i] = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        pads[i + r] = total - pads[i];
      } else {
        if (a.auto_pad == "VALID") pads[i] = pads[i + r] = 0;
        out[i] = full - pads[i] - pads[i + r];
        PYCNN_CHECK(out[i] > 0, ErrorCode::InvalidArgument, where(node_), ": pads leave no output in spatial dim ", i);
      }
    }
    return out;
  }

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape &x = in[0].shape, &w = in[1].shape;
    PYCNN_CHECK(in[0].dtype == DType::f32, ErrorCode::Unsupported, where(node_), ": only float32 is supported");
    PYCNN_CHECK(x.size() >= 3 && w.size() == x.size(), ErrorCode::InvalidArgument, where(node_), ": input ", shape_str(x),
                " and weight ", shape_str(w), " must both be (N, C, spatial...) of the same rank");
    PYCNN_CHECK(w[0] == x[1] && x[1] % group_ == 0, ErrorCode::InvalidArgument, where(node_), ": input has ", x[1],
                " channels but the weight ", shape_str(w), " expects ", w[0], " (divisible by group=", group_, ")");
    SpatialAttrs a = attrs_;
    std::vector<int64_t> pads;
    Shape out{x[0], w[1] * group_};
    for (int64_t d : geometry(x, w, a, pads)) out.push_back(d);
    return {TensorInfo{DType::f32, out}};
  }

  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    const Shape &x = in[0].shape, &w = in[1].shape;
    const int64_t Cg = x[1] / group_, MK = shape_numel(w) / std::max<int64_t>(x[1], 1), HW = shape_numel(spatial(x));
    size_t floats = kernels::packed_a_floats(MK, Cg, kt_->gemm_mr) + kernels::packed_b_floats(Cg, HW, kt_->gemm_nr) +
                    size_t(MK * HW);
    return floats * sizeof(float) + 3 * 64;
  }

  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Tensor &x = in[0], &w = in[1];
    Tensor& y = out[0];
    const float* bias = in.size() > 2 && in[2].data ? in[2].ptr<float>() : nullptr;
    SpatialAttrs a = attrs_;
    std::vector<int64_t> pads;
    const auto osz = geometry(x.shape, w.shape, a, pads);
    const auto isz = spatial(x.shape);
    // The forward convolution that maps y (osz) onto x's grid (isz).
    const kernels::Window2D g = make_window2d(osz, isz, a, pads);
    const KernelTable& kt = *kt_;
    const int64_t batch = x.shape[0], C = x.shape[1], Cg = C / group_, Mg = w.shape[1];
    const int64_t khw = g.kh * g.kw, MK = Mg * khw, HW = g.oh * g.ow, out_plane = g.ih * g.iw;
    float* pa = static_cast<float*>(scratch);
    float* pb = pa + round_to_cacheline(kernels::packed_a_floats(MK, Cg, kt.gemm_mr));
    float* cols = pb + round_to_cacheline(kernels::packed_b_floats(Cg, HW, kt.gemm_nr));
    std::memset(y.data, 0, y.nbytes());
    for (int64_t gi = 0; gi < group_; ++gi) {
      // A(m, k) = W[gi*Cg + k][m]: the group's weight, transposed.
      kernels::pack_a(w.ptr<float>() + gi * Cg * MK, 1, MK, MK, Cg, kt.gemm_mr, pa);
      for (int64_t n = 0; n < batch; ++n) {
        const float* xg = x.ptr<float>() + (n * C + gi * Cg) * HW;
        kernels::pack_b(xg, HW, 1, Cg, HW, kt.gemm_nr, pb);
        kernels::gemm_packed(kt, MK, HW, Cg, pa, pb, cols, HW, kernels::Epilogue{});
        float* yg = y.ptr<float>() + (n * group_ + gi) * Mg * out_plane;
        parallel_for(Mg, [&](int64_t m0, int64_t m1) {
          kernels::col2im_add(cols + m0 * khw * HW, m1 - m0, g, yg + m0 * out_plane);
        });
      }
    }
    const int64_t M = Mg * group_;
    float* yp = y.ptr<float>();
    parallel_for(batch * M, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) kt.bias_act(yp + i * out_plane, out_plane, bias ? bias[i % M] : 0.f, act_);
    });
  }

 private:
  static size_t round_to_cacheline(size_t floats) { return (floats + 15) / 16 * 16; }
  Node node_;
  SpatialAttrs attrs_;
  const KernelTable* kt_;
  int64_t group_ = 1;
  std::vector<int64_t> output_padding_, output_shape_;
  kernels::Activation act_;
};

}  // namespace

std::unique_ptr<Op> make_conv(const OpContext& c) { return std::make_unique<ConvOp>(c); }
std::unique_ptr<Op> make_conv_transpose(const OpContext& c) { return std::make_unique<ConvTransposeOp>(c); }

}  // namespace pycnn
