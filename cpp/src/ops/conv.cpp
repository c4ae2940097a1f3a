// Conv (1-D/2-D): depthwise kernels when each group is one channel, else a
// GEMM (1x1 on the input in place, Winograd F4/F2, indirect or im2col; see
// ConvOp::choose) with bias, residual and activation in its store.
// ConvTranspose (1-D/2-D): SGEMM (W^T X) then col2im.
#include <array>
#include <atomic>
#include <cstring>

#include "core/parallel.h"
#include "kernels/conv/im2col.h"
#include "kernels/conv/indirect.h"
#include "kernels/conv/winograd.h"
#include "kernels/gemm.h"
#include "ops/common.h"
#include "ops/op_list.h"
#include "ops/window.h"

namespace pycnn {
namespace {

using kernels::KernelTable;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }


// How a convolution runs, chosen from its shapes.
enum class ConvAlgo { Depthwise, DepthwiseChannels, Pointwise, StridedPointwise, Winograd4, Winograd2, Indirect, Im2col };

const char* algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::Depthwise: return "depthwise-direct";
    case ConvAlgo::DepthwiseChannels: return "depthwise-channels";
    case ConvAlgo::Pointwise: return "pointwise-gemm";
    case ConvAlgo::StridedPointwise: return "strided-pointwise-gemm";
    case ConvAlgo::Winograd4: return "winograd-f4x3";
    case ConvAlgo::Winograd2: return "winograd-f2x3";
    case ConvAlgo::Indirect: return "indirect-gemm";
    case ConvAlgo::Im2col: return "im2col-gemm";
  }
  return "";
}

class ConvOp : public Op {
 public:
  explicit ConvOp(const OpContext& c) : node_(c.node), attrs_(SpatialAttrs::parse(c.node)), kt_(&kernels::active()) {
    group_ = c.attrs().get_int("group", 1);
    PYCNN_CHECK(group_ >= 1, ErrorCode::InvalidModel, where(node_), ": group must be >= 1, got ", group_);
    act_ = fused_activation(c.attrs());
    input_act_ = fused_activation(c.attrs(), "_input");
    const bool winograd_allowed = c.attrs().get_int("_winograd", 1) != 0;
    if (const Tensor* w = c.constant(1)) {
      // _weights_once (pycnn.functional): the weights serve one call and
      // outlive it, so nothing is packed up front: the GEMM reads them in
      // place (GemmA::row_major) and Winograd transforms them at run time.
      if (c.attrs().get_int("_weights_once", 0) && w->dtype == DType::f32) weights_once_ = *w;
      else prepack(*w);
      // Winograd (3x3, one group, within its weight-size cap) transforms the
      // weights at the first plan that uses it, from the packed copy; weights
      // used once are transformed at each run, from the caller's array.
      winograd_possible_ = winograd_allowed && w->rank() == 4 && w->shape[2] == 3 && w->shape[3] == 3 &&
                           group_ == 1 && (!packed_w_.empty() || weights_once_.data) &&
                           kernels::Winograd::may_apply(w->shape[0], w->shape[1]);
      if (winograd_possible_) winograd_shape_ = {w->shape[0], w->shape[1]};
    }
  }

  bool keeps_copy_of(size_t i) const override { return i == 1 && !packed_w_.empty(); }

  std::string algorithm() const override {
    return std::string(algo_name(last_algo_.load(std::memory_order_relaxed))) + (has_input_map_ ? "+input-affine" : "") + (act_.is_identity() ? "" : "+act");
  }
  double flops(const std::vector<Tensor>& in, const std::vector<Tensor>& out) const override {
    return 2.0 * double(out[0].numel()) * double(in[1].numel() / std::max<int64_t>(in[1].shape[0], 1));
  }

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape &x = in[0].shape, &w = in[1].shape;
    PYCNN_CHECK(in[0].dtype == DType::f32 && in[1].dtype == DType::f32, ErrorCode::Unsupported, where(node_),
                ": only float32 is supported, got input ", dtype_name(in[0].dtype), " and weights ",
                dtype_name(in[1].dtype), " (export the model, or cast its weights, to float32)");
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
    // A per-input-channel map folded in (fuse_input_affine): 1x1 convolutions only.
    has_input_map_ = in.size() > 4;
    if (in.size() > 4 && in[4].present) {  // per channel, or per (image, channel): (N, C, 1, ...)
      const Shape& s = in[4].shape;
      const bool per_image = s.size() > 1 && s[0] == x[0] && shape_numel(s) == x[0] * x[1];
      if (!per_image) require_channel_vector(in[4], x[1], "input scale", node_);
    }
    if (in.size() > 5 && in[5].present) require_channel_vector(in[5], x[1], "input shift", node_);
    if (has_input_map_) {
      const kernels::Window2D g = window(x, w);
      PYCNN_CHECK(choose(x, w, g) == ConvAlgo::Pointwise, ErrorCode::InvalidModel, where(node_),
                  ": an input scale/shift needs a 1x1 convolution with stride 1, no pads and one group");
    }
    // A fused residual Add: the output is the Add's, broadcast like numpy.
    if (in.size() > 3 && in[3].present) {
      PYCNN_CHECK(in[3].dtype == DType::f32, ErrorCode::Unsupported, where(node_), ": the residual must be float32");
      out = broadcast_shapes(out, in[3].shape, node_);
    }
    return {TensorInfo{DType::f32, out}};
  }

  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    infer(in);  // validates before any geometry is derived
    const Shape &x = in[0].shape, &w = in[1].shape;
    const kernels::Window2D g = window(x, w);
    const ConvAlgo algo = choose(x, w, g);
    const int64_t threads = current_num_threads();
    if (algo == ConvAlgo::Depthwise || algo == ConvAlgo::DepthwiseChannels)
      return size_t(depthwise_work_floats(algo, g) * threads) * sizeof(float) + 64;
    const int64_t Cg = x[1] / group_, Mg = w[0] / group_, K = Cg * g.kh * g.kw;
    int64_t floats = 0;
    if (algo == ConvAlgo::Winograd4 || algo == ConvAlgo::Winograd2) {
      const kernels::Winograd wg(g, x[0], winograd_tile(algo));
      if (!weights_once_.data) ensure_winograd_weights(wg.tile);
      const int64_t per_thread = cacheline_floats(wg.plane_floats()) +
                                 cacheline_floats(kernels::winograd_tmp_floats(wg.rows_per_block * wg.tw)) +
                                 int64_t(kernels::gemm_work_floats(*kt_, Mg));
      floats = cacheline_floats(wg.v_floats(Cg)) + cacheline_floats(wg.v_floats(Mg)) + per_thread * threads;
      // Weights used once are transformed into scratch at run time.
      if (weights_once_.data) floats += cacheline_floats(int64_t(winograd_point_floats() * kernels::Winograd::points(wg.tile)));
    } else {
      const bool per_image = in.size() > 4 && in[4].present && per_image_scale(shape_numel(in[4].shape), x[0], x[1]);
      const bool fold = folds_batch(algo, x, g, per_image);
      floats = splits_by_image(algo, x[0], fold) ? cacheline_floats(b_work_floats(algo, g, Cg, Mg, K, 1)) * threads
                                                  : b_work_floats(algo, g, Cg, Mg, K, int(threads));
      if (fold) floats = cacheline_floats(floats) + Mg * x[0] * g.oh * g.ow;
    }
    // A residual that broadcasts (rare): the convolution goes to scratch first.
    if (in.size() > 3 && in[3].present && in[3].shape != conv_shape(x, g, w)) floats = cacheline_floats(floats) + shape_numel(conv_shape(x, g, w));
    return size_t(cacheline_floats(floats)) * sizeof(float) + 64;
  }

  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Tensor &x = in[0], &w = in[1];
    const kernels::Window2D g = window(x.shape, w.shape);
    const Tensor* residual = in.size() > 3 && in[3].data ? &in[3] : nullptr;
    if (residual && residual->shape != conv_shape(x.shape, g, w.shape)) {
      run_broadcast_residual(in, out, scratch, g);
      return;
    }
    convolve(in, out[0], scratch, g, residual, act_);
  }

 private:
  // The output shape of the convolution itself.
  static Shape conv_shape(const Shape& x, const kernels::Window2D& g, const Shape& w) {
    return x.size() == 3 ? Shape{x[0], w[0], g.ow} : Shape{x[0], w[0], g.oh, g.ow};
  }

  // Convolution into scratch, then out = act(conv + residual) with numpy broadcasting.
  void run_broadcast_residual(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch,
                              const kernels::Window2D& g) {
    const Shape cs = conv_shape(in[0].shape, g, in[1].shape);
    const size_t conv_floats = size_t(shape_numel(cs));
    float* conv_out = static_cast<float*>(scratch);
    Tensor tmp(DType::f32, cs, conv_out);
    convolve(in, tmp, conv_out + (conv_floats + 15) / 16 * 16, g, nullptr, kernels::Activation{});
    const Tensor& r = in[3];
    BroadcastWalk walk(out[0].shape, {cs, r.shape});
    const auto& kt = *kt_;
    float* y = out[0].ptr<float>();
    for (int64_t o = 0; o < walk.outer_count; ++o) {
      int64_t off[2];
      walk.offsets(o, off);
      kt.binary(kernels::BinaryKind::Add, conv_out + off[0], walk.inner_stride[0], r.ptr<float>() + off[1],
                walk.inner_stride[1], y + o * walk.inner, walk.inner);
    }
    if (!act_.is_identity()) kt.unary(act_, y, y, out[0].numel());
  }

  void convolve(const std::vector<Tensor>& in, Tensor& y, void* scratch, const kernels::Window2D& g,
                const Tensor* residual, const kernels::Activation& act) {
    const Tensor &x = in[0], &w = in[1];
    const float* bias = in.size() > 2 && in[2].data ? in[2].ptr<float>() : nullptr;
    const ConvAlgo algo = choose(x.shape, w.shape, g);
    last_algo_.store(algo, std::memory_order_relaxed);
    const int64_t batch = x.shape[0], C = x.shape[1], M = w.shape[0];
    const int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow;
    const KernelTable& kt = *kt_;
    float* work = static_cast<float*>(scratch);

    if (algo == ConvAlgo::Depthwise || algo == ConvAlgo::DepthwiseChannels) {
      const float* xp = x.ptr<float>();
      float* yp = y.ptr<float>();
      const float* wp = w.ptr<float>();
      const int64_t per_thread = depthwise_work_floats(algo, g);
      if (algo == ConvAlgo::DepthwiseChannels) {
        const int64_t lanes = kt.channel_lanes, groups = (C + lanes - 1) / lanes;
        parallel_for_indexed(batch * groups, [&](int64_t b, int64_t e, int t) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t n = i / groups, c0 = i % groups * lanes, nc = std::min(lanes, C - c0);
            const int64_t at = (n * C + c0) * out_plane;
            kt.depthwise2d_channels(g, int(nc), xp + (n * C + c0) * in_plane, wp + c0 * g.kh * g.kw,
                                    bias ? bias + c0 : nullptr, residual ? residual->ptr<float>() + at : nullptr,
                                    act, yp + at, work + t * per_thread);
          }
        });
        return;
      }
      parallel_for_indexed(batch * C, [&](int64_t b, int64_t e, int t) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t c = i % C;
          kt.depthwise2d(g, xp + i * in_plane, wp + c * g.kh * g.kw, bias ? bias[c] : 0.f,
                         residual ? residual->ptr<float>() + i * out_plane : nullptr, act, yp + i * out_plane,
                         work + t * per_thread);
        }
      });
      return;
    }
    if (algo == ConvAlgo::Winograd4 || algo == ConvAlgo::Winograd2) {
      winograd(winograd_tile(algo), x, y, bias, residual, act, g, work);
      return;
    }
    const int64_t Cg = C / group_, Mg = M / group_, K = Cg * g.kh * g.kw;
    // Scratch: [B operand work][the folded GEMM's output].
    const kernels::IndirectConv ic(g);
    float* b_work = work;
    const int64_t b_floats = b_work_floats(algo, g, Cg, Mg, K, current_num_threads());
    const bool per_image = in.size() > 4 && in[4].data && per_image_scale(in[4].numel(), batch, C);
    const bool fold = folds_batch(algo, x.shape, g, per_image);
    float* folded = work + cacheline_floats(b_floats);  // the folded GEMM's output, M x (batch x plane)
    // Weights fed at run time (or used once, by pycnn.functional): the GEMM reads them in place.
    const size_t a_stride = kernels::packed_a_floats(Mg, K, kt.gemm_mr);
    auto weights_of = [&](int64_t gi) {
      return packed_w_.empty() ? kernels::GemmA::row_major(w.ptr<float>() + gi * Mg * K, K)
                               : kernels::GemmA(packed_w_.data() + gi * a_stride);
    };
    if (fold) {
      pointwise_folded(in, y, bias, residual, act, weights_of(0), b_work, folded, batch * out_plane);
      return;
    }
    // Image n, group gi; `bw` is B's work area (b_work, or the thread's
    // share of it when the batch splits by image).
    auto image = [&](int64_t n, int64_t gi, float* bw) {
      const float* xg = x.ptr<float>() + (n * C + gi * Cg) * in_plane;
      float* yg = y.ptr<float>() + (n * M + gi * Mg) * out_plane;
      kernels::Epilogue ep;
      ep.row_bias = bias ? bias + gi * Mg : nullptr;
      ep.act = act;
      ep.residual = residual ? residual->ptr<float>() + (n * M + gi * Mg) * out_plane : nullptr;
      ep.residual_ld = out_plane;
      const kernels::GemmA a = weights_of(gi);
      if (algo == ConvAlgo::Pointwise) {
        kernels::GemmB b(xg, in_plane, bw);
        map_input(in, per_image ? n : 0, b);
        kernels::gemm(kt, Mg, out_plane, K, a, b, yg, out_plane, ep);
      } else if (algo == ConvAlgo::Indirect) {
        float* input = bw;
        const float** rows = reinterpret_cast<const float**>(input + cacheline_floats(ic.input_floats(Cg)));
        parallel_for(Cg, [&](int64_t c0, int64_t c1) { ic.build_input(xg, c0, c1, input); });
        ic.build_rows(input, Cg, rows);
        kernels::GemmB b;
        b.rows = rows;
        b.row_cols = g.ow;
        b.row_stride = ic.wq;
        b.work = reinterpret_cast<float*>(rows) + cacheline_floats(K * 2);
        kernels::gemm(kt, Mg, out_plane, K, a, b, yg, out_plane, ep);
      } else if (algo == ConvAlgo::StridedPointwise) {
        // The pixels a strided 1x1 reads, gathered into a K x pixels
        // matrix, then the stride-1 path's GEMM on it (B packed a block at
        // a time): ResNet-50's three downsample convolutions 9.0 -> 7.6 ms
        // against packing every panel by a gather (im2col).
        float* picked = bw;
        parallel_for(Cg, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c)
            for (int64_t oh = 0; oh < g.oh; ++oh) {
              const float* __restrict src = xg + c * in_plane + oh * g.sh * g.iw;
              float* __restrict d = picked + c * out_plane + oh * g.ow;
              for (int64_t ow = 0; ow < g.ow; ++ow) d[ow] = src[ow * g.sw];
            }
        });
        kernels::GemmB b(picked, out_plane, bw + cacheline_floats(K * out_plane));
        kernels::gemm(kt, Mg, out_plane, K, a, b, yg, out_plane, ep);
      } else {
        const int64_t panels = (out_plane + kt.gemm_nr - 1) / kt.gemm_nr;
        parallel_for(panels, [&](int64_t p0, int64_t p1) { kernels::im2col_packed(xg, Cg, g, kt.gemm_nr, bw, p0, p1); });
        float* work_after_b = bw + kernels::packed_b_floats(K, out_plane, kt.gemm_nr);
        kernels::gemm(kt, Mg, out_plane, K, a, kernels::GemmB{bw, 0, work_after_b}, yg, out_plane, ep);
      }
    };
    if (splits_by_image(algo, batch, fold)) {
      const int64_t per_thread = cacheline_floats(b_work_floats(algo, g, Cg, Mg, K, 1));
      parallel_for_indexed(batch, [&](int64_t n0, int64_t n1, int t) {
        ThreadScope one(1);
        for (int64_t n = n0; n < n1; ++n) image(n, 0, b_work + t * per_thread);
      });
      return;
    }
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t gi = 0; gi < group_; ++gi) image(n, gi, b_work);
  }

  // A batch the threads share evenly splits by image, each image's GEMM on
  // one thread (the GEMM convolutions: 1x1 past the fold, indirect,
  // im2col): no fork per GEMM, and each thread keeps to its own images, as
  // the depthwise loops do. Each thread gets its own B work area. Batch 8 on
  // 2 threads, 1x1 convolutions alone: MobileNetV2 35.6-36.0 -> 32.7-34.2
  // ms, EfficientNet-B0 56-60 -> 53-54 ms; indirect and im2col as well:
  // ResNet-18 78-81 -> 75-79 ms, SqueezeNet 28-29 -> 27-28 ms, ResNet-50
  // and DenseNet-121 within the noise.
  bool splits_by_image(ConvAlgo algo, int64_t batch, bool fold) const {
    const int threads = current_num_threads();
    const bool gemm = algo == ConvAlgo::Pointwise || algo == ConvAlgo::StridedPointwise || algo == ConvAlgo::Indirect ||
                      algo == ConvAlgo::Im2col;
    return gemm && group_ == 1 && !fold && threads > 1 && batch >= threads &&
           (batch % threads == 0 || batch >= 4 * threads);
  }

  // Whether the input scale (fuse_input_affine) holds one value per
  // (image, channel): a squeeze-and-excitation scale at batch > 1.
  static bool per_image_scale(int64_t scale_values, int64_t batch, int64_t C) {
    return batch > 1 && scale_values == batch * C;
  }

  // The folded per-channel input map (inputs 4 and 5, _input_act) onto B's
  // rows (one group: input channel k is B's row k), image n's scale.
  void map_input(const std::vector<Tensor>& in, int64_t n, kernels::GemmB& b) const {
    if (in.size() <= 4) return;
    const int64_t C = in[0].shape[1];
    b.row_scale = in[4].data ? in[4].ptr<float>() + n * C : nullptr;
    b.row_shift = in.size() > 5 && in[5].data ? in[5].ptr<float>() : nullptr;
    b.row_act = input_act_;
  }

  // Small planes (14x14 and below) at batch > 1: one GEMM over every image
  // (N = batch x plane: fuller column panels, and the weights stream once
  // instead of once per image) into `folded`, then each image's rows go to y
  // with the residual and the activation.
  static constexpr int64_t kFoldPlane = 196;
  bool folds_batch(ConvAlgo algo, const Shape& x, const kernels::Window2D& g, bool per_image) const {
    return algo == ConvAlgo::Pointwise && group_ == 1 && x[0] > 1 && g.oh * g.ow <= kFoldPlane && !per_image;
  }

  void pointwise_folded(const std::vector<Tensor>& in, Tensor& y, const float* bias, const Tensor* residual,
                        const kernels::Activation& act, const kernels::GemmA& weights, float* b_work, float* folded,
                        int64_t columns) {
    const KernelTable& kt = *kt_;
    const Tensor& x = in[0];
    const int64_t C = x.shape[1], M = y.shape[1], plane = columns / x.shape[0];
    kernels::GemmB b;
    b.data = x.ptr<float>();
    b.ld = plane;          // row k: input channel k ...
    b.row_cols = plane;    // ... of image n / plane,
    b.row_stride = C * plane;  // an image apart
    b.work = b_work;
    map_input(in, 0, b);  // folded only without a per-image scale
    kernels::Epilogue ep;
    ep.row_bias = bias;
    if (!residual) ep.act = act;  // with a residual the activation follows it, below
    kernels::gemm(kt, M, columns, C, weights, b, folded, columns, ep);
    float* yp = y.ptr<float>();
    parallel_for(columns / plane * M, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {  // i: (image, output channel)
        const int64_t n = i / M, m = i % M;
        float* dst = yp + i * plane;
        const float* src = folded + m * columns + n * plane;
        if (!residual) {
          std::memcpy(dst, src, size_t(plane) * sizeof(float));
          continue;
        }
        kt.binary(kernels::BinaryKind::Add, src, 1, residual->ptr<float>() + i * plane, 1, dst, plane);
        if (!act.is_identity()) kt.unary(act, dst, dst, plane);
      }
    });
  }

  // Scratch floats of one thread's depthwise kernel calls.
  static int64_t depthwise_work_floats(ConvAlgo algo, const kernels::Window2D& g) {
    return algo == ConvAlgo::DepthwiseChannels ? kernels::channel_windows_work_floats(g)
                                               : kernels::depthwise_work_floats(g);
  }

  // Scratch floats of the GEMM algorithms' B operand for one image's GEMM
  // run on `threads` threads: the im2col panels or the padded input and row
  // pointers (indirect), then the GEMM's work area for each thread.
  int64_t b_work_floats(ConvAlgo algo, const kernels::Window2D& g, int64_t Cg, int64_t Mg, int64_t K, int threads) const {
    const int64_t gemm_work = int64_t(kernels::gemm_work_floats(*kt_, Mg)) * threads;
    if (algo == ConvAlgo::Pointwise) return gemm_work;
    if (algo == ConvAlgo::StridedPointwise) return cacheline_floats(K * g.oh * g.ow) + gemm_work;
    if (algo == ConvAlgo::Indirect) {
      const kernels::IndirectConv ic(g);
      return cacheline_floats(ic.input_floats(Cg)) + cacheline_floats(K * 2) + gemm_work;  // K row pointers: 2 floats each
    }
    return int64_t(kernels::packed_b_floats(K, g.oh * g.ow, kt_->gemm_nr)) + gemm_work;
  }

  static int winograd_tile(ConvAlgo a) { return a == ConvAlgo::Winograd4 ? 4 : 2; }
  // Packed floats of one transformed point's M x C weights.
  size_t winograd_point_floats() const {
    return kernels::packed_a_floats(winograd_shape_[0], winograd_shape_[1], kt_->gemm_mr);
  }

  // Transformed, packed weights for Winograd F(tile, 3): made at the first
  // plan that uses them (plans are made under the session's lock), kept for
  // later ones.
  void ensure_winograd_weights(int tile) {
    WinogradWeights& ww = winograd_weights_[tile == 4];
    if (ww.a) return;
    const int64_t M = winograd_shape_[0], C = winograd_shape_[1], K = 9 * C, mr = kt_->gemm_mr;
    const int64_t points = kernels::Winograd::points(tile);
    // The weights back from their packed panels (pack_a: row m of panel
    // m / mr, k-major): the session keeps no other copy.
    std::vector<float> w(size_t(M * K));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) w[size_t(m * K + k)] = packed_w_.ptr[(m / mr * mr) * K + k * mr + m % mr];
    const size_t per_point = winograd_point_floats();
    ww.storage = aligned_buffer(points * per_point * sizeof(float), false);  // transform_weights writes it all
    float* p = static_cast<float*>(ww.storage.get());
    kernels::Winograd::transform_weights(tile, w.data(), M, C, int(mr), p, per_point);
    ww.a = p;
    ww.stride = per_point;
  }

  // y = act(conv(x) + bias + residual) by Winograd F(tile x tile, 3x3), a
  // block of tile rows at a time: input transform per (segment, channel), one
  // GEMM per transformed point, output transform per (segment, output channel).
  void winograd(int tile, const Tensor& x, Tensor& y, const float* bias, const Tensor* residual,
                const kernels::Activation& act, const kernels::Window2D& g, float* work) {
    const KernelTable& kt = *kt_;
    const int64_t batch = x.shape[0], C = x.shape[1], M = y.shape[1];
    const kernels::Winograd wg(g, batch, tile);
    const float* wa = winograd_weights_[tile == 4].a;  // packed A panels per point, wa_stride floats apart
    size_t wa_stride = winograd_weights_[tile == 4].stride;
    const int64_t ld = wg.block_ld;
    float* v = work;
    float* mo = v + cacheline_floats(wg.v_floats(C));
    float* per_thread_base = mo + cacheline_floats(wg.v_floats(M));
    const int64_t plane_floats = cacheline_floats(wg.plane_floats());
    const int64_t tmp_floats = cacheline_floats(kernels::winograd_tmp_floats(wg.rows_per_block * wg.tw));
    const int64_t per_thread = plane_floats + tmp_floats + int64_t(kernels::gemm_work_floats(kt, M));
    if (weights_once_.data) {  // after the per-thread areas (scratch_bytes)
      float* u = per_thread_base + per_thread * current_num_threads();
      const int64_t mr = kt.gemm_mr, panels = (M + mr - 1) / mr;
      wa = u;
      wa_stride = winograd_point_floats();
      parallel_for(panels, [&](int64_t p0, int64_t p1) {
        const int64_t m0 = p0 * mr, m1 = std::min(M, p1 * mr);
        kernels::Winograd::transform_weights(tile, weights_once_.ptr<float>() + m0 * C * 9, m1 - m0, C, int(mr),
                                             u + m0 * C, wa_stride);
      });
    }
    const int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow;
    for (int64_t r0 = 0; r0 < wg.tile_rows(); r0 += wg.rows_per_block) {
      const int64_t r1 = std::min(wg.tile_rows(), r0 + wg.rows_per_block), tiles = (r1 - r0) * wg.tw;
      const std::vector<kernels::Winograd::Segment> segs = wg.segments(r0, r1);
      const int64_t nsegs = int64_t(segs.size());
      // 1. V[xi][c][tile] from each (segment, channel).
      parallel_for_indexed(nsegs * C, [&](int64_t b, int64_t e, int t) {
        float* plane = per_thread_base + t * per_thread;
        float* tmp = plane + plane_floats;
        for (int64_t i = b; i < e; ++i) {
          const kernels::Winograd::Segment& s = segs[size_t(i / C)];
          const int64_t c = i % C;
          wg.pad_rows(x.ptr<float>() + (s.n * C + c) * in_plane, s.ty0, s.ty1, plane);
          kt.winograd_input(tile, plane, wg.padded_w, s.ty1 - s.ty0, wg.tw, v + c * ld + s.first, C * ld, tmp);
        }
      });
      // 2. One GEMM per transformed point, each on one thread.
      parallel_for_indexed(wg.point_count(), [&](int64_t b, int64_t e, int t) {
        ThreadScope one(1);
        float* gemm_work = per_thread_base + t * per_thread + plane_floats + tmp_floats;
        for (int64_t xi = b; xi < e; ++xi)
          kernels::gemm(kt, M, tiles, C, wa + xi * wa_stride, kernels::GemmB{v + xi * C * ld, ld, gemm_work},
                        mo + xi * M * ld, ld, kernels::Epilogue{});
      });
      // 3. Outputs per (segment, output channel), then the residual and the activation.
      parallel_for_indexed(nsegs * M, [&](int64_t b, int64_t e, int t) {
        float* tmp = per_thread_base + t * per_thread + plane_floats;
        for (int64_t i = b; i < e; ++i) {
          const kernels::Winograd::Segment& s = segs[size_t(i / M)];
          const int64_t m = i % M, y0 = s.ty0 * tile, y1 = std::min(g.oh, s.ty1 * tile);
          const int64_t at = (s.n * M + m) * out_plane + y0 * g.ow, count = (y1 - y0) * g.ow;
          float* out = y.ptr<float>() + at;
          kt.winograd_output(tile, mo + m * ld + s.first, M * ld, s.ty1 - s.ty0, wg.tw, bias ? bias[m] : 0.f, out,
                             y1 - y0, g.ow, tmp);
          if (residual) kt.binary(kernels::BinaryKind::Add, out, 1, residual->ptr<float>() + at, 1, out, count);
          if (!act.is_identity()) kt.unary(act, out, out, count);
        }
      });
    }
  }

  kernels::Window2D window(const Shape& x, const Shape& w) const {
    SpatialAttrs a = attrs_;
    if (a.kernel.empty()) a.kernel = spatial(w);
    a.complete(int(x.size()) - 2, node_);
    std::vector<int64_t> pads;
    const auto osz = a.output_sizes(spatial(x), node_, &pads);
    return make_window2d(spatial(x), osz, a, pads);
  }

  ConvAlgo choose(const Shape& x, const Shape& w, const kernels::Window2D& g) const {
    if (group_ > 1 && group_ == x[1] && w[0] == group_) {
      // Vectors across channels, except on large planes: there a plane
      // fills its own vectors and interleaving channels costs more than it
      // saves. Measured, 1 thread: AVX-512 (16 lanes), 112x112 3x3 25%
      // slower across channels, 56x56 even, smaller planes and every
      // stride-2 layer up to 4x faster; AVX2 (8 lanes, a plane's rows fill
      // vectors sooner), 56x56 outputs 1.3-1.6x faster by plane at stride 1
      // and 2 (MobileNetV2's 96-channel 112 -> 56: 1.23 -> 0.79 ms), 28x28
      // even or slower.
      const int64_t out = g.oh * g.ow;
      const bool wide_lanes = kt_->channel_lanes >= 16;
      const bool large_plane = (wide_lanes ? g.sh == 1 && g.sw == 1 && out > 56 * 56 : out >= 56 * 56) ||
                               kernels::channel_window_pixels(g) > kernels::kMaxChannelWindowPixels;
      return large_plane ? ConvAlgo::Depthwise : ConvAlgo::DepthwiseChannels;
    }
    // 1x1 without padding: stride 1 reads the input in place; a strided one
    // (ResNet's downsample) gathers just the pixels it reads, where the
    // indirect path would phase-split the whole input.
    const bool one = g.kh == 1 && g.kw == 1 && g.ph == 0 && g.pw == 0 && g.oh == (g.ih - 1) / g.sh + 1 &&
                     g.ow == (g.iw - 1) / g.sw + 1;
    if (one) return g.sh == 1 && g.sw == 1 ? ConvAlgo::Pointwise : ConvAlgo::StridedPointwise;
    if (winograd_possible_) {
      const int tile = kernels::Winograd::choose_tile(g, x[0], w[0], w[1]);
      if (tile) return tile == 4 ? ConvAlgo::Winograd4 : ConvAlgo::Winograd2;
    }
    if (kernels::IndirectConv::applies(g)) return ConvAlgo::Indirect;
    return ConvAlgo::Im2col;
  }

  void prepack(const Tensor& w) {
    if (w.dtype != DType::f32 || w.rank() < 3 || w.shape[0] % group_ != 0) return;  // infer() reports it
    if (group_ > 1 && w.shape[1] == 1 && w.shape[0] == group_) return;  // depthwise reads W directly
    const int64_t M = w.shape[0], Mg = M / group_, K = w.numel() / M;
    const size_t per_group = kernels::packed_a_floats(Mg, K, kt_->gemm_mr);
    storage_ = aligned_buffer(per_group * group_ * sizeof(float), false);  // pack_a writes it all
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
  kernels::Activation input_act_;  // after the input map (fuse_input_affine)
  bool has_input_map_ = false;
  std::shared_ptr<void> storage_;
  Span packed_w_;
  Tensor weights_once_;  // _weights_once: a view of the constant weights
  // What the last run did, for the profiler (atomic: the image pass may run
  // this op on several threads at once).
  std::atomic<ConvAlgo> last_algo_{ConvAlgo::Im2col};
  bool winograd_possible_ = false;  // 3x3, one group, constant weights within the cap, not switched off
  std::array<int64_t, 2> winograd_shape_{};  // M, C of those weights
  struct WinogradWeights {
    std::shared_ptr<void> storage;
    const float* a = nullptr;  // packed A panels per transformed point, `stride` floats apart
    size_t stride = 0;
  };
  WinogradWeights winograd_weights_[2];  // F2, F4
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
    return floats * sizeof(float) + 4 * 64 + kernels::gemm_work_bytes(*kt_, MK);
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
    float* pb = pa + cacheline_floats(int64_t(kernels::packed_a_floats(MK, Cg, kt.gemm_mr)));
    float* cols = pb + cacheline_floats(int64_t(kernels::packed_b_floats(Cg, HW, kt.gemm_nr)));
    float* gemm_work = cols + cacheline_floats(MK * HW);
    std::memset(y.data, 0, y.nbytes());
    for (int64_t gi = 0; gi < group_; ++gi) {
      // A(m, k) = W[gi*Cg + k][m]: the group's weight, transposed.
      kernels::pack_a(w.ptr<float>() + gi * Cg * MK, 1, MK, MK, Cg, kt.gemm_mr, pa);
      for (int64_t n = 0; n < batch; ++n) {
        const float* xg = x.ptr<float>() + (n * C + gi * Cg) * HW;
        kernels::pack_b(xg, HW, 1, Cg, HW, kt.gemm_nr, pb);
        kernels::gemm_packed(kt, MK, HW, Cg, pa, pb, cols, HW, kernels::Epilogue{}, gemm_work);
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
  Node node_;
  SpatialAttrs attrs_;
  const KernelTable* kt_;
  int64_t group_ = 1;
  std::vector<int64_t> output_padding_, output_shape_;
  kernels::Activation act_;
};

}  // namespace

std::unique_ptr<Op> make_conv(const OpContext& c) {
  if (c.attrs().get_int("_blocked", 0)) return make_blocked_conv(c);
  return std::make_unique<ConvOp>(c);
}
std::unique_ptr<Op> make_conv_transpose(const OpContext& c) { return std::make_unique<ConvTransposeOp>(c); }

}  // namespace pycnn
