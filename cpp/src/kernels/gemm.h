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
// B(k, n) = B[k * rs + n * cs]; missing columns are zero-filled. Panels
// [p0, p1) only, so callers can pack in parallel.
void pack_b(const float* B, int64_t rs, int64_t cs, int64_t K, int64_t N, int nr, float* out,
            int64_t p0 = 0, int64_t p1 = -1);

// What happens to C after the product: bias per row (conv: per output
// channel) or per column (Gemm/FC), then an activation.
struct Epilogue {
  const float* row_bias = nullptr;
  const float* col_bias = nullptr;
  Activation act;
};

// The B operand: packed panels (pack_b), or a row-major K x N matrix read in
// place (ld = its row stride), which spares a 1x1 convolution the copy. A
// partial last panel of an in-place B is packed into `tail`, which must hold
// gemm_tail_floats(K, nr) floats per thread.
struct GemmB {
  const float* data = nullptr;
  int64_t ld = 0;  // 0: packed
  float* tail = nullptr;
  // Indirect B: row k is rows[k][0, N) (contiguous columns, readable nr
  // floats past N): convolution straight from a padded input.
  const float* const* rows = nullptr;
};
size_t gemm_tail_floats(int64_t K, int nr);

// C[M x N] (row stride ldc) = A_packed * B, then the epilogue. Splits the
// tiles across the current scope's threads; the loop order keeps the larger
// operand's panels in cache.
void gemm(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const float* Ap, const GemmB& B, float* C,
          int64_t ldc, const Epilogue& ep);
inline void gemm_packed(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const float* Ap, const float* Bp,
                        float* C, int64_t ldc, const Epilogue& ep) {
  gemm(kt, M, N, K, Ap, GemmB{Bp, 0, nullptr}, C, ldc, ep);
}

// Panel p of pack_b's output, written at `out`.
void pack_b_panel(const float* B, int64_t rs, int64_t cs, int64_t K, int64_t N, int nr, int64_t p, float* out);

// Plain triple-loop reference, for tests.
void gemm_reference(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C);

}  // namespace pycnn::kernels
