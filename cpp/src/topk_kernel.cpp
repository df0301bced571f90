// Dot-product tile kernels for topk_dot. The generic kernel is plain C++ that the compiler
// vectorises for the baseline instruction set; on x86-64 AVX-512 and AVX2+FMA kernels are
// compiled with function-level target attributes and chosen at run time only when the CPU has
// those instructions, so the default build stays portable. This file instantiates no templates
// from other headers, so nothing compiled here for a wider instruction set can be shared with
// (and leak into) baseline code.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "recforge/topk.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RECFORGE_HAVE_AVX2_KERNEL 1
#endif

namespace recforge {
namespace detail {
namespace {

constexpr int kGenericRows = 4;
constexpr int kGenericWidth = 8;

#if defined(__GNUC__) || defined(__clang__)
// Four-float vectors of the compiler's vector extension: SSE on x86-64, NEON on aarch64.
typedef float v4f __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
    v4f v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof(v)); }

template <int Rows>
inline void generic_panel(const float* q, int64_t q_stride, const float* panel, int64_t dim,
                          float* out, int64_t ld) {
    v4f a0[Rows], a1[Rows];
    for (int r = 0; r < Rows; ++r) {
        a0[r] = v4f{0.0f, 0.0f, 0.0f, 0.0f};
        a1[r] = v4f{0.0f, 0.0f, 0.0f, 0.0f};
    }
    for (int64_t f = 0; f < dim; ++f) {
        const v4f v0 = load4(panel + f * kGenericWidth);
        const v4f v1 = load4(panel + f * kGenericWidth + 4);
        for (int r = 0; r < Rows; ++r) {
            const float u = q[r * q_stride + f];
            a0[r] += u * v0;
            a1[r] += u * v1;
        }
    }
    for (int r = 0; r < Rows; ++r) {
        store4(out + r * ld, a0[r]);
        store4(out + r * ld + 4, a1[r]);
    }
}

void generic_tiles(const float* q, int64_t q_stride, int rows, const float* panels,
                   int64_t n_panels, int64_t dim, float* out, int64_t ld) {
    for (int64_t p = 0; p < n_panels; ++p) {
        const float* panel = panels + p * dim * kGenericWidth;
        float* o = out + p * kGenericWidth;
        switch (rows) {
            case 4: generic_panel<4>(q, q_stride, panel, dim, o, ld); break;
            case 3: generic_panel<3>(q, q_stride, panel, dim, o, ld); break;
            case 2: generic_panel<2>(q, q_stride, panel, dim, o, ld); break;
            default: generic_panel<1>(q, q_stride, panel, dim, o, ld); break;
        }
    }
}
#else
void generic_tiles(const float* q, int64_t q_stride, int rows, const float* panels,
                   int64_t n_panels, int64_t dim, float* out, int64_t ld) {
    for (int64_t p = 0; p < n_panels; ++p) {
        const float* panel = panels + p * dim * kGenericWidth;
        for (int r = 0; r < rows; ++r) {
            float acc[kGenericWidth] = {};
            for (int64_t f = 0; f < dim; ++f) {
                const float u = q[r * q_stride + f];
                for (int c = 0; c < kGenericWidth; ++c) acc[c] += u * panel[f * kGenericWidth + c];
            }
            for (int c = 0; c < kGenericWidth; ++c) out[r * ld + p * kGenericWidth + c] = acc[c];
        }
    }
}
#endif

#ifdef RECFORGE_HAVE_AVX2_KERNEL
constexpr int kAvxRows = 6;
constexpr int kAvxWidth = 16;

__attribute__((target("avx2,fma"))) void avx2_tiles(const float* q, int64_t q_stride, int rows,
                                                   const float* panels, int64_t n_panels,
                                                   int64_t dim, float* out, int64_t ld) {
    for (int64_t p = 0; p < n_panels; ++p) {
        const float* panel = panels + p * dim * kAvxWidth;
        __m256 a0[kAvxRows], a1[kAvxRows];
        for (int r = 0; r < kAvxRows; ++r) {
            a0[r] = _mm256_setzero_ps();
            a1[r] = _mm256_setzero_ps();
        }
        if (rows == kAvxRows) {
            for (int64_t f = 0; f < dim; ++f) {
                const __m256 v0 = _mm256_loadu_ps(panel + f * kAvxWidth);
                const __m256 v1 = _mm256_loadu_ps(panel + f * kAvxWidth + 8);
                for (int r = 0; r < kAvxRows; ++r) {
                    const __m256 u = _mm256_broadcast_ss(q + r * q_stride + f);
                    a0[r] = _mm256_fmadd_ps(u, v0, a0[r]);
                    a1[r] = _mm256_fmadd_ps(u, v1, a1[r]);
                }
            }
        } else {
            for (int64_t f = 0; f < dim; ++f) {
                const __m256 v0 = _mm256_loadu_ps(panel + f * kAvxWidth);
                const __m256 v1 = _mm256_loadu_ps(panel + f * kAvxWidth + 8);
                for (int r = 0; r < rows; ++r) {
                    const __m256 u = _mm256_broadcast_ss(q + r * q_stride + f);
                    a0[r] = _mm256_fmadd_ps(u, v0, a0[r]);
                    a1[r] = _mm256_fmadd_ps(u, v1, a1[r]);
                }
            }
        }
        for (int r = 0; r < rows; ++r) {
            _mm256_storeu_ps(out + r * ld + p * kAvxWidth, a0[r]);
            _mm256_storeu_ps(out + r * ld + p * kAvxWidth + 8, a1[r]);
        }
    }
}

constexpr int kAvx512Rows = 8;
constexpr int kAvx512Width = 32;

__attribute__((target("avx512f"))) void avx512_tiles(const float* q, int64_t q_stride, int rows,
                                                   const float* panels, int64_t n_panels,
                                                   int64_t dim, float* out, int64_t ld) {
    for (int64_t p = 0; p < n_panels; ++p) {
        const float* panel = panels + p * dim * kAvx512Width;
        __m512 a0[kAvx512Rows], a1[kAvx512Rows];
        for (int r = 0; r < kAvx512Rows; ++r) {
            a0[r] = _mm512_setzero_ps();
            a1[r] = _mm512_setzero_ps();
        }
        if (rows == kAvx512Rows) {
            for (int64_t f = 0; f < dim; ++f) {
                const __m512 v0 = _mm512_loadu_ps(panel + f * kAvx512Width);
                const __m512 v1 = _mm512_loadu_ps(panel + f * kAvx512Width + 16);
                for (int r = 0; r < kAvx512Rows; ++r) {
                    const __m512 u = _mm512_set1_ps(q[r * q_stride + f]);
                    a0[r] = _mm512_fmadd_ps(u, v0, a0[r]);
                    a1[r] = _mm512_fmadd_ps(u, v1, a1[r]);
                }
            }
        } else {
            for (int64_t f = 0; f < dim; ++f) {
                const __m512 v0 = _mm512_loadu_ps(panel + f * kAvx512Width);
                const __m512 v1 = _mm512_loadu_ps(panel + f * kAvx512Width + 16);
                for (int r = 0; r < rows; ++r) {
                    const __m512 u = _mm512_set1_ps(q[r * q_stride + f]);
                    a0[r] = _mm512_fmadd_ps(u, v0, a0[r]);
                    a1[r] = _mm512_fmadd_ps(u, v1, a1[r]);
                }
            }
        }
        for (int r = 0; r < rows; ++r) {
            _mm512_storeu_ps(out + r * ld + p * kAvx512Width, a0[r]);
            _mm512_storeu_ps(out + r * ld + p * kAvx512Width + 16, a1[r]);
        }
    }
}

bool cpu_has_avx512f() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

bool cpu_has_avx2_fma() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

// RECFORGE_TOPK_KERNEL=generic or =avx2 caps the kernel (used to test every path).
TileKernel choose_kernel() {
    const char* forced = std::getenv("RECFORGE_TOPK_KERNEL");
    const bool force_generic = forced != nullptr && std::strcmp(forced, "generic") == 0;
    const bool cap_avx2 = forced != nullptr && std::strcmp(forced, "avx2") == 0;
#ifdef RECFORGE_HAVE_AVX2_KERNEL
    if (!force_generic && !cap_avx2 && cpu_has_avx512f())
        return TileKernel{kAvx512Rows, kAvx512Width, &avx512_tiles, "avx512"};
    if (!force_generic && cpu_has_avx2_fma()) return TileKernel{kAvxRows, kAvxWidth, &avx2_tiles, "avx2-fma"};
#endif
    (void)force_generic;
    return TileKernel{kGenericRows, kGenericWidth, &generic_tiles, "generic"};
}

}  // namespace

const TileKernel& tile_kernel() {
    static const TileKernel kernel = choose_kernel();
    return kernel;
}

}  // namespace detail
}  // namespace recforge
