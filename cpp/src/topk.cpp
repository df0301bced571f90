#include "recforge/topk.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/topk.hpp"

namespace recforge {
namespace {

constexpr int64_t kItemBlockBytes = 128 * 1024;  // packed item block, sized to stay in L2
constexpr int kQueryTilesPerBlock = 48;          // register tiles per unit of parallel work

void check_common(int64_t n_queries, int64_t n_items, int k, const CsrView& exclude,
                  const int32_t* candidates, int64_t n_candidates) {
    if (k <= 0) throw std::invalid_argument("k must be positive, got " + std::to_string(k));
    if (n_queries < 0 || n_items < 0) throw std::invalid_argument("negative matrix shape");
    if (exclude.present()) {
        if (exclude.n_rows != n_queries)
            throw std::invalid_argument("exclude has " + std::to_string(exclude.n_rows) +
                                        " rows but there are " + std::to_string(n_queries) + " queries");
        if (exclude.n_cols != n_items)
            throw std::invalid_argument("exclude has " + std::to_string(exclude.n_cols) +
                                        " columns but there are " + std::to_string(n_items) + " items");
        exclude.validate("exclude");
    }
    if (candidates != nullptr) {
        if (n_candidates < 0) throw std::invalid_argument("negative number of candidates");
        std::vector<char> seen(static_cast<size_t>(n_items), 0);
        for (int64_t i = 0; i < n_candidates; ++i) {
            const int32_t c = candidates[i];
            if (c < 0 || c >= n_items)
                throw std::out_of_range("candidate item " + std::to_string(c) + " outside [0, " +
                                        std::to_string(n_items) + ")");
            if (seen[static_cast<size_t>(c)])
                throw std::invalid_argument("candidate item " + std::to_string(c) + " is listed twice");
            seen[static_cast<size_t>(c)] = 1;
        }
    }
}

// Each query's excluded items as a sorted list, so that the rare candidate that beats the
// current threshold is checked by binary search and excluded items never enter the heap (the
// heap stays at size k however long a user's history is).
class Exclusion {
public:
    explicit Exclusion(const CsrView& ex) : ex_(ex) {
        if (!ex.present()) return;
        bool sorted = true;
        for (int64_t r = 0; r < ex.n_rows && sorted; ++r)
            for (int64_t p = ex.row_begin(r) + 1; p < ex.row_end(r); ++p)
                if (ex.indices[p - 1] > ex.indices[p]) {
                    sorted = false;
                    break;
                }
        if (!sorted) {
            copy_.assign(ex.indices, ex.indices + ex.nnz());
            for (int64_t r = 0; r < ex.n_rows; ++r)
                std::sort(copy_.begin() + ex.row_begin(r), copy_.begin() + ex.row_end(r));
        }
    }
    bool contains(int64_t q, int32_t item) const {
        if (!ex_.present()) return false;
        const int32_t* base = copy_.empty() ? ex_.indices : copy_.data();
        const int32_t* lo = base + ex_.row_begin(q);
        const int32_t* hi = base + ex_.row_end(q);
        return lo != hi && std::binary_search(lo, hi, item);
    }

private:
    const CsrView& ex_;
    std::vector<int32_t> copy_;
};

void finalize(TopK& heap, int64_t q, int k, TopKOutput out) {
    heap.write_sorted(out.items + q * k, out.scores + q * k);
}

}  // namespace

void topk_dot(const float* queries, int64_t n_queries, const float* items, int64_t n_items,
              int64_t dim, int k, const CsrView& exclude, const int32_t* candidates,
              int64_t n_candidates, TopKOutput out, int n_threads) {
    check_common(n_queries, n_items, k, exclude, candidates, n_candidates);
    if (dim < 0) throw std::invalid_argument("negative factor dimension");
    if (n_queries == 0) return;
    const int64_t n_search = candidates ? n_candidates : n_items;

    const detail::TileKernel& kernel = detail::tile_kernel();
    const int64_t width = kernel.panel_width;
    const int64_t panel_floats = std::max<int64_t>(dim, 1) * width;
    const int64_t panels_per_block =
        std::max<int64_t>(1, kItemBlockBytes / static_cast<int64_t>(sizeof(float)) / panel_floats);
    const int64_t block_items = panels_per_block * width;
    const int64_t queries_per_block = static_cast<int64_t>(kernel.rows) * kQueryTilesPerBlock;
    const int64_t n_query_blocks = (n_queries + queries_per_block - 1) / queries_per_block;

    struct Scratch {
        std::vector<float> packed, tile;
        std::vector<TopK> heaps;
    };
    const Exclusion excluded(exclude);
    const int workers = planned_workers(n_query_blocks, n_threads);
    std::vector<Scratch> scratch;
    scratch.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) {
        scratch.emplace_back();
        scratch.back().packed.resize(static_cast<size_t>(panels_per_block * panel_floats));
        scratch.back().tile.resize(static_cast<size_t>(kernel.rows * block_items));
        scratch.back().heaps.resize(static_cast<size_t>(queries_per_block));
    }

    parallel_for(0, n_query_blocks, workers, [&](int64_t qb, int worker) {
        Scratch& s = scratch[static_cast<size_t>(worker)];
        const int64_t q0 = qb * queries_per_block;
        const int64_t q1 = std::min(n_queries, q0 + queries_per_block);
        for (int64_t q = q0; q < q1; ++q) s.heaps[static_cast<size_t>(q - q0)].reset(k);
        for (int64_t b0 = 0; b0 < n_search; b0 += block_items) {
            const int64_t b1 = std::min(n_search, b0 + block_items);
            const int64_t n_panels = (b1 - b0 + width - 1) / width;
            // Pack this block of items as [panel][dim][width], zero-padding the last panel.
            float* packed = s.packed.data();
            for (int64_t p = 0; p < n_panels; ++p) {
                float* dst = packed + p * panel_floats;
                for (int64_t c = 0; c < width; ++c) {
                    const int64_t pos = b0 + p * width + c;
                    if (pos < b1) {
                        const int64_t item = candidates ? candidates[pos] : pos;
                        const float* src = items + item * dim;
                        for (int64_t f = 0; f < dim; ++f) dst[f * width + c] = src[f];
                    } else {
                        for (int64_t f = 0; f < dim; ++f) dst[f * width + c] = 0.0f;
                    }
                }
            }
            const int64_t ld = n_panels * width;
            for (int64_t t0 = q0; t0 < q1; t0 += kernel.rows) {
                const int rows = static_cast<int>(std::min<int64_t>(kernel.rows, q1 - t0));
                kernel.run(queries + t0 * dim, dim, rows, packed, n_panels, dim, s.tile.data(), ld);
                for (int r = 0; r < rows; ++r) {
                    TopK& heap = s.heaps[static_cast<size_t>(t0 - q0 + r)];
                    const float* row = s.tile.data() + r * ld;
                    float thr = heap.threshold();
                    for (int64_t j = 0; j < b1 - b0; ++j) {
                        if (row[j] >= thr) {
                            const int64_t pos = b0 + j;
                            const int32_t item = candidates ? candidates[pos] : static_cast<int32_t>(pos);
                            if (excluded.contains(t0 + r, item)) continue;
                            heap.push(row[j], item);
                            thr = heap.threshold();
                        }
                    }
                }
            }
        }
        for (int64_t q = q0; q < q1; ++q)
            finalize(s.heaps[static_cast<size_t>(q - q0)], q, k, out);
    });
}

void topk_dense(const float* scores, int64_t n_queries, int64_t n_items, int k,
                const CsrView& exclude, const int32_t* candidates, int64_t n_candidates,
                TopKOutput out, int n_threads) {
    check_common(n_queries, n_items, k, exclude, candidates, n_candidates);
    if (n_queries == 0) return;
    const int64_t n_search = candidates ? n_candidates : n_items;
    constexpr int64_t kChunk = 16;
    const int workers = planned_workers(n_queries, n_threads, kChunk);
    std::vector<TopK> heaps(static_cast<size_t>(workers));
    const Exclusion excluded(exclude);

    parallel_for(
        0, n_queries, workers,
        [&](int64_t q, int worker) {
            TopK& heap = heaps[static_cast<size_t>(worker)];
            heap.reset(k);
            const float* row = scores + q * n_items;
            float thr = heap.threshold();
            for (int64_t pos = 0; pos < n_search; ++pos) {
                const int32_t item = candidates ? candidates[pos] : static_cast<int32_t>(pos);
                const float v = row[item];
                if (v >= thr && !excluded.contains(q, item)) {
                    heap.push(v, item);
                    thr = heap.threshold();
                }
            }
            finalize(heap, q, k, out);
        },
        kChunk);
}

void topk_candidates(const float* queries, int64_t n_queries, const float* items, int64_t n_items,
                     int64_t dim, const int32_t* candidates, int64_t n_cand, int k,
                     const CsrView& exclude, TopKOutput out, int n_threads) {
    check_common(n_queries, n_items, k, exclude, nullptr, 0);
    if (dim < 0 || n_cand < 0) throw std::invalid_argument("negative dimension");
    const int64_t total = n_queries * n_cand;
    for (int64_t i = 0; i < total; ++i) {
        if (candidates[i] < -1 || candidates[i] >= n_items)
            throw std::out_of_range("candidate item " + std::to_string(candidates[i]) + " outside [0, " +
                                    std::to_string(n_items) + ")");
    }
    if (n_queries == 0) return;
    // Work per query is O((candidates + excluded) log) with small sorted copies, so a single
    // query against a large catalog costs nothing proportional to the catalog.
    constexpr int64_t kChunk = 8;
    const int workers = planned_workers(n_queries, n_threads, kChunk);
    struct Scratch {
        TopK heap;
        std::vector<int32_t> cand, excl;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(workers));
    parallel_for(
        0, n_queries, workers,
        [&](int64_t q, int worker) {
            Scratch& s = scratch[static_cast<size_t>(worker)];
            s.heap.reset(k);
            const int32_t* row = candidates + q * n_cand;
            s.cand.assign(row, row + n_cand);
            std::sort(s.cand.begin(), s.cand.end());
            s.cand.erase(std::unique(s.cand.begin(), s.cand.end()), s.cand.end());
            s.excl.clear();
            if (exclude.present())
                s.excl.assign(exclude.indices + exclude.row_begin(q), exclude.indices + exclude.row_end(q));
            std::sort(s.excl.begin(), s.excl.end());
            const float* qv = queries + q * dim;
            for (const int32_t item : s.cand) {
                if (item < 0) continue;
                if (!s.excl.empty() && std::binary_search(s.excl.begin(), s.excl.end(), item)) continue;
                const float* v = items + static_cast<int64_t>(item) * dim;
                float dot = 0.0f;
                for (int64_t f = 0; f < dim; ++f) dot += qv[f] * v[f];
                s.heap.push(dot, item);
            }
            s.heap.write_sorted(out.items + q * k, out.scores + q * k);
        },
        kChunk);
}

}  // namespace recforge
