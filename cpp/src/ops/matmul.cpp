// Gemm (alpha*A'B' + beta*C) and MatMul (numpy semantics, batched with
// broadcasting). A constant B is packed once at creation.
#include <cstring>

#include "kernels/gemm.h"
#include "ops/common.h"
#include "ops/op_list.h"

namespace pycnn {
namespace {

using kernels::KernelTable;


// A constant right-hand matrix packed once: B(k, n) = src[k*rs + n*cs] * scale.
struct PackedB {
  std::shared_ptr<void> storage;
  const float* data = nullptr;
  int64_t K = 0, N = 0;
  void pack(const KernelTable& kt, const float* src, int64_t rs, int64_t cs, int64_t K_, int64_t N_, float scale) {
    K = K_;
    N = N_;
    const size_t n = kernels::packed_b_floats(K, N, kt.gemm_nr);
    storage = aligned_buffer(n * sizeof(float), false);  // pack_b writes it all
    float* p = static_cast<float*>(storage.get());
    kernels::pack_b(src, rs, cs, K, N, kt.gemm_nr, p);
    if (scale != 1.f)
      for (size_t i = 0; i < n; ++i) p[i] *= scale;
    data = p;
  }
};

class GemmOp : public Op {
 public:
  explicit GemmOp(const OpContext& c) : node_(c.node), kt_(&kernels::active()) {
    alpha_ = float(c.attrs().get_float("alpha", 1.0));
    beta_ = float(c.attrs().get_float("beta", 1.0));
    trans_a_ = c.attrs().get_int("transA", 0) != 0;
    trans_b_ = c.attrs().get_int("transB", 0) != 0;
    act_ = fused_activation(c.attrs());
    const Tensor* b = c.constant(1);
    if (b && b->dtype == DType::f32 && b->rank() == 2) {
      const int64_t K = trans_b_ ? b->shape[1] : b->shape[0], N = trans_b_ ? b->shape[0] : b->shape[1];
      packed_.pack(*kt_, b->ptr<float>(), trans_b_ ? 1 : N, trans_b_ ? K : 1, K, N, alpha_);
    }
  }
  std::string algorithm() const override { return packed_.data ? "gemm-prepacked" : "gemm"; }
  bool keeps_copy_of(size_t i) const override { return i == 1 && packed_.data; }
  double flops(const std::vector<Tensor>& in, const std::vector<Tensor>& out) const override {
    return 2.0 * double(out[0].numel()) * double(trans_a_ ? in[0].shape[0] : in[0].shape[1]);
  }
  void dims(const Shape& a, const Shape& b, int64_t& M, int64_t& K, int64_t& N) const {
    M = trans_a_ ? a[1] : a[0];
    K = trans_a_ ? a[0] : a[1];
    const int64_t Kb = trans_b_ ? b[1] : b[0];
    N = trans_b_ ? b[0] : b[1];
    PYCNN_CHECK(K == Kb, ErrorCode::InvalidArgument, where(node_), ": inner dimensions differ: A ", shape_str(a),
                (trans_a_ ? " (transposed)" : ""), " and B ", shape_str(b), (trans_b_ ? " (transposed)" : ""));
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in[0].dtype == DType::f32 && in[1].dtype == DType::f32, ErrorCode::Unsupported, where(node_),
                ": only float32 is supported");
    PYCNN_CHECK(in[0].shape.size() == 2 && in[1].shape.size() == 2, ErrorCode::InvalidArgument, where(node_),
                ": A and B must be 2-D, got ", shape_str(in[0].shape), " and ", shape_str(in[1].shape));
    int64_t M, K, N;
    dims(in[0].shape, in[1].shape, M, K, N);
    if (in.size() > 2 && in[2].present) broadcast_shapes(in[2].shape, Shape{M, N}, node_);
    return {TensorInfo{DType::f32, Shape{M, N}}};
  }
  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    int64_t M, K, N;
    dims(in[0].shape, in[1].shape, M, K, N);
    size_t f = cacheline_floats(int64_t(kernels::packed_a_floats(M, K, kt_->gemm_mr)));
    f += cacheline_floats(int64_t(kernels::packed_b_floats(K, N, kt_->gemm_nr)));
    return f * sizeof(float) + 64 + kernels::gemm_work_bytes(*kt_, M);
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const KernelTable& kt = *kt_;
    int64_t M, K, N;
    dims(in[0].shape, in[1].shape, M, K, N);
    float* pa = static_cast<float*>(scratch);
    kernels::pack_a(in[0].ptr<float>(), trans_a_ ? 1 : K, trans_a_ ? M : 1, M, K, kt.gemm_mr, pa);
    const float* pb = packed_.data;
    float* work = pa + cacheline_floats(int64_t(kernels::packed_a_floats(M, K, kt.gemm_mr))) +
                  cacheline_floats(int64_t(kernels::packed_b_floats(K, N, kt.gemm_nr)));
    if (!pb) {
      float* p = pa + cacheline_floats(int64_t(kernels::packed_a_floats(M, K, kt.gemm_mr)));
      kernels::pack_b(in[1].ptr<float>(), trans_b_ ? 1 : N, trans_b_ ? K : 1, K, N, kt.gemm_nr, p);
      if (alpha_ != 1.f)
        for (size_t i = 0; i < kernels::packed_b_floats(K, N, kt.gemm_nr); ++i) p[i] *= alpha_;
      pb = p;
    }
    Tensor& y = out[0];
    const bool has_c = in.size() > 2 && in[2].data && beta_ != 0.f;
    const bool c_is_row = has_c && beta_ == 1.f && in[2].numel() == N && (in[2].rank() == 1 || in[2].shape[0] == 1);
    kernels::Epilogue ep;
    ep.col_bias = c_is_row ? in[2].ptr<float>() : nullptr;
    ep.act = (has_c && !c_is_row) ? kernels::Activation{} : act_;
    kernels::gemm_packed(kt, M, N, K, pa, pb, y.ptr<float>(), N, ep, work);
    if (has_c && !c_is_row) {  // general broadcast of beta*C, then the activation
      BroadcastWalk walk(y.shape, {in[2].shape});
      float* yp = y.ptr<float>();
      const float* cp = in[2].ptr<float>();
      for (int64_t o = 0; o < walk.outer_count; ++o) {
        int64_t off;
        walk.offsets(o, &off);
        for (int64_t i = 0; i < walk.inner; ++i) yp[o * walk.inner + i] += beta_ * cp[off + i * walk.inner_stride[0]];
      }
      if (!act_.is_identity()) kt.unary(act_, yp, yp, y.numel());
    }
  }

 private:
  Node node_;
  const KernelTable* kt_;
  float alpha_, beta_;
  bool trans_a_, trans_b_;
  kernels::Activation act_;
  PackedB packed_;
};

class MatMulOp : public Op {
 public:
  explicit MatMulOp(const OpContext& c) : node_(c.node), kt_(&kernels::active()) {
    const Tensor* b = c.constant(1);
    if (b && b->dtype == DType::f32 && b->rank() == 2) packed_.pack(*kt_, b->ptr<float>(), b->shape[1], 1, b->shape[0], b->shape[1], 1.f);
  }
  std::string algorithm() const override { return packed_.data ? "gemm-prepacked" : "gemm"; }
  bool keeps_copy_of(size_t i) const override { return i == 1 && packed_.data; }
  double flops(const std::vector<Tensor>& in, const std::vector<Tensor>& out) const override {
    return 2.0 * double(out[0].numel()) * double(in[0].shape.back());
  }
  struct Dims {
    Shape batch, out;
    int64_t M, K, N;
  };
  Dims dims(Shape a, Shape b) const {
    PYCNN_CHECK(!a.empty() && !b.empty(), ErrorCode::InvalidArgument, where(node_), ": inputs must have rank >= 1");
    const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
    if (a_vec) a.insert(a.begin(), 1);
    if (b_vec) b.push_back(1);
    Dims d;
    d.M = a[a.size() - 2];
    d.K = a.back();
    d.N = b.back();
    PYCNN_CHECK(b[b.size() - 2] == d.K, ErrorCode::InvalidArgument, where(node_), ": inner dimensions differ: ",
                shape_str(a), " @ ", shape_str(b));
    d.batch = broadcast_shapes(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2), node_);
    d.out = d.batch;
    if (!a_vec) d.out.push_back(d.M);
    if (!b_vec) d.out.push_back(d.N);
    return d;
  }
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in) override {
    PYCNN_CHECK(in[0].dtype == DType::f32 && in[1].dtype == DType::f32, ErrorCode::Unsupported, where(node_),
                ": only float32 is supported, got ", dtype_name(in[0].dtype), " and ", dtype_name(in[1].dtype));
    return {TensorInfo{DType::f32, dims(in[0].shape, in[1].shape).out}};
  }
  size_t scratch_bytes(const std::vector<TensorInfo>& in) override {
    const Dims d = dims(in[0].shape, in[1].shape);
    const int64_t rows = folded_rows(in[0].shape, in[1].shape, d);
    return (cacheline_floats(int64_t(kernels::packed_a_floats(rows, d.K, kt_->gemm_mr))) +
            cacheline_floats(int64_t(kernels::packed_b_floats(d.K, d.N, kt_->gemm_nr)))) * sizeof(float) + 64 +
           kernels::gemm_work_bytes(*kt_, rows);
  }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out, void* scratch) override {
    const KernelTable& kt = *kt_;
    const Tensor &a = in[0], &b = in[1];
    const Dims d = dims(a.shape, b.shape);
    float* pa = static_cast<float*>(scratch);
    const int64_t rows = folded_rows(a.shape, b.shape, d);
    float* pb_scratch = pa + cacheline_floats(int64_t(kernels::packed_a_floats(rows, d.K, kt.gemm_mr)));
    float* work = pb_scratch + cacheline_floats(int64_t(kernels::packed_b_floats(d.K, d.N, kt.gemm_nr)));
    if (rows != d.M) {  // B is one matrix: all of A's rows in one GEMM
      kernels::pack_a(a.ptr<float>(), d.K, 1, rows, d.K, kt.gemm_mr, pa);
      const float* pb = packed_.data;
      if (!pb) {
        kernels::pack_b(b.ptr<float>(), d.N, 1, d.K, d.N, kt.gemm_nr, pb_scratch);
        pb = pb_scratch;
      }
      kernels::gemm_packed(kt, rows, d.N, d.K, pa, pb, out[0].ptr<float>(), d.N, kernels::Epilogue{}, work);
      return;
    }
    // General batched case: walk the broadcast batch.
    Shape ab(a.shape.begin(), a.shape.end() - std::min<size_t>(2, a.shape.size()));
    Shape bb(b.shape.begin(), b.shape.end() - std::min<size_t>(2, b.shape.size()));
    if (a.rank() == 1) ab.clear();
    if (b.rank() == 1) bb.clear();
    BroadcastWalk walk(d.batch, {ab, bb});
    const int64_t nb = shape_numel(d.batch);
    for (int64_t i = 0; i < nb; ++i) {
      int64_t off[2];
      walk.offsets(i / walk.inner, off);
      off[0] += (i % walk.inner) * walk.inner_stride[0];
      off[1] += (i % walk.inner) * walk.inner_stride[1];
      kernels::pack_a(a.ptr<float>() + off[0] * d.M * d.K, d.K, 1, d.M, d.K, kt.gemm_mr, pa);
      const float* pb = packed_.data;
      if (!pb) {
        kernels::pack_b(b.ptr<float>() + off[1] * d.K * d.N, d.N, 1, d.K, d.N, kt.gemm_nr, pb_scratch);
        pb = pb_scratch;
      }
      kernels::gemm_packed(kt, d.M, d.N, d.K, pa, pb, out[0].ptr<float>() + i * d.M * d.N, d.N, kernels::Epilogue{}, work);
    }
  }

 private:
  // When B is a single matrix, A's batch folds into its rows.
  int64_t folded_rows(const Shape& a, const Shape& b, const Dims& d) const {
    return b.size() <= 2 ? shape_numel(a) / d.K : d.M;
  }
  Node node_;
  const KernelTable* kt_;
  PackedB packed_;
};

}  // namespace

std::unique_ptr<Op> make_gemm(const OpContext& c) { return std::make_unique<GemmOp>(c); }
std::unique_ptr<Op> make_matmul(const OpContext& c) { return std::make_unique<MatMulOp>(c); }

}  // namespace pycnn
