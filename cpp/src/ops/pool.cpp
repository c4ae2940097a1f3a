// MaxPool (with optional Indices), AveragePool, GlobalAveragePool, GlobalMaxPool.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "ops/common.h"
#include "ops/op_list.h"
#include "ops/window.h"

namespace pycnn {
namespace {

class PoolOp : public Op {
 public:
  PoolOp(const OpContext& c, bool is_max) : node_(c.node), attrs_(SpatialAttrs::parse(c.node)), is_max_(is_max) {
    PYCNN_CHECK(!attrs_.kernel.empty(), ErrorCode::InvalidModel, "node '", node_.name, "' (", node_.op_type,
                "): attribute 'kernel_shape' is required");
    count_include_pad_ = c.attrs().get_int("count_include_pad", 0) != 0;
    storage_order_ = c.attrs().get_int("storage_order", 0);
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    PYCNN_CHECK(in[0].dtype == DType::f32, ErrorCode::Unsupported, "node '", node_.name, "' (", node_.op_type,
                "): dtype ", dtype_name(in[0].dtype), " is not supported (float32 only)");
    PYCNN_CHECK(x.size() >= 3, ErrorCode::InvalidArgument, "node '", node_.name, "' (", node_.op_type,
                "): input must be (N, C, spatial...), got ", shape_str(x));
    SpatialAttrs a = attrs_;
    a.complete(int(x.size()) - 2, node_);
    Shape out{x[0], x[1]};
    for (int64_t d : a.output_sizes(spatial(x), node_, nullptr)) out.push_back(d);
    return {TensorInfo{DType::f32, out}, TensorInfo{DType::i64, out}};
  }
  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    infer(in);
    const kernels::Window2D g = geometry(in[0].shape, nullptr, nullptr);
    // The widest vectors take the most windows across channels: scratch for
    // whichever table runs.
    if (!by_channels(g, kWidestLanes)) return 0;
    return size_t(kernels::channel_windows_work_floats(g) * current_num_threads()) * sizeof(float) + 64;
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const Tensor& x = in[0];
    int64_t pad_end_h = 0, pad_end_w = 0;
    const kernels::Window2D g = geometry(x.shape, &pad_end_h, &pad_end_w);
    const int64_t planes = x.shape[0] * x.shape[1], ip = g.ih * g.iw, op = g.oh * g.ow;
    const auto& kt = kernels::active();
    const float* xp = x.ptr<float>();
    float* yp = out[0].ptr<float>();
    if (by_channels(g, kt.channel_lanes)) {
      const int64_t lanes = kt.channel_lanes, groups = (planes + lanes - 1) / lanes;
      const int64_t per_thread = kernels::channel_windows_work_floats(g);
      parallel_for_indexed(groups, [&](int64_t b, int64_t e, int t) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t p = i * lanes;
          kt.maxpool2d_channels(g, int(std::min(lanes, planes - p)), xp + p * ip, yp + p * op,
                                static_cast<float*>(scratch) + t * per_thread);
        }
      });
      return;
    }
    int64_t* idx = out.size() > 1 ? out[1].ptr<int64_t>() : nullptr;
    parallel_for(planes, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        if (idx) max_with_indices(g, xp + p * ip, yp + p * op, idx + p * op, p * ip);
        else if (is_max_) kt.maxpool2d(g, xp + p * ip, yp + p * op);
        else kt.avgpool2d(g, xp + p * ip, yp + p * op, count_include_pad_, pad_end_h, pad_end_w);
      }
    });
  }

 private:
  // The window over one plane of x; the trailing pads too when asked.
  kernels::Window2D geometry(const Shape& x, int64_t* pad_end_h, int64_t* pad_end_w) const {
    SpatialAttrs a = attrs_;
    a.complete(int(x.size()) - 2, node_);
    std::vector<int64_t> pads;
    const auto osz = a.output_sizes(spatial(x), node_, &pads);
    if (pad_end_h) *pad_end_h = a.rank == 1 ? 0 : pads[2];
    if (pad_end_w) *pad_end_w = a.rank == 1 ? pads[1] : pads[3];
    return make_window2d(spatial(x), osz, a, pads);
  }
  // Max pooling without indices runs vectorized across channels (planes of
  // a CNN's pooling layers are too short to fill vectors well: 1.3-3.5x
  // faster on SqueezeNet's), except where the plane-by-plane kernel wins.
  static constexpr int kWidestLanes = 16;
  bool by_channels(const kernels::Window2D& g, int lanes) const {
    // 2x2 and 3x3 windows at stride 2 with an output row of at least a
    // vector go plane by plane (maxpool2d's stride-2 path). AVX2, against
    // across channels: SqueezeNet's 111x111 0.25 -> 0.15 ms, 55x55 0.18 ->
    // 0.09, 27x27 0.093 -> 0.066, ResNet's 112x112 0.23 -> 0.15; rows of
    // 6-7 outputs (13x13, 14x14) stay across channels, 1.4-1.5x faster there.
    const bool stride2_plane = kernels::stride2_pool_window(g) && g.ow >= lanes;
    return is_max_ && (node_.outputs.size() < 2 || node_.outputs[1] < 0) && !stride2_plane &&
           kernels::channel_window_pixels(g) <= kernels::kMaxChannelWindowPixels;
  }

  // Indices are flat offsets into X (row-major, or column-major within the
  // plane when storage_order=1), as ONNX defines them.
  void max_with_indices(const kernels::Window2D& g, const float* x, float* y, int64_t* idx, int64_t base) const {
    for (int64_t oh = 0; oh < g.oh; ++oh)
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t at = -1;
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t h = oh * g.sh - g.ph + i * g.dh;
          if (h < 0 || h >= g.ih) continue;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t w = ow * g.sw - g.pw + j * g.dw;
            if (w < 0 || w >= g.iw) continue;
            if (at < 0 || x[h * g.iw + w] > best) {
              best = x[h * g.iw + w];
              at = storage_order_ ? w * g.ih + h : h * g.iw + w;
            }
          }
        }
        y[oh * g.ow + ow] = best;
        idx[oh * g.ow + ow] = base + at;
      }
  }
  Node node_;
  SpatialAttrs attrs_;
  bool is_max_;
  bool count_include_pad_ = false;
  int64_t storage_order_ = 0;
};

class GlobalPoolOp : public Op {
 public:
  GlobalPoolOp(const Node& node, bool is_max) : node_(node), is_max_(is_max) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    const Shape& x = in[0].shape;
    PYCNN_CHECK(in[0].dtype == DType::f32, ErrorCode::Unsupported, "node '", node_.name, "' (", node_.op_type,
                "): dtype ", dtype_name(in[0].dtype), " is not supported (float32 only)");
    PYCNN_CHECK(x.size() >= 2, ErrorCode::InvalidArgument, "node '", node_.name, "' (", node_.op_type,
                "): input must be (N, C, ...), got ", shape_str(x));
    Shape out(x.size(), 1);
    out[0] = x[0];
    out[1] = x[1];
    return {TensorInfo{DType::f32, out}};
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const Tensor& x = in[0];
    const int64_t planes = x.shape[0] * x.shape[1], n = x.numel() / std::max<int64_t>(planes, 1);
    const float* xp = x.ptr<float>();
    float* yp = out[0].ptr<float>();
    const auto& kt = kernels::active();
    parallel_for(planes, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const float* s = xp + p * n;
        if (is_max_) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t i = 0; i < n; ++i) m = s[i] > m ? s[i] : m;
          yp[p] = m;
        } else {
          yp[p] = float(kt.sum(s, n) / double(n));
        }
      }
    });
  }

 private:
  Node node_;
  bool is_max_;
};

}  // namespace

std::unique_ptr<Op> make_max_pool(const OpContext& c) { return std::make_unique<PoolOp>(c, true); }
std::unique_ptr<Op> make_average_pool(const OpContext& c) { return std::make_unique<PoolOp>(c, false); }
std::unique_ptr<Op> make_global_average_pool(const OpContext& c) {
  if (c.attrs().get_int("_blocked", 0)) return make_blocked_global_average_pool(c);
  return std::make_unique<GlobalPoolOp>(c.node, false);
}
std::unique_ptr<Op> make_global_max_pool(const OpContext& c) { return std::make_unique<GlobalPoolOp>(c.node, true); }

}  // namespace pycnn
