// Linear rankers by SGD. See recforge/ranking/linear.hpp.
#include "recforge/ranking/linear.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace recforge::linear_rank {
namespace {

inline double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }
inline double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

double query_loss(Loss loss, const double* s, const float* y, int64_t n, double* grad) {
    if (grad) std::fill(grad, grad + n, 0.0);
    double total = 0.0;
    if (n == 0) return 0.0;
    switch (loss) {
        case Loss::Logistic: {
            for (int64_t i = 0; i < n; ++i) {
                const double t = y[i] > 0 ? 1.0 : 0.0;
                total += softplus(s[i]) - t * s[i];
                if (grad) grad[i] = (sigmoid(s[i]) - t) / static_cast<double>(n);
            }
            return total / static_cast<double>(n);
        }
        case Loss::RankNet:
        case Loss::RankSvm: {
            int64_t pairs = 0;
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < n; ++j) {
                    if (!(y[i] > y[j])) continue;
                    ++pairs;
                    const double d = s[i] - s[j];
                    if (loss == Loss::RankNet) {
                        total += softplus(-d);
                        if (grad) {
                            const double g = -sigmoid(-d);
                            grad[i] += g;
                            grad[j] -= g;
                        }
                    } else if (d < 1.0) {
                        total += 1.0 - d;
                        if (grad) {
                            grad[i] -= 1.0;
                            grad[j] += 1.0;
                        }
                    }
                }
            if (pairs == 0) return 0.0;
            if (grad)
                for (int64_t i = 0; i < n; ++i) grad[i] /= static_cast<double>(pairs);
            return total / static_cast<double>(pairs);
        }
        case Loss::ListNet: {
            const double ms = *std::max_element(s, s + n);
            double my = -INFINITY;
            for (int64_t i = 0; i < n; ++i) my = std::max(my, static_cast<double>(y[i]));
            double zs = 0.0, zy = 0.0;
            for (int64_t i = 0; i < n; ++i) {
                zs += std::exp(s[i] - ms);
                zy += std::exp(static_cast<double>(y[i]) - my);
            }
            const double lzs = std::log(zs);
            for (int64_t i = 0; i < n; ++i) {
                const double t = std::exp(static_cast<double>(y[i]) - my) / zy;
                total -= t * (s[i] - ms - lzs);
                if (grad) grad[i] = std::exp(s[i] - ms) / zs - t;
            }
            return total;
        }
    }
    throw std::invalid_argument("unknown loss");
}

double epoch(const float* X, int64_t n_rows, int64_t n_features, const float* y, const int64_t* go, int64_t n_groups,
             double* w, const Params& p, int64_t epoch_index) {
    if (n_groups <= 0) throw std::invalid_argument("there are no queries to train on");
    if (go[0] != 0 || go[n_groups] != n_rows) throw std::invalid_argument("group offsets must run from 0 to the number of rows");
    for (int64_t q = 0; q < n_groups; ++q)
        if (go[q + 1] < go[q]) throw std::invalid_argument("group offsets must be non-decreasing");
    if (!(p.learning_rate > 0)) throw std::invalid_argument("learning_rate must be > 0");
    std::vector<int64_t> order(static_cast<size_t>(n_groups));
    std::iota(order.begin(), order.end(), 0);
    std::seed_seq seq{static_cast<uint32_t>(p.seed), static_cast<uint32_t>(p.seed >> 32),
                      static_cast<uint32_t>(epoch_index), 0x52414e4bu};
    std::mt19937_64 rng(seq);
    for (int64_t i = n_groups - 1; i > 0; --i) {
        std::uniform_int_distribution<int64_t> pick(0, i);
        std::swap(order[i], order[pick(rng)]);
    }
    const bool use_bias = p.loss == Loss::Logistic;
    std::vector<double> s, g;
    double total = 0.0;
    for (int64_t q : order) {
        const int64_t lo = go[q], n = go[q + 1] - lo;
        if (n == 0) continue;
        s.assign(static_cast<size_t>(n), 0.0);
        g.assign(static_cast<size_t>(n), 0.0);
        for (int64_t i = 0; i < n; ++i) {
            const float* x = X + (lo + i) * n_features;
            double v = use_bias ? w[n_features] : 0.0;
            for (int64_t f = 0; f < n_features; ++f) v += w[f] * x[f];
            s[i] = v;
        }
        total += query_loss(p.loss, s.data(), y + lo, n, g.data());
        const double lr = p.learning_rate;
        for (int64_t f = 0; f < n_features; ++f) w[f] -= lr * p.l2 * w[f];
        double gb = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            if (g[i] == 0.0) continue;
            const float* x = X + (lo + i) * n_features;
            const double step = lr * g[i];
            for (int64_t f = 0; f < n_features; ++f) w[f] -= step * x[f];
            gb += g[i];
        }
        if (use_bias) w[n_features] -= lr * gb;
    }
    return total / static_cast<double>(n_groups);
}

}  // namespace recforge::linear_rank
