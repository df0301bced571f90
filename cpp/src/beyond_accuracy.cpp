#include "recforge/beyond_accuracy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"

namespace recforge {
namespace {

constexpr int64_t kChunk = 64;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_lists(const int32_t* lists, int64_t n_lists, int64_t list_len, int64_t n_items) {
    if (n_lists < 0 || list_len < 0 || n_items < 0) throw std::invalid_argument("negative shape");
    const int64_t total = n_lists * list_len;
    for (int64_t i = 0; i < total; ++i) {
        if (lists[i] < -1 || lists[i] >= n_items)
            throw std::out_of_range("list item " + std::to_string(lists[i]) + " outside [0, " +
                                    std::to_string(n_items) + ") (use -1 for an empty slot)");
    }
}

// Distinct items of list u, in list order, using a per-worker stamp array.
void distinct_items(const int32_t* list, int64_t len, int64_t stamp, std::vector<int64_t>& marks,
                    std::vector<int32_t>& out) {
    out.clear();
    for (int64_t j = 0; j < len; ++j) {
        const int32_t it = list[j];
        if (it < 0 || marks[static_cast<size_t>(it)] == stamp) continue;
        marks[static_cast<size_t>(it)] = stamp;
        out.push_back(it);
    }
}

struct Scratch {
    std::vector<int64_t> marks;
    std::vector<int32_t> items;
    std::vector<int64_t> aux;
};

std::vector<Scratch> make_scratch(int workers, int64_t n_items) {
    std::vector<Scratch> s(static_cast<size_t>(workers));
    for (auto& w : s) w.marks.assign(static_cast<size_t>(n_items), 0);
    return s;
}

}  // namespace

void item_frequencies(const int32_t* lists, int64_t n_lists, int64_t list_len, int64_t n_items,
                      int64_t* counts, int n_threads) {
    check_lists(lists, n_lists, list_len, n_items);
    const int workers = planned_workers(n_lists, n_threads, kChunk);
    std::vector<std::vector<int64_t>> partial(static_cast<size_t>(workers),
                                              std::vector<int64_t>(static_cast<size_t>(n_items), 0));
    auto scratch = make_scratch(workers, n_items);
    parallel_for(
        0, n_lists, workers,
        [&](int64_t u, int w) {
            Scratch& s = scratch[static_cast<size_t>(w)];
            distinct_items(lists + u * list_len, list_len, u + 1, s.marks, s.items);
            for (int32_t it : s.items) ++partial[static_cast<size_t>(w)][static_cast<size_t>(it)];
        },
        kChunk);
    std::fill(counts, counts + n_items, 0);
    for (const auto& p : partial)
        for (int64_t i = 0; i < n_items; ++i) counts[i] += p[static_cast<size_t>(i)];
}

DistributionStats distribution_stats(const int64_t* counts, int64_t n_items, int64_t n_lists,
                                     int64_t list_len) {
    if (n_items <= 0) throw std::invalid_argument("the catalog is empty");
    DistributionStats st{};
    double total = 0.0, pair_overlap = 0.0;
    int64_t covered = 0;
    for (int64_t i = 0; i < n_items; ++i) {
        if (counts[i] < 0) throw std::invalid_argument("negative item frequency");
        const double c = static_cast<double>(counts[i]);
        total += c;
        covered += counts[i] > 0;
        pair_overlap += c * (c - 1.0) / 2.0;
    }
    st.coverage = static_cast<double>(covered) / static_cast<double>(n_items);
    if (total == 0.0) {
        st.entropy = st.normalized_entropy = st.gini = st.personalization = kNaN;
        return st;
    }
    double h = 0.0;
    for (int64_t i = 0; i < n_items; ++i) {
        if (counts[i] == 0) continue;
        const double p = static_cast<double>(counts[i]) / total;
        h -= p * std::log2(p);
    }
    st.entropy = h;
    st.normalized_entropy = n_items > 1 ? h / std::log2(static_cast<double>(n_items)) : 0.0;
    std::vector<int64_t> sorted(counts, counts + n_items);
    std::sort(sorted.begin(), sorted.end());
    double weighted = 0.0;
    const double n = static_cast<double>(n_items);
    for (int64_t i = 0; i < n_items; ++i)
        weighted += (2.0 * static_cast<double>(i + 1) - n - 1.0) * static_cast<double>(sorted[static_cast<size_t>(i)]);
    st.gini = weighted / (n * total);
    if (n_lists >= 2 && list_len > 0) {
        const double pairs = static_cast<double>(n_lists) * static_cast<double>(n_lists - 1) / 2.0;
        st.personalization = 1.0 - pair_overlap / pairs / static_cast<double>(list_len);
    } else {
        st.personalization = kNaN;
    }
    return st;
}

void list_mean(const int32_t* lists, int64_t n_lists, int64_t list_len, const double* item_values,
               int64_t n_items, double* out, int n_threads) {
    check_lists(lists, n_lists, list_len, n_items);
    const int workers = planned_workers(n_lists, n_threads, kChunk);
    auto scratch = make_scratch(workers, n_items);
    parallel_for(
        0, n_lists, workers,
        [&](int64_t u, int w) {
            Scratch& s = scratch[static_cast<size_t>(w)];
            distinct_items(lists + u * list_len, list_len, u + 1, s.marks, s.items);
            if (s.items.empty()) {
                out[u] = kNaN;
                return;
            }
            double sum = 0.0;
            for (int32_t it : s.items) sum += item_values[it];
            out[u] = sum / static_cast<double>(s.items.size());
        },
        kChunk);
}

void intra_list_diversity_vectors(const int32_t* lists, int64_t n_lists, int64_t list_len,
                                  const float* vectors, int64_t n_items, int64_t dim, double* out,
                                  int n_threads) {
    check_lists(lists, n_lists, list_len, n_items);
    std::vector<double> norms(static_cast<size_t>(n_items));
    for (int64_t i = 0; i < n_items; ++i) {
        double s = 0.0;
        for (int64_t f = 0; f < dim; ++f) s += static_cast<double>(vectors[i * dim + f]) * vectors[i * dim + f];
        norms[static_cast<size_t>(i)] = std::sqrt(s);
    }
    const int workers = planned_workers(n_lists, n_threads, kChunk);
    auto scratch = make_scratch(workers, n_items);
    parallel_for(
        0, n_lists, workers,
        [&](int64_t u, int w) {
            Scratch& s = scratch[static_cast<size_t>(w)];
            distinct_items(lists + u * list_len, list_len, u + 1, s.marks, s.items);
            const size_t m = s.items.size();
            if (m < 2) {
                out[u] = kNaN;
                return;
            }
            double total = 0.0;
            for (size_t a = 0; a < m; ++a) {
                const float* va = vectors + static_cast<int64_t>(s.items[a]) * dim;
                const double na = norms[static_cast<size_t>(s.items[a])];
                for (size_t b = a + 1; b < m; ++b) {
                    const float* vb = vectors + static_cast<int64_t>(s.items[b]) * dim;
                    const double nb = norms[static_cast<size_t>(s.items[b])];
                    double dot = 0.0;
                    for (int64_t f = 0; f < dim; ++f) dot += static_cast<double>(va[f]) * vb[f];
                    const double cos = (na > 0.0 && nb > 0.0) ? dot / (na * nb) : 0.0;
                    total += 1.0 - cos;
                }
            }
            out[u] = total / (static_cast<double>(m) * static_cast<double>(m - 1) / 2.0);
        },
        kChunk);
}

void intra_list_diversity_cooccurrence(const int32_t* lists, int64_t n_lists, int64_t list_len,
                                       const CsrView& item_users, double* out, int n_threads) {
    if (!item_users.present()) throw std::invalid_argument("the items x users matrix is required");
    item_users.validate("item_users");
    const int64_t n_items = item_users.n_rows;
    check_lists(lists, n_lists, list_len, n_items);
    const int workers = planned_workers(n_lists, n_threads, kChunk);
    auto scratch = make_scratch(workers, n_items);
    // user marks live in `aux`, sized to the number of users
    for (auto& s : scratch) s.aux.assign(static_cast<size_t>(item_users.n_cols), 0);
    std::vector<int64_t> user_stamp(static_cast<size_t>(workers), 0);
    parallel_for(
        0, n_lists, workers,
        [&](int64_t u, int w) {
            Scratch& s = scratch[static_cast<size_t>(w)];
            distinct_items(lists + u * list_len, list_len, u + 1, s.marks, s.items);
            const size_t m = s.items.size();
            if (m < 2) {
                out[u] = kNaN;
                return;
            }
            double total = 0.0;
            for (size_t a = 0; a < m; ++a) {
                const int64_t ia = s.items[a];
                const int64_t stamp = ++user_stamp[static_cast<size_t>(w)];
                const int64_t na = item_users.row_end(ia) - item_users.row_begin(ia);
                for (int64_t p = item_users.row_begin(ia); p < item_users.row_end(ia); ++p)
                    s.aux[static_cast<size_t>(item_users.indices[p])] = stamp;
                for (size_t b = a + 1; b < m; ++b) {
                    const int64_t ib = s.items[b];
                    const int64_t nb = item_users.row_end(ib) - item_users.row_begin(ib);
                    int64_t common = 0;
                    for (int64_t p = item_users.row_begin(ib); p < item_users.row_end(ib); ++p)
                        common += s.aux[static_cast<size_t>(item_users.indices[p])] == stamp;
                    const double cos = (na > 0 && nb > 0)
                                           ? static_cast<double>(common) / std::sqrt(static_cast<double>(na) * static_cast<double>(nb))
                                           : 0.0;
                    total += 1.0 - cos;
                }
            }
            out[u] = total / (static_cast<double>(m) * static_cast<double>(m - 1) / 2.0);
        },
        kChunk);
}

void serendipity(const int32_t* lists, int64_t n_lists, int64_t list_len, int k,
                 const CsrView& relevant, float rel_threshold, const int32_t* expected,
                 int64_t expected_len, double* out, int n_threads) {
    if (k <= 0) throw std::invalid_argument("k must be positive, got " + std::to_string(k));
    if (!relevant.present() || relevant.n_rows != n_lists)
        throw std::invalid_argument("relevance must have one row per list");
    relevant.validate("relevant");
    const int64_t n_items = relevant.n_cols;
    check_lists(lists, n_lists, list_len, n_items);
    check_lists(expected, n_lists, expected_len, n_items);
    const int workers = planned_workers(n_lists, n_threads, kChunk);
    auto scratch = make_scratch(workers, n_items);
    for (auto& s : scratch) s.aux.assign(static_cast<size_t>(n_items), 0);
    const int64_t depth = std::min<int64_t>(k, list_len);
    parallel_for(
        0, n_lists, workers,
        [&](int64_t u, int w) {
            Scratch& s = scratch[static_cast<size_t>(w)];
            const int64_t rel_code = 3 * u + 1, exp_code = 3 * u + 2, used_code = 3 * u + 3;
            for (int64_t p = relevant.row_begin(u); p < relevant.row_end(u); ++p) {
                const float g = relevant.data ? relevant.data[p] : 1.0f;
                if (g > rel_threshold) s.marks[static_cast<size_t>(relevant.indices[p])] = rel_code;
            }
            for (int64_t j = 0; j < expected_len; ++j) {
                const int32_t it = expected[u * expected_len + j];
                if (it >= 0) s.aux[static_cast<size_t>(it)] = exp_code;
            }
            int64_t hits = 0;
            for (int64_t j = 0; j < depth; ++j) {
                const int32_t it = lists[u * list_len + j];
                if (it < 0) continue;
                const auto i = static_cast<size_t>(it);
                if (s.marks[i] == rel_code && s.aux[i] != exp_code) ++hits;
                if (s.marks[i] == rel_code) s.marks[i] = used_code;  // a repeated item counts once
            }
            out[u] = static_cast<double>(hits) / static_cast<double>(k);
        },
        kChunk);
}

}  // namespace recforge
