// Multi-armed and contextual bandit policies: batched selection with propensities, and the
// state updates that learn from observed rewards.
//
// State lives in caller-owned float64 arrays (the Python objects keep them as NumPy arrays);
// every function here reads or updates those arrays and keeps nothing between calls.
//
// Selection of a batch of n rows uses the state as it is at the call: rows are independent
// given the state, so they run in parallel, each row with its own random stream derived from
// (seed, row) -- results do not depend on n_threads.
//
// Candidates: an optional mask of n_mask_rows x n_arms bytes (n_mask_rows is 1, shared by every
// row, or n_rows); a zero byte removes the arm from that row's choice.
//
// Slates: select(k) returns k distinct arms per row, best slot first. The propensity reported
// for slot j is the marginal probability that the policy puts that arm at slot j (over the
// policy's own randomness, for this row's context and the current state); for k = 1 it is the
// probability of choosing the arm. It is exact for epsilon-greedy, UCB1 and LinUCB (uniform
// random tie-breaking among equal scores) and for softmax at slot 0; Thompson sampling,
// linear Thompson sampling and softmax slots after the first are estimated from n_draws fresh
// draws of the policy's randomness with a stream derived from (seed, row) and kept apart from
// the stream that made the choice.
#pragma once

#include <cstdint>

namespace recforge::bandits {

enum class Policy : int {
    EpsilonGreedy = 0,  // explore uniformly with probability epsilon, else the best mean
    UCB1 = 1,           // mean + sqrt(alpha * 2 ln N / n_a) (Auer et al. 2002); unplayed arms first
    ThompsonBeta = 2,   // Beta(prior_a + successes, prior_b + failures) per arm, rewards in [0, 1]
    ThompsonGaussian = 3,  // Normal posterior of the mean (known noise sd, Normal prior)
    Softmax = 4,        // P(a) proportional to exp(mean_a / temperature)
};

struct MabParams {
    Policy policy = Policy::EpsilonGreedy;
    double epsilon = 0.1;
    double alpha = 1.0;         // UCB1 exploration scale
    double prior_a = 1.0;       // Beta prior
    double prior_b = 1.0;
    double prior_mean = 0.0;    // Gaussian prior of each arm's mean
    double prior_precision = 1.0;  // in units of observations (pseudo-count)
    double noise_sd = 1.0;      // reward noise for the Gaussian posterior
    double temperature = 1.0;   // softmax
    double initial_mean = 0.0;  // mean assumed for arms without observations (greedy, softmax)
    int64_t n_draws = 1000;     // Monte Carlo draws for estimated propensities (0: do not estimate)
    uint64_t seed = 0;
};

// Context-free policies. counts, sums: n_arms each (observations and reward totals).
// probabilities: out is n_rows x n_arms, the probability of each arm at slot 0 (0 for
// non-candidates); every row sums to 1 (a row without any candidate throws).
void mab_probabilities(const double* counts, const double* sums, int64_t n_arms, const uint8_t* mask,
                       int64_t n_mask_rows, int64_t n_rows, const MabParams& p, double* out, int n_threads);
// arms, propensities: n_rows x k (propensities may be null: not computed).
void mab_select(const double* counts, const double* sums, int64_t n_arms, const uint8_t* mask,
                int64_t n_mask_rows, int64_t n_rows, int64_t k, const MabParams& p, int32_t* arms,
                double* propensities, int n_threads);
// Beta(shape_a[j], shape_b[j]) draws for every pair j and row (out: n_rows x n_arms) with the
// sampler and per-row random streams of Thompson sampling: exact Gamma variates (Marsaglia-Tsang
// with ziggurat normals) four arms at a time, AVX2 when the CPU has it (the portable kernel
// draws the same values).
void beta_draws(const double* shape_a, const double* shape_b, int64_t n_arms, int64_t n_rows, uint64_t seed,
                double* out, int n_threads);
// counts[arm] += 1, sums[arm] += reward for every event, in order; checks every arm and reward
// before changing anything.
void mab_update(double* counts, double* sums, int64_t n_arms, const int32_t* arms, const double* rewards,
                int64_t n_events);

// Linear policies over a context x (d features).
//
// Disjoint (Li et al. 2010, algorithm 1): per arm a ridge regression with A_a = lambda I +
// sum x x^T (kept as its inverse A_inv, n_arms x d x d) and b_a = sum r x (n_arms x d).
//   LinUCB:  score = x.theta_a + alpha sqrt(x^T A_a^-1 x),  theta_a = A_a^-1 b_a
//   LinTS:   score = x.theta~_a with theta~_a ~ N(theta_a, v^2 A_a^-1); for one context the
//            scores of different arms are independent normals N(x.theta_a, v^2 x^T A_a^-1 x),
//            which is what is drawn (Agrawal & Goyal 2013).
//
// Hybrid (Li et al. 2010, algorithm 2): adds a coefficient beta shared by all arms over the
// features z_a = vec(x f_a^T) of the context crossed with the arm's feature vector f_a (m
// features, k = d m): A0 (k x k), b0 (k), and per arm B_a (d x k). A new arm with features
// but no history is scored by z_a.beta from its first impression.
enum class LinearPolicy : int { LinUCB = 0, LinTS = 1 };

struct LinearParams {
    LinearPolicy policy = LinearPolicy::LinUCB;
    double alpha = 1.0;  // LinUCB width, LinTS scale v
    int64_t n_draws = 1000;
    uint64_t seed = 0;
};

struct LinearState {
    int64_t n_arms = 0;
    int64_t d = 0;
    double* A_inv = nullptr;  // n_arms x d x d
    double* b = nullptr;      // n_arms x d
    // hybrid only (null otherwise)
    int64_t m = 0;
    const double* arm_features = nullptr;  // n_arms x m
    double* A0 = nullptr;                  // k x k
    double* b0 = nullptr;                  // k
    double* B = nullptr;                   // n_arms x d x k
};

// Scores of every arm for every row: mean and width (n_rows x n_arms each; width is the
// standard deviation term sqrt(x^T ... x), before alpha). Non-candidates get -inf mean.
void linear_scores(const LinearState& s, const double* contexts, int64_t n_rows, const uint8_t* mask,
                   int64_t n_mask_rows, double* mean, double* width, int n_threads);
void linear_probabilities(const LinearState& s, const double* contexts, int64_t n_rows, const uint8_t* mask,
                          int64_t n_mask_rows, const LinearParams& p, double* out, int n_threads);
void linear_select(const LinearState& s, const double* contexts, int64_t n_rows, const uint8_t* mask,
                   int64_t n_mask_rows, int64_t k, const LinearParams& p, int32_t* arms, double* propensities,
                   int n_threads);
// Sequential updates, one event at a time (Sherman-Morrison for A_inv); everything is checked
// before anything changes.
void linear_update(const LinearState& s, const int32_t* arms, const double* rewards, const double* contexts,
                   int64_t n_events);

}  // namespace recforge::bandits
