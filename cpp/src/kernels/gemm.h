// SGEMM on packed panels. A is packed into panels of MR rows (k-major),
// B into panels of NR columns (k-major); the micro-kernel multiplies one
// panel pair. Weights are packed once at session creation; activations per
// run into scratch memory. Panel sizes come from the kernel table, so packed
// buffers belong to the ISA that was active when they were packed.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace pycnn::kernels {

struct GemmShape {
  int mr, nr;
  static GemmShape of(const KernelTable& t) { return {t.gemm_mr, t.gemm_nr}; }
};

int64_t round_up(int64_t v, int64_t m);
size_t packed_a_floats(int64_t M, int64_t K, int mr);
size_t packed_b_floats(int64_t K, int64_t N, int nr);

// A(m, k) = A[m * rs + k * cs]; missing rows are zero-filled.
void pack_a(const float* A, int64_t rs, int64_t cs, int64_t M, int64_t K, int mr, float* out);
// The A operand (weights): packed panels (pack_a: weights packed once at
// session creation), or a row-major M x K matrix (row stride ld) the
// micro-kernel reads in place (GemmStore::a_ld): for weights used once
// (pycnn.functional, weights fed at run time) that reads them from memory
// once and writes no packed copy.
struct GemmA {
  GemmA(const float* packed_panels) : packed(packed_panels) {}  // NOLINT: packed is the usual case
  static GemmA row_major(const float* a, int64_t ld) {
    GemmA g(nullptr);
    g.data = a;
    g.ld = ld;
    return g;
  }
  const float* packed = nullptr;
  const float* data = nullptr;
  int64_t ld = 0;
};

// B(k, n) = B[k * rs + n * cs]; missing columns are zero-filled. Panels
// [p0, p1) only, so callers can pack in parallel.
void pack_b(const float* B, int64_t rs, int64_t cs, int64_t K, int64_t N, int nr, float* out,
            int64_t p0 = 0, int64_t p1 = -1);

// What happens to C after the product: bias per row (conv: per output
// channel) or per column (Gemm/FC), a residual (a tensor laid out like C,
// row stride residual_ld: the skip connection of a ResNet block), then an
// activation.
struct Epilogue {
  const float* row_bias = nullptr;
  const float* col_bias = nullptr;
  const float* residual = nullptr;
  int64_t residual_ld = 0;
  Activation act;
};

// The B operand: packed panels (pack_b), a row-major K x N matrix read in
// place (ld = its row stride; a 1x1 convolution's input), or indirect rows
// (a convolution straight from its padded input: rows[k] is row k). Row k's
// column n is at (n / row_cols) * row_stride + n % row_cols when row_cols is
// set (indirect: output pixel (oy, ox) of a plane row_stride floats wide; in
// place: image n / row_cols of a batch, row_stride floats apart), else at n.
// `work` must hold gemm_work_floats(kt, M) floats per thread: B blocks are
// packed there, and a partial last column panel accumulates there.
struct GemmB {
  GemmB() = default;
  // Packed panels (ld 0) or a row-major matrix read in place (ld its row stride).
  GemmB(const float* d, int64_t l, float* w) : data(d), ld(l), work(w) {}
  const float* data = nullptr;
  int64_t ld = 0;  // 0: packed
  float* work = nullptr;
  const float* const* rows = nullptr;
  int64_t row_cols = 0, row_stride = 0;
  // In-place B (ld) only: row k is read as act(B(k, n) * row_scale[k] +
  // row_shift[k]) (either may be null) while it is packed: a per-channel
  // map of a 1x1 convolution's input (a folded BatchNormalization + ReLU).
  const float* row_scale = nullptr;
  const float* row_shift = nullptr;
  Activation row_act;
  bool maps_rows() const { return row_scale || row_shift || !row_act.is_identity(); }
};
size_t gemm_work_floats(const KernelTable& kt, int64_t M);

// C[M x N] (row stride ldc) = A_packed * B, then the epilogue. Cache blocked
// (GotoBLAS order): B in blocks of kKC rows x kNC columns, packed into L2,
// against every A panel's matching kKC slice. Threads split N when it is
// wide, M otherwise.
void gemm(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const GemmA& A, const GemmB& B, float* C,
          int64_t ldc, const Epilogue& ep);
inline void gemm_packed(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const float* Ap, const float* Bp,
                        float* C, int64_t ldc, const Epilogue& ep, float* work) {
  gemm(kt, M, N, K, Ap, GemmB{Bp, 0, work}, C, ldc, ep);
}
// Scratch bytes for gemm's work areas on every thread of the current scope.
size_t gemm_work_bytes(const KernelTable& kt, int64_t M);

// Panel p of pack_b's output, written at `out`.
void pack_b_panel(const float* B, int64_t rs, int64_t cs, int64_t K, int64_t N, int nr, int64_t p, float* out);


}  // namespace pycnn::kernels
