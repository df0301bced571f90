// Off-policy estimators of a policy's value from logged bandit feedback, with bootstrap
// confidence intervals.
//
// Per logged round i (n rounds): reward r_i, the logging policy's propensity p_i of the logged
// action, the evaluation policy's probability e_i of the same action (at the same position),
// and for the model-based estimators q_i = q^(x_i, a_i), the reward model at the logged
// action, and m_i = sum_a pi_e(a | x_i) q^(x_i, a), the model's value of the evaluation policy.
// With the importance weight w_i = e_i / p_i (clipped at `clip` where it applies):
//
//   IPS        mean(w r)
//   SNIPS      sum(w r) / sum(w)
//   DM         mean(m)
//   DR         mean(m + w (r - q))
//   SwitchDR   mean(m + w (r - q) [e_i / p_i <= tau])   (Wang et al. 2017: beyond tau, DM only)
//
// These follow the definitions of Open Bandit Pipeline's estimators, so the two agree on the
// same inputs.
#pragma once

#include <cstdint>

namespace recforge::ope {

enum class Estimator : int { IPS = 0, SNIPS = 1, DM = 2, DR = 3, SwitchDR = 4 };

struct Logged {
    int64_t n = 0;
    const double* reward = nullptr;
    const double* pscore = nullptr;
    const double* eval_prob = nullptr;
    const double* q_logged = nullptr;  // DM, DR, SwitchDR
    const double* q_policy = nullptr;  // DM, DR, SwitchDR
};

// Checks the inputs an estimator needs (propensities in (0, 1], probabilities in [0, 1],
// finite rewards and model values) and throws std::invalid_argument naming the first bad round.
void check(Estimator e, const Logged& data);

// The estimate over the rounds idx[0..n_idx) (idx null: every round once).
double estimate(Estimator e, const Logged& data, double param, const int64_t* idx = nullptr, int64_t n_idx = 0);

// n_boot estimates over resamples of the rounds with replacement; replicate b uses a random
// stream derived from (seed, b), so the result does not depend on n_threads.
void bootstrap(Estimator e, const Logged& data, double param, int64_t n_boot, uint64_t seed, double* out,
               int n_threads);

}  // namespace recforge::ope
