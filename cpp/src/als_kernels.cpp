// Dense kernels of the implicit-feedback models (dot products of gathered rows, sums of scaled
// rows, weighted Gram matrices). The portable versions are plain loops, templates on the scalar
// type, that the compiler vectorises for the baseline instruction set; on x86-64 AVX2+FMA
// versions (hand-written for float, the portable templates inlined into AVX2 functions for
// double) are compiled with a function-level target attribute and picked at run time only when
// the CPU has them, so the default build stays portable. Like topk_kernel.cpp, this file instantiates no templates from
// other headers, so nothing compiled here for AVX2 can leak into baseline code.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "recforge/factorization/als.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RECFORGE_HAVE_AVX2_VECTOR_KERNELS 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RECFORGE_KERNEL_INLINE inline __attribute__((always_inline))
#else
#define RECFORGE_KERNEL_INLINE inline
#endif

namespace recforge::als::kernels {
namespace {

template <class T>
RECFORGE_KERNEL_INLINE const T* row_of(const T* rows, int64_t f, const int32_t* idx, int64_t j) {
    return rows + (idx ? static_cast<int64_t>(idx[j]) : j) * f;
}

// ---------------------------------------------------------------------------------------------
// portable kernels, templates on the scalar type (float, double)
// ---------------------------------------------------------------------------------------------
template <class T>
RECFORGE_KERNEL_INLINE T generic_dot(const T* a, const T* b, int64_t f) {
    T acc[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
    int64_t c = 0;
    for (; c + 8 <= f; c += 8)
        for (int k = 0; k < 8; ++k) acc[k] += a[c + k] * b[c + k];
    T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < f; ++c) s += a[c] * b[c];
    return s;
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_axpy(T a, const T* x, T* y, int64_t f) {
    for (int64_t c = 0; c < f; ++c) y[c] += a * x[c];
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_dots(const T* rows, int64_t f, const int32_t* idx, int64_t n, const T* v,
                                         T* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = generic_dot(row_of(rows, f, idx, j), v, f);
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_axpys(const T* rows, int64_t f, const int32_t* idx, int64_t n, const T* coef,
                                          T* out) {
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
        const T* a = row_of(rows, f, idx, j);
        const T* b = row_of(rows, f, idx, j + 1);
        const T ca = coef[j], cb = coef[j + 1];
        for (int64_t c = 0; c < f; ++c) out[c] += ca * a[c] + cb * b[c];
    }
    for (; j < n; ++j) generic_axpy(coef[j], row_of(rows, f, idx, j), out, f);
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_dots_axpys(const T* rows, int64_t f, const int32_t* idx, int64_t n,
                                               const T* v, const T* a, const T* b, T* out) {
    for (int64_t j = 0; j < n; ++j) {
        const T* y = row_of(rows, f, idx, j);
        const T d = generic_dot(y, v, f);
        generic_axpy((a ? a[j] : T(0)) + b[j] * d, y, out, f);
    }
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_bpr_step(T* u, T* qi, T* qj, int64_t f, T zi, T zj, T lr, T reg) {
    for (int64_t c = 0; c < f; ++c) {
        const T uc = u[c], ic = qi[c], jc = qj[c];
        u[c] = uc + lr * (zi * ic - zj * jc - reg * uc);
        qi[c] = ic + lr * (zi * uc - reg * ic);
        qj[c] = jc + lr * (-zj * uc - reg * jc);
    }
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_matmul(const T* A, int64_t n, int64_t f, const T* M, T* out) {
    for (int64_t r = 0; r < n; ++r) {
        T* o = out + r * f;
        for (int64_t c = 0; c < f; ++c) o[c] = T(0);
        for (int64_t k = 0; k < f; ++k) generic_axpy(A[r * f + k], M + k * f, o, f);
    }
}

// Right-looking Cholesky on the upper triangle, four pivots at a time: the four rows of U are
// finished first (a small panel), then the trailing upper triangle gets one rank-4 update,
// which reads and writes every trailing row once per four pivots.
template <class T>
RECFORGE_KERNEL_INLINE bool cholesky_upper(T* A, int64_t f, void (*rank4_update)(T*, int64_t, int64_t)) {
    for (int64_t k0 = 0; k0 < f; k0 += 4) {
        const int64_t kb = (f - k0 < 4) ? f - k0 : 4;
        for (int64_t k = k0; k < k0 + kb; ++k) {
            T* uk = A + k * f;
            const T d = uk[k];
            if (!(d > T(0))) return false;
            const T r = std::sqrt(d);
            const T inv = T(1) / r;
            uk[k] = r;
            for (int64_t j = k + 1; j < f; ++j) uk[j] *= inv;
            for (int64_t i = k + 1; i < k0 + kb; ++i) {  // the panel's remaining rows
                const T c = uk[i];
                T* ai = A + i * f;
                for (int64_t j = i; j < f; ++j) ai[j] -= c * uk[j];
            }
        }
        if (kb == 4) {
            rank4_update(A, f, k0);
        } else {
            for (int64_t k = k0; k < k0 + kb; ++k)
                for (int64_t i = k0 + kb; i < f; ++i) {
                    const T c = A[k * f + i];
                    for (int64_t j = i; j < f; ++j) A[i * f + j] -= c * A[k * f + j];
                }
        }
    }
    return true;
}

// U^T y = b (forward), then U x = y (backward), in place.
template <class T>
RECFORGE_KERNEL_INLINE void cholesky_substitute(const T* U, int64_t f, T* b,
                                                T (*dot)(const T*, const T*, int64_t)) {
    for (int64_t k = 0; k < f; ++k) {
        const T* uk = U + k * f;
        const T y = b[k] / uk[k];
        b[k] = y;
        for (int64_t j = k + 1; j < f; ++j) b[j] -= y * uk[j];
    }
    for (int64_t i = f - 1; i >= 0; --i) {
        const T* ui = U + i * f;
        b[i] = (b[i] - dot(ui + i + 1, b + i + 1, f - i - 1)) / ui[i];
    }
}

template <class T>
RECFORGE_KERNEL_INLINE void generic_rank4(T* A, int64_t f, int64_t k0) {
    const T* u0 = A + k0 * f;
    const T* u1 = u0 + f;
    const T* u2 = u1 + f;
    const T* u3 = u2 + f;
    for (int64_t i = k0 + 4; i < f; ++i) {
        const T c0 = u0[i], c1 = u1[i], c2 = u2[i], c3 = u3[i];
        T* ai = A + i * f;
        for (int64_t j = i; j < f; ++j) ai[j] -= c0 * u0[j] + c1 * u1[j] + c2 * u2[j] + c3 * u3[j];
    }
}

template <class T>
RECFORGE_KERNEL_INLINE bool generic_cholesky_solve(T* A, int64_t f, T* b) {
    if (!cholesky_upper<T>(A, f, generic_rank4<T>)) return false;
    cholesky_substitute<T>(A, f, b, generic_dot<T>);
    return true;
}

template <class T>
RECFORGE_KERNEL_INLINE void mirror_upper(T* out, int64_t f) {
    for (int64_t r = 1; r < f; ++r)
        for (int64_t c = 0; c < r; ++c) out[r * f + c] = out[c * f + r];
}

// out += sum_k w_k y_k y_k^T on the upper triangle, in register tiles of kTileRows x kTileCols
// outputs accumulated over blocks of kTileBlock input rows (the tile loops have constant bounds,
// so the compiler keeps the accumulators in vector registers); the columns past the last full
// tile by plain loops. Diagonal tiles also write below the diagonal (scratch space).
template <class T>
RECFORGE_KERNEL_INLINE void generic_gram(const T* rows, int64_t f, const int32_t* idx, const T* w, int64_t n, T* out,
                                         bool mirror) {
    constexpr int kTileRows = 4, kTileCols = 8;
    constexpr int64_t kTileBlock = 128;
    const int64_t f_tiles = f - f % kTileCols;
    const T* ptr[kTileBlock];
    T wk[kTileBlock];
    for (int64_t k0 = 0; k0 < n; k0 += kTileBlock) {
        const int64_t nk = (n - k0 < kTileBlock) ? n - k0 : kTileBlock;
        for (int64_t k = 0; k < nk; ++k) {
            ptr[k] = row_of(rows, f, idx, k0 + k);
            wk[k] = w ? w[k0 + k] : T(1);
        }
        for (int64_t r0 = 0; r0 < f; r0 += kTileRows) {
            const int64_t rows_here = (f - r0 < kTileRows) ? f - r0 : kTileRows;
            for (int64_t c0 = (r0 / kTileCols) * kTileCols; c0 < f_tiles; c0 += kTileCols) {
                T acc[kTileRows][kTileCols] = {};
                for (int64_t k = 0; k < nk; ++k) {
                    const T* y = ptr[k];
                    T u[kTileRows];
                    for (int r = 0; r < kTileRows; ++r) u[r] = r < rows_here ? wk[k] * y[r0 + r] : T(0);
                    for (int r = 0; r < kTileRows; ++r)
                        for (int c = 0; c < kTileCols; ++c) acc[r][c] += u[r] * y[c0 + c];
                }
                for (int64_t r = 0; r < rows_here; ++r)
                    for (int c = 0; c < kTileCols; ++c) out[(r0 + r) * f + c0 + c] += acc[r][c];
            }
        }
        for (int64_t k = 0; k < nk; ++k) {
            const T* y = ptr[k];
            for (int64_t r = 0; r < f; ++r) {
                const T s = wk[k] * y[r];
                for (int64_t c = (r > f_tiles ? r : f_tiles); c < f; ++c) out[r * f + c] += s * y[c];
            }
        }
    }
    if (mirror) mirror_upper(out, f);
}

template <class T>
BasicVectorKernels<T> generic_kernels() {
    return BasicVectorKernels<T>{&generic_dots<T>,           &generic_axpys<T>,  &generic_dots_axpys<T>,
                                 &generic_gram<T>,           &generic_cholesky_solve<T>,
                                 &generic_matmul<T>,         &generic_bpr_step<T>, &generic_dot<T>,
                                 &generic_axpy<T>,           "generic"};
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA kernels
// ---------------------------------------------------------------------------------------------
#ifdef RECFORGE_HAVE_AVX2_VECTOR_KERNELS

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
    const __m128 lo = _mm256_castps256_ps128(v);
    const __m128 hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float avx2_dot(const float* a, const float* b, int64_t f) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= f; c += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8), _mm256_loadu_ps(b + c + 8), acc1);
    }
    for (; c + 8 <= f; c += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc0);
    float s = hsum256(_mm256_add_ps(acc0, acc1));
    for (; c < f; ++c) s += a[c] * b[c];
    return s;
}

__attribute__((target("avx2,fma"))) void avx2_axpy(float a, const float* x, float* y, int64_t f) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t c = 0;
    for (; c + 8 <= f; c += 8)
        _mm256_storeu_ps(y + c, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
    for (; c < f; ++c) y[c] += a * x[c];
}

__attribute__((target("avx2,fma"))) void avx2_dots(const float* rows, int64_t f, const int32_t* idx, int64_t n,
                                                  const float* v, float* out) {
    const int64_t f8 = f & ~int64_t(7);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float* r0 = row_of(rows, f, idx, j);
        const float* r1 = row_of(rows, f, idx, j + 1);
        const float* r2 = row_of(rows, f, idx, j + 2);
        const float* r3 = row_of(rows, f, idx, j + 3);
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t c = 0; c < f8; c += 8) {
            const __m256 vv = _mm256_loadu_ps(v + c);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + c), vv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + c), vv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + c), vv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + c), vv, a3);
        }
        // four horizontal sums at once
        const __m256 h01 = _mm256_hadd_ps(a0, a1);
        const __m256 h23 = _mm256_hadd_ps(a2, a3);
        const __m256 h = _mm256_hadd_ps(h01, h23);
        const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        float tmp[4];
        _mm_storeu_ps(tmp, s);
        for (int64_t c = f8; c < f; ++c) {
            tmp[0] += r0[c] * v[c];
            tmp[1] += r1[c] * v[c];
            tmp[2] += r2[c] * v[c];
            tmp[3] += r3[c] * v[c];
        }
        out[j] = tmp[0];
        out[j + 1] = tmp[1];
        out[j + 2] = tmp[2];
        out[j + 3] = tmp[3];
    }
    for (; j < n; ++j) out[j] = avx2_dot(row_of(rows, f, idx, j), v, f);
}

__attribute__((target("avx2,fma"))) void avx2_axpys(const float* rows, int64_t f, const int32_t* idx, int64_t n,
                                                   const float* coef, float* out) {
    const int64_t f8 = f & ~int64_t(7);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float* r0 = row_of(rows, f, idx, j);
        const float* r1 = row_of(rows, f, idx, j + 1);
        const float* r2 = row_of(rows, f, idx, j + 2);
        const float* r3 = row_of(rows, f, idx, j + 3);
        const __m256 c0 = _mm256_set1_ps(coef[j]), c1 = _mm256_set1_ps(coef[j + 1]);
        const __m256 c2 = _mm256_set1_ps(coef[j + 2]), c3 = _mm256_set1_ps(coef[j + 3]);
        for (int64_t c = 0; c < f8; c += 8) {
            __m256 o = _mm256_loadu_ps(out + c);
            o = _mm256_fmadd_ps(c0, _mm256_loadu_ps(r0 + c), o);
            o = _mm256_fmadd_ps(c1, _mm256_loadu_ps(r1 + c), o);
            o = _mm256_fmadd_ps(c2, _mm256_loadu_ps(r2 + c), o);
            o = _mm256_fmadd_ps(c3, _mm256_loadu_ps(r3 + c), o);
            _mm256_storeu_ps(out + c, o);
        }
        for (int64_t c = f8; c < f; ++c)
            out[c] += coef[j] * r0[c] + coef[j + 1] * r1[c] + coef[j + 2] * r2[c] + coef[j + 3] * r3[c];
    }
    for (; j < n; ++j) avx2_axpy(coef[j], row_of(rows, f, idx, j), out, f);
}

// Four rows at a time: their dot products with v, then their scaled sum into out while the rows
// are still in L1.
__attribute__((target("avx2,fma"))) void avx2_dots_axpys(const float* rows, int64_t f, const int32_t* idx,
                                                        int64_t n, const float* v, const float* a, const float* b,
                                                        float* out) {
    const int64_t f8 = f & ~int64_t(7);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float* r0 = row_of(rows, f, idx, j);
        const float* r1 = row_of(rows, f, idx, j + 1);
        const float* r2 = row_of(rows, f, idx, j + 2);
        const float* r3 = row_of(rows, f, idx, j + 3);
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t c = 0; c < f8; c += 8) {
            const __m256 vv = _mm256_loadu_ps(v + c);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + c), vv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + c), vv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + c), vv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + c), vv, a3);
        }
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        float d[4];
        _mm_storeu_ps(d, s);
        for (int64_t c = f8; c < f; ++c) {
            d[0] += r0[c] * v[c];
            d[1] += r1[c] * v[c];
            d[2] += r2[c] * v[c];
            d[3] += r3[c] * v[c];
        }
        float k[4];
        for (int q = 0; q < 4; ++q) k[q] = (a ? a[j + q] : 0.0f) + b[j + q] * d[q];
        const __m256 c0 = _mm256_set1_ps(k[0]), c1 = _mm256_set1_ps(k[1]);
        const __m256 c2 = _mm256_set1_ps(k[2]), c3 = _mm256_set1_ps(k[3]);
        for (int64_t c = 0; c < f8; c += 8) {
            __m256 o = _mm256_loadu_ps(out + c);
            o = _mm256_fmadd_ps(c0, _mm256_loadu_ps(r0 + c), o);
            o = _mm256_fmadd_ps(c1, _mm256_loadu_ps(r1 + c), o);
            o = _mm256_fmadd_ps(c2, _mm256_loadu_ps(r2 + c), o);
            o = _mm256_fmadd_ps(c3, _mm256_loadu_ps(r3 + c), o);
            _mm256_storeu_ps(out + c, o);
        }
        for (int64_t c = f8; c < f; ++c) out[c] += k[0] * r0[c] + k[1] * r1[c] + k[2] * r2[c] + k[3] * r3[c];
    }
    for (; j < n; ++j) {
        const float* y = row_of(rows, f, idx, j);
        const float d = avx2_dot(y, v, f);
        avx2_axpy((a ? a[j] : 0.0f) + b[j] * d, y, out, f);
    }
}

__attribute__((target("avx2,fma"))) void avx2_bpr_step(float* u, float* qi, float* qj, int64_t f, float zi, float zj,
                                                      float lr, float reg) {
    const __m256 vzi = _mm256_set1_ps(zi), vzj = _mm256_set1_ps(zj);
    const __m256 vlr = _mm256_set1_ps(lr), vreg = _mm256_set1_ps(reg);
    int64_t c = 0;
    for (; c + 8 <= f; c += 8) {
        const __m256 uc = _mm256_loadu_ps(u + c), ic = _mm256_loadu_ps(qi + c), jc = _mm256_loadu_ps(qj + c);
        // gu = zi qi - zj qj - reg u,  gi = zi u - reg qi,  gj = -zj u - reg qj
        const __m256 gu = _mm256_fnmadd_ps(vreg, uc, _mm256_fnmadd_ps(vzj, jc, _mm256_mul_ps(vzi, ic)));
        const __m256 gi = _mm256_fnmadd_ps(vreg, ic, _mm256_mul_ps(vzi, uc));
        const __m256 gj = _mm256_fnmadd_ps(vreg, jc, _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(vzj, uc)));
        _mm256_storeu_ps(u + c, _mm256_fmadd_ps(vlr, gu, uc));
        _mm256_storeu_ps(qi + c, _mm256_fmadd_ps(vlr, gi, ic));
        _mm256_storeu_ps(qj + c, _mm256_fmadd_ps(vlr, gj, jc));
    }
    for (; c < f; ++c) {
        const float uc = u[c], ic = qi[c], jc = qj[c];
        u[c] = uc + lr * (zi * ic - zj * jc - reg * uc);
        qi[c] = ic + lr * (zi * uc - reg * ic);
        qj[c] = jc + lr * (-zj * uc - reg * jc);
    }
}

constexpr int kGramRows = 6;     // register tile: 6 rows of the output ...
constexpr int kGramWidth = 16;   // ... by 16 columns (12 accumulators)
constexpr int64_t kGramBlock = 128;  // input rows per pass over the tiles (stay in L1/L2)

// out[r0 .. r0+6) x [c0, c0+16) += sum_k w_k y_k[r] y_k[c0..c0+16) over the block of rows. Every
// loop over the tile's rows has a constant bound, so the 12 accumulators stay in registers.
__attribute__((target("avx2,fma"))) void avx2_gram_tile6(const float* const* ptr, const float* w, int64_t nk,
                                                         int64_t r0, int64_t c0, float* out, int64_t f) {
    __m256 a0[kGramRows], a1[kGramRows];
    for (int r = 0; r < kGramRows; ++r) {
        a0[r] = _mm256_setzero_ps();
        a1[r] = _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < nk; ++k) {
        const float* y = ptr[k];
        __m256 v0 = _mm256_loadu_ps(y + c0);
        __m256 v1 = _mm256_loadu_ps(y + c0 + 8);
        if (w) {
            const __m256 wk = _mm256_set1_ps(w[k]);
            v0 = _mm256_mul_ps(wk, v0);
            v1 = _mm256_mul_ps(wk, v1);
        }
        for (int r = 0; r < kGramRows; ++r) {
            const __m256 u = _mm256_broadcast_ss(y + r0 + r);
            a0[r] = _mm256_fmadd_ps(u, v0, a0[r]);
            a1[r] = _mm256_fmadd_ps(u, v1, a1[r]);
        }
    }
    for (int r = 0; r < kGramRows; ++r) {
        float* o = out + (r0 + r) * f + c0;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a0[r]));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a1[r]));
    }
}

// The same for the last, shorter tile of rows (rows < 6), one row at a time.
__attribute__((target("avx2,fma"))) void avx2_gram_tile_rest(const float* const* ptr, const float* w, int64_t nk,
                                                             int64_t r0, int rows, int64_t c0, float* out, int64_t f) {
    for (int r = 0; r < rows; ++r) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int64_t k = 0; k < nk; ++k) {
            const float* y = ptr[k];
            const __m256 u = _mm256_set1_ps((w ? w[k] : 1.0f) * y[r0 + r]);
            a0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(y + c0), a0);
            a1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(y + c0 + 8), a1);
        }
        float* o = out + (r0 + r) * f + c0;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a0));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a1));
    }
}

__attribute__((target("avx2,fma"))) void avx2_gram(const float* rows, int64_t f, const int32_t* idx, const float* w,
                                                  int64_t n, float* out, bool mirror) {
    const int64_t f16 = f - f % kGramWidth;
    const float* ptr[kGramBlock];
    for (int64_t k0 = 0; k0 < n; k0 += kGramBlock) {
        const int64_t nk = (n - k0 < kGramBlock) ? n - k0 : kGramBlock;
        for (int64_t k = 0; k < nk; ++k) ptr[k] = row_of(rows, f, idx, k0 + k);
        const float* wb = w ? w + k0 : nullptr;
        for (int64_t r0 = 0; r0 < f; r0 += kGramRows) {
            const int rows_here = static_cast<int>((f - r0 < kGramRows) ? f - r0 : kGramRows);
            for (int64_t c0 = (r0 / kGramWidth) * kGramWidth; c0 < f16; c0 += kGramWidth)
                if (rows_here == kGramRows) {
                    avx2_gram_tile6(ptr, wb, nk, r0, c0, out, f);
                } else {
                    avx2_gram_tile_rest(ptr, wb, nk, r0, rows_here, c0, out, f);
                }
        }
        // columns past the last full panel: plain loops over the upper triangle
        for (int64_t k = 0; k < nk; ++k) {
            const float* y = ptr[k];
            const float wk = wb ? wb[k] : 1.0f;
            for (int64_t r = 0; r < f; ++r) {
                const float s = wk * y[r];
                for (int64_t c = (r > f16 ? r : f16); c < f; ++c) out[r * f + c] += s * y[c];
            }
        }
    }
    if (mirror) mirror_upper<float>(out, f);
}

// out rows [r0, r0+6) x columns [c0, c0+16) = A rows times M columns (no accumulation); constant
// loop bounds keep the accumulators in registers.
__attribute__((target("avx2,fma"))) void avx2_matmul_tile6(const float* A, int64_t r0, int64_t f, const float* M,
                                                           int64_t c0, float* out) {
    __m256 a0[kGramRows], a1[kGramRows];
    for (int r = 0; r < kGramRows; ++r) {
        a0[r] = _mm256_setzero_ps();
        a1[r] = _mm256_setzero_ps();
    }
    const float* arow = A + r0 * f;
    for (int64_t k = 0; k < f; ++k) {
        const __m256 v0 = _mm256_loadu_ps(M + k * f + c0);
        const __m256 v1 = _mm256_loadu_ps(M + k * f + c0 + 8);
        for (int r = 0; r < kGramRows; ++r) {
            const __m256 u = _mm256_broadcast_ss(arow + r * f + k);
            a0[r] = _mm256_fmadd_ps(u, v0, a0[r]);
            a1[r] = _mm256_fmadd_ps(u, v1, a1[r]);
        }
    }
    for (int r = 0; r < kGramRows; ++r) {
        _mm256_storeu_ps(out + (r0 + r) * f + c0, a0[r]);
        _mm256_storeu_ps(out + (r0 + r) * f + c0 + 8, a1[r]);
    }
}

// The last, shorter tile of rows, one row at a time.
__attribute__((target("avx2,fma"))) void avx2_matmul_tile_rest(const float* A, int64_t r0, int rows, int64_t f,
                                                               const float* M, int64_t c0, float* out) {
    for (int r = 0; r < rows; ++r) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        const float* arow = A + (r0 + r) * f;
        for (int64_t k = 0; k < f; ++k) {
            const __m256 u = _mm256_broadcast_ss(arow + k);
            a0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(M + k * f + c0), a0);
            a1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(M + k * f + c0 + 8), a1);
        }
        _mm256_storeu_ps(out + (r0 + r) * f + c0, a0);
        _mm256_storeu_ps(out + (r0 + r) * f + c0 + 8, a1);
    }
}

__attribute__((target("avx2,fma"))) void avx2_matmul(const float* A, int64_t n, int64_t f, const float* M,
                                                    float* out) {
    const int64_t f16 = f - f % kGramWidth;
    for (int64_t r0 = 0; r0 < n; r0 += kGramRows) {
        const int rows = static_cast<int>((n - r0 < kGramRows) ? n - r0 : kGramRows);
        for (int64_t c0 = 0; c0 < f16; c0 += kGramWidth) {
            if (rows == kGramRows) {
                avx2_matmul_tile6(A, r0, f, M, c0, out);
            } else {
                avx2_matmul_tile_rest(A, r0, rows, f, M, c0, out);
            }
        }
        for (int r = 0; r < rows; ++r) {
            const float* a = A + (r0 + r) * f;
            float* o = out + (r0 + r) * f;
            for (int64_t c = f16; c < f; ++c) {
                float acc = 0.0f;
                for (int64_t k = 0; k < f; ++k) acc += a[k] * M[k * f + c];
                o[c] = acc;
            }
        }
    }
}

__attribute__((target("avx2,fma"))) void avx2_rank4(float* A, int64_t f, int64_t k0) {
    const float* u0 = A + k0 * f;
    const float* u1 = u0 + f;
    const float* u2 = u1 + f;
    const float* u3 = u2 + f;
    for (int64_t i = k0 + 4; i < f; ++i) {
        const float s0 = u0[i], s1 = u1[i], s2 = u2[i], s3 = u3[i];
        const __m256 c0 = _mm256_set1_ps(s0), c1 = _mm256_set1_ps(s1);
        const __m256 c2 = _mm256_set1_ps(s2), c3 = _mm256_set1_ps(s3);
        float* ai = A + i * f;
        int64_t j = i;
        for (; j + 8 <= f; j += 8) {
            __m256 a = _mm256_loadu_ps(ai + j);
            a = _mm256_fnmadd_ps(c0, _mm256_loadu_ps(u0 + j), a);
            a = _mm256_fnmadd_ps(c1, _mm256_loadu_ps(u1 + j), a);
            a = _mm256_fnmadd_ps(c2, _mm256_loadu_ps(u2 + j), a);
            a = _mm256_fnmadd_ps(c3, _mm256_loadu_ps(u3 + j), a);
            _mm256_storeu_ps(ai + j, a);
        }
        for (; j < f; ++j) ai[j] -= s0 * u0[j] + s1 * u1[j] + s2 * u2[j] + s3 * u3[j];
    }
}

bool avx2_cholesky_solve(float* A, int64_t f, float* b) {
    if (!cholesky_upper<float>(A, f, avx2_rank4)) return false;
    cholesky_substitute<float>(A, f, b, avx2_dot);
    return true;
}

// The portable templates compiled for AVX2+FMA: the double kernels (no hand-written versions;
// the compiler vectorises the templates, always inlined into these functions, for 4 lanes).
#define RECFORGE_AVX2 __attribute__((target("avx2,fma")))
RECFORGE_AVX2 double avx2d_dot(const double* a, const double* b, int64_t f) { return generic_dot<double>(a, b, f); }
RECFORGE_AVX2 void avx2d_axpy(double a, const double* x, double* y, int64_t f) { generic_axpy<double>(a, x, y, f); }
RECFORGE_AVX2 void avx2d_dots(const double* rows, int64_t f, const int32_t* idx, int64_t n, const double* v,
                              double* out) {
    generic_dots<double>(rows, f, idx, n, v, out);
}
RECFORGE_AVX2 void avx2d_axpys(const double* rows, int64_t f, const int32_t* idx, int64_t n, const double* coef,
                               double* out) {
    generic_axpys<double>(rows, f, idx, n, coef, out);
}
RECFORGE_AVX2 void avx2d_dots_axpys(const double* rows, int64_t f, const int32_t* idx, int64_t n, const double* v,
                                    const double* a, const double* b, double* out) {
    generic_dots_axpys<double>(rows, f, idx, n, v, a, b, out);
}
RECFORGE_AVX2 void avx2d_gram(const double* rows, int64_t f, const int32_t* idx, const double* w, int64_t n,
                              double* out, bool mirror) {
    generic_gram<double>(rows, f, idx, w, n, out, mirror);
}
RECFORGE_AVX2 void avx2d_matmul(const double* A, int64_t n, int64_t f, const double* M, double* out) {
    generic_matmul<double>(A, n, f, M, out);
}
RECFORGE_AVX2 void avx2d_bpr_step(double* u, double* qi, double* qj, int64_t f, double zi, double zj, double lr,
                                  double reg) {
    generic_bpr_step<double>(u, qi, qj, f, zi, zj, lr, reg);
}
RECFORGE_AVX2 void avx2d_rank4(double* A, int64_t f, int64_t k0) { generic_rank4<double>(A, f, k0); }
RECFORGE_AVX2 bool avx2d_cholesky_solve(double* A, int64_t f, double* b) {
    if (!cholesky_upper<double>(A, f, avx2d_rank4)) return false;
    cholesky_substitute<double>(A, f, b, avx2d_dot);
    return true;
}
#undef RECFORGE_AVX2

bool cpu_has_avx2_fma() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

// RECFORGE_VECTOR_KERNEL=generic forces the portable kernels (used to test both paths).
VectorKernels choose() {
    const char* forced = std::getenv("RECFORGE_VECTOR_KERNEL");
    const bool force_generic = forced != nullptr && std::strcmp(forced, "generic") == 0;
#ifdef RECFORGE_HAVE_AVX2_VECTOR_KERNELS
    if (!force_generic && cpu_has_avx2_fma())
        return VectorKernels{&avx2_dots,     &avx2_axpys,         &avx2_dots_axpys, &avx2_gram,
                             &avx2_cholesky_solve, &avx2_matmul, &avx2_bpr_step, &avx2_dot,
                             &avx2_axpy,     "avx2-fma"};
#endif
    (void)force_generic;
    return generic_kernels<float>();
}

BasicVectorKernels<double> choose_double() {
    const char* forced = std::getenv("RECFORGE_VECTOR_KERNEL");
    const bool force_generic = forced != nullptr && std::strcmp(forced, "generic") == 0;
#ifdef RECFORGE_HAVE_AVX2_VECTOR_KERNELS
    if (!force_generic && cpu_has_avx2_fma())
        return BasicVectorKernels<double>{&avx2d_dots,   &avx2d_axpys,    &avx2d_dots_axpys, &avx2d_gram,
                                          &avx2d_cholesky_solve, &avx2d_matmul, &avx2d_bpr_step,
                                          &avx2d_dot,    &avx2d_axpy,
                                          "avx2-fma (compiled from the portable code)"};
#endif
    (void)force_generic;
    return generic_kernels<double>();
}

}  // namespace

template <>
const BasicVectorKernels<float>& vector_kernels_for<float>() {
    static const VectorKernels chosen = choose();
    return chosen;
}

template <>
const BasicVectorKernels<double>& vector_kernels_for<double>() {
    static const BasicVectorKernels<double> chosen = choose_double();
    return chosen;
}

}  // namespace recforge::als::kernels
