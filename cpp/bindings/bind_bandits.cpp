// Bandit policies and off-policy estimators.
#include <string>

#include "common.hpp"
#include "recforge/bandits.hpp"
#include "recforge/ope.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

void require_len(const CArray<double>& a, int64_t n, const char* name) {
    require_ndim(a, 1, name);
    if (a.shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(n) + " entries, got " +
                                    std::to_string(a.shape(0)));
}

struct Mask {
    const uint8_t* data = nullptr;
    int64_t rows = 0;
};

Mask mask_of(const std::optional<CArray<uint8_t>>& mask, int64_t n_arms) {
    Mask m;
    if (!mask) return m;
    require_ndim(*mask, 2, "candidate mask");
    if (mask->shape(1) != n_arms)
        throw std::invalid_argument("candidate mask must have one column per arm (" + std::to_string(n_arms) +
                                    "), got " + std::to_string(mask->shape(1)));
    m.data = mask->data();
    m.rows = mask->shape(0);
    return m;
}

bandits::MabParams mab_params(int policy, double epsilon, double alpha, double prior_a, double prior_b,
                              double prior_mean, double prior_precision, double noise_sd, double temperature,
                              double initial_mean, int64_t n_draws, uint64_t seed) {
    bandits::MabParams p;
    p.policy = static_cast<bandits::Policy>(policy);
    p.epsilon = epsilon;
    p.alpha = alpha;
    p.prior_a = prior_a;
    p.prior_b = prior_b;
    p.prior_mean = prior_mean;
    p.prior_precision = prior_precision;
    p.noise_sd = noise_sd;
    p.temperature = temperature;
    p.initial_mean = initial_mean;
    p.n_draws = n_draws;
    p.seed = seed;
    return p;
}

#define MAB_PARAM_ARGS                                                                                     \
    py::arg("policy"), py::arg("epsilon") = 0.1, py::arg("alpha") = 1.0, py::arg("prior_a") = 1.0,          \
        py::arg("prior_b") = 1.0, py::arg("prior_mean") = 0.0, py::arg("prior_precision") = 1.0,            \
        py::arg("noise_sd") = 1.0, py::arg("temperature") = 1.0, py::arg("initial_mean") = 0.0,             \
        py::arg("n_draws") = 1000, py::arg("seed") = 0

// Linear state from arrays: A_inv (n_arms, d, d), b (n_arms, d), and for hybrid
// arm_features (n_arms, m), A0 (k, k), b0 (k), B (n_arms, d, k).
bandits::LinearState linear_state(CArray<double>& A_inv, CArray<double>& b,
                                  const std::optional<CArray<double>>& arm_features,
                                  std::optional<CArray<double>>& A0, std::optional<CArray<double>>& b0,
                                  std::optional<CArray<double>>& B) {
    require_ndim(A_inv, 3, "A_inv");
    require_ndim(b, 2, "b");
    bandits::LinearState s;
    s.n_arms = A_inv.shape(0);
    s.d = A_inv.shape(1);
    if (A_inv.shape(2) != s.d || b.shape(0) != s.n_arms || b.shape(1) != s.d)
        throw std::invalid_argument("linear state arrays A_inv (n_arms, d, d) and b (n_arms, d) disagree");
    s.A_inv = A_inv.mutable_data();
    s.b = b.mutable_data();
    if (arm_features || A0 || b0 || B) {
        if (!(arm_features && A0 && b0 && B))
            throw std::invalid_argument("hybrid state needs arm_features, A0, b0 and B together");
        require_ndim(*arm_features, 2, "arm_features");
        require_ndim(*A0, 2, "A0");
        require_ndim(*b0, 1, "b0");
        require_ndim(*B, 3, "B");
        s.m = arm_features->shape(1);
        const int64_t k = s.d * s.m;
        if (arm_features->shape(0) != s.n_arms || A0->shape(0) != k || A0->shape(1) != k || b0->shape(0) != k ||
            B->shape(0) != s.n_arms || B->shape(1) != s.d || B->shape(2) != k)
            throw std::invalid_argument("hybrid state arrays have inconsistent shapes");
        s.arm_features = arm_features->data();
        s.A0 = A0->mutable_data();
        s.b0 = b0->mutable_data();
        s.B = B->mutable_data();
    }
    return s;
}

const double* contexts_of(const CArray<double>& x, const bandits::LinearState& s, const char* name = "contexts") {
    require_ndim(x, 2, name);
    if (x.shape(1) != s.d)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(s.d) +
                                    " features per row, got " + std::to_string(x.shape(1)));
    return x.data();
}

#define LINEAR_STATE_ARGS                                                                           \
    py::arg("A_inv").noconvert(), py::arg("b").noconvert(), py::arg("arm_features").noconvert() = py::none(), \
        py::arg("A0").noconvert() = py::none(), py::arg("b0").noconvert() = py::none(),                        \
        py::arg("B").noconvert() = py::none()

using OptD = std::optional<CArray<double>>;

ope::Logged logged(const CArray<double>& reward, const OptD& pscore, const OptD& eval_prob, const OptD& q_logged,
                   const OptD& q_policy) {
    require_ndim(reward, 1, "reward");
    ope::Logged d;
    d.n = reward.shape(0);
    d.reward = reward.data();
    if (pscore) {
        require_len(*pscore, d.n, "pscore");
        d.pscore = pscore->data();
    }
    if (eval_prob) {
        require_len(*eval_prob, d.n, "eval_prob");
        d.eval_prob = eval_prob->data();
    }
    if (q_logged) {
        require_len(*q_logged, d.n, "q_logged");
        d.q_logged = q_logged->data();
    }
    if (q_policy) {
        require_len(*q_policy, d.n, "q_policy");
        d.q_policy = q_policy->data();
    }
    return d;
}

#define OPE_ARGS                                                                                          \
    py::arg("estimator"), py::arg("reward").noconvert(), py::arg("pscore").noconvert() = py::none(),        \
        py::arg("eval_prob").noconvert() = py::none(), py::arg("q_logged").noconvert() = py::none(),        \
        py::arg("q_policy").noconvert() = py::none(), py::arg("param") = std::numeric_limits<double>::infinity()

}  // namespace

void bind_bandits(py::module_& m) {
    m.def(
        "mab_probabilities",
        [](const CArray<double>& counts, const CArray<double>& sums, const std::optional<CArray<uint8_t>>& mask,
           int64_t n_rows, int policy, double epsilon, double alpha, double prior_a, double prior_b, double prior_mean,
           double prior_precision, double noise_sd, double temperature, double initial_mean, int64_t n_draws,
           uint64_t seed, int n_threads) {
            require_ndim(counts, 1, "counts");
            const int64_t n_arms = counts.shape(0);
            require_len(sums, n_arms, "sums");
            const Mask mk = mask_of(mask, n_arms);
            const auto p = mab_params(policy, epsilon, alpha, prior_a, prior_b, prior_mean, prior_precision,
                                      noise_sd, temperature, initial_mean, n_draws, seed);
            CArray<double> out({n_rows, n_arms});
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                bandits::mab_probabilities(counts.data(), sums.data(), n_arms, mk.data, mk.rows, n_rows, p, o,
                                           n_threads);
            }
            return out;
        },
        py::arg("counts").noconvert(), py::arg("sums").noconvert(), py::arg("mask").noconvert() = py::none(),
        py::arg("n_rows") = 1, MAB_PARAM_ARGS, py::arg("n_threads") = 0,
        "Probability of every arm (n_rows x n_arms) under a context-free policy.");

    m.def(
        "mab_select",
        [](const CArray<double>& counts, const CArray<double>& sums, const std::optional<CArray<uint8_t>>& mask,
           int64_t n_rows, int64_t k, bool with_propensities, int policy, double epsilon, double alpha, double prior_a,
           double prior_b, double prior_mean, double prior_precision, double noise_sd, double temperature,
           double initial_mean, int64_t n_draws, uint64_t seed, int n_threads) {
            require_ndim(counts, 1, "counts");
            const int64_t n_arms = counts.shape(0);
            require_len(sums, n_arms, "sums");
            const Mask mk = mask_of(mask, n_arms);
            if (k <= 0) throw std::invalid_argument("k must be a positive integer");
            const auto p = mab_params(policy, epsilon, alpha, prior_a, prior_b, prior_mean, prior_precision,
                                      noise_sd, temperature, initial_mean, n_draws, seed);
            CArray<int32_t> arms({n_rows, k});
            CArray<double> prop({with_propensities ? n_rows : int64_t(0), k});
            int32_t* a = arms.mutable_data();
            double* pr = with_propensities ? prop.mutable_data() : nullptr;
            {
                py::gil_scoped_release release;
                bandits::mab_select(counts.data(), sums.data(), n_arms, mk.data, mk.rows, n_rows, k, p, a, pr,
                                    n_threads);
            }
            return py::make_tuple(arms, prop);
        },
        py::arg("counts").noconvert(), py::arg("sums").noconvert(), py::arg("mask").noconvert() = py::none(),
        py::arg("n_rows") = 1, py::arg("k") = 1, py::arg("with_propensities") = true, MAB_PARAM_ARGS,
        py::arg("n_threads") = 0, "Choose k distinct arms per row; returns (arms, propensities).");

    m.def(
        "beta_draws",
        [](const CArray<double>& shape_a, const CArray<double>& shape_b, int64_t n_rows, uint64_t seed,
           int n_threads) {
            require_ndim(shape_a, 1, "shape_a");
            const int64_t n = shape_a.shape(0);
            require_len(shape_b, n, "shape_b");
            if (n_rows < 0) throw std::invalid_argument("n_rows must be >= 0");
            CArray<double> out({n_rows, n});
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                bandits::beta_draws(shape_a.data(), shape_b.data(), n, n_rows, seed, o, n_threads);
            }
            return out;
        },
        py::arg("shape_a").noconvert(), py::arg("shape_b").noconvert(), py::arg("n_rows") = 1, py::arg("seed") = 0,
        py::arg("n_threads") = 0, "Beta draws (n_rows x pairs) with the sampler of Thompson sampling.");

    m.def(
        "mab_update",
        [](CArray<double>& counts, CArray<double>& sums, const CArray<int32_t>& arms, const CArray<double>& rewards) {
            require_ndim(counts, 1, "counts");
            const int64_t n_arms = counts.shape(0);
            require_len(sums, n_arms, "sums");
            require_ndim(arms, 1, "arms");
            require_len(rewards, arms.shape(0), "rewards");
            double* c = counts.mutable_data();
            double* s = sums.mutable_data();
            py::gil_scoped_release release;
            bandits::mab_update(c, s, n_arms, arms.data(), rewards.data(), arms.shape(0));
        },
        py::arg("counts").noconvert(), py::arg("sums").noconvert(), py::arg("arms").noconvert(),
        py::arg("rewards").noconvert(), "Add events (arm, reward) to the counts and reward sums in place.");

    m.def(
        "linear_scores",
        [](CArray<double>& A_inv, CArray<double>& b, const OptD& arm_features, OptD& A0, OptD& b0, OptD& B,
           const CArray<double>& contexts, const std::optional<CArray<uint8_t>>& mask, int n_threads) {
            const auto s = linear_state(A_inv, b, arm_features, A0, b0, B);
            const double* x = contexts_of(contexts, s);
            const int64_t n = contexts.shape(0);
            const Mask mk = mask_of(mask, s.n_arms);
            CArray<double> mean({n, s.n_arms}), width({n, s.n_arms});
            double* mp = mean.mutable_data();
            double* wp = width.mutable_data();
            {
                py::gil_scoped_release release;
                bandits::linear_scores(s, x, n, mk.data, mk.rows, mp, wp, n_threads);
            }
            return py::make_tuple(mean, width);
        },
        LINEAR_STATE_ARGS, py::arg("contexts").noconvert(), py::arg("mask").noconvert() = py::none(),
        py::arg("n_threads") = 0, "Predicted mean and confidence width of every arm for every context.");

    m.def(
        "linear_probabilities",
        [](CArray<double>& A_inv, CArray<double>& b, const OptD& arm_features, OptD& A0, OptD& b0, OptD& B,
           const CArray<double>& contexts, const std::optional<CArray<uint8_t>>& mask, int policy, double alpha,
           int64_t n_draws, uint64_t seed, int n_threads) {
            const auto s = linear_state(A_inv, b, arm_features, A0, b0, B);
            const double* x = contexts_of(contexts, s);
            const int64_t n = contexts.shape(0);
            const Mask mk = mask_of(mask, s.n_arms);
            bandits::LinearParams p;
            p.policy = static_cast<bandits::LinearPolicy>(policy);
            p.alpha = alpha;
            p.n_draws = n_draws;
            p.seed = seed;
            CArray<double> out({n, s.n_arms});
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                bandits::linear_probabilities(s, x, n, mk.data, mk.rows, p, o, n_threads);
            }
            return out;
        },
        LINEAR_STATE_ARGS, py::arg("contexts").noconvert(), py::arg("mask").noconvert() = py::none(),
        py::arg("policy") = 0, py::arg("alpha") = 1.0, py::arg("n_draws") = 1000, py::arg("seed") = 0,
        py::arg("n_threads") = 0, "Probability of every arm for every context under LinUCB / LinTS.");

    m.def(
        "linear_select",
        [](CArray<double>& A_inv, CArray<double>& b, const OptD& arm_features, OptD& A0, OptD& b0, OptD& B,
           const CArray<double>& contexts, const std::optional<CArray<uint8_t>>& mask, int64_t k,
           bool with_propensities, int policy, double alpha, int64_t n_draws, uint64_t seed, int n_threads) {
            const auto s = linear_state(A_inv, b, arm_features, A0, b0, B);
            const double* x = contexts_of(contexts, s);
            const int64_t n = contexts.shape(0);
            const Mask mk = mask_of(mask, s.n_arms);
            if (k <= 0) throw std::invalid_argument("k must be a positive integer");
            bandits::LinearParams p;
            p.policy = static_cast<bandits::LinearPolicy>(policy);
            p.alpha = alpha;
            p.n_draws = n_draws;
            p.seed = seed;
            CArray<int32_t> arms({n, k});
            CArray<double> prop({with_propensities ? n : int64_t(0), k});
            int32_t* a = arms.mutable_data();
            double* pr = with_propensities ? prop.mutable_data() : nullptr;
            {
                py::gil_scoped_release release;
                bandits::linear_select(s, x, n, mk.data, mk.rows, k, p, a, pr, n_threads);
            }
            return py::make_tuple(arms, prop);
        },
        LINEAR_STATE_ARGS, py::arg("contexts").noconvert(), py::arg("mask").noconvert() = py::none(),
        py::arg("k") = 1, py::arg("with_propensities") = true, py::arg("policy") = 0, py::arg("alpha") = 1.0,
        py::arg("n_draws") = 1000, py::arg("seed") = 0, py::arg("n_threads") = 0,
        "Choose k distinct arms per context under LinUCB / LinTS; returns (arms, propensities).");

    m.def(
        "linear_update",
        [](CArray<double>& A_inv, CArray<double>& b, const OptD& arm_features, OptD& A0, OptD& b0, OptD& B,
           const CArray<int32_t>& arms, const CArray<double>& rewards, const CArray<double>& contexts) {
            const auto s = linear_state(A_inv, b, arm_features, A0, b0, B);
            const double* x = contexts_of(contexts, s);
            require_ndim(arms, 1, "arms");
            require_len(rewards, arms.shape(0), "rewards");
            if (contexts.shape(0) != arms.shape(0))
                throw std::invalid_argument("contexts must have one row per event (" + std::to_string(arms.shape(0)) +
                                            "), got " + std::to_string(contexts.shape(0)));
            py::gil_scoped_release release;
            bandits::linear_update(s, arms.data(), rewards.data(), x, arms.shape(0));
        },
        LINEAR_STATE_ARGS, py::arg("arms").noconvert(), py::arg("rewards").noconvert(),
        py::arg("contexts").noconvert(), "Sequential ridge-regression updates of the linear state, in place.");

    m.def(
        "ope_estimate",
        [](int estimator, const CArray<double>& reward, const OptD& pscore, const OptD& eval_prob,
           const OptD& q_logged, const OptD& q_policy, double param) {
            const ope::Logged d = logged(reward, pscore, eval_prob, q_logged, q_policy);
            const auto e = static_cast<ope::Estimator>(estimator);
            py::gil_scoped_release release;
            ope::check(e, d);
            return ope::estimate(e, d, param);
        },
        OPE_ARGS, "Point estimate of an off-policy estimator.");

    m.def(
        "ope_bootstrap",
        [](int estimator, const CArray<double>& reward, const OptD& pscore, const OptD& eval_prob,
           const OptD& q_logged, const OptD& q_policy, double param, int64_t n_bootstrap, uint64_t seed,
           int n_threads) {
            const ope::Logged d = logged(reward, pscore, eval_prob, q_logged, q_policy);
            const auto e = static_cast<ope::Estimator>(estimator);
            if (n_bootstrap <= 0) throw std::invalid_argument("n_bootstrap must be a positive integer");
            CArray<double> out({n_bootstrap});
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                ope::bootstrap(e, d, param, n_bootstrap, seed, o, n_threads);
            }
            return out;
        },
        OPE_ARGS, py::arg("n_bootstrap") = 1000, py::arg("seed") = 0, py::arg("n_threads") = 0,
        "Estimates over bootstrap resamples of the logged rounds.");
}
