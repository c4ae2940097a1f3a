#include "kernels/gemm.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

namespace pycnn::kernels {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Layout of depthwise2d's work area; see kernels_impl.inc. Equal strides only:
// otherwise it uses no work area.
int64_t depthwise_work_floats(const Window2D& g) {
  if (g.sh != g.sw) return 0;
  const int64_t s = g.sh;
  const int64_t wp = round_up(std::max((g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1, g.pw + g.iw), s);
  const int64_t hp = s * (g.oh - 1) + (g.kh - 1) * g.dh + 2 + s;
  const int64_t plane = round_up(hp * wp, 64);
  // + slack: the kernel reads and writes whole vectors past the last output.
  return plane + round_up(g.oh * wp, 64) + (s > 1 ? plane : 0) + 256;
}

size_t packed_a_floats(int64_t M, int64_t K, int mr) { return size_t(round_up(M, mr) * K); }
size_t packed_b_floats(int64_t K, int64_t N, int nr) { return size_t(round_up(N, nr) * K); }

void pack_a(const float* A, int64_t rs, int64_t cs, int64_t M, int64_t K, int mr, float* out) {
  for (int64_t p = 0; p < M; p += mr) {
    const int64_t rows = std::min<int64_t>(mr, M - p);
    for (int64_t k = 0; k < K; ++k) {
      float* o = out + (p * K) + k * mr;
      for (int64_t r = 0; r < rows; ++r) o[r] = A[(p + r) * rs + k * cs];
      for (int64_t r = rows; r < mr; ++r) o[r] = 0.f;
    }
  }
}

void pack_b(const float* B, int64_t rs, int64_t cs, int64_t K, int64_t N, int nr, float* out, int64_t p0,
            int64_t p1) {
  const int64_t panels = (N + nr - 1) / nr;
  if (p1 < 0) p1 = panels;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n0 = p * nr, cols = std::min<int64_t>(nr, N - n0);
    float* o = out + n0 * K;
    for (int64_t k = 0; k < K; ++k, o += nr) {
      const float* b = B + k * rs + n0 * cs;
      if (cs == 1) {
        std::memcpy(o, b, size_t(cols) * sizeof(float));
      } else {
        for (int64_t c = 0; c < cols; ++c) o[c] = b[c * cs];
      }
      for (int64_t c = cols; c < nr; ++c) o[c] = 0.f;
    }
  }
}

void gemm_packed(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const float* Ap, const float* Bp,
                 float* C, int64_t ldc, const Epilogue& ep) {
  const int mr = kt.gemm_mr, nr = kt.gemm_nr;
  const int64_t mp = (M + mr - 1) / mr, np = (N + nr - 1) / nr;
  // Work items: one N panel by a chunk of M panels, N-major so that a thread
  // reuses its B panel (in L1/L2) across the A panels of its chunk.
  const int64_t m_chunk = 8;
  const int64_t mchunks = (mp + m_chunk - 1) / m_chunk;
  auto work = [&](int64_t begin, int64_t end) {
    alignas(64) float tile[16 * 64];  // covers every table's mr x nr
    for (int64_t item = begin; item < end; ++item) {
      const int64_t pn = item / mchunks, mc = item % mchunks;
      const int64_t n0 = pn * nr, cols = std::min<int64_t>(nr, N - n0);
      const float* b = Bp + n0 * K;
      for (int64_t pm = mc * m_chunk; pm < std::min(mp, (mc + 1) * m_chunk); ++pm) {
        const int64_t m0 = pm * mr, rows = std::min<int64_t>(mr, M - m0);
        const float* a = Ap + m0 * K;
        const bool full = cols == nr;  // partial columns go through the tile
        float* c = full ? C + m0 * ldc + n0 : tile;
        const int64_t ldt = full ? ldc : nr;
        if (K == 0) {
          for (int64_t r = 0; r < rows; ++r) std::fill(c + r * ldt, c + r * ldt + cols, 0.f);
        } else {
          kt.gemm_ukernel(int(rows), K, a, b, c, ldt, false);
        }
        for (int64_t r = 0; r < rows; ++r) {
          float* cr = c + r * ldt;
          if (ep.col_bias) kt.binary(BinaryKind::Add, cr, 1, ep.col_bias + n0, 1, cr, cols);
          kt.bias_act(cr, cols, ep.row_bias ? ep.row_bias[m0 + r] : 0.f, ep.act);
          if (!full) std::memcpy(C + (m0 + r) * ldc + n0, cr, size_t(cols) * sizeof(float));
        }
      }
    }
  };
  parallel_for(np * mchunks, work);
}

void gemm_reference(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(A[m * K + k]) * B[k * N + n];
      C[m * N + n] = float(s);
    }
}

}  // namespace pycnn::kernels
