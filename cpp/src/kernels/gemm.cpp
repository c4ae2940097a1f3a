#include "kernels/gemm.h"

#include <algorithm>
#include <cmath>
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
  for (int64_t p = p0; p < p1; ++p) pack_b_panel(B, rs, cs, K, N, nr, p, out + p * nr * K);
}

void pack_b_panel(const float* B, int64_t rs, int64_t cs, int64_t K, int64_t N, int nr, int64_t p, float* o) {
  {
    const int64_t n0 = p * nr, cols = std::min<int64_t>(nr, N - n0);
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

size_t gemm_tail_floats(int64_t K, int nr) { return size_t(round_up(K * nr, 16)); }

void gemm(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const float* Ap, const GemmB& B, float* C,
          int64_t ldc, const Epilogue& ep) {
  const int mr = kt.gemm_mr, nr = kt.gemm_nr;
  const int64_t mp = (M + mr - 1) / mr, np = (N + nr - 1) / nr;
  // Work items pair a chunk of panels of one operand with every panel of the
  // other: the chunk's panels are reused from cache across the inner loop.
  // The operand with more bytes goes outside, so it streams from memory once.
  const bool a_outer = M > N;
  const int64_t chunk = 4;
  const int64_t outer = a_outer ? mp : np;
  const int64_t items = (outer + chunk - 1) / chunk;
  // ReLU and ReLU6 (Clip) go into the micro-kernel's store with the row
  // bias; other activations and column biases take a pass over the tile.
  const bool clamp = ep.act.kind == UnaryKind::Relu || ep.act.kind == UnaryKind::Clip;
  const bool store_fuses = !ep.col_bias && (ep.act.is_identity() || clamp);
  auto tile_job = [&](int64_t pm, int64_t pn, float* tail_panel, float* tile) {
    const int64_t m0 = pm * mr, rows = std::min<int64_t>(mr, M - m0);
    const int64_t n0 = pn * nr, cols = std::min<int64_t>(nr, N - n0);
    const float* a = Ap + m0 * K;
    const float* b = nullptr;
    int64_t ldb;
    if (B.rows) {
      ldb = n0;
    } else if (B.ld == 0) {
      b = B.data + n0 * K;
      ldb = nr;
    } else if (cols == nr) {
      b = B.data + n0;
      ldb = B.ld;
    } else {
      b = tail_panel;  // packed by the caller for this panel
      ldb = nr;
    }
    const bool full = cols == nr;  // partial columns go through the tile
    float* c = full ? C + m0 * ldc + n0 : tile;
    const int64_t ldt = full ? ldc : nr;
    if (K == 0) {
      for (int64_t r = 0; r < rows; ++r) std::fill(c + r * ldt, c + r * ldt + cols, 0.f);
    }
    GemmStore st;
    if (store_fuses && K > 0) {
      st.row_bias = ep.row_bias ? ep.row_bias + m0 : nullptr;
      st.clamp = clamp;
      st.lo = ep.act.kind == UnaryKind::Relu ? 0.f : ep.act.alpha;
      st.hi = ep.act.kind == UnaryKind::Relu ? INFINITY : ep.act.beta;
    }
    if (K > 0) kt.gemm_ukernel(int(rows), K, a, b, ldb, B.rows, c, ldt, st);
    for (int64_t r = 0; r < rows; ++r) {
      float* cr = c + r * ldt;
      if (!store_fuses || K == 0) {
        if (ep.col_bias) kt.binary(BinaryKind::Add, cr, 1, ep.col_bias + n0, 1, cr, cols);
        kt.bias_act(cr, cols, ep.row_bias ? ep.row_bias[m0 + r] : 0.f, ep.act);
      }
      if (!full) std::memcpy(C + (m0 + r) * ldc + n0, cr, size_t(cols) * sizeof(float));
    }
  };
  // The partial last N panel of an in-place B, packed once per thread that needs it.
  const bool direct_tail = !B.rows && B.ld != 0 && N % nr != 0;
  parallel_for_indexed(items, [&](int64_t begin, int64_t end, int t) {
    alignas(64) float tile[16 * 64];  // covers every table's mr x nr
    float* tail_panel = direct_tail ? B.tail + size_t(t) * gemm_tail_floats(K, nr) : nullptr;
    if (direct_tail) pack_b_panel(B.data, B.ld, 1, K, N, nr, np - 1, tail_panel);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t o0 = item * chunk, o1 = std::min(outer, o0 + chunk);
      if (a_outer) {
        for (int64_t pn = 0; pn < np; ++pn)
          for (int64_t pm = o0; pm < o1; ++pm) tile_job(pm, pn, tail_panel, tile);
      } else {
        for (int64_t pm = 0; pm < mp; ++pm)
          for (int64_t pn = o0; pn < o1; ++pn) tile_job(pm, pn, tail_panel, tile);
      }
    }
  });
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
