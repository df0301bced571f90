// Off-policy estimators and their bootstrap (see ope.hpp).
#include "recforge/ope.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/random.hpp"

namespace recforge::ope {

namespace {


bool needs_model(Estimator e) { return e == Estimator::DM || e == Estimator::DR || e == Estimator::SwitchDR; }
bool needs_weights(Estimator e) { return e != Estimator::DM; }

// Sums that every estimator is a ratio of, over one pass.
struct Sums {
    double num = 0.0;  // sum of per-round values
    double den = 0.0;  // sum of weights (SNIPS) or count
};

inline void add_round(Estimator e, const Logged& d, double param, int64_t i, Sums& s) {
    switch (e) {
        case Estimator::IPS: {
            const double w = std::min(d.eval_prob[i] / d.pscore[i], param);
            s.num += w * d.reward[i];
            s.den += 1.0;
            break;
        }
        case Estimator::SNIPS: {
            const double w = std::min(d.eval_prob[i] / d.pscore[i], param);
            s.num += w * d.reward[i];
            s.den += w;
            break;
        }
        case Estimator::DM:
            s.num += d.q_policy[i];
            s.den += 1.0;
            break;
        case Estimator::DR: {
            const double w = std::min(d.eval_prob[i] / d.pscore[i], param);
            s.num += d.q_policy[i] + w * (d.reward[i] - d.q_logged[i]);
            s.den += 1.0;
            break;
        }
        case Estimator::SwitchDR: {
            const double w = d.eval_prob[i] / d.pscore[i];
            s.num += d.q_policy[i] + (w <= param ? w * (d.reward[i] - d.q_logged[i]) : 0.0);
            s.den += 1.0;
            break;
        }
    }
}

double finish(Estimator e, const Sums& s) {
    if (s.den == 0.0) {
        if (e == Estimator::SNIPS) return 0.0;  // every weight is zero: the policy never takes a logged action
        throw std::invalid_argument("no logged rounds to estimate from");
    }
    return s.num / s.den;
}

}  // namespace

void check(Estimator e, const Logged& d) {
    if (static_cast<int>(e) < 0 || static_cast<int>(e) > 4)
        throw std::invalid_argument("unknown estimator code " + std::to_string(static_cast<int>(e)));
    if (d.n <= 0) throw std::invalid_argument("no logged rounds: the log is empty");
    if (!d.reward) throw std::invalid_argument("rewards are missing");
    for (int64_t i = 0; i < d.n; ++i)
        if (!std::isfinite(d.reward[i]))
            throw std::invalid_argument("reward of round " + std::to_string(i) + " is NaN or infinite");
    if (needs_weights(e)) {
        if (!d.pscore || !d.eval_prob) throw std::invalid_argument("propensities and policy probabilities are required");
        for (int64_t i = 0; i < d.n; ++i) {
            if (!(d.pscore[i] > 0.0 && d.pscore[i] <= 1.0))
                throw std::invalid_argument("propensity of round " + std::to_string(i) + " is " +
                                            std::to_string(d.pscore[i]) + ", outside (0, 1]");
            if (!(d.eval_prob[i] >= 0.0 && d.eval_prob[i] <= 1.0))
                throw std::invalid_argument("evaluation-policy probability of round " + std::to_string(i) + " is " +
                                            std::to_string(d.eval_prob[i]) + ", outside [0, 1]");
        }
    }
    if (needs_model(e)) {
        if (!d.q_policy || (e != Estimator::DM && !d.q_logged))
            throw std::invalid_argument("estimated rewards of the reward model are required");
        for (int64_t i = 0; i < d.n; ++i)
            if (!std::isfinite(d.q_policy[i]) || (d.q_logged && !std::isfinite(d.q_logged[i])))
                throw std::invalid_argument("estimated reward of round " + std::to_string(i) + " is NaN or infinite");
    }
}

double estimate(Estimator e, const Logged& d, double param, const int64_t* idx, int64_t n_idx) {
    Sums s;
    if (idx) {
        for (int64_t j = 0; j < n_idx; ++j) add_round(e, d, param, idx[j], s);
    } else {
        for (int64_t i = 0; i < d.n; ++i) add_round(e, d, param, i, s);
    }
    return finish(e, s);
}

void bootstrap(Estimator e, const Logged& d, double param, int64_t n_boot, uint64_t seed, double* out,
               int n_threads) {
    check(e, d);
    if (n_boot <= 0) throw std::invalid_argument("n_bootstrap must be a positive integer");
    parallel_for(
        0, n_boot, n_threads,
        [&](int64_t b, int) {
            uint64_t state = mix64(mix64(seed) ^ (static_cast<uint64_t>(b) * 0xD1B54A32D192ED03ull + 0x7A3Bu));
            Sums s;
            const uint64_t n = static_cast<uint64_t>(d.n);
            for (int64_t j = 0; j < d.n; ++j) {
                uint64_t z = (state += 0x9E3779B97F4A7C15ull);
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                z ^= z >> 31;
                const int64_t i = static_cast<int64_t>((static_cast<__uint128_t>(z) * n) >> 64);
                add_round(e, d, param, i, s);
            }
            out[b] = finish(e, s);
        },
        8);
}

}  // namespace recforge::ope
