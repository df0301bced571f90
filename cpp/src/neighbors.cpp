#include "recforge/neighbors.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/topk.hpp"

namespace recforge {
namespace {

constexpr int64_t kRowChunk = 16;  // rows per unit of parallel work

bool uses_co_rated(const SimilarityOptions& o) {
    switch (o.kind) {
        case Similarity::Msd:
        case Similarity::PearsonBaseline:
            return true;
        case Similarity::Cosine:
        case Similarity::AdjustedCosine:
        case Similarity::Pearson:
            return o.co_rated;
        default:
            return false;
    }
}

void check_similarity_input(const CsrView& x, const SimilarityOptions& o) {
    if (!x.present()) throw std::invalid_argument("the interaction matrix is missing");
    if (x.data == nullptr) throw std::invalid_argument("the interaction matrix needs values (data)");
    if (x.n_rows > std::numeric_limits<int32_t>::max() || x.n_cols > std::numeric_limits<int32_t>::max())
        throw std::invalid_argument("at most 2^31 - 1 rows and columns are supported");
    x.validate("interactions");
    const int kind = static_cast<int>(o.kind);
    if (kind < 0 || kind >= kNumSimilarities)
        throw std::invalid_argument("unknown similarity code " + std::to_string(kind));
    if (!(o.shrink >= 0.0) || !std::isfinite(o.shrink))
        throw std::invalid_argument("shrink must be a finite number >= 0");
    if (o.min_support < 1) throw std::invalid_argument("min_support must be >= 1");
    if (!(o.alpha >= 0.0 && o.alpha <= 1.0)) throw std::invalid_argument("alpha must be in [0, 1]");
    if (!(o.bm25_k1 >= 0.0) || !std::isfinite(o.bm25_k1))
        throw std::invalid_argument("bm25_k1 must be a finite number >= 0");
    if (!(o.bm25_b >= 0.0 && o.bm25_b <= 1.0)) throw std::invalid_argument("bm25_b must be in [0, 1]");
    if (o.kind == Similarity::PearsonBaseline && (o.row_bias == nullptr || o.col_bias == nullptr))
        throw std::invalid_argument("pearson_baseline needs the row and column biases");
    const int64_t nnz = x.nnz();
    for (int64_t p = 0; p < nnz; ++p) {
        if (!std::isfinite(x.data[p]))
            throw std::invalid_argument("the interaction values contain NaN or infinity");
    }
    if (o.kind == Similarity::Tfidf || o.kind == Similarity::Bm25) {
        for (int64_t p = 0; p < nnz; ++p) {
            if (x.data[p] < 0.0f)
                throw std::invalid_argument("bm25 and tfidf need non-negative interaction values");
        }
    }
}

// log(N) - log1p(df) per column: the inverse document frequency of BM25 and TF-IDF, with the
// rows as documents and the columns as terms.
std::vector<double> column_idf(const CsrView& x) {
    std::vector<double> df(static_cast<size_t>(x.n_cols), 0.0);
    const int64_t nnz = x.nnz();
    for (int64_t p = 0; p < nnz; ++p) df[static_cast<size_t>(x.indices[p])] += 1.0;
    const double log_n = std::log(static_cast<double>(std::max<int64_t>(x.n_rows, 1)));
    for (double& v : df) v = log_n - std::log1p(v);
    return df;
}

}  // namespace

void similarity_weights(const CsrView& x, const SimilarityOptions& o, double* out) {
    const int64_t nnz = x.nnz();
    for (int64_t p = 0; p < nnz; ++p) out[p] = x.data[p];
    switch (o.kind) {
        case Similarity::Pearson: {
            if (o.co_rated) break;  // means over the co-rated columns, from the pair sums
            for (int64_t r = 0; r < x.n_rows; ++r) {
                const int64_t b = x.row_begin(r), e = x.row_end(r);
                if (b == e) continue;
                double mean = 0.0;
                for (int64_t p = b; p < e; ++p) mean += x.data[p];
                mean /= static_cast<double>(e - b);
                for (int64_t p = b; p < e; ++p) out[p] -= mean;
            }
            break;
        }
        case Similarity::AdjustedCosine: {
            std::vector<double> sum(static_cast<size_t>(x.n_cols), 0.0), cnt(static_cast<size_t>(x.n_cols), 0.0);
            for (int64_t p = 0; p < nnz; ++p) {
                sum[static_cast<size_t>(x.indices[p])] += x.data[p];
                cnt[static_cast<size_t>(x.indices[p])] += 1.0;
            }
            for (int64_t p = 0; p < nnz; ++p) {
                const size_t c = static_cast<size_t>(x.indices[p]);
                out[p] -= sum[c] / cnt[c];
            }
            break;
        }
        case Similarity::PearsonBaseline: {
            for (int64_t r = 0; r < x.n_rows; ++r) {
                for (int64_t p = x.row_begin(r); p < x.row_end(r); ++p)
                    out[p] -= o.global_mean + o.row_bias[r] + o.col_bias[x.indices[p]];
            }
            break;
        }
        case Similarity::Bm25: {
            const std::vector<double> idf = column_idf(x);
            std::vector<double> length(static_cast<size_t>(x.n_rows), 0.0);
            double total = 0.0;
            for (int64_t r = 0; r < x.n_rows; ++r) {
                for (int64_t p = x.row_begin(r); p < x.row_end(r); ++p) length[static_cast<size_t>(r)] += x.data[p];
                total += length[static_cast<size_t>(r)];
            }
            const double average = x.n_rows > 0 ? total / static_cast<double>(x.n_rows) : 0.0;
            for (int64_t r = 0; r < x.n_rows; ++r) {
                const double ratio = average > 0.0 ? length[static_cast<size_t>(r)] / average : 0.0;
                const double norm = (1.0 - o.bm25_b) + o.bm25_b * ratio;
                for (int64_t p = x.row_begin(r); p < x.row_end(r); ++p) {
                    const double v = x.data[p];
                    const double den = o.bm25_k1 * norm + v;
                    out[p] = den > 0.0 ? v * (o.bm25_k1 + 1.0) / den * idf[static_cast<size_t>(x.indices[p])] : 0.0;
                }
            }
            break;
        }
        case Similarity::Tfidf: {
            const std::vector<double> idf = column_idf(x);
            for (int64_t p = 0; p < nnz; ++p)
                out[p] = std::sqrt(static_cast<double>(x.data[p])) * idf[static_cast<size_t>(x.indices[p])];
            break;
        }
        default:
            break;
    }
}

namespace {

// Which pair sums a similarity needs: whole-row measures only need the dot product; the
// co-rated ones need sums restricted to the common columns.
// Count: the whole-row measures on a matrix whose stored values are all equal (binary
// feedback): the dot product is the co-support times that value squared, so a 4-byte counter
// per row is the whole accumulator (a quarter of the memory traffic).
// DotOnly: the dot product when the co-support is not used (no shrink, no min_support, not
// jaccard): an 8-byte accumulator and a byte mark per row instead of a 16-byte record, so the
// accumulator of a large catalog stays in cache (BM25 and TF-IDF on weighted data, dot, cosine).
enum class Sums { Dot, SqDiff, Cos, Pearson, Count, DotOnly };

struct PairSums {
    double dot, sq_i, sq_j, sum_i, sum_j;  // dot holds the squared differences for SqDiff
    int32_t count;                         // co-support; 0 marks an untouched row
};

struct DotCount {  // a dot product (or msd's squared differences) and the co-support, together
    double dot;
    int32_t count;
};

// Per-worker sparse accumulator over the rows of x.
struct Accumulator {
    std::vector<DotCount> dot;    // Sums::Dot
    std::vector<int32_t> cnt;     // Sums::Count
    std::vector<PairSums> sums;   // the co-rated kinds, one record per row for locality
    std::vector<double> dot_only;  // Sums::DotOnly
    std::vector<uint8_t> mark;     // Sums::DotOnly: 1 once the row is on the touched list
    std::vector<int32_t> touched;  // sized n; the first n_touched entries are in use
    size_t n_touched = 0;
    std::vector<std::pair<int32_t, float>> row;  // the selected neighbours of one row
    std::vector<std::pair<int32_t, float>> row_buffer;  // keep-all candidates (capacity n)
    size_t row_len = 0;
    std::vector<int32_t> out_indices;
    std::vector<float> out_data;
    TopK heap;

    Accumulator(int64_t n, Sums mode) : touched(static_cast<size_t>(n)) {
        row_buffer.resize(static_cast<size_t>(n));
        if (mode == Sums::Count) cnt.assign(static_cast<size_t>(n), 0);
        else if (mode == Sums::Dot || mode == Sums::SqDiff) dot.assign(static_cast<size_t>(n), DotCount{0.0, 0});
        else if (mode == Sums::DotOnly) {
            dot_only.assign(static_cast<size_t>(n), 0.0);
            mark.assign(static_cast<size_t>(n), 0);
        }
        else sums.assign(static_cast<size_t>(n), PairSums{0.0, 0.0, 0.0, 0.0, 0.0, 0});
    }
    int32_t count(size_t j) const {
        return !cnt.empty() ? cnt[j] : !dot.empty() ? dot[j].count : !mark.empty() ? mark[j] : sums[j].count;
    }
};

struct RowSlot {
    int worker = 0;
    int64_t offset = 0;
    int64_t length = 0;
};

// Everything the rows share: the weighted matrix, its transpose and whole-row statistics.
struct SimilarityContext {
    const CsrView* x;
    const SimilarityOptions* o;
    std::vector<double> w;       // entry weights, aligned with x
    std::vector<double> row_sq;  // sum of squared weights per row
    std::vector<double> inv_norm;  // 1 / sqrt(row_sq), 0 for an all-zero row
    std::vector<int32_t> row_nnz;
    std::vector<double> pow_a, pow_b;  // AsymmetricCosine norms
    std::vector<int64_t> tptr;
    std::vector<int32_t> trow;
    std::vector<float> tval;  // weights in column order (float: half the bytes streamed)
    int min_support = 1;
    bool need_count = true;  // whether the co-support is used (else dense rows skip counting)
    int64_t total_work = 0;  // accumulator updates of a full sweep: sum of squared column lengths
    double binary_square = 0.0;  // Sums::Count: the common stored value, squared
};

// Estimated number of accumulator updates of row i (from min_j on): decides between the
// sparse accumulator (touched list) and a dense sweep of every row, whichever is cheaper.
inline bool dense_row(const SimilarityContext& ctx, int64_t i, int32_t min_j) {
    const CsrView& x = *ctx.x;
    int64_t work = 0;
    for (int64_t p = x.row_begin(i); p < x.row_end(i); ++p) {
        const size_t c = static_cast<size_t>(x.indices[p]);
        work += ctx.tptr[c + 1] - ctx.tptr[c];
    }
    if (min_j > 0) work /= 2;  // the upper triangle takes about half of it
    return work * 4 >= x.n_rows - min_j;
}

template <Sums S, bool Dense>
void accumulate_row(const SimilarityContext& ctx, int64_t i, int32_t min_j, Accumulator& a) {
    const CsrView& x = *ctx.x;
    for (int64_t p = x.row_begin(i); p < x.row_end(i); ++p) {
        const double wi = ctx.w[static_cast<size_t>(p)];
        const size_t c = static_cast<size_t>(x.indices[p]);
        const int32_t* first = ctx.trow.data() + ctx.tptr[c];
        const int32_t* last = ctx.trow.data() + ctx.tptr[c + 1];
        if (min_j > 0) first = std::lower_bound(first, last, min_j);
        const float* vals = ctx.tval.data() + (first - ctx.trow.data());
        const int64_t len = last - first;
        for (int64_t t = 0; t < len; ++t) {
            const size_t j = static_cast<size_t>(first[t]);
            const double wj = vals[t];
            if constexpr (S == Sums::DotOnly) {
                if constexpr (!Dense) {
                    if (!a.mark[j]) {
                        a.mark[j] = 1;
                        a.touched[a.n_touched++] = static_cast<int32_t>(j);
                    }
                }
                a.dot_only[j] += wi * wj;
                continue;
            }
            int32_t& count = [&]() -> int32_t& {
                if constexpr (S == Sums::Count) return a.cnt[j];
                else if constexpr (S == Sums::Dot || S == Sums::SqDiff) return a.dot[j].count;
                else return a.sums[j].count;
            }();
            if constexpr (Dense) {
                if (S == Sums::Count || ctx.need_count) ++count;
            } else {
                if (count++ == 0) a.touched[a.n_touched++] = static_cast<int32_t>(j);
            }
            if constexpr (S == Sums::Count) {
                (void)wi;
                (void)wj;
            } else if constexpr (S == Sums::Dot) {
                a.dot[j].dot += wi * wj;
            } else if constexpr (S == Sums::SqDiff) {
                const double d = wi - wj;
                a.dot[j].dot += d * d;
            } else {
                PairSums& ps = a.sums[j];
                ps.dot += wi * wj;
                ps.sq_i += wi * wi;
                ps.sq_j += wj * wj;
                if constexpr (S == Sums::Pearson) {
                    ps.sum_i += wi;
                    ps.sum_j += wj;
                }
            }
        }
    }
}

// Turns the accumulated sums of row i into similarities, keeps the best (or all) in a.row
// sorted by column, and resets the accumulator. `mirror(j, s)` sees every kept candidate.
template <Sums S, class Mirror>
void finish_row(const SimilarityContext& ctx, int64_t i, int32_t min_j, bool dense, Accumulator& a,
                Mirror&& mirror) {
    const SimilarityOptions& o = *ctx.o;
    const bool keep_all = o.k <= 0;
    if (!keep_all) a.heap.reset(o.k);
    a.row.clear();
    a.row_len = 0;
    const bool collect = keep_all;  // keep_all collects into row_buffer, the others use the heap
    const double sq_row = ctx.row_sq[static_cast<size_t>(i)];
    const double inv_row = ctx.inv_norm.empty() ? 0.0 : ctx.inv_norm[static_cast<size_t>(i)];
    auto handle = [&](int32_t jj) {
        const size_t j = static_cast<size_t>(jj);
        // without need_count, dense rows do not count: the co-support is then unused
        PairSums ps{0.0, 0.0, 0.0, 0.0, 0.0, 0};
        if constexpr (S == Sums::Count) {
            ps.count = a.cnt[j];
            ps.dot = static_cast<double>(ps.count) * ctx.binary_square;
            a.cnt[j] = 0;
        } else if constexpr (S == Sums::Dot || S == Sums::SqDiff) {
            ps.dot = a.dot[j].dot;
            ps.count = a.dot[j].count;
            a.dot[j] = DotCount{0.0, 0};
        } else if constexpr (S == Sums::DotOnly) {
            ps.dot = a.dot_only[j];
            ps.count = 1;  // unused: no shrink and no minimum support
            a.dot_only[j] = 0.0;
            a.mark[j] = 0;
        } else {
            ps = a.sums[j];
            a.sums[j] = PairSums{0.0, 0.0, 0.0, 0.0, 0.0, 0};
        }
        const int32_t support = (S != Sums::Count && dense && !ctx.need_count) ? 1 : ps.count;
        if (support < ctx.min_support || (!o.include_self && jj == i)) return;
        const double nsup = static_cast<double>(support);
        double s = 0.0;
        switch (o.kind) {
            case Similarity::Dot:
            case Similarity::Bm25:
                s = ps.dot;
                break;
            case Similarity::Jaccard:
                s = nsup / (static_cast<double>(ctx.row_nnz[static_cast<size_t>(i)]) + ctx.row_nnz[j] - nsup);
                break;
            case Similarity::AsymmetricCosine: {
                const double den = ctx.pow_a[static_cast<size_t>(i)] * ctx.pow_b[j];
                s = den > 0.0 ? ps.dot / den : 0.0;
                break;
            }
            case Similarity::Msd:
                s = 1.0 / (ps.dot / nsup + 1.0);
                break;
            default:
                if constexpr (S == Sums::Pearson) {
                    const double va = nsup * ps.sq_i - ps.sum_i * ps.sum_i;
                    const double vb = nsup * ps.sq_j - ps.sum_j * ps.sum_j;
                    s = (va > 0.0 && vb > 0.0) ? (nsup * ps.dot - ps.sum_i * ps.sum_j) / std::sqrt(va * vb) : 0.0;
                } else if constexpr (S == Sums::Cos) {
                    const double den = std::sqrt(ps.sq_i * ps.sq_j);
                    s = den > 0.0 ? ps.dot / den : 0.0;
                } else {  // cosine family over whole rows: 1 / |x| precomputed (0 for empty rows)
                    (void)sq_row;
                    s = ps.dot * (inv_row * ctx.inv_norm[j]);
                }
                break;
        }
        if (o.kind == Similarity::PearsonBaseline) {
            s *= (nsup - 1.0) / (nsup - 1.0 + o.shrink);
        } else if (o.shrink > 0.0) {
            s *= nsup / (nsup + o.shrink);
        }
        const float sf = static_cast<float>(s);
        if (sf != sf || sf == 0.0f || (o.positive_only && sf < 0.0f)) return;
        if (collect) {
            a.row_buffer[a.row_len++] = std::make_pair(jj, sf);
        } else if (sf >= a.heap.threshold()) {  // cheap pre-check, push decides ties
            a.heap.push(sf, jj);
        }
        if (!keep_all) mirror(jj, sf);
    };
    if (dense) {
        const int32_t n = static_cast<int32_t>(ctx.x->n_rows);
        if (S == Sums::Count || ctx.need_count) {
            for (int32_t j = min_j; j < n; ++j) {
                if (a.count(static_cast<size_t>(j)) != 0) handle(j);
            }
        } else {  // Sums::Dot only: an untouched row has a zero dot product, which is dropped anyway
            for (int32_t j = min_j; j < n; ++j) {
                if constexpr (S == Sums::Dot) {
                    if (a.dot[static_cast<size_t>(j)].dot != 0.0) handle(j);
                } else if constexpr (S == Sums::DotOnly) {
                    if (a.dot_only[static_cast<size_t>(j)] != 0.0) handle(j);
                }
            }
        }
    } else {
        for (size_t t = 0; t < a.n_touched; ++t) handle(a.touched[t]);
        a.n_touched = 0;
    }
    if (!collect) {
        for (const Scored& sc : a.heap.take_sorted()) a.row.emplace_back(sc.item, sc.score);
    } else {
        a.row.assign(a.row_buffer.begin(), a.row_buffer.begin() + static_cast<std::ptrdiff_t>(a.row_len));
    }
    const auto by_column = [](const std::pair<int32_t, float>& l, const std::pair<int32_t, float>& r) {
        return l.first < r.first;
    };
    if (!std::is_sorted(a.row.begin(), a.row.end(), by_column)) std::sort(a.row.begin(), a.row.end(), by_column);
}

template <Sums S, class Mirror>
void process_row(const SimilarityContext& ctx, int64_t i, int32_t min_j, Accumulator& a, Mirror&& mirror) {
    const bool dense = dense_row(ctx, i, min_j);
    if (dense) accumulate_row<S, true>(ctx, i, min_j, a);
    else accumulate_row<S, false>(ctx, i, min_j, a);
    finish_row<S>(ctx, i, min_j, dense, a, mirror);
}

// Computes the query rows (all rows when rows is null); with `upper`, only the columns
// j >= i (j > i without include_self) of each row i, for mirroring a symmetric result.
template <Sums S>
SparseResult compute_rows(const SimilarityContext& ctx, const int32_t* rows, int64_t n_query, bool upper,
                          int n_threads) {
    const int64_t n = ctx.x->n_rows;
    const int workers = planned_workers(n_query, n_threads, kRowChunk);
    std::vector<Accumulator> acc;
    acc.reserve(static_cast<size_t>(workers));
    for (int t = 0; t < workers; ++t) acc.emplace_back(n, S);
    std::vector<RowSlot> slots(static_cast<size_t>(n_query));
    parallel_for(
        0, n_query, workers,
        [&](int64_t q, int worker) {
            Accumulator& a = acc[static_cast<size_t>(worker)];
            const int64_t i = rows ? rows[q] : q;
            const int32_t min_j = upper ? static_cast<int32_t>(ctx.o->include_self ? i : i + 1) : 0;
            process_row<S>(ctx, i, min_j, a, [](int32_t, float) {});
            RowSlot& slot = slots[static_cast<size_t>(q)];
            slot.worker = worker;
            slot.offset = static_cast<int64_t>(a.out_indices.size());
            slot.length = static_cast<int64_t>(a.row.size());
            a.out_indices.resize(a.out_indices.size() + a.row.size());
            a.out_data.resize(a.out_data.size() + a.row.size());
            int32_t* oi = a.out_indices.data() + slot.offset;
            float* od = a.out_data.data() + slot.offset;
            for (size_t e = 0; e < a.row.size(); ++e) {
                oi[e] = a.row[e].first;
                od[e] = a.row[e].second;
            }
        },
        kRowChunk);

    SparseResult res;
    res.indptr.assign(static_cast<size_t>(n_query) + 1, 0);
    if (!upper) {
        for (int64_t q = 0; q < n_query; ++q)
            res.indptr[static_cast<size_t>(q) + 1] = res.indptr[static_cast<size_t>(q)] + slots[static_cast<size_t>(q)].length;
        res.indices.resize(static_cast<size_t>(res.indptr.back()));
        res.data.resize(static_cast<size_t>(res.indptr.back()));
        for (int64_t q = 0; q < n_query; ++q) {
            const RowSlot& slot = slots[static_cast<size_t>(q)];
            const Accumulator& a = acc[static_cast<size_t>(slot.worker)];
            std::copy_n(a.out_indices.begin() + slot.offset, slot.length, res.indices.begin() + res.indptr[static_cast<size_t>(q)]);
            std::copy_n(a.out_data.begin() + slot.offset, slot.length, res.data.begin() + res.indptr[static_cast<size_t>(q)]);
        }
        return res;
    }
    // Mirror the upper triangle: row j = [(i, s) for i < j from the rows above] + its own part.
    std::vector<int64_t> incoming(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
        const RowSlot& slot = slots[static_cast<size_t>(i)];
        const Accumulator& a = acc[static_cast<size_t>(slot.worker)];
        for (int64_t e = slot.offset; e < slot.offset + slot.length; ++e) {
            const int32_t j = a.out_indices[static_cast<size_t>(e)];
            if (j != i) ++incoming[static_cast<size_t>(j)];
        }
    }
    for (int64_t r = 0; r < n; ++r)
        res.indptr[static_cast<size_t>(r) + 1] =
            res.indptr[static_cast<size_t>(r)] + incoming[static_cast<size_t>(r)] + slots[static_cast<size_t>(r)].length;
    res.indices.resize(static_cast<size_t>(res.indptr.back()));
    res.data.resize(static_cast<size_t>(res.indptr.back()));
    std::vector<int64_t> fill(res.indptr.begin(), res.indptr.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
        const RowSlot& slot = slots[static_cast<size_t>(i)];
        const Accumulator& a = acc[static_cast<size_t>(slot.worker)];
        const int64_t own = res.indptr[static_cast<size_t>(i)] + incoming[static_cast<size_t>(i)];
        std::copy_n(a.out_indices.begin() + slot.offset, slot.length, res.indices.begin() + own);
        std::copy_n(a.out_data.begin() + slot.offset, slot.length, res.data.begin() + own);
        for (int64_t e = slot.offset; e < slot.offset + slot.length; ++e) {
            const int32_t j = a.out_indices[static_cast<size_t>(e)];
            if (j == i) continue;
            const int64_t dst = fill[static_cast<size_t>(j)]++;
            res.indices[static_cast<size_t>(dst)] = static_cast<int32_t>(i);
            res.data[static_cast<size_t>(dst)] = a.out_data[static_cast<size_t>(e)];
        }
    }
    return res;
}

// A symmetric measure with a top-k cut over all rows: each pair (i, j > i) is computed once
// and offered to both rows. Row i's own heap takes it as usual; row j's candidate goes to a
// heap owned by the computing thread (no locks), and the threads' heaps are merged at the end.
// The candidates of a row are the same set however the work is split, so the result equals
// the row-by-row computation exactly.
template <Sums S>
SparseResult compute_symmetric_topk(const SimilarityContext& ctx, int n_threads) {
    const int64_t n = ctx.x->n_rows;
    const int k = ctx.o->k;
    const int workers = planned_workers(n, n_threads, kRowChunk);
    std::vector<Accumulator> acc;
    acc.reserve(static_cast<size_t>(workers));
    for (int t = 0; t < workers; ++t) acc.emplace_back(n, S);
    std::vector<std::vector<TopK>> lower(static_cast<size_t>(workers));  // [worker][row j]
    std::vector<std::vector<float>> lower_threshold(static_cast<size_t>(workers));  // compact copies
    for (int t = 0; t < workers; ++t) {
        lower[static_cast<size_t>(t)].reserve(static_cast<size_t>(n));
        for (int64_t r = 0; r < n; ++r) lower[static_cast<size_t>(t)].emplace_back(k);
        lower_threshold[static_cast<size_t>(t)].assign(static_cast<size_t>(n), -std::numeric_limits<float>::infinity());
    }
    std::vector<std::vector<Scored>> own(static_cast<size_t>(n));  // row i's best among j >= i
    parallel_for(
        0, n, workers,
        [&](int64_t i, int worker) {
            Accumulator& a = acc[static_cast<size_t>(worker)];
            std::vector<TopK>& heaps = lower[static_cast<size_t>(worker)];
            std::vector<float>& threshold = lower_threshold[static_cast<size_t>(worker)];
            const int32_t min_j = static_cast<int32_t>(ctx.o->include_self ? i : i + 1);
            process_row<S>(ctx, i, min_j, a, [&](int32_t j, float sv) {
                // most candidates fail the compact threshold and never touch the heap
                if (j != i && sv >= threshold[static_cast<size_t>(j)]) {
                    TopK& heap = heaps[static_cast<size_t>(j)];
                    heap.push(sv, static_cast<int32_t>(i));
                    threshold[static_cast<size_t>(j)] = heap.threshold();
                }
            });
            std::vector<Scored>& mine = own[static_cast<size_t>(i)];
            mine.reserve(a.row.size());
            for (const auto& e : a.row) mine.push_back(Scored{e.second, e.first});
        },
        kRowChunk);

    SparseResult res;
    res.indptr.assign(static_cast<size_t>(n) + 1, 0);
    std::vector<std::vector<Scored>> merged(static_cast<size_t>(n));
    const int merge_workers = planned_workers(n, n_threads, 256);
    std::vector<TopK> merge_heaps(static_cast<size_t>(merge_workers));
    parallel_for(
        0, n, merge_workers,
        [&](int64_t r, int worker) {
            TopK& heap = merge_heaps[static_cast<size_t>(worker)];
            heap.reset(k);
            for (const Scored& sc : own[static_cast<size_t>(r)]) heap.push(sc.score, sc.item);
            for (auto& heaps : lower) {
                for (const Scored& sc : heaps[static_cast<size_t>(r)].take_sorted()) heap.push(sc.score, sc.item);
            }
            std::vector<Scored>& out = merged[static_cast<size_t>(r)];
            out = heap.take_sorted();
            std::sort(out.begin(), out.end(), [](const Scored& l, const Scored& rr) { return l.item < rr.item; });
        },
        256);
    for (int64_t r = 0; r < n; ++r)
        res.indptr[static_cast<size_t>(r) + 1] = res.indptr[static_cast<size_t>(r)] + static_cast<int64_t>(merged[static_cast<size_t>(r)].size());
    res.indices.resize(static_cast<size_t>(res.indptr.back()));
    res.data.resize(static_cast<size_t>(res.indptr.back()));
    for (int64_t r = 0; r < n; ++r) {
        int64_t dst = res.indptr[static_cast<size_t>(r)];
        for (const Scored& sc : merged[static_cast<size_t>(r)]) {
            res.indices[static_cast<size_t>(dst)] = sc.item;
            res.data[static_cast<size_t>(dst)] = sc.score;
            ++dst;
        }
    }
    return res;
}

template <Sums S>
SparseResult dispatch_rows(const SimilarityContext& ctx, const int32_t* rows, int64_t n_query, int n_threads) {
    const SimilarityOptions& o = *ctx.o;
    const int64_t n = ctx.x->n_rows;
    const bool symmetric = rows == nullptr && o.kind != Similarity::AsymmetricCosine;
    if (symmetric && o.k <= 0) return compute_rows<S>(ctx, rows, n_query, true, n_threads);
    // With a top-k cut, offering each pair to the other row's heap costs a cache miss per
    // pair; it pays off only when rows co-occur with a good share of all rows (average work
    // per row, sum over columns of their lengths, against the number of rows).
    const double work_per_row = n > 0 ? static_cast<double>(ctx.total_work) / static_cast<double>(n) : 0.0;
    if (work_per_row * 8.0 < static_cast<double>(n)) return compute_rows<S>(ctx, rows, n_query, false, n_threads);
    // the per-thread heaps take workers x n x k entries; past ~1 GiB use the plain row sweep
    const int64_t heap_entries = static_cast<int64_t>(planned_workers(n, n_threads, kRowChunk)) * n * o.k;
    if (symmetric && heap_entries <= (int64_t(1) << 27)) return compute_symmetric_topk<S>(ctx, n_threads);
    return compute_rows<S>(ctx, rows, n_query, false, n_threads);
}

}  // namespace

SparseResult similarity_topk(const CsrView& x, const int32_t* rows, int64_t n_rows_query,
                             const SimilarityOptions& o, int n_threads) {
    check_similarity_input(x, o);
    const int64_t n = x.n_rows;
    if (rows == nullptr) n_rows_query = n;
    if (n_rows_query < 0) throw std::invalid_argument("negative number of query rows");
    if (rows != nullptr) {
        for (int64_t q = 0; q < n_rows_query; ++q) {
            if (rows[q] < 0 || rows[q] >= n)
                throw std::out_of_range("query row " + std::to_string(rows[q]) + " outside [0, " +
                                        std::to_string(n) + ")");
        }
    }
    const int64_t nnz = x.nnz();
    SimilarityContext ctx;
    ctx.x = &x;
    ctx.o = &o;
    ctx.w.resize(static_cast<size_t>(nnz));
    similarity_weights(x, o, ctx.w.data());
    // Round the weights to float once, so that the transposed copy (float) holds the very same
    // values and every product w_i * w_j is the same whichever row computes it.
    for (double& v : ctx.w) v = static_cast<double>(static_cast<float>(v));
    ctx.row_sq.assign(static_cast<size_t>(n), 0.0);
    ctx.row_nnz.assign(static_cast<size_t>(n), 0);
    for (int64_t r = 0; r < n; ++r) {
        double sum = 0.0;
        for (int64_t p = x.row_begin(r); p < x.row_end(r); ++p) sum += ctx.w[static_cast<size_t>(p)] * ctx.w[static_cast<size_t>(p)];
        ctx.row_sq[static_cast<size_t>(r)] = sum;
        ctx.row_nnz[static_cast<size_t>(r)] = static_cast<int32_t>(x.row_end(r) - x.row_begin(r));
    }
    ctx.inv_norm.assign(static_cast<size_t>(n), 0.0);
    for (int64_t r = 0; r < n; ++r) {
        const double sq = ctx.row_sq[static_cast<size_t>(r)];
        if (sq > 0.0) ctx.inv_norm[static_cast<size_t>(r)] = 1.0 / std::sqrt(sq);
    }
    if (o.kind == Similarity::AsymmetricCosine) {
        ctx.pow_a.resize(static_cast<size_t>(n));
        ctx.pow_b.resize(static_cast<size_t>(n));
        for (int64_t r = 0; r < n; ++r) {
            ctx.pow_a[static_cast<size_t>(r)] = std::pow(ctx.row_sq[static_cast<size_t>(r)], o.alpha);
            ctx.pow_b[static_cast<size_t>(r)] = std::pow(ctx.row_sq[static_cast<size_t>(r)], 1.0 - o.alpha);
        }
    }
    ctx.tptr.assign(static_cast<size_t>(x.n_cols) + 1, 0);
    for (int64_t p = 0; p < nnz; ++p) ++ctx.tptr[static_cast<size_t>(x.indices[p]) + 1];
    for (int64_t c = 0; c < x.n_cols; ++c) ctx.tptr[static_cast<size_t>(c) + 1] += ctx.tptr[static_cast<size_t>(c)];
    ctx.trow.resize(static_cast<size_t>(nnz));
    ctx.tval.resize(static_cast<size_t>(nnz));
    {
        std::vector<int64_t> fill(ctx.tptr.begin(), ctx.tptr.end() - 1);
        for (int64_t r = 0; r < n; ++r) {
            for (int64_t p = x.row_begin(r); p < x.row_end(r); ++p) {
                const int64_t dst = fill[static_cast<size_t>(x.indices[p])]++;
                ctx.trow[static_cast<size_t>(dst)] = static_cast<int32_t>(r);
                ctx.tval[static_cast<size_t>(dst)] = static_cast<float>(ctx.w[static_cast<size_t>(p)]);
            }
        }
    }
    ctx.min_support = o.kind == Similarity::PearsonBaseline ? std::max(2, o.min_support) : o.min_support;
    for (int64_t c = 0; c < x.n_cols; ++c) {
        const int64_t len = ctx.tptr[static_cast<size_t>(c) + 1] - ctx.tptr[static_cast<size_t>(c)];
        ctx.total_work += len * len;
    }
    ctx.need_count = uses_co_rated(o) || ctx.min_support > 1 || o.shrink > 0.0 || o.kind == Similarity::Jaccard;

    // Every measure but the asymmetric cosine is symmetric: a full fit computes each pair once.
    Sums sums = Sums::Dot;
    if (uses_co_rated(o)) {
        sums = o.kind == Similarity::Msd ? Sums::SqDiff : o.kind == Similarity::Pearson ? Sums::Pearson : Sums::Cos;
    } else if ((o.kind == Similarity::Dot || o.kind == Similarity::Cosine || o.kind == Similarity::Jaccard ||
                o.kind == Similarity::AsymmetricCosine) && nnz > 0) {
        const double first = ctx.w[0];
        bool binary = first != 0.0;
        for (int64_t p = 1; p < nnz && binary; ++p) binary = ctx.w[static_cast<size_t>(p)] == first;
        if (binary) {
            sums = Sums::Count;
            ctx.binary_square = first * first;
        }
    }
    if (sums == Sums::Dot && !ctx.need_count) sums = Sums::DotOnly;
    switch (sums) {
        case Sums::Dot: return dispatch_rows<Sums::Dot>(ctx, rows, n_rows_query, n_threads);
        case Sums::DotOnly: return dispatch_rows<Sums::DotOnly>(ctx, rows, n_rows_query, n_threads);
        case Sums::SqDiff: return dispatch_rows<Sums::SqDiff>(ctx, rows, n_rows_query, n_threads);
        case Sums::Cos: return dispatch_rows<Sums::Cos>(ctx, rows, n_rows_query, n_threads);
        case Sums::Count: return dispatch_rows<Sums::Count>(ctx, rows, n_rows_query, n_threads);
        default: return dispatch_rows<Sums::Pearson>(ctx, rows, n_rows_query, n_threads);
    }
}

namespace {

struct ScoreScratch {
    // One record per item: the sparse path reads and writes both fields of an item at once.
    struct Cell {
        double num;     // the score being accumulated; zero between queries
        int64_t stamp;  // query + 1 once the item is on the touched list of that query
    };
    std::vector<Cell> cell;
    std::vector<double> den;  // all zero between queries
    std::vector<int64_t> excluded_stamp;
    std::vector<int32_t> touched;  // sized n_items; the first n_touched entries are in use
    size_t n_touched = 0;
    TopK heap;
};

// num[j] (and den[j]) += the contributions of query row q of A times B.
template <ScoreNormalization N>
void accumulate_scores(const CsrView& a, const CsrView& b, int64_t q, bool dense, int64_t mark, ScoreScratch& s) {
    for (int64_t p = a.row_begin(q); p < a.row_end(q); ++p) {
        const double av = a.data[p];
        const int64_t m = a.indices[p];
        const int64_t end = b.row_end(m);
        for (int64_t t = b.row_begin(m); t < end; ++t) {
            const size_t j = static_cast<size_t>(b.indices[t]);
            ScoreScratch::Cell& c = s.cell[j];
            if (!dense && c.stamp != mark) {
                c.stamp = mark;
                s.touched[s.n_touched++] = static_cast<int32_t>(j);
            }
            const double bv = b.data[t];
            c.num += av * bv;
            if constexpr (N == ScoreNormalization::ByB) s.den[j] += std::fabs(bv);
            if constexpr (N == ScoreNormalization::ByA) s.den[j] += std::fabs(av);
        }
    }
}

}  // namespace

void sparse_topk_scores(const CsrView& a, const CsrView& b, ScoreNormalization normalization,
                        int k, const CsrView& exclude, const int32_t* candidates,
                        int64_t n_candidates, TopKOutput out, int n_threads) {
    if (k <= 0) throw std::invalid_argument("k must be positive, got " + std::to_string(k));
    if (!a.present() || !b.present()) throw std::invalid_argument("both sparse operands are required");
    if (a.data == nullptr || b.data == nullptr) throw std::invalid_argument("sparse operands need values");
    if (a.n_cols != b.n_rows)
        throw std::invalid_argument("A has " + std::to_string(a.n_cols) + " columns but B has " +
                                    std::to_string(b.n_rows) + " rows");
    const int norm = static_cast<int>(normalization);
    if (norm < 0 || norm > 2) throw std::invalid_argument("unknown score normalisation code");
    a.validate("A");
    b.validate("B");
    const int64_t nq = a.n_rows, n_items = b.n_cols;
    if (exclude.present()) {
        if (exclude.n_rows != nq || exclude.n_cols != n_items)
            throw std::invalid_argument("exclude must have one row per query and one column per item");
        exclude.validate("exclude");
    }
    std::vector<int32_t> cand;
    if (candidates != nullptr) {
        if (n_candidates < 0) throw std::invalid_argument("negative number of candidates");
        cand.assign(candidates, candidates + n_candidates);
        std::sort(cand.begin(), cand.end());
        for (size_t c = 0; c < cand.size(); ++c) {
            if (cand[c] < 0 || cand[c] >= n_items)
                throw std::out_of_range("candidate item " + std::to_string(cand[c]) + " outside [0, " +
                                        std::to_string(n_items) + ")");
            if (c > 0 && cand[c] == cand[c - 1])
                throw std::invalid_argument("candidate item " + std::to_string(cand[c]) + " is listed twice");
        }
    }
    std::vector<char> allowed;
    if (candidates != nullptr) {
        allowed.assign(static_cast<size_t>(n_items), 0);
        for (const int32_t c : cand) allowed[static_cast<size_t>(c)] = 1;
    }
    if (nq == 0) return;

    using Scratch = ScoreScratch;
    constexpr int64_t kChunk = 8;
    const int workers = planned_workers(nq, n_threads, kChunk);
    std::vector<Scratch> scratch(static_cast<size_t>(workers));
    for (Scratch& s : scratch) {
        s.cell.assign(static_cast<size_t>(n_items), ScoreScratch::Cell{0.0, 0});
        if (normalization != ScoreNormalization::None) s.den.assign(static_cast<size_t>(n_items), 0.0);
        s.touched.assign(static_cast<size_t>(n_items), 0);
        s.excluded_stamp.assign(static_cast<size_t>(n_items), 0);
    }
    const bool use_den = normalization != ScoreNormalization::None;

    // Between queries num (and den) are all zero. A query whose estimated work is a fair share
    // of the catalogue accumulates densely (no first-touch branch) and sweeps every item;
    // otherwise it keeps a list of the items it touched.
    parallel_for(
        0, nq, workers,
        [&](int64_t q, int worker) {
            Scratch& s = scratch[static_cast<size_t>(worker)];
            const int64_t mark = q + 1;
            int64_t work = 0;
            for (int64_t p = a.row_begin(q); p < a.row_end(q); ++p) {
                const int64_t m = a.indices[p];
                work += b.row_end(m) - b.row_begin(m);
            }
            const bool dense = work * 4 >= n_items;
            switch (normalization) {
                case ScoreNormalization::None:
                    accumulate_scores<ScoreNormalization::None>(a, b, q, dense, mark, s);
                    break;
                case ScoreNormalization::ByB:
                    accumulate_scores<ScoreNormalization::ByB>(a, b, q, dense, mark, s);
                    break;
                default:
                    accumulate_scores<ScoreNormalization::ByA>(a, b, q, dense, mark, s);
                    break;
            }
            if (exclude.present()) {
                for (int64_t p = exclude.row_begin(q); p < exclude.row_end(q); ++p)
                    s.excluded_stamp[static_cast<size_t>(exclude.indices[p])] = mark;
            }
            s.heap.reset(k);
            auto take = [&](size_t j) {  // score of item j, resetting its accumulator
                double v = s.cell[j].num;
                s.cell[j].num = 0.0;
                if (use_den) {
                    v = s.den[j] > 0.0 ? v / s.den[j] : 0.0;
                    s.den[j] = 0.0;
                }
                return static_cast<float>(v);
            };
            if (dense) {
                // Every item has a score (0 when never reached): one sweep in index order.
                float thr = s.heap.threshold();
                auto offer = [&](int32_t jj) {
                    const size_t j = static_cast<size_t>(jj);
                    double v = s.cell[j].num;
                    if (use_den) v = s.den[j] > 0.0 ? v / s.den[j] : 0.0;
                    const float vf = static_cast<float>(v);
                    if (vf >= thr && s.excluded_stamp[j] != mark) {
                        s.heap.push(vf, jj);
                        thr = s.heap.threshold();
                    }
                };
                if (candidates) {
                    for (const int32_t jj : cand) offer(jj);
                } else {
                    for (int64_t jj = 0; jj < n_items; ++jj) offer(static_cast<int32_t>(jj));
                }
                for (ScoreScratch::Cell& c : s.cell) c.num = 0.0;
                if (use_den) std::fill(s.den.begin(), s.den.end(), 0.0);
            } else {
                for (size_t t = 0; t < s.n_touched; ++t) {
                    const int32_t jj = s.touched[t];
                    const size_t j = static_cast<size_t>(jj);
                    const float v = take(j);
                    if (s.excluded_stamp[j] == mark) continue;
                    if (!allowed.empty() && !allowed[j]) continue;
                    if (v >= s.heap.threshold()) s.heap.push(v, jj);
                }
                s.n_touched = 0;
                // Items never reached score 0: only the first k eligible ones (by index) can enter.
                const int64_t n_scan = candidates ? static_cast<int64_t>(cand.size()) : n_items;
                int pushed = 0;
                for (int64_t pos = 0; pos < n_scan && pushed < k; ++pos) {
                    if (s.heap.full() && s.heap.threshold() > 0.0f) break;
                    const int32_t jj = candidates ? cand[static_cast<size_t>(pos)] : static_cast<int32_t>(pos);
                    const size_t j = static_cast<size_t>(jj);
                    if (s.cell[j].stamp == mark || s.excluded_stamp[j] == mark) continue;
                    s.heap.push(0.0f, jj);
                    ++pushed;
                }
            }
            s.heap.write_sorted(out.items + q * k, out.scores + q * k);
        },
        kChunk);
}

void knn_predict(const CsrView& sim, const CsrView& y_ratings, const int32_t* group_x,
                 const int64_t* group_ptr, int64_t n_groups, const int32_t* query_y,
                 const KnnPredictOptions& o, double* out, int32_t* actual_k, int n_threads) {
    if (!sim.present() || !y_ratings.present()) throw std::invalid_argument("similarity and ratings are required");
    if (sim.data == nullptr || y_ratings.data == nullptr) throw std::invalid_argument("similarity and ratings need values");
    if (sim.n_rows != sim.n_cols) throw std::invalid_argument("the similarity matrix must be square");
    if (y_ratings.n_cols != sim.n_rows)
        throw std::invalid_argument("the ratings have " + std::to_string(y_ratings.n_cols) +
                                    " columns but the similarity has " + std::to_string(sim.n_rows) + " rows");
    if (o.k <= 0) throw std::invalid_argument("k must be positive");
    if (o.min_k < 0) throw std::invalid_argument("min_k must be >= 0");
    const int kind = static_cast<int>(o.kind);
    if (kind < 0 || kind > 3) throw std::invalid_argument("unknown prediction kind");
    if ((o.kind == KnnPrediction::WithMeans || o.kind == KnnPrediction::WithZScore) && o.x_mean == nullptr)
        throw std::invalid_argument("means are required");
    if (o.kind == KnnPrediction::WithZScore && o.x_sigma == nullptr) throw std::invalid_argument("sigmas are required");
    if (o.kind == KnnPrediction::Baseline && (o.x_bias == nullptr || o.y_bias == nullptr))
        throw std::invalid_argument("biases are required");
    sim.validate("similarity");
    y_ratings.validate("ratings");
    const int64_t n_x = sim.n_rows, n_y = y_ratings.n_rows;
    if (n_groups < 0 || group_ptr[0] != 0) throw std::invalid_argument("malformed query groups");
    for (int64_t g = 0; g < n_groups; ++g) {
        if (group_x[g] < 0 || group_x[g] >= n_x) throw std::out_of_range("query entity outside the similarity");
        if (group_ptr[g + 1] < group_ptr[g]) throw std::invalid_argument("malformed query groups");
    }
    const int64_t n_queries = n_groups > 0 ? group_ptr[n_groups] : 0;
    for (int64_t t = 0; t < n_queries; ++t) {
        if (query_y[t] < 0 || query_y[t] >= n_y) throw std::out_of_range("query target outside the ratings");
    }

    struct Scratch {
        std::vector<float> sim_row;  // the similarity row of the current x, zero elsewhere
        std::vector<Scored> found;   // positive-similarity raters of the current y (item = offset)
    };
    const int workers = planned_workers(n_groups, n_threads);
    std::vector<Scratch> scratch(static_cast<size_t>(workers));
    for (Scratch& s : scratch) s.sim_row.assign(static_cast<size_t>(n_x), 0.0f);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const size_t k = static_cast<size_t>(o.k);

    parallel_for(0, n_groups, workers, [&](int64_t g, int worker) {
        Scratch& s = scratch[static_cast<size_t>(worker)];
        const int32_t x = group_x[g];
        for (int64_t p = sim.row_begin(x); p < sim.row_end(x); ++p)
            s.sim_row[static_cast<size_t>(sim.indices[p])] = sim.data[p];
        const float self_sim = s.sim_row[static_cast<size_t>(x)];
        s.sim_row[static_cast<size_t>(x)] = 1.0f;  // an entity is fully similar to itself
        for (int64_t t = group_ptr[g]; t < group_ptr[g + 1]; ++t) {
            const int32_t y = query_y[t];
            const int64_t rb = y_ratings.row_begin(y), re = y_ratings.row_end(y);
            // The k most similar raters of y with a positive similarity. Ratings rows are
            // sorted, so ties between offsets order like ties between ids; the sums below do
            // not depend on the order, so a partition is enough.
            if (s.found.size() < static_cast<size_t>(re - rb)) s.found.resize(static_cast<size_t>(re - rb));
            Scored* found = s.found.data();
            size_t n_found = 0;
            const int32_t* raters = y_ratings.indices + rb;
            const float* sim_row = s.sim_row.data();
            for (int64_t p = 0; p < re - rb; ++p) {
                const float sv = sim_row[raters[p]];
                found[n_found] = Scored{sv, static_cast<int32_t>(p)};
                n_found += sv > 0.0f ? 1 : 0;  // branch-free compaction
            }
            if (n_found > k) {
                // a lambda (not the function pointer) so that the comparison is inlined
                std::nth_element(found, found + k - 1, found + n_found,
                                 [](const Scored& l, const Scored& r) { return ranks_before(l, r); });
                n_found = k;
            }
            double sum_sim = 0.0, sum_r = 0.0;
            for (size_t f = 0; f < n_found; ++f) {
                const Scored& sc = found[f];
                const int64_t p = rb + sc.item;
                const int32_t x2 = y_ratings.indices[p];
                const double r = y_ratings.data[p];
                const double w = sc.score;
                sum_sim += w;
                switch (o.kind) {
                    case KnnPrediction::Basic: sum_r += w * r; break;
                    case KnnPrediction::WithMeans: sum_r += w * (r - o.x_mean[x2]); break;
                    case KnnPrediction::WithZScore: sum_r += w * (r - o.x_mean[x2]) / o.x_sigma[x2]; break;
                    case KnnPrediction::Baseline: sum_r += w * (r - (o.global_mean + o.x_bias[x2] + o.y_bias[y])); break;
                }
            }
            const int used = static_cast<int>(n_found);
            const bool enough = used >= o.min_k && sum_sim > 0.0;
            double est = 0.0;
            switch (o.kind) {
                case KnnPrediction::Basic: est = enough ? sum_r / sum_sim : nan; break;
                case KnnPrediction::WithMeans: est = o.x_mean[x] + (enough ? sum_r / sum_sim : 0.0); break;
                case KnnPrediction::WithZScore: est = o.x_mean[x] + (enough ? o.x_sigma[x] * sum_r / sum_sim : 0.0); break;
                case KnnPrediction::Baseline:
                    est = o.global_mean + o.x_bias[x] + o.y_bias[y] + (enough ? sum_r / sum_sim : 0.0);
                    break;
            }
            out[t] = est;
            if (actual_k) actual_k[t] = used;
        }
        s.sim_row[static_cast<size_t>(x)] = self_sim;
        for (int64_t p = sim.row_begin(x); p < sim.row_end(x); ++p) s.sim_row[static_cast<size_t>(sim.indices[p])] = 0.0f;
        s.sim_row[static_cast<size_t>(x)] = 0.0f;
    });
}

void baseline_als(const CsrView& ratings, const CsrView& ratings_t, double global_mean, int n_epochs,
                  double reg_u, double reg_i, double* user_bias, double* item_bias, int n_threads) {
    if (!ratings.present() || !ratings_t.present() || ratings.data == nullptr || ratings_t.data == nullptr)
        throw std::invalid_argument("the ratings and their transpose are required");
    if (ratings_t.n_rows != ratings.n_cols || ratings_t.n_cols != ratings.n_rows)
        throw std::invalid_argument("ratings_t must be the transpose of ratings");
    if (n_epochs < 0) throw std::invalid_argument("n_epochs must be >= 0");
    if (!(reg_u >= 0.0) || !(reg_i >= 0.0)) throw std::invalid_argument("regularisation must be >= 0");
    ratings.validate("ratings");
    ratings_t.validate("ratings_t");
    const int64_t n_users = ratings.n_rows, n_items = ratings.n_cols;
    std::fill(user_bias, user_bias + n_users, 0.0);
    std::fill(item_bias, item_bias + n_items, 0.0);
    for (int epoch = 0; epoch < n_epochs; ++epoch) {
        parallel_for(0, n_items, n_threads, [&](int64_t i, int) {
            double dev = 0.0;
            for (int64_t p = ratings_t.row_begin(i); p < ratings_t.row_end(i); ++p)
                dev += ratings_t.data[p] - global_mean - user_bias[ratings_t.indices[p]];
            const double n = static_cast<double>(ratings_t.row_end(i) - ratings_t.row_begin(i));
            item_bias[i] = (reg_i + n) > 0.0 ? dev / (reg_i + n) : 0.0;
        }, 256);
        parallel_for(0, n_users, n_threads, [&](int64_t u, int) {
            double dev = 0.0;
            for (int64_t p = ratings.row_begin(u); p < ratings.row_end(u); ++p)
                dev += ratings.data[p] - global_mean - item_bias[ratings.indices[p]];
            const double n = static_cast<double>(ratings.row_end(u) - ratings.row_begin(u));
            user_bias[u] = (reg_u + n) > 0.0 ? dev / (reg_u + n) : 0.0;
        }, 256);
    }
}

void baseline_sgd(const CsrView& ratings, double global_mean, int n_epochs, double reg,
                  double learning_rate, double* user_bias, double* item_bias) {
    if (!ratings.present() || ratings.data == nullptr) throw std::invalid_argument("the ratings are required");
    if (n_epochs < 0) throw std::invalid_argument("n_epochs must be >= 0");
    if (!(reg >= 0.0)) throw std::invalid_argument("reg must be >= 0");
    if (!(learning_rate > 0.0) || !std::isfinite(learning_rate))
        throw std::invalid_argument("learning_rate must be a positive number");
    ratings.validate("ratings");
    std::fill(user_bias, user_bias + ratings.n_rows, 0.0);
    std::fill(item_bias, item_bias + ratings.n_cols, 0.0);
    for (int epoch = 0; epoch < n_epochs; ++epoch) {
        for (int64_t u = 0; u < ratings.n_rows; ++u) {
            for (int64_t p = ratings.row_begin(u); p < ratings.row_end(u); ++p) {
                const int32_t i = ratings.indices[p];
                const double err = ratings.data[p] - (global_mean + user_bias[u] + item_bias[i]);
                user_bias[u] += learning_rate * (err - reg * user_bias[u]);
                item_bias[i] += learning_rate * (err - reg * item_bias[i]);
            }
        }
    }
}

}  // namespace recforge
