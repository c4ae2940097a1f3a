// Ops on the blocked layout (NCHWc, kernels.h), which the use_blocked_layout
// pass puts on chains of depthwise and 1x1 convolutions:
// - Conv with _blocked: 1x1 stride-1 unpadded (a GEMM over pixels),
//   depthwise, or any other window with one group (direct), its weights
//   packed per output block at create; one with _plain_input reads an NCHW
//   input (the stem, reading the image) from bands of zero-padded rows;
// - pycnn.ToBlocked / pycnn.FromBlocked, the reorders at a chain's edges;
// - GlobalAveragePool with _blocked, which reads a chain's output in place.
// A blocked tensor of C channels has shape (N, ceil(C / c), H, W, c).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/parallel.h"
#include "ops/common.h"
#include "ops/op_list.h"
#include "ops/window.h"

namespace pycnn {
namespace {

int64_t blocks_of(int64_t channels, int64_t lanes) { return (channels + lanes - 1) / lanes; }

// The lane count a blocked node was laid out for; it must be the active ISA's.
int64_t blocked_lanes(const Node& node, const char* attr, const kernels::KernelTable& kt) {
  const int64_t lanes = node.attrs.get_int(attr, 0);
  PYCNN_CHECK(lanes == kt.channel_lanes, ErrorCode::InvalidModel, where(node), ": laid out for ", lanes,
              "-channel blocks, but the ", kt.isa, " kernels take ", kt.channel_lanes);
  return lanes;
}

// (N, ceil(C / lanes), H, W, lanes), checked.
void require_blocked(const TensorInfo& t, int64_t channels, int64_t lanes, const char* what, const Node& node) {
  const Shape& s = t.shape;
  PYCNN_CHECK(t.dtype == DType::f32 && s.size() == 5 && s[1] == blocks_of(channels, lanes) && s[4] == lanes,
              ErrorCode::InvalidArgument, where(node), ": ", what, " must be float32 blocked (N, ",
              blocks_of(channels, lanes), ", H, W, ", lanes, ") for ", channels, " channels, got ", dtype_name(t.dtype),
              " ", shape_str(s));
}

class BlockedConvOp : public Op {
 public:
  explicit BlockedConvOp(const OpContext& c)
      : node_(c.node), attrs_(SpatialAttrs::parse(c.node)), kt_(&kernels::active()) {
    lanes_ = blocked_lanes(node_, "_blocked", *kt_);
    const Tensor* w = c.constant(1);
    PYCNN_CHECK(w && w->dtype == DType::f32 && w->rank() == 4, ErrorCode::InvalidModel, where(node_),
                ": a blocked convolution needs constant float32 (M, C/group, kh, kw) weights");
    const int64_t group = c.attrs().get_int("group", 1);
    M_ = w->shape[0];
    plain_input_ = c.attrs().get_int("_plain_input", 0) != 0;
    PYCNN_CHECK(w->shape[2] <= 64 && w->shape[3] <= 64, ErrorCode::InvalidModel, where(node_),
                ": a blocked convolution takes kernels up to 64x64, got ", shape_str(w->shape));
    if (group > 1) {
      PYCNN_CHECK(group == M_ && w->shape[1] == 1 && !plain_input_, ErrorCode::InvalidModel, where(node_),
                  ": a blocked grouped convolution must be depthwise (group = output channels, one input channel each)");
      algo_ = Algo::Depthwise;
      C_ = M_;
    } else {
      bool one = w->shape[2] == 1 && w->shape[3] == 1 && !plain_input_;
      for (int64_t v : c.attrs().get_ints("strides")) one = one && v == 1;
      for (int64_t v : c.attrs().get_ints("pads")) one = one && v == 0;
      algo_ = plain_input_ ? Algo::Plain : one ? Algo::Pointwise : Algo::Direct;
      C_ = w->shape[1];
    }
    act_ = fused_activation(c.attrs());
    const Tensor* b = c.has_input(2) ? c.constant(2) : nullptr;
    PYCNN_CHECK(!c.has_input(2) || (b && b->dtype == DType::f32 && b->numel() == M_), ErrorCode::InvalidModel,
                where(node_), ": a blocked convolution needs a constant float32 bias of ", M_, " values");
    pack(*w, b);
  }

  bool keeps_copy_of(size_t i) const override { return i == 1 || i == 2; }
  std::string algorithm() const override {
    const char* name = algo_ == Algo::Depthwise   ? "blocked-depthwise"
                       : algo_ == Algo::Pointwise ? "blocked-pointwise"
                       : algo_ == Algo::Plain     ? "blocked-plain-direct"
                                                  : "blocked-direct";
    return std::string(name) + (has_scale_ ? "+input-scale" : "") +
           (act_.is_identity() ? "" : "+act");
  }
  double flops(const std::vector<Tensor>&, const std::vector<Tensor>& out) const override {
    const Shape& y = out[0].shape;
    return 2.0 * double(y[0] * y[2] * y[3] * M_) * double(algo_ == Algo::Depthwise ? taps_ : C_ * taps_);
  }

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    if (plain_input_)
      PYCNN_CHECK(in[0].dtype == DType::f32 && in[0].shape.size() == 4 && in[0].shape[1] == C_,
                  ErrorCode::InvalidArgument, where(node_), ": the input must be float32 (N, ", C_, ", H, W), got ",
                  dtype_name(in[0].dtype), " ", shape_str(in[0].shape));
    else
      require_blocked(in[0], C_, lanes_, "the input", node_);
    const kernels::Window2D g = window(in[0].shape);
    const Shape out{in[0].shape[0], blocks_of(M_, lanes_), g.oh, g.ow, lanes_};
    if (in.size() > 3 && in[3].present)
      PYCNN_CHECK(in[3].shape == out && in[3].dtype == DType::f32, ErrorCode::InvalidArgument, where(node_),
                  ": the residual must be float32 ", shape_str(out), " like the output, got ", shape_str(in[3].shape));
    has_scale_ = in.size() > 4 && in[4].present;
    if (has_scale_) {
      const int64_t n = shape_numel(in[4].shape);
      PYCNN_CHECK(algo_ == Algo::Pointwise && in[4].dtype == DType::f32 && (n == C_ || n == in[0].shape[0] * C_),
                  ErrorCode::InvalidArgument, where(node_), ": the input scale must hold ", C_, " or N x ", C_,
                  " float32 values, got ", shape_str(in[4].shape));
      PYCNN_CHECK(in.size() <= 5 || !in[5].present, ErrorCode::InvalidModel, where(node_),
                  ": a blocked convolution takes no input shift");
    }
    return {TensorInfo{DType::f32, out}};
  }

  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    infer(in);
    if (algo_ == Algo::Plain) {  // each thread's band of input rows
      const PlainBand pb = plain_band(window(in[0].shape));
      return size_t(C_ * pb.in_rows * pb.width * current_num_threads()) * sizeof(float) + 64;
    }
    if (!has_scale_) return 0;  // else the weights or the input, scaled per image
    const Shape& x = in[0].shape;
    const int64_t images = images_together(x[0], x[2] * x[3], true) ? x[0] : 1;  // inputs scaled at once
    return size_t(scales_input(x[2] * x[3]) ? images * x[1] * x[2] * x[3] * lanes_ : int64_t(weights_.size())) *
               sizeof(float) + 64;
  }

  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Tensor& x = in[0];
    Tensor& y = out[0];
    const float* residual = in.size() > 3 && in[3].data ? in[3].ptr<float>() : nullptr;
    if (algo_ == Algo::Depthwise) {
      run_depthwise(x, residual, y);
      return;
    }
    if (algo_ == Algo::Direct) {
      run_direct(x, residual, y);
      return;
    }
    if (algo_ == Algo::Plain) {
      run_plain(x, residual, y, static_cast<float*>(scratch));
      return;
    }
    const float* scale = in.size() > 4 && in[4].data ? in[4].ptr<float>() : nullptr;
    run_pointwise(x, residual, scale, scale ? in[4].numel() : 0, y, static_cast<float*>(scratch));
  }

 private:
  kernels::Window2D window(const Shape& x) const {
    SpatialAttrs a = attrs_;
    if (a.kernel.empty()) a.kernel = kernel_;
    a.complete(2, node_);
    PYCNN_CHECK(a.kernel == kernel_, ErrorCode::InvalidModel, where(node_), ": kernel_shape ", shape_str(a.kernel),
                " does not match the weights");
    std::vector<int64_t> pads;
    const std::vector<int64_t> isz{x[2], x[3]};
    const auto osz = a.output_sizes(isz, node_, &pads);
    return make_window2d(isz, osz, a, pads);
  }

  // Weights as [output block][C][lanes] (1x1), [block][kh * kw][lanes]
  // (depthwise) or [output block][input block][kh * kw][lanes in][lanes
  // out] (direct), and the bias as [blocks * lanes]; zero past M and C.
  void pack(const Tensor& w, const Tensor* b) {
    kernel_ = {w.shape[2], w.shape[3]};
    taps_ = w.shape[2] * w.shape[3];
    const int64_t L = lanes_, blocks = blocks_of(M_, L), in_blocks = blocks_of(C_, L);
    const int64_t per_out = algo_ == Algo::Depthwise ? taps_
                            : algo_ == Algo::Direct  ? in_blocks * taps_ * L
                                                     : C_ * taps_;  // 1x1, plain input: K = C x taps
    weights_.assign(size_t(blocks * per_out * L), 0.f);
    bias_.assign(size_t(blocks * L), 0.f);
    const float* wp = w.ptr<float>();
    for (int64_t m = 0; m < M_; ++m) {
      float* dst = weights_.data() + (m / L) * per_out * L + m % L;
      if (algo_ != Algo::Direct) {
        for (int64_t k = 0; k < per_out; ++k) dst[k * L] = wp[m * per_out + k];
      } else {
        for (int64_t k = 0; k < C_; ++k)
          for (int64_t t = 0; t < taps_; ++t) dst[(((k / L) * taps_ + t) * L + k % L) * L] = wp[(m * C_ + k) * taps_ + t];
      }
      if (b) bias_[size_t(m)] = b->ptr<float>()[m];
    }
  }

  // A plain input (the stem: 3 channels, where a blocked input would be
  // mostly padding lanes) goes in bands of output rows: the band's input
  // rows copied zero-padded ([C][rows][width], about 64 KB, in L1/L2), then
  // each output pixel's K = C x kh x kw taps straight from it
  // (blocked_conv_plain). Im2col rows gathered into a blocked patch first
  // cost 40% more: MobileNetV2's stem in the model, Zen 4, 1 thread, 441 ->
  // 313 us (ONNX Runtime 317), 2 threads 365 -> 213.
  struct PlainBand {
    int64_t out_rows, in_rows, width;
  };
  PlainBand plain_band(const kernels::Window2D& g) const {
    PlainBand b;
    b.width = std::max<int64_t>(1, (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1);  // the columns the windows cover, pads included
    const int64_t window_rows = (g.kh - 1) * g.dh + 1;
    const int64_t fit = 16384 / std::max<int64_t>(1, C_ * b.width);  // input rows in 64 KB
    b.out_rows = std::max<int64_t>(1, std::min(g.oh, (fit - window_rows) / g.sh + 1));
    b.in_rows = (b.out_rows - 1) * g.sh + window_rows;
    return b;
  }

  void run_plain(const Tensor& x, const float* residual, Tensor& y, float* scratch) {
    const kernels::Window2D g = window(x.shape);
    const PlainBand pb = plain_band(g);
    const int64_t batch = x.shape[0], out_blocks = y.shape[1], out_plane = g.oh * g.ow * lanes_;
    const int64_t bands = (g.oh + pb.out_rows - 1) / pb.out_rows, band_floats = C_ * pb.in_rows * pb.width;
    std::vector<int64_t> offsets(size_t(C_ * taps_));
    for (int64_t c = 0; c < C_; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          offsets[size_t((c * g.kh + i) * g.kw + j)] = (c * pb.in_rows + i * g.dh) * pb.width + j * g.dw;
    kernels::BlockedPlainConv a;
    a.K = C_ * taps_;
    a.sw = g.sw;
    a.ow = g.ow;
    a.offsets = offsets.data();
    a.w = weights_.data();
    a.bias = bias_.data();
    a.act = act_;
    a.y_plane = out_plane;
    const kernels::KernelTable& kt = *kt_;
    // Input columns [0, cols) land at band column pw; the rest are pads.
    const int64_t cols = std::max<int64_t>(0, std::min(g.iw, pb.width - g.pw));
    parallel_for_indexed(batch * bands, [&](int64_t b, int64_t e, int t) {
      float* band = scratch + t * band_floats;
      kernels::BlockedPlainConv an = a;
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / bands, r0 = i % bands * pb.out_rows, r1 = std::min(g.oh, r0 + pb.out_rows);
        const int64_t ih0 = r0 * g.sh - g.ph;  // the band's first row
        for (int64_t c = 0; c < C_; ++c)
          for (int64_t r = 0; r < pb.in_rows; ++r) {
            float* dst = band + (c * pb.in_rows + r) * pb.width;
            const int64_t ih = ih0 + r;
            if (ih < 0 || ih >= g.ih) {
              std::fill(dst, dst + pb.width, 0.f);
              continue;
            }
            std::fill(dst, dst + g.pw, 0.f);
            std::memcpy(dst + g.pw, x.ptr<float>() + ((n * C_ + c) * g.ih + ih) * g.iw, size_t(cols) * sizeof(float));
            std::fill(dst + g.pw + cols, dst + pb.width, 0.f);
          }
        an.y = y.ptr<float>() + n * out_blocks * out_plane;
        an.residual = residual ? residual + n * out_blocks * out_plane : nullptr;
        for (int64_t oh = r0; oh < r1; ++oh)
          kt.blocked_conv_plain(an, band + (oh - r0) * g.sh * pb.width, oh, 0, out_blocks);
      }
    });
  }

  void run_direct(const Tensor& x, const float* residual, Tensor& y) {
    const kernels::Window2D g = window(x.shape);
    const int64_t batch = x.shape[0], out_blocks = y.shape[1], L = lanes_;
    const int64_t in_pixels = g.ih * g.iw, out_plane = g.oh * g.ow * L;
    const int64_t image_in = x.shape[1] * in_pixels * L;
    kernels::BlockedConv a;
    a.x_block = in_pixels * L;
    a.x_row = g.iw * L;
    a.C = C_;
    a.g = g;
    a.w = weights_.data();
    a.bias = bias_.data();
    a.act = act_;
    const kernels::KernelTable& kt = *kt_;
    parallel_for(batch * g.oh, [&](int64_t b, int64_t e) {
      kernels::BlockedConv t = a;
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / g.oh;
        t.x = x.ptr<float>() + n * image_in;
        t.residual = residual ? residual + n * out_blocks * out_plane : nullptr;
        t.y = y.ptr<float>() + n * out_blocks * out_plane;
        kt.blocked_conv(t, i % g.oh, 0, out_blocks);
      }
    });
  }

  void run_depthwise(const Tensor& x, const float* residual, Tensor& y) {
    const kernels::Window2D g = window(x.shape);
    const int64_t batch = x.shape[0], blocks = x.shape[1];
    const int64_t in_plane = g.ih * g.iw * lanes_, out_plane = g.oh * g.ow * lanes_;
    // Few blocks (batch 1, 32 channels = 2-4 blocks) split by rows as well,
    // so every thread has a share.
    const int64_t planes = batch * blocks, want = 4 * int64_t(current_num_threads());
    const int64_t chunks = planes >= want ? 1 : std::min(g.oh, (want + planes - 1) / planes);
    const int64_t rows = (g.oh + chunks - 1) / chunks;
    const float* xp = x.ptr<float>();
    float* yp = y.ptr<float>();
    const kernels::KernelTable& kt = *kt_;
    parallel_for(planes * chunks, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t plane = i / chunks, cb = plane % blocks, r0 = i % chunks * rows;
        if (r0 >= g.oh) continue;
        kt.blocked_depthwise(g, xp + plane * in_plane, weights_.data() + cb * taps_ * lanes_,
                             bias_.data() + cb * lanes_, residual ? residual + plane * out_plane : nullptr, act_,
                             yp + plane * out_plane, r0, std::min(g.oh, r0 + rows));
      }
    });
  }

  void run_pointwise(const Tensor& x, const float* residual, const float* scale, int64_t scale_values, Tensor& y,
                     float* scaled) {
    const int64_t batch = x.shape[0], in_blocks = x.shape[1], out_blocks = y.shape[1];
    const int64_t pixels = x.shape[2] * x.shape[3], plane = pixels * lanes_;
    const int64_t threads = current_num_threads();
    // Where the weights outweigh an image's input (7x7 and 14x14 maps of
    // wide layers), the images go together, so each weight slice is read
    // once for all of them, and threads split the output blocks (each then
    // streams its share of the weights); EfficientNet-B0 at batch 8, 1
    // thread, its 7x7 1x1 convolutions: 1.7-1.9x ONNX Runtime's time when
    // image by image. Else each image on one thread when the batch splits
    // evenly, or each image's pixels split, or its output blocks.
    const bool weights_outweigh = pixels * C_ < int64_t(weights_.size());
    const bool together = images_together(batch, pixels, scale != nullptr);
    const bool by_image = !together && batch >= threads && batch % threads == 0 && !scale;
    const bool by_pixels = (!weights_outweigh && !together) || out_blocks < threads;
    // Chunks for parallel_for's free threads: whole tiles of pixels, as
    // many as fit evenly, or one equal run of output blocks a thread (10
    // blocks on 2 threads: 5 and 5; in whole 4-block tile columns they
    // split 8 and 2, and MobileNetV2's 960 -> 160 at 7x7 ran 1.5x slower).
    const int64_t unit = by_pixels ? kt_->blocked_tile_pixels : 1;
    const int64_t units = ((by_pixels ? pixels : out_blocks) + unit - 1) / unit;
    const int64_t parts = by_image ? 1 : by_pixels ? even_parts(units, threads) : std::min(units, threads);
    const int64_t step = (units + parts - 1) / parts * unit;  // pixels or blocks a part
    const kernels::KernelTable& kt = *kt_;
    auto image = [&](int64_t n, int64_t part, const float* w, const float* xn) {
      kernels::BlockedPointwise a;
      a.x = xn ? xn : x.ptr<float>() + n * in_blocks * plane;
      a.x_stride = plane;
      a.K = C_;
      a.w = w;
      a.bias = bias_.data();
      a.residual = residual ? residual + n * out_blocks * plane : nullptr;
      a.act = act_;
      a.y = y.ptr<float>() + n * out_blocks * plane;
      a.y_stride = plane;
      if (together) {
        a.images = batch;
        a.x_image = in_blocks * plane;
        a.y_image = out_blocks * plane;
      }
      if (parts == 1) kt.blocked_pointwise(a, 0, pixels, 0, out_blocks);
      else if (by_pixels) kt.blocked_pointwise(a, std::min(pixels, part * step), std::min(pixels, (part + 1) * step), 0, out_blocks);
      else kt.blocked_pointwise(a, 0, pixels, std::min(out_blocks, part * step), std::min(out_blocks, (part + 1) * step));
    };
    const int64_t calls = together ? 1 : batch;  // image(0, ...) covers every image when together
    if (!scale) {
      parallel_for(calls * parts, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) image(i / parts, i % parts, weights_.data(), nullptr);
      });
      return;
    }
    // The squeeze-and-excitation scale of input channel k: on W's row k
    // (K x M multiplies an image) or on the input (K x pixels), whichever
    // is fewer: 7x7 maps scale the input, 56x56 ones the weights.
    const bool on_input = scales_input(pixels);
    // Image n's input, scaled, at dst.
    auto scale_input = [&](int64_t n, const float* s, float* dst_image) {
      parallel_for(in_blocks, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          float sv[16] = {};
          for (int64_t l = 0; l < lanes_ && b * lanes_ + l < C_; ++l) sv[l] = s[b * lanes_ + l];
          const float* src = x.ptr<float>() + (n * in_blocks + b) * plane;
          float* dst = dst_image + b * plane;
          for (int64_t p = 0; p < pixels; ++p)
            for (int64_t l = 0; l < lanes_; ++l) dst[p * lanes_ + l] = src[p * lanes_ + l] * sv[l];
        }
      });
    };
    if (together) {  // every image scaled (on the input: images_together), then one pass
      for (int64_t n = 0; n < batch; ++n)
        scale_input(n, scale + (scale_values == C_ ? 0 : n * C_), scaled + n * in_blocks * plane);
      parallel_for(parts, [&](int64_t b, int64_t e) {
        for (int64_t part = b; part < e; ++part) image(0, part, weights_.data(), scaled);
      });
      return;
    }
    for (int64_t n = 0; n < batch; ++n) {
      const float* s = scale + (scale_values == C_ ? 0 : n * C_);
      if (on_input) {
        scale_input(n, s, scaled);
      } else {
        parallel_for(out_blocks, [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b)
            for (int64_t k = 0; k < C_; ++k) {
              const float* src = weights_.data() + (b * C_ + k) * lanes_;
              float* dst = scaled + (b * C_ + k) * lanes_;
              for (int64_t l = 0; l < lanes_; ++l) dst[l] = src[l] * s[k];
            }
        });
      }
      parallel_for(parts, [&](int64_t b, int64_t e) {
        for (int64_t part = b; part < e; ++part)
          image(n, part, on_input ? weights_.data() : scaled, on_input ? scaled : nullptr);
      });
    }
  }

  // Parts of `units` for `threads`: a multiple of threads up to 4 a thread
  // (parallel_for's chunks), the one wasting fewest units on the last,
  // short parts (the largest among equals).
  static int64_t even_parts(int64_t units, int64_t threads) {
    int64_t best = threads, best_cost = INT64_MAX;
    for (int64_t p = threads; p <= 4 * threads && p <= std::max(units, threads); p += threads) {
      const int64_t cost = (units + p - 1) / p * p;
      if (cost <= best_cost) best = p, best_cost = cost;
    }
    return best;
  }

  // Whether the input scale goes on the input (fewer values than the weights).
  bool scales_input(int64_t pixels) const { return pixels < M_; }

  // Whether a 1x1 takes a batch's images together (run_pointwise): where
  // its weights outweigh an image's input, and an input scale, if any, goes
  // on the input (on the weights it differs by image).
  bool images_together(int64_t batch, int64_t pixels, bool scaled) const {
    return batch > 1 && pixels * C_ < int64_t(weights_.size()) && (!scaled || scales_input(pixels));
  }

  Node node_;
  SpatialAttrs attrs_;
  const kernels::KernelTable* kt_;
  int64_t lanes_ = 0, M_ = 0, C_ = 0, taps_ = 1;
  enum class Algo { Pointwise, Depthwise, Direct, Plain } algo_ = Algo::Pointwise;
  bool plain_input_ = false, has_scale_ = false;
  std::vector<int64_t> kernel_;
  kernels::Activation act_;
  std::vector<float> weights_, bias_;
};

// pycnn.ToBlocked (attribute lanes) and pycnn.FromBlocked (attributes lanes,
// channels): NCHW <-> blocked, a block of channels at a time.
class ReorderOp : public Op {
 public:
  ReorderOp(const OpContext& c, bool to_blocked) : node_(c.node), to_blocked_(to_blocked), kt_(&kernels::active()) {
    lanes_ = blocked_lanes(node_, "lanes", *kt_);
    channels_ = c.attrs().get_int("channels", 0);
    PYCNN_CHECK(to_blocked || channels_ > 0, ErrorCode::InvalidModel, where(node_), ": needs channels > 0");
  }
  std::string algorithm() const override { return to_blocked_ ? "to-blocked" : "from-blocked"; }

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    if (to_blocked_) {
      PYCNN_CHECK(in[0].dtype == DType::f32 && x.size() == 4, ErrorCode::InvalidArgument, where(node_),
                  ": the input must be float32 (N, C, H, W), got ", dtype_name(in[0].dtype), " ", shape_str(x));
      return {TensorInfo{DType::f32, Shape{x[0], blocks_of(x[1], lanes_), x[2], x[3], lanes_}}};
    }
    require_blocked(in[0], channels_, lanes_, "the input", node_);
    return {TensorInfo{DType::f32, Shape{x[0], channels_, x[2], x[3]}}};
  }

  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Tensor& nchw = to_blocked_ ? in[0] : out[0];
    const Tensor& blocked = to_blocked_ ? out[0] : in[0];
    const int64_t C = nchw.shape[1], blocks = blocked.shape[1], pixels = nchw.shape[2] * nchw.shape[3];
    const float* src = in[0].ptr<float>();
    float* dst = out[0].ptr<float>();
    const kernels::KernelTable& kt = *kt_;
    parallel_for(nchw.shape[0] * blocks, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / blocks, c0 = i % blocks * lanes_;
        const int channels = int(std::min(lanes_, C - c0));
        const int64_t plain = (n * C + c0) * pixels, block = i * pixels * lanes_;  // offsets
        if (to_blocked_) kt.to_blocked(src + plain, channels, pixels, dst + block);
        else kt.from_blocked(src + block, channels, pixels, dst + plain);
      }
    });
  }

 private:
  Node node_;
  bool to_blocked_;
  const kernels::KernelTable* kt_;
  int64_t lanes_ = 0, channels_ = 0;
};

// GlobalAveragePool (attributes _blocked, _channels) of a blocked input:
// (N, C, 1, 1) out, as the plain op.
class BlockedGlobalAveragePoolOp : public Op {
 public:
  explicit BlockedGlobalAveragePoolOp(const OpContext& c) : node_(c.node), kt_(&kernels::active()) {
    lanes_ = blocked_lanes(node_, "_blocked", *kt_);
    channels_ = c.attrs().get_int("_channels", 0);
    PYCNN_CHECK(channels_ > 0, ErrorCode::InvalidModel, where(node_), ": needs _channels > 0");
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    require_blocked(in[0], channels_, lanes_, "the input", node_);
    return {TensorInfo{DType::f32, Shape{in[0].shape[0], channels_, 1, 1}}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Tensor& x = in[0];
    const int64_t blocks = x.shape[1], pixels = x.shape[2] * x.shape[3];
    const float* xp = x.ptr<float>();
    float* yp = out[0].ptr<float>();
    const kernels::KernelTable& kt = *kt_;
    parallel_for(x.shape[0] * blocks, [&](int64_t b, int64_t e) {
      float sum[16];
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / blocks, c0 = i % blocks * lanes_;
        kt.blocked_sum(xp + i * pixels * lanes_, pixels, sum);
        for (int64_t l = 0; l < lanes_ && c0 + l < channels_; ++l)
          yp[n * channels_ + c0 + l] = pixels ? sum[l] / float(pixels) : 0.f;
      }
    });
  }

 private:
  Node node_;
  const kernels::KernelTable* kt_;
  int64_t lanes_ = 0, channels_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_blocked_conv(const OpContext& c) { return std::make_unique<BlockedConvOp>(c); }
std::unique_ptr<Op> make_to_blocked(const OpContext& c) { return std::make_unique<ReorderOp>(c, true); }
std::unique_ptr<Op> make_from_blocked(const OpContext& c) { return std::make_unique<ReorderOp>(c, false); }
std::unique_ptr<Op> make_blocked_global_average_pool(const OpContext& c) {
  return std::make_unique<BlockedGlobalAveragePoolOp>(c);
}

}  // namespace pycnn
