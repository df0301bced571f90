// Unit tests of the C++ core, independent of Python. Each check compares a kernel with a slow,
// obvious version or with values worked out by hand.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/csr.hpp"
#include "recforge/common/parallel.hpp"
#include "recforge/common/topk.hpp"
#include "recforge/metrics.hpp"
#include "recforge/topk.hpp"

namespace {

int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

template <class E, class F>
bool throws(F&& f) {
    try {
        f();
    } catch (const E&) {
        return true;
    } catch (...) {
        return false;
    }
    return false;
}

struct Csr {
    std::vector<int64_t> indptr{0};
    std::vector<int32_t> indices;
    std::vector<float> data;
    int64_t cols = 0;
    void add_row(const std::vector<std::pair<int32_t, float>>& row) {
        for (auto& [c, v] : row) {
            indices.push_back(c);
            data.push_back(v);
        }
        indptr.push_back(static_cast<int64_t>(indices.size()));
    }
    recforge::CsrView view() const {
        recforge::CsrView v;
        v.indptr = indptr.data();
        v.indices = indices.data();
        v.data = data.data();
        v.n_rows = static_cast<int64_t>(indptr.size()) - 1;
        v.n_cols = cols;
        return v;
    }
};

void test_parallel_for_visits_everything_and_rethrows() {
    std::vector<std::atomic<int>> hits(1000);
    recforge::parallel_for(0, 1000, 4, [&](int64_t i, int) { hits[static_cast<size_t>(i)]++; }, 7);
    bool all_once = true;
    for (auto& h : hits) all_once &= h.load() == 1;
    CHECK(all_once);
    CHECK(throws<std::out_of_range>([] {
        recforge::parallel_for(0, 100, 3, [](int64_t i, int) {
            if (i == 57) throw std::out_of_range("boom");
        });
    }));
    CHECK(recforge::parallel_for(5, 5, 2, [](int64_t, int) {}) == 0);
}

void test_topk_heap_orders_ties_by_index() {
    recforge::TopK heap(3);
    const float scores[] = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f, NAN};
    for (int i = 0; i < 6; ++i) heap.push(scores[i], i);
    int32_t items[3];
    float vals[3];
    heap.write_sorted(items, vals);
    CHECK(items[0] == 1 && items[1] == 2 && items[2] == 4);
}

std::vector<int32_t> naive_topk(const std::vector<float>& s, int k, const std::vector<char>& banned) {
    std::vector<int32_t> idx;
    for (int32_t i = 0; i < static_cast<int32_t>(s.size()); ++i)
        if (!banned[static_cast<size_t>(i)]) idx.push_back(i);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return s[a] > s[b]; });
    idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(k)));
    return idx;
}

void test_topk_dot_against_naive() {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> small(-2, 2);
    const int64_t nq = 23, ni = 517, dim = 9;
    const int k = 12;
    std::vector<float> q(nq * dim), v(ni * dim);
    for (auto& x : q) x = static_cast<float>(small(rng));
    for (auto& x : v) x = static_cast<float>(small(rng));
    Csr ex;
    ex.cols = ni;
    std::vector<std::vector<char>> banned(nq, std::vector<char>(ni, 0));
    for (int64_t u = 0; u < nq; ++u) {
        std::vector<std::pair<int32_t, float>> row;
        for (int32_t i = 0; i < ni; ++i)
            if (rng() % 5 == 0) {
                row.push_back({i, 1.0f});
                banned[u][i] = 1;
            }
        ex.add_row(row);
    }
    std::vector<int32_t> items(nq * k);
    std::vector<float> scores(nq * k);
    for (int threads : {1, 2, 3}) {
        recforge::topk_dot(q.data(), nq, v.data(), ni, dim, k, ex.view(), nullptr, 0,
                           {items.data(), scores.data()}, threads);
        bool same = true;
        for (int64_t u = 0; u < nq; ++u) {
            std::vector<float> s(ni);
            for (int64_t i = 0; i < ni; ++i) {
                float acc = 0;
                for (int64_t f = 0; f < dim; ++f) acc += q[u * dim + f] * v[i * dim + f];
                s[i] = acc;
            }
            const auto want = naive_topk(s, k, banned[u]);
            for (int j = 0; j < k; ++j) same &= items[u * k + j] == want[j];
        }
        CHECK(same);
    }
    recforge::CsrView none;
    CHECK(throws<std::invalid_argument>([&] {
        recforge::topk_dot(q.data(), nq, v.data(), ni, dim, 0, none, nullptr, 0, {items.data(), scores.data()}, 1);
    }));
    const int32_t bad_cand[] = {3, 600};
    CHECK(throws<std::out_of_range>([&] {
        recforge::topk_dot(q.data(), nq, v.data(), ni, dim, 1, none, bad_cand, 2, {items.data(), scores.data()}, 1);
    }));
}

void test_metrics_by_hand() {
    // list [1 2 3 4 5], relevant {2, 5, 9}, k = 5
    const int32_t lists[] = {1, 2, 3, 4, 5, 0, 1, -1, -1, -1};
    Csr rel;
    rel.cols = 10;
    rel.add_row({{2, 1.0f}, {5, 1.0f}, {9, 1.0f}});
    rel.add_row({});
    recforge::RankingOptions opt;
    opt.k = 5;
    double out[recforge::kNumRankingMetrics * 2];
    int64_t n_rel[2];
    recforge::ranking_metrics(lists, 2, 5, rel.view(), opt, out, n_rel, 2);
    const double dcg = 1 / std::log2(3.0) + 1 / std::log2(6.0);
    const double idcg = 1 + 1 / std::log2(3.0) + 0.5;
    auto near = [](double a, double b) { return std::fabs(a - b) < 1e-12; };
    CHECK(near(out[recforge::kPrecision * 2], 0.4));
    CHECK(near(out[recforge::kRecall * 2], 2.0 / 3.0));
    CHECK(near(out[recforge::kNdcg * 2], dcg / idcg));
    CHECK(near(out[recforge::kAveragePrecision * 2], (0.5 + 0.4) / 3));
    CHECK(near(out[recforge::kReciprocalRank * 2], 0.5));
    CHECK(near(out[recforge::kHitRate * 2], 1.0));
    CHECK(n_rel[0] == 3 && n_rel[1] == 0);
    CHECK(out[recforge::kNdcg * 2 + 1] == 0.0);
    const int32_t bad[] = {11, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(throws<std::out_of_range>([&] { recforge::ranking_metrics(bad, 2, 5, rel.view(), opt, out, n_rel, 1); }));
}

void test_csr_validation() {
    Csr m;
    m.cols = 3;
    m.add_row({{0, 1.0f}, {4, 1.0f}});
    CHECK(throws<std::out_of_range>([&] { m.view().validate("m"); }));
    Csr ok;
    ok.cols = 3;
    ok.add_row({{0, 1.0f}});
    ok.indptr[1] = -1;
    CHECK(throws<std::invalid_argument>([&] { ok.view().validate("m"); }));
}

}  // namespace

int main() {
    test_parallel_for_visits_everything_and_rethrows();
    test_topk_heap_orders_ties_by_index();
    test_topk_dot_against_naive();
    test_metrics_by_hand();
    test_csr_validation();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("all C++ core tests passed\n");
    return 0;
}
