// Histogram GBDT: binning, leaf-wise tree growth, prediction. See recforge/ranking/gbdt.hpp.
#include "recforge/ranking/gbdt.hpp"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <limits>
#include <stdexcept>
#include <string>

#include "recforge/common/parallel.hpp"

namespace recforge::gbdt {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kDInf = std::numeric_limits<double>::infinity();
// |x| <= kZeroThreshold counts as zero; zero gets a bin of its own, (-kZeroThreshold, kZeroThreshold].
constexpr double kZeroThreshold = 1e-35;

// Bounds of equal-count bins over sorted distinct values (value[i] occurs count[i] times, n of
// them, total rows): with at most max_bin distinct values, one bound between consecutive values
// once the values since the last bound hold min_data_in_bin rows; otherwise bins of about
// total / max_bin rows, a value that alone holds that many getting a bin of its own. A bound
// lies just above the midpoint between the last value of a bin and the first of the next. The
// last bound is +inf.
std::vector<double> greedy_bounds(const double* value, const int64_t* count, int64_t n, int max_bin, int64_t total,
                                  int min_data_in_bin) {
    std::vector<double> bounds;
    auto push = [&](double mid) {
        const double b = std::nextafter(mid, kDInf);
        if (bounds.empty() || b > std::nextafter(bounds.back(), kDInf)) bounds.push_back(b);
    };
    if (n <= max_bin) {
        int64_t in_bin = 0;
        for (int64_t i = 0; i + 1 < n; ++i) {
            in_bin += count[i];
            if (in_bin >= min_data_in_bin) {
                const size_t before = bounds.size();
                push((value[i] + value[i + 1]) / 2.0);
                if (bounds.size() > before) in_bin = 0;
            }
        }
        bounds.push_back(kDInf);
        return bounds;
    }
    if (min_data_in_bin > 0) max_bin = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_bin, total / min_data_in_bin)));
    double mean_size = static_cast<double>(total) / max_bin;
    int64_t rest_bins = max_bin, rest_rows = total;
    std::vector<uint8_t> big(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
        if (static_cast<double>(count[i]) >= mean_size) {
            big[i] = 1;
            --rest_bins;
            rest_rows -= count[i];
        }
    }
    mean_size = static_cast<double>(rest_rows) / static_cast<double>(rest_bins);
    std::vector<double> upper, lower;  // last and first value of each closed bin
    lower.push_back(value[0]);
    int64_t in_bin = 0;
    for (int64_t i = 0; i + 1 < n; ++i) {
        if (!big[i]) rest_rows -= count[i];
        in_bin += count[i];
        const double c = static_cast<double>(in_bin);
        if (big[i] || c >= mean_size || (big[i + 1] && c >= std::max(1.0, mean_size * 0.5))) {
            upper.push_back(value[i]);
            lower.push_back(value[i + 1]);
            if (static_cast<int64_t>(upper.size()) >= max_bin - 1) break;
            in_bin = 0;
            if (!big[i]) {
                --rest_bins;
                mean_size = static_cast<double>(rest_rows) / static_cast<double>(rest_bins);
            }
        }
    }
    for (size_t i = 0; i < upper.size(); ++i) push((upper[i] + lower[i + 1]) / 2.0);
    bounds.push_back(kDInf);
    return bounds;
}

// The largest float <= b, so that for a float x, x <= edge exactly when x <= b.
float float_at_or_below(double b) {
    float f = static_cast<float>(b);
    if (static_cast<double>(f) > b) f = std::nextafter(f, -kInf);
    return f;
}

// Upper edges of one feature from its non-missing values (n_zero zeros not included in v):
// negative and positive values are binned apart (greedy_bounds), sharing out the bins in
// proportion to their rows, and the values within kZeroThreshold of zero get one bin.
// `split_rows` > 0: a feature that no bin boundary can split into two sides of at least that
// many rows (n_missing rows counted in a bin of their own) gets a single bin.
std::vector<float> feature_edges(std::vector<double>& v, int64_t n_zero, int64_t n_missing, int max_bin,
                                 int min_data_in_bin, int64_t split_rows, bool& trivial) {
    trivial = false;
    std::sort(v.begin(), v.end());
    std::vector<double> value;
    std::vector<int64_t> count;
    if (v.empty() || (v[0] > 0.0 && n_zero > 0)) {
        value.push_back(0.0);
        count.push_back(n_zero);
    }
    for (size_t i = 0; i < v.size(); ++i) {
        if (i > 0 && v[i] <= std::nextafter(v[i - 1], kDInf)) {
            value.back() = v[i];
            ++count.back();
            continue;
        }
        if (i > 0 && v[i - 1] < 0.0 && v[i] > 0.0) {
            value.push_back(0.0);
            count.push_back(n_zero);
        }
        value.push_back(v[i]);
        count.push_back(1);
    }
    if (!v.empty() && v.back() < 0.0 && n_zero > 0) {
        value.push_back(0.0);
        count.push_back(n_zero);
    }
    const int64_t nd = static_cast<int64_t>(value.size());
    const int value_bins = n_missing > 0 ? max_bin - 1 : max_bin;
    int64_t n_neg = 0, n_pos = 0;
    for (int64_t i = 0; i < nd; ++i) {
        if (value[i] <= -kZeroThreshold) n_neg += count[i];
        else if (value[i] > kZeroThreshold) n_pos += count[i];
    }
    int64_t first_nonneg = nd;
    for (int64_t i = 0; i < nd; ++i) {
        if (value[i] > -kZeroThreshold) {
            first_nonneg = i;
            break;
        }
    }
    std::vector<double> bounds;
    if (first_nonneg > 0 && value_bins > 1) {
        const int64_t rows = n_neg + n_pos;
        const int neg_bins = std::max(1, static_cast<int>(static_cast<double>(n_neg) / static_cast<double>(rows) * (value_bins - 1)));
        bounds = greedy_bounds(value.data(), count.data(), first_nonneg, neg_bins, n_neg, min_data_in_bin);
        bounds.back() = -kZeroThreshold;
    }
    int64_t first_pos = -1;
    for (int64_t i = first_nonneg; i < nd; ++i) {
        if (value[i] > kZeroThreshold) {
            first_pos = i;
            break;
        }
    }
    const int pos_bins = value_bins - 1 - static_cast<int>(bounds.size());
    if (first_pos >= 0 && pos_bins > 0) {
        std::vector<double> pos = greedy_bounds(value.data() + first_pos, count.data() + first_pos, nd - first_pos,
                                                pos_bins, n_pos, min_data_in_bin);
        bounds.push_back(kZeroThreshold);
        bounds.insert(bounds.end(), pos.begin(), pos.end());
    } else {
        bounds.push_back(kDInf);
    }
    if (split_rows > 0 && bounds.size() > 1) {
        // rows per bin, the missing rows last
        std::vector<int64_t> in_bin(bounds.size() + 1, 0);
        size_t b = 0;
        for (int64_t i = 0; i < nd; ++i) {
            while (b + 1 < bounds.size() && value[i] > bounds[b]) ++b;
            in_bin[b] += count[i];
        }
        in_bin[bounds.size()] = n_missing;
        int64_t total = 0;
        for (int64_t c : in_bin) total += c;
        bool splittable = false;
        int64_t left = 0;
        for (size_t i = 0; i + 1 < in_bin.size() && !splittable; ++i) {
            left += in_bin[i];
            splittable = left >= split_rows && total - left >= split_rows;
        }
        if (!splittable) {
            bounds.assign(1, kDInf);
            trivial = true;
        }
    }
    std::vector<float> edges(bounds.size());
    for (size_t i = 0; i < bounds.size(); ++i) edges[i] = float_at_or_below(bounds[i]);
    return edges;
}

// A team of threads kept for the growth of one tree, so that the many short parallel passes
// of a tree (one per split) do not each pay for starting threads. run(n, workers, fn) calls
// fn(i, w) for i in [0, n) with workers taking indices from an atomic counter, like
// parallel_for; the first exception thrown by any worker is rethrown in the caller. The caller
// works too and then waits only for the workers that hold an index: a worker that wakes late
// (on a machine with more threads than cores it may not run for a while) finds no index left
// and does not delay the pass. Workers spin briefly for the next pass, then sleep on a
// condition variable.
class Team {
public:
    explicit Team(int n_threads) : n_(std::max(1, n_threads)) {
        for (int w = 1; w < n_; ++w) threads_.emplace_back([this, w] { loop(w); });
    }
    ~Team() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
            generation_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    int size() const { return n_; }

    template <class Fn>
    void run(int64_t n_items, int workers, Fn&& fn) {
        if (n_items <= 0) return;
        workers = static_cast<int>(std::min<int64_t>(std::min(workers, n_), n_items));
        if (workers <= 1) {
            for (int64_t i = 0; i < n_items; ++i) fn(i, 0);
            return;
        }
        std::function<void(int64_t, int)> f = std::forward<Fn>(fn);
        auto job = std::make_shared<Job>();
        job->fn = &f;
        job->n_items = n_items;
        job->workers = workers;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = job;
            generation_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        work(*job, 0);
        while (job->in_flight.load() > 0) std::this_thread::yield();
        if (job->error) std::rethrow_exception(job->error);
    }

private:
    struct Job {
        std::function<void(int64_t, int)>* fn = nullptr;
        int64_t n_items = 0;
        int workers = 0;
        std::atomic<int64_t> next{0};
        std::atomic<int> in_flight{0};  // workers between taking an index and finishing it
        std::atomic<bool> failed{false};
        std::mutex error_mutex;
        std::exception_ptr error;
    };

    // Takes indices until none are left. in_flight is raised before an index is taken, so the
    // caller, which has seen the indices run out, also sees every worker that got one (all
    // operations sequentially consistent).
    static void work(Job& job, int w) {
        for (;;) {
            job.in_flight.fetch_add(1);
            const int64_t i = job.failed.load() ? job.n_items : job.next.fetch_add(1);
            if (i >= job.n_items) {
                job.in_flight.fetch_sub(1);
                return;
            }
            try {
                (*job.fn)(i, w);
            } catch (...) {
                std::lock_guard<std::mutex> lock(job.error_mutex);
                if (!job.error) job.error = std::current_exception();
                job.failed.store(true);
            }
            job.in_flight.fetch_sub(1);
        }
    }
    void loop(int w) {
        uint64_t seen = 0;
        for (;;) {
            uint64_t g = generation_.load(std::memory_order_acquire);
            for (int spin = 0; g == seen && spin < 4000; ++spin) {
                std::this_thread::yield();
                g = generation_.load(std::memory_order_acquire);
            }
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                if (g == seen) cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                seen = generation_.load(std::memory_order_acquire);
                if (stop_) return;
                job = job_;
            }
            if (job && w < job->workers) work(*job, w);
        }
    }

    int n_;
    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<uint64_t> generation_{0};
    bool stop_ = false;              // guarded by mutex_
    std::shared_ptr<Job> job_;       // the latest pass, guarded by mutex_
};

// A histogram bin: sums of gradients and hessians (the row counts, needed only for exact
// min_data_in_leaf, are kept apart).
struct HBin {
    double g, h;
};

struct SplitInfo {
    double gain = -std::numeric_limits<double>::infinity();
    int32_t feature = -1;
    int32_t bin = -1;
    bool default_left = false;
    double lg = 0, lh = 0, lc = 0;
};

inline double threshold_l1(double g, double l1) {
    const double a = std::fabs(g) - l1;
    return a <= 0.0 ? 0.0 : (g > 0 ? a : -a);
}

// LightGBM's kEpsilon (a float literal there): the hessian sums of a split's sides start from
// it, so that an empty side does not divide by zero.
constexpr double kEps = static_cast<double>(1e-15f);

inline double leaf_gain(double g, double h, const TreeParams& p) {
    const double t = threshold_l1(g, p.lambda_l1);
    return t * t / (h + p.lambda_l2);
}

// Output of a leaf with gradient and hessian sums g, h.
inline double leaf_output(double g, double h, const TreeParams& p) {
    return -threshold_l1(g, p.lambda_l1) / (h + kEps + p.lambda_l2);
}

class Grower {
public:
    Grower(const Binned& d, const float* gh, const uint8_t* mask, const TreeParams& p, int n_threads)
        : d_(d), gh_(gh), mask_(mask), p_(p), threads_(resolve_threads(n_threads)), team_(threads_),
          counts_(!p.counts_from_hessian),
          pool_(cached_pool()), cpool_(cached_count_pool()) {
        const int64_t F = d.n_features;
        hoff_.resize(static_cast<size_t>(F + 1), 0);
        for (int64_t f = 0; f < F; ++f) hoff_[f + 1] = hoff_[f] + d.n_bins(f) + (d.has_missing[f] ? 1 : 0);
        total_bins_ = hoff_[F];
        if (pool_.size() > 64) pool_.resize(64);
        cpool_.resize(pool_.size());
        for (auto& b : pool_) b.resize(static_cast<size_t>(total_bins_));
        for (auto& b : cpool_) b.resize(counts_ ? static_cast<size_t>(total_bins_) : 0);
        for (int i = static_cast<int>(pool_.size()) - 1; i >= 0; --i) free_.push_back(i);
        // Features that can split at all (more than one bin, allowed by the mask): the others
        // get no histogram.
        for (int64_t f = 0; f < F; ++f) {
            if (hoff_[f + 1] - hoff_[f] >= 2 && (!mask || mask[f])) active_.push_back(static_cast<int32_t>(f));
        }
    }

    ~Grower() {
        const size_t bytes = pool_.size() * static_cast<size_t>(total_bins_) * sizeof(HBin);
        if (bytes > (size_t(1) << 27)) {  // do not keep more than 128 MB between trees
            pool_.clear();
            cpool_.clear();
        }
    }

    Tree grow(const int32_t* rows, int64_t n_in, double* scores) {
        const int L = std::max(1, p_.num_leaves);
        idx_.resize(static_cast<size_t>(n_in));
        if (rows) {
            std::memcpy(idx_.data(), rows, sizeof(int32_t) * static_cast<size_t>(n_in));
        } else {
            for (int64_t i = 0; i < n_in; ++i) idx_[i] = static_cast<int32_t>(i);
        }
        tmp_.resize(static_cast<size_t>(n_in));
        begin_.assign(L, 0);
        count_.assign(L, 0);
        depth_.assign(L, 0);
        parent_.assign(L, -1);
        is_left_.assign(L, 0);
        sum_g_.assign(L, 0.0);
        sum_h_.assign(L, 0.0);
        best_.assign(L, SplitInfo());
        hist_.assign(L, -1);
        usable_.resize(static_cast<size_t>(L));
        for (auto& u : usable_) u.clear();
        Tree tree;
        count_[0] = n_in;
        double G = 0, H = 0;
        for (int64_t i = 0; i < n_in; ++i) {
            G += gh_[2 * static_cast<int64_t>(idx_[i])];
            H += gh_[2 * static_cast<int64_t>(idx_[i]) + 1];
        }
        sum_g_[0] = G;
        sum_h_[0] = H;
        int n_leaves = 1;
        if (L > 1 && can_split(0)) {
            hist_[0] = acquire();
            std::vector<int32_t> all(active_.size());
            std::iota(all.begin(), all.end(), 0);
            histograms_and_splits(0, hist_[0], true, -1, -1, all);
        }
        while (n_leaves < L) {
            // The leaf whose split gains most; of equal gains the split on the lower feature, then
            // the lower leaf (as LightGBM's SplitInfo order).
            int leaf = -1;
            for (int l = 0; l < n_leaves; ++l) {
                const SplitInfo& c = best_[l];
                if (c.feature < 0 || !(c.gain > p_.min_gain_to_split)) continue;
                if (leaf < 0 || c.gain > best_[leaf].gain ||
                    (c.gain == best_[leaf].gain && c.feature < best_[leaf].feature))
                    leaf = l;
            }
            if (leaf < 0) break;
            split(tree, leaf, n_leaves);
            ++n_leaves;
        }
        tree.leaf_value.resize(n_leaves);
        tree.leaf_count.resize(n_leaves);
        tree.leaf_hessian.resize(n_leaves);
        for (int l = 0; l < n_leaves; ++l) {
            const double v = n_in > 0 ? leaf_output(sum_g_[l], sum_h_[l], p_) * p_.learning_rate : 0.0;
            tree.leaf_value[l] = v;
            tree.leaf_count[l] = count_[l];
            tree.leaf_hessian[l] = sum_h_[l];
            if (scores) {
                const int32_t* r = idx_.data() + begin_[l];
                for (int64_t i = 0; i < count_[l]; ++i) scores[r[i]] += v;
            }
        }
        return tree;
    }

private:
    bool can_split(int leaf) const {
        if (p_.max_depth > 0 && depth_[leaf] >= p_.max_depth) return false;
        return count_[leaf] >= 2 * std::max<int64_t>(1, p_.min_data_in_leaf) && sum_h_[leaf] >= 2 * p_.min_sum_hessian;
    }

    int acquire() {
        if (!free_.empty()) {
            const int b = free_.back();
            free_.pop_back();
            return b;
        }
        pool_.emplace_back(static_cast<size_t>(total_bins_));
        cpool_.emplace_back(counts_ ? static_cast<size_t>(total_bins_) : 0);
        return static_cast<int>(pool_.size()) - 1;
    }

    // Histogram buffers are kept per calling thread between trees (a fit grows many trees on
    // the same bins); every buffer is filled before it is read.
    static std::vector<std::vector<HBin>>& cached_pool() {
        thread_local std::vector<std::vector<HBin>> pool;
        return pool;
    }
    static std::vector<std::vector<double>>& cached_count_pool() {
        thread_local std::vector<std::vector<double>> pool;
        return pool;
    }
    void release(int b) {
        if (b >= 0) free_.push_back(b);
    }
    HBin* buffer(int b) { return pool_[b].data(); }
    double* counts(int b) { return counts_ ? cpool_[b].data() : nullptr; }

    // Histograms of the features feat[k0, k1) (their bins start at off[k]) of the rows r[0..n).
    // Row counts only when the split search uses exact counts.
    void accumulate(const int32_t* r, int64_t n, const int32_t* feat, const int64_t* off, int64_t k0, int64_t k1,
                    HBin* out, double* cnt) const {
        if (cnt)
            accumulate_impl<true>(r, n, feat, off, k0, k1, out, cnt);
        else
            accumulate_impl<false>(r, n, feat, off, k0, k1, out, cnt);
    }
    template <bool Counts>
    void accumulate_impl(const int32_t* r, int64_t n, const int32_t* feat, const int64_t* off, int64_t k0, int64_t k1,
                         HBin* out, double* cnt) const {
        const int64_t F = d_.n_features;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t row = r[i];
            const uint8_t* b = d_.bins + row * F;
            const double g = gh_[2 * row], h = gh_[2 * row + 1];
            for (int64_t k = k0; k < k1; ++k) {
                const int64_t j = off[k] + b[feat[k]];
                out[j].g += g;
                out[j].h += h;
                if constexpr (Counts) cnt[j] += 1.0;
            }
        }
    }

    // Returns whether the feature has a valid split in the leaf at all.
    bool scan_feature(const HBin* hist, const double* cnt, int64_t f, int leaf, SplitInfo& best) const {
        if (!cnt) return scan_feature_impl<true>(hist, cnt, f, leaf, best);
        return scan_feature_impl<false>(hist, cnt, f, leaf, best);
    }

    // Best split of one feature from its histogram; updates `best` when it gains more. The
    // thresholds are scanned as LightGBM does: from the highest bin down (the missing bin, if
    // the feature has one, on the left), keeping the first of equal gains, so that across a run
    // of bins empty in this leaf the threshold is the highest of them; then, for a feature with
    // a missing bin, from the lowest bin up with the missing bin on the right, which replaces
    // the first only when it gains strictly more. The sums carry LightGBM's kEpsilon.
    template <bool Est>
    bool scan_feature_impl(const HBin* hist, const double* cnt, int64_t f, int leaf, SplitInfo& best) const {
        const double G = sum_g_[leaf], H = sum_h_[leaf] + 2 * kEps;
        const int64_t C = count_[leaf];
        const double parent_gain = leaf_gain(G, H, p_);
        const double min_gain_shift = parent_gain + p_.min_gain_to_split;
        const int64_t min_data = p_.min_data_in_leaf;
        const double min_h = p_.min_sum_hessian;
        const double cnt_factor = static_cast<double>(C) / H;
        const double* hc = Est ? nullptr : cnt + hoff_[f];
        auto count_of = [cnt_factor, hc](const HBin& b, int t) -> int64_t {
            if constexpr (Est) return static_cast<int64_t>(b.h * cnt_factor + 0.5);
            else return static_cast<int64_t>(hc[t]);
        };
        const int nb = d_.n_bins(f);
        const HBin* hb = hist + hoff_[f];
        const bool miss = d_.has_missing[f] != 0;
        const float* up = d_.upper + d_.offsets[f];
        SplitInfo s;
        {
            double rg = 0, rh = kEps;
            int64_t rc = 0;
            for (int t = nb - 1; t >= 1; --t) {
                rg += hb[t].g;
                rh += hb[t].h;
                rc += count_of(hb[t], t);
                if (rc < min_data || rh < min_h) continue;
                const int64_t lc = C - rc;
                if (lc < min_data) break;
                const double lh = H - rh;
                if (lh < min_h) break;
                const double lg = G - rg;
                const double gain = leaf_gain(lg, lh, p_) + leaf_gain(rg, rh, p_);
                if (!(gain > min_gain_shift)) continue;
                if (gain > s.gain) {
                    s.gain = gain;
                    s.bin = t - 1;
                    s.default_left = miss ? true : (0.0f <= up[t - 1]);
                    s.lg = lg;
                    s.lh = lh - kEps;
                    s.lc = static_cast<double>(lc);
                }
            }
        }
        if (miss) {
            SplitInfo fw;
            double lg = 0, lh = kEps;
            int64_t lc = 0;
            for (int t = 0; t < nb; ++t) {
                lg += hb[t].g;
                lh += hb[t].h;
                lc += count_of(hb[t], t);
                if (lc < min_data || lh < min_h) continue;
                const int64_t rc = C - lc;
                if (rc < min_data) break;
                const double rh = H - lh;
                if (rh < min_h) break;
                const double rg = G - lg;
                const double gain = leaf_gain(lg, lh, p_) + leaf_gain(rg, rh, p_);
                if (!(gain > min_gain_shift)) continue;
                if (gain > fw.gain) {
                    fw.gain = gain;
                    fw.bin = t;
                    fw.default_left = false;
                    fw.lg = lg;
                    fw.lh = lh - kEps;
                    fw.lc = static_cast<double>(lc);
                }
            }
            if (fw.bin >= 0 && fw.gain > s.gain) s = fw;
        }
        if (s.bin < 0) return false;
        s.gain -= parent_gain;
        s.feature = static_cast<int32_t>(f);
        if (s.gain > best.gain || (s.gain == best.gain && f < best.feature)) best = s;
        return true;
    }

    // One pass over the features `feats` (positions in active_), in parallel over blocks of
    // them: the histogram of `small` (built from its rows into small_buf), the histogram of
    // `large` (parent_buf minus small_buf, when large >= 0 and it may split) and the best splits
    // of both. A feature stays in a child's list usable_ only when it has a valid split there:
    // as in LightGBM, a feature that cannot split a leaf is not tried again below it.
    void histograms_and_splits(int small, int small_buf, bool split_small, int large, int parent_buf,
                               const std::vector<int32_t>& feats) {
        const int64_t A = static_cast<int64_t>(feats.size());
        const int64_t n = count_[small];
        const int32_t* r = idx_.data() + begin_[small];
        HBin* S = buffer(small_buf);
        HBin* P = large >= 0 ? buffer(parent_buf) : nullptr;
        double* Sc = counts(small_buf);
        double* Pc = large >= 0 ? counts(parent_buf) : nullptr;
        feat_.resize(static_cast<size_t>(A));
        feat_off_.resize(static_cast<size_t>(A));
        ok_small_.assign(static_cast<size_t>(A), 0);
        ok_large_.assign(static_cast<size_t>(A), 0);
        for (int64_t k = 0; k < A; ++k) {
            feat_[k] = active_[feats[k]];
            feat_off_[k] = hoff_[feat_[k]];
        }
        int64_t bins = 0;
        for (int64_t k = 0; k < A; ++k) bins += hoff_[feat_[k] + 1] - hoff_[feat_[k]];
        const int64_t work = n * A + (large >= 0 ? bins : 0);
        // A pass runs on the team only when it is long (about 0.1 ms of bin updates or more):
        // every parallel pass waits for the slowest thread, and on a machine shared with other
        // work a thread may be off its core for a scheduler time slice.
        const int workers = work >= (1 << 17) ? threads_ : 1;
        const int64_t block = std::max<int64_t>(1, (A + 4 * workers - 1) / (4 * workers));
        const int64_t n_blocks = (A + block - 1) / block;
        std::vector<SplitInfo> best_s(static_cast<size_t>(workers)), best_l(static_cast<size_t>(workers));
        team_.run(n_blocks, workers, [&](int64_t blk, int w) {
            const int64_t k0 = blk * block, k1 = std::min(A, k0 + block);
            for (int64_t k = k0; k < k1; ++k) {
                const int64_t f = feat_[k];
                std::fill(S + hoff_[f], S + hoff_[f + 1], HBin{0, 0});
                if (Sc) std::fill(Sc + hoff_[f], Sc + hoff_[f + 1], 0.0);
            }
            accumulate(r, n, feat_.data(), feat_off_.data(), k0, k1, S, Sc);
            for (int64_t k = k0; k < k1; ++k) {
                const int64_t f = feat_[k];
                if (P) {
                    for (int64_t j = hoff_[f]; j < hoff_[f + 1]; ++j) {
                        P[j].g -= S[j].g;
                        P[j].h -= S[j].h;
                    }
                    if (Pc)
                        for (int64_t j = hoff_[f]; j < hoff_[f + 1]; ++j) Pc[j] -= Sc[j];
                }
                if (split_small) ok_small_[k] = scan_feature(S, Sc, f, small, best_s[w]);
                if (P) ok_large_[k] = scan_feature(P, Pc, f, large, best_l[w]);
            }
        });
        auto merge = [](const std::vector<SplitInfo>& v) {
            SplitInfo b;
            for (const SplitInfo& s : v)
                if (s.feature >= 0 && (s.gain > b.gain || (s.gain == b.gain && s.feature < b.feature))) b = s;
            return b;
        };
        auto keep = [&](int leaf, const std::vector<uint8_t>& ok) {
            std::vector<int32_t>& u = usable_[leaf];
            u.clear();
            for (int64_t k = 0; k < A; ++k)
                if (ok[k]) u.push_back(feats[k]);
        };
        if (split_small) {
            best_[small] = merge(best_s);
            keep(small, ok_small_);
        }
        if (P) {
            best_[large] = merge(best_l);
            keep(large, ok_large_);
        }
    }

    void split(Tree& tree, int leaf, int new_leaf) {
        const SplitInfo s = best_[leaf];
        const int64_t F = d_.n_features;
        const int f = s.feature, t = s.bin;
        const int nb = d_.n_bins(f);
        const bool has_miss = d_.has_missing[f] != 0;
        // Stable partition of the leaf's rows: left ones first.
        int32_t* r = idx_.data() + begin_[leaf];
        const int64_t n = count_[leaf];
        int64_t nl = 0, nr = 0;
        int32_t* right_tmp = tmp_.data();
        for (int64_t i = 0; i < n; ++i) {
            const uint8_t b = d_.bins[static_cast<int64_t>(r[i]) * F + f];
            const bool left = (has_miss && b == nb) ? s.default_left : (b <= t);
            if (left)
                r[nl++] = r[i];
            else
                right_tmp[nr++] = r[i];
        }
        std::memcpy(r + nl, right_tmp, sizeof(int32_t) * static_cast<size_t>(nr));
        // The node.
        const int32_t node = static_cast<int32_t>(tree.feature.size());
        tree.feature.push_back(f);
        tree.threshold_bin.push_back(t);
        tree.threshold.push_back(d_.upper[d_.offsets[f] + t]);
        tree.default_left.push_back(s.default_left ? 1 : 0);
        tree.gain.push_back(s.gain);
        tree.left.push_back(~leaf);
        tree.right.push_back(~new_leaf);
        if (parent_[leaf] >= 0) {
            if (is_left_[leaf])
                tree.left[parent_[leaf]] = node;
            else
                tree.right[parent_[leaf]] = node;
        }
        // The children.
        const double G = sum_g_[leaf], H = sum_h_[leaf];
        begin_[new_leaf] = begin_[leaf] + nl;
        count_[new_leaf] = nr;
        count_[leaf] = nl;
        depth_[leaf] += 1;
        depth_[new_leaf] = depth_[leaf];
        parent_[leaf] = node;
        is_left_[leaf] = 1;
        parent_[new_leaf] = node;
        is_left_[new_leaf] = 0;
        sum_g_[leaf] = s.lg;
        sum_h_[leaf] = s.lh;
        sum_g_[new_leaf] = G - s.lg;
        sum_h_[new_leaf] = H - s.lh;
        best_[leaf] = SplitInfo();
        best_[new_leaf] = SplitInfo();
        const int parent_buf = hist_[leaf];
        hist_[leaf] = hist_[new_leaf] = -1;
        if (new_leaf + 1 >= std::max(1, p_.num_leaves)) {  // the last split: no more histograms needed
            release(parent_buf);
            return;
        }
        const bool left_small = nl < nr;  // of equal sizes, the right child is built (as LightGBM)
        const int small = left_small ? leaf : new_leaf, large = left_small ? new_leaf : leaf;
        const bool split_small = can_split(small), split_large = can_split(large);
        if (!split_small && !split_large) {
            release(parent_buf);
            return;
        }
        const std::vector<int32_t> feats = std::move(usable_[leaf]);
        usable_[leaf].clear();
        const int sb = acquire();
        histograms_and_splits(small, sb, split_small, split_large ? large : -1, parent_buf, feats);
        if (split_large) {
            hist_[large] = parent_buf;
        } else {
            release(parent_buf);
        }
        if (split_small) {
            hist_[small] = sb;
        } else {
            release(sb);
        }
    }

    const Binned& d_;
    const float* gh_;
    const uint8_t* mask_;
    const TreeParams& p_;
    int threads_;
    Team team_;
    std::vector<int64_t> hoff_;
    std::vector<int32_t> active_;
    std::vector<std::vector<int32_t>> usable_;  // per leaf: the positions in active_ it may split on
    std::vector<int32_t> feat_;
    std::vector<int64_t> feat_off_;
    std::vector<uint8_t> ok_small_, ok_large_;
    int64_t total_bins_ = 0;
    std::vector<int32_t> idx_, tmp_;
    std::vector<int64_t> begin_, count_;
    std::vector<int> depth_, parent_;
    std::vector<uint8_t> is_left_;
    std::vector<double> sum_g_, sum_h_;
    std::vector<SplitInfo> best_;
    std::vector<int> hist_;
    bool counts_;  // histograms hold exact row counts (min_data_in_leaf on exact counts)
    std::vector<std::vector<HBin>>& pool_;
    std::vector<std::vector<double>>& cpool_;
    std::vector<int> free_;
};

void check_params(const TreeParams& p) {
    if (p.num_leaves < 1) throw std::invalid_argument("num_leaves must be >= 1");
    if (p.min_data_in_leaf < 0) throw std::invalid_argument("min_data_in_leaf must be >= 0");
    if (!(p.min_sum_hessian >= 0)) throw std::invalid_argument("min_sum_hessian must be >= 0");
    if (!(p.lambda_l1 >= 0) || !(p.lambda_l2 >= 0)) throw std::invalid_argument("lambda_l1 and lambda_l2 must be >= 0");
}

void check_binned(const Binned& d) {
    if (d.n_rows < 0 || d.n_features < 0) throw std::invalid_argument("negative data shape");
    if (d.offsets[0] != 0) throw std::invalid_argument("bin offsets must start at 0");
    for (int64_t f = 0; f < d.n_features; ++f) {
        const int nb = d.n_bins(f);
        if (nb < 1 || nb + (d.has_missing[f] ? 1 : 0) > 256)
            throw std::invalid_argument("feature " + std::to_string(f) + " has " + std::to_string(nb) +
                                        " bins; a feature needs 1 to 255 value bins");
    }
}

template <class Next>
inline int32_t leaf_of(const int32_t* left, const int32_t* right, int64_t n_nodes, Next next) {
    if (n_nodes == 0) return 0;
    int32_t node = 0;
    while (node >= 0) node = next(node) ? left[node] : right[node];
    return ~node;
}

}  // namespace

BinEdges find_bins(const float* X, int64_t n_rows, int64_t n_features, int max_bin, int min_data_in_bin,
                   int64_t sample_rows, int64_t min_split_rows, int n_threads) {
    if (max_bin < 2 || max_bin > 255) throw std::invalid_argument("max_bin must be in [2, 255], got " + std::to_string(max_bin));
    if (n_rows < 0 || n_features < 0) throw std::invalid_argument("negative data shape");
    if (min_data_in_bin < 0 || min_split_rows < 0) throw std::invalid_argument("min_data_in_bin and min_split_rows must be >= 0");
    const int64_t n_sample = sample_rows > 0 ? std::min(n_rows, sample_rows) : n_rows;
    // the split-rows filter applies to the sample, scaled
    const int64_t split_rows = n_rows > 0 ? static_cast<int64_t>(static_cast<double>(min_split_rows) * n_sample / n_rows) : 0;
    std::vector<std::vector<float>> edges(static_cast<size_t>(n_features));
    std::vector<uint8_t> missing(static_cast<size_t>(n_features), 0);
    parallel_for(0, n_features, n_threads, [&](int64_t f, int) {
        std::vector<double> v;
        int64_t n_missing = 0, n_zero = 0;
        for (int64_t i = 0; i < n_sample; ++i) {
            const int64_t row = n_sample == n_rows ? i : (i * n_rows) / n_sample;
            const float x = X[row * n_features + f];
            if (std::isnan(x))
                ++n_missing;
            else if (std::fabs(static_cast<double>(x)) > kZeroThreshold)
                v.push_back(static_cast<double>(x));
            else
                ++n_zero;
        }
        bool any_missing = n_missing > 0;
        if (!any_missing && n_sample < n_rows) {
            for (int64_t r = 0; r < n_rows && !any_missing; ++r) any_missing = std::isnan(X[r * n_features + f]);
        }
        bool trivial = false;
        edges[f] = feature_edges(v, n_zero, any_missing ? std::max<int64_t>(n_missing, 1) : 0, max_bin, min_data_in_bin,
                                 split_rows, trivial);
        missing[f] = any_missing && !trivial ? 1 : 0;
    });
    BinEdges out;
    out.offsets.resize(static_cast<size_t>(n_features + 1), 0);
    for (int64_t f = 0; f < n_features; ++f) {
        out.offsets[f + 1] = out.offsets[f] + static_cast<int64_t>(edges[f].size());
        out.upper.insert(out.upper.end(), edges[f].begin(), edges[f].end());
    }
    out.has_missing = std::move(missing);
    return out;
}

void apply_bins(const float* X, int64_t n_rows, int64_t n_features, const float* upper, const int64_t* offsets,
                const uint8_t* has_missing, uint8_t* out, int n_threads) {
    std::vector<uint8_t> zero_bin(static_cast<size_t>(n_features));
    for (int64_t f = 0; f < n_features; ++f) {
        const int64_t nb = offsets[f + 1] - offsets[f];
        if (nb < 1 || nb + (has_missing[f] ? 1 : 0) > 256)
            throw std::invalid_argument("feature " + std::to_string(f) + " has an invalid number of bins");
        const float* up = upper + offsets[f];
        zero_bin[f] = static_cast<uint8_t>(std::lower_bound(up, up + nb, 0.0f) - up);
    }
    parallel_for(0, n_rows, n_threads, [&](int64_t r, int) {
        const float* x = X + r * n_features;
        uint8_t* o = out + r * n_features;
        for (int64_t f = 0; f < n_features; ++f) {
            const float v = x[f];
            const int64_t nb = offsets[f + 1] - offsets[f];
            if (std::isnan(v)) {
                o[f] = has_missing[f] ? static_cast<uint8_t>(nb) : zero_bin[f];
            } else {
                const float* up = upper + offsets[f];
                int64_t b = std::lower_bound(up, up + nb, v) - up;
                if (b >= nb) b = nb - 1;
                o[f] = static_cast<uint8_t>(b);
            }
        }
    }, 256);
}

Tree grow_tree(const Binned& data, const float* grad_hess, const int32_t* rows, int64_t n_in,
               const uint8_t* feature_mask, const TreeParams& params, double* scores, int n_threads) {
    check_params(params);
    check_binned(data);
    if (rows) {
        for (int64_t i = 0; i < n_in; ++i)
            if (rows[i] < 0 || rows[i] >= data.n_rows) throw std::out_of_range("row index outside the data");
    } else {
        n_in = data.n_rows;
    }
    Grower g(data, grad_hess, feature_mask, params, n_threads);
    return g.grow(rows, n_in, scores);
}

void add_tree_binned(const Tree& tree, const Binned& data, const int32_t* rows, int64_t n_sel, double* scores,
                     int n_threads) {
    const int64_t n_nodes = static_cast<int64_t>(tree.feature.size());
    const int64_t F = data.n_features;
    const int64_t n = rows ? n_sel : data.n_rows;
    parallel_for(0, n, n_threads, [&](int64_t i, int) {
        const int64_t r = rows ? rows[i] : i;
        const uint8_t* b = data.bins + r * F;
        const int32_t leaf = leaf_of(tree.left.data(), tree.right.data(), n_nodes, [&](int32_t node) {
            const int f = tree.feature[node];
            const uint8_t v = b[f];
            if (data.has_missing[f] && v == data.n_bins(f)) return tree.default_left[node] != 0;
            return static_cast<int32_t>(v) <= tree.threshold_bin[node];
        });
        scores[r] += tree.leaf_value[leaf];
    }, 1024);
}

void check_forest(const Forest& fo, int64_t n_features) {
    if (fo.n_trees < 0) throw std::invalid_argument("negative number of trees");
    if (fo.node_offsets[0] != 0 || fo.leaf_offsets[0] != 0) throw std::invalid_argument("tree offsets must start at 0");
    for (int64_t t = 0; t < fo.n_trees; ++t) {
        const int64_t n0 = fo.node_offsets[t], n1 = fo.node_offsets[t + 1];
        const int64_t l0 = fo.leaf_offsets[t], l1 = fo.leaf_offsets[t + 1];
        const int64_t nn = n1 - n0, nl = l1 - l0;
        if (nn < 0 || nl != nn + 1) throw std::invalid_argument("tree " + std::to_string(t) + ": a tree with n splits must have n + 1 leaves");
        for (int64_t i = n0; i < n1; ++i) {
            if (fo.feature[i] < 0 || fo.feature[i] >= n_features)
                throw std::out_of_range("tree " + std::to_string(t) + " splits on feature " + std::to_string(fo.feature[i]) +
                                        " but the data has " + std::to_string(n_features) + " features");
            for (int32_t c : {fo.left[i], fo.right[i]}) {
                if (c >= 0 ? (c <= i - n0 || c >= nn) : (~c >= nl))
                    throw std::invalid_argument("tree " + std::to_string(t) + " has a child index outside the tree");
            }
        }
    }
}

void predict(const Forest& fo, int64_t n_use, const float* X, int64_t n_rows, int64_t n_features, double init,
             double* out, int n_threads) {
    n_use = std::min(n_use, fo.n_trees);
    constexpr int64_t kBlock = 64;
    const int64_t n_blocks = (n_rows + kBlock - 1) / kBlock;
    parallel_for(0, n_blocks, n_threads, [&](int64_t blk, int) {
        const int64_t lo = blk * kBlock, hi = std::min(n_rows, lo + kBlock);
        for (int64_t r = lo; r < hi; ++r) out[r] = init;
        for (int64_t t = 0; t < n_use; ++t) {
            const int64_t n0 = fo.node_offsets[t], nn = fo.node_offsets[t + 1] - n0;
            const int32_t* L = fo.left + n0;
            const int32_t* R = fo.right + n0;
            const int32_t* feat = fo.feature + n0;
            const float* thr = fo.threshold + n0;
            const uint8_t* dl = fo.default_left + n0;
            const double* leaves = fo.leaf_value + fo.leaf_offsets[t];
            for (int64_t r = lo; r < hi; ++r) {
                const float* x = X + r * n_features;
                const int32_t leaf = leaf_of(L, R, nn, [&](int32_t node) {
                    const float v = x[feat[node]];
                    if (std::isnan(v)) return dl[node] != 0;
                    return v <= thr[node];
                });
                out[r] += leaves[leaf];
            }
        }
    });
}

void predict_leaf(const Forest& fo, int64_t n_use, const float* X, int64_t n_rows, int64_t n_features,
                  int32_t* out, int n_threads) {
    n_use = std::min(n_use, fo.n_trees);
    parallel_for(0, n_rows, n_threads, [&](int64_t r, int) {
        const float* x = X + r * n_features;
        for (int64_t t = 0; t < n_use; ++t) {
            const int64_t n0 = fo.node_offsets[t], nn = fo.node_offsets[t + 1] - n0;
            out[r * n_use + t] = leaf_of(fo.left + n0, fo.right + n0, nn, [&](int32_t node) {
                const float v = x[fo.feature[n0 + node]];
                if (std::isnan(v)) return fo.default_left[n0 + node] != 0;
                return v <= fo.threshold[n0 + node];
            });
        }
    }, 64);
}

}  // namespace recforge::gbdt
