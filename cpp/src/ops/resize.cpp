// Resize (opset 10+) and Upsample (opset 7-9): nearest and N-linear
// interpolation with every coordinate transformation mode of the spec.
#include <cmath>
#include <cstring>

#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {


class ResizeOp : public Op {
 public:
  ResizeOp(const OpContext& c, bool upsample) : node_(c.node), upsample_(upsample) {
    const Attributes& a = c.attrs();
    mode_ = a.get_string("mode", "nearest");
    coord_ = upsample || c.node.opset < 11 ? "asymmetric" : a.get_string("coordinate_transformation_mode", "half_pixel");
    nearest_ = upsample || c.node.opset < 11 ? "floor" : a.get_string("nearest_mode", "round_prefer_floor");
    if (c.node.opset < 11 && !upsample) nearest_ = "round_prefer_floor";
    extrapolation_ = float(a.get_float("extrapolation_value", 0.0));
    axes_ = a.get_ints("axes");
    policy_ = a.get_string("keep_aspect_ratio_policy", "stretch");
    attr_scales_ = a.get_floats("scales");
    PYCNN_CHECK(mode_ == "nearest" || mode_ == "linear" || mode_ == "bilinear", ErrorCode::Unsupported, where(node_),
                ": mode '", mode_, "' is not supported (nearest, linear)");
    if (mode_ == "bilinear") mode_ = "linear";
    PYCNN_CHECK(a.get_int("antialias", 0) == 0, ErrorCode::Unsupported, where(node_), ": antialias is not supported");
    PYCNN_CHECK(coord_ == "half_pixel" || coord_ == "pytorch_half_pixel" || coord_ == "align_corners" ||
                    coord_ == "asymmetric" || coord_ == "tf_crop_and_resize" || coord_ == "half_pixel_symmetric" ||
                    coord_ == "tf_half_pixel_for_nn",
                ErrorCode::Unsupported, where(node_), ": coordinate_transformation_mode '", coord_, "' is not supported");
  }
  std::vector<int> value_inputs() const override { return upsample_ ? std::vector<int>{1} : std::vector<int>{1, 2, 3}; }

  struct Geometry {
    Shape out;
    std::vector<double> scales, roi;
  };
  Geometry geometry(const std::vector<TensorInfo>& in) const {
    const Shape& x = in[0].shape;
    const size_t r = x.size();
    std::vector<int64_t> axes;
    for (int64_t a : axes_) axes.push_back(normalize_axis(a, int64_t(r), node_));
    if (axes.empty()) for (size_t i = 0; i < r; ++i) axes.push_back(int64_t(i));
    auto known = [&](size_t i) { return i < in.size() && in[i].present && in[i].value && in[i].value->numel() > 0; };
    auto need = [&](size_t i) {
      PYCNN_CHECK(!(i < in.size() && in[i].present && !in[i].value), ErrorCode::Unsupported, where(node_),
                  ": scales/sizes must be known before run");
    };
    Geometry g;
    g.scales.assign(r, 1.0);
    g.out = x;
    g.roi.assign(2 * r, 0.0);
    for (size_t i = 0; i < r; ++i) g.roi[r + i] = 1.0;
    std::vector<double> scales;
    const size_t scales_at = upsample_ || node_.opset < 11 ? 1 : 2;
    need(scales_at);
    if (!upsample_ && node_.opset >= 11) need(3);
    if (upsample_ && node_.opset < 9) scales = attr_scales_;
    else if (known(scales_at)) scales = in[scales_at].value->as_doubles();
    if (!upsample_ && node_.opset >= 11 && known(1)) {
      const auto roi = in[1].value->as_doubles();
      if (roi.size() == 2 * axes.size())
        for (size_t k = 0; k < axes.size(); ++k) {
          g.roi[size_t(axes[k])] = roi[k];
          g.roi[r + size_t(axes[k])] = roi[axes.size() + k];
        }
    }
    if (!scales.empty()) {
      PYCNN_CHECK(scales.size() == axes.size(), ErrorCode::InvalidArgument, where(node_), ": scales has ", scales.size(),
                  " values, expected ", axes.size());
      for (size_t k = 0; k < axes.size(); ++k) {
        PYCNN_CHECK(scales[k] > 0, ErrorCode::InvalidArgument, where(node_), ": scales must be positive");
        const size_t d = size_t(axes[k]);
        g.scales[d] = scales[k];
        g.out[d] = int64_t(std::floor(double(x[d]) * scales[k]));
      }
    } else if (!upsample_ && known(3)) {
      const auto sizes = in[3].value->as_ints();
      PYCNN_CHECK(sizes.size() == axes.size(), ErrorCode::InvalidArgument, where(node_), ": sizes has ", sizes.size(),
                  " values, expected ", axes.size());
      if (policy_ == "stretch") {
        for (size_t k = 0; k < axes.size(); ++k) {
          const size_t d = size_t(axes[k]);
          g.out[d] = sizes[k];
          g.scales[d] = double(sizes[k]) / double(x[d]);
        }
      } else {
        double s = policy_ == "not_larger" ? 1e300 : 0;
        for (size_t k = 0; k < axes.size(); ++k) {
          const double v = double(sizes[k]) / double(x[size_t(axes[k])]);
          s = policy_ == "not_larger" ? std::min(s, v) : std::max(s, v);
        }
        for (size_t k = 0; k < axes.size(); ++k) {
          const size_t d = size_t(axes[k]);
          g.scales[d] = s;
          g.out[d] = int64_t(std::round(s * double(x[d])));
        }
      }
    } else {
      fail(ErrorCode::InvalidModel, where(node_), ": one of 'scales' or 'sizes' must be given");
    }
    return g;
  }

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in[0].dtype == DType::f32, ErrorCode::Unsupported, where(node_), ": only float32 is supported");
    return {TensorInfo{DType::f32, geometry(in).out}};
  }

  // Input coordinate of output index o along one axis.
  double source(int64_t o, int64_t in, int64_t out, double scale, double r0, double r1) const {
    const double x = double(o);
    if (coord_ == "half_pixel") return (x + 0.5) / scale - 0.5;
    if (coord_ == "half_pixel_symmetric") {
      const double adj = double(out) / (scale * double(in)), center = double(in) / 2;
      return center * (1 - adj) + (x + 0.5) / scale - 0.5;
    }
    if (coord_ == "pytorch_half_pixel") return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    if (coord_ == "align_corners") {  // the spec's resized length is in * scale, unrounded
      const double len = scale * double(in);
      return out == 1 || len <= 1.0 ? 0.0 : x * double(in - 1) / (len - 1.0);
    }
    if (coord_ == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
    if (coord_ == "tf_crop_and_resize")
      return out > 1 ? r0 * double(in - 1) + x * (r1 - r0) * double(in - 1) / double(out - 1) : 0.5 * (r0 + r1) * double(in - 1);
    return x / scale;  // asymmetric
  }

  int64_t nearest(double v, int64_t in) const {
    int64_t i;
    if (nearest_ == "floor") i = int64_t(std::floor(v));
    else if (nearest_ == "ceil") i = int64_t(std::ceil(v));
    else if (nearest_ == "round_prefer_ceil") i = int64_t(std::floor(v + 0.5));
    else i = (v - std::floor(v) == 0.5) ? int64_t(std::floor(v)) : int64_t(std::round(v));
    return std::max<int64_t>(0, std::min(i, in - 1));
  }

  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void*) override {
    const std::vector<TensorInfo> info = infos_of(in);
    const Geometry g = geometry(info);
    const Shape& x = in[0].shape;
    const size_t r = x.size();
    // Per axis and output index: two taps (i0, i1) and the weight of i1;
    // `outside` marks tf_crop_and_resize samples that fall off the input.
    struct Tap { int64_t i0, i1; float w; bool outside; };
    std::vector<std::vector<Tap>> taps(r);
    for (size_t d = 0; d < r; ++d) {
      for (int64_t o = 0; o < g.out[d]; ++o) {
        double v = source(o, x[d], g.out[d], g.scales[d], g.roi[d], g.roi[r + d]);
        Tap t{0, 0, 0.f, false};
        if (coord_ == "tf_crop_and_resize" && (v < 0 || v > double(x[d] - 1))) t.outside = true;
        if (mode_ == "nearest") {
          t.i0 = t.i1 = nearest(v, x[d]);
        } else {
          v = std::max(0.0, std::min(v, double(x[d] - 1)));
          t.i0 = int64_t(std::floor(v));
          t.i1 = std::min(t.i0 + 1, x[d] - 1);
          t.w = float(v - double(t.i0));
        }
        taps[d].push_back(t);
      }
    }
    std::vector<int64_t> xs(r, 1);
    for (int i = int(r) - 2; i >= 0; --i) xs[size_t(i)] = xs[size_t(i) + 1] * x[size_t(i) + 1];
    const float* xp = in[0].ptr<float>();
    float* yp = out[0].ptr<float>();
    std::vector<int64_t> idx(r, 0);
    std::vector<const Tap*> cur(r);
    for (int64_t o = 0; o < out[0].numel(); ++o) {
      bool outside = false;
      for (size_t d = 0; d < r; ++d) {
        cur[d] = &taps[d][size_t(idx[d])];
        outside |= cur[d]->outside;
      }
      float acc = 0.f;
      if (outside) {
        acc = extrapolation_;
      } else if (mode_ == "nearest") {
        int64_t off = 0;
        for (size_t d = 0; d < r; ++d) off += cur[d]->i0 * xs[d];
        acc = xp[off];
      } else {
        for (uint32_t corner = 0; corner < (1u << r); ++corner) {
          float w = 1.f;
          int64_t off = 0;
          for (size_t d = 0; d < r && w != 0.f; ++d) {
            const bool hi = (corner >> d) & 1u;
            w *= hi ? cur[d]->w : 1.f - cur[d]->w;
            off += (hi ? cur[d]->i1 : cur[d]->i0) * xs[d];
          }
          if (w != 0.f) acc += w * xp[off];
        }
      }
      yp[o] = acc;
      for (int d = int(r) - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < g.out[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  }

 private:
  Node node_;
  bool upsample_;
  std::string mode_, coord_, nearest_, policy_;
  float extrapolation_;
  std::vector<int64_t> axes_;
  std::vector<double> attr_scales_;
};

}  // namespace

std::unique_ptr<Op> make_resize(const OpContext& c) { return std::make_unique<ResizeOp>(c, false); }
std::unique_ptr<Op> make_upsample(const OpContext& c) { return std::make_unique<ResizeOp>(c, true); }

}  // namespace pycnn
