"""Bandit policies: recforge against MABWiser, select + update steps in one process.

Each contender runs the same online loop: contexts arrive in batches, the policy chooses one
arm per context with its current state, then learns from the batch's rewards. Rewards come from
a fixed linear-logistic click model (20 Gaussian context features, 100 arms), the same stream
for both libraries. Policies: epsilon-greedy (0.1), UCB1 (alpha 1), Bernoulli Thompson
sampling, LinUCB (alpha 1, l2 1). recforge selects without propensities
(``return_propensities=False``), since MABWiser does not compute them. Both run on one thread
(MABWiser ``n_jobs=1``, BLAS limited to 1 thread; recforge ``n_threads=1``).

Time is the whole loop (selection, reward lookup, update) for ``--steps`` steps; repeats
alternate between the contenders and the medians are compared.

    python benchmarks/bandits.py            # 1,000,000 steps, 3 repeats
    python benchmarks/bandits.py --quick    # 50,000 steps, 1 repeat, writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import _harness as H

H.prepare_environment(1)

import numpy as np  # noqa: E402

NAME = "bandits"
N_ARMS = 100
N_FEATURES = 20
POLICIES = ("epsilon-greedy", "ucb1", "thompson", "linucb")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000, help="contexts per select + update call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--policies", nargs="*", default=list(POLICIES))
    return p.parse_args(argv)


class Stream:
    """Contexts and the click probabilities of every arm, precomputed for the whole run."""

    def __init__(self, steps: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.contexts = rng.normal(size=(steps, N_FEATURES))
        theta = rng.normal(size=(N_ARMS, N_FEATURES)) / np.sqrt(N_FEATURES)
        self.theta = theta
        self.noise = rng.random(steps)
        self.steps = steps

    def rewards(self, start: int, stop: int, arms: np.ndarray) -> np.ndarray:
        z = np.einsum("nd,nd->n", self.contexts[start:stop], self.theta[arms]) - 2.0
        return (self.noise[start:stop] < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)


def run_recforge(policy_name: str, stream: Stream, batch: int) -> float:
    from recforge import bandits as B

    arms = np.arange(N_ARMS)
    make = {
        "epsilon-greedy": lambda: B.EpsilonGreedy(0.1, arms=arms, random_state=0, n_threads=1),
        "ucb1": lambda: B.UCB1(1.0, arms=arms, random_state=0, n_threads=1),
        "thompson": lambda: B.ThompsonSampling(arms=arms, random_state=0, n_threads=1),
        "linucb": lambda: B.LinUCB(1.0, l2=1.0, n_features=N_FEATURES, arms=arms, random_state=0, n_threads=1),
    }[policy_name]
    policy = make()
    policy.add_arms(arms)
    contextual = policy_name == "linucb"
    total = 0
    for start in range(0, stream.steps, batch):
        stop = min(stream.steps, start + batch)
        x = stream.contexts[start:stop]
        chosen, _ = policy.select(x, return_propensities=False)
        r = stream.rewards(start, stop, chosen)
        policy.update(chosen, r, x if contextual else None)
        total += int(r.sum())
    return total / stream.steps


def run_mabwiser(policy_name: str, stream: Stream, batch: int) -> float:
    from mabwiser.mab import MAB, LearningPolicy

    lp = {
        "epsilon-greedy": lambda: LearningPolicy.EpsilonGreedy(epsilon=0.1),
        "ucb1": lambda: LearningPolicy.UCB1(alpha=1.0),
        "thompson": lambda: LearningPolicy.ThompsonSampling(),
        "linucb": lambda: LearningPolicy.LinUCB(alpha=1.0, l2_lambda=1.0),
    }[policy_name]()
    arms = list(range(N_ARMS))
    mab = MAB(arms, lp, seed=0, n_jobs=1)
    contextual = policy_name == "linucb"
    # MABWiser needs a first fit before it predicts: one round-robin pass over the arms
    first = np.arange(N_ARMS)
    x0 = stream.contexts[:N_ARMS]
    mab.fit(first, stream.rewards(0, N_ARMS, first), x0 if contextual else None)
    total = 0
    for start in range(0, stream.steps, batch):
        stop = min(stream.steps, start + batch)
        x = stream.contexts[start:stop]
        chosen = np.asarray(mab.predict(x), dtype=np.int64)
        r = stream.rewards(start, stop, chosen)
        mab.partial_fit(chosen, r, x if contextual else None)
        total += int(r.sum())
    return total / stream.steps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 50_000, 1
    import mabwiser

    stream = Stream(args.steps)
    results = []
    for name in args.policies:
        ctr: dict[str, float] = {}

        def rf(name: str = name) -> None:
            ctr["recforge"] = run_recforge(name, stream, args.batch)

        def mw(name: str = name) -> None:
            ctr["mabwiser"] = run_mabwiser(name, stream, args.batch)

        with H.blas_threads(1):
            # warm-up on a short stream (imports, caches), kept out of the timings
            short = Stream(5 * args.batch, seed=1)
            run_recforge(name, short, args.batch)
            run_mabwiser(name, short, args.batch)
            timings = H.time_interleaved({"recforge": rf, "mabwiser": mw}, repeats=args.repeats, warmup=0)
        row = {
            "policy": name,
            "recforge_s": timings["recforge"].median,
            "mabwiser_s": timings["mabwiser"].median,
            "speedup": H.ratio(timings["mabwiser"], timings["recforge"]),
            "recforge_us_per_step": 1e6 * timings["recforge"].median / args.steps,
            "mabwiser_us_per_step": 1e6 * timings["mabwiser"].median / args.steps,
            "ctr_recforge": ctr["recforge"],
            "ctr_mabwiser": ctr["mabwiser"],
            "timings": timings,
        }
        results.append(row)
        print(f"{name}: recforge {row['recforge_s']:.2f}s, MABWiser {row['mabwiser_s']:.2f}s, "
              f"{row['speedup']:.1f}x; CTR {row['ctr_recforge']:.4f} vs {row['ctr_mabwiser']:.4f}", flush=True)
    env = H.environment(1)
    from importlib.metadata import version

    env["mabwiser"] = getattr(mabwiser, "__version__", None) or version("mabwiser")
    params = {"steps": args.steps, "batch": args.batch, "repeats": args.repeats, "n_arms": N_ARMS,
              "n_features": N_FEATURES, "threads": 1}
    if args.quick:
        return 0
    H.write_results(NAME, {"params": params, "env": env, "results": results}, report(results, env, params))
    return 0


def report(results: list[dict[str, Any]], env: dict[str, Any], params: dict[str, Any]) -> str:
    rows = [
        (r["policy"], r["recforge_s"], r["mabwiser_s"], f"{r['speedup']:.1f}x", r["recforge_us_per_step"],
         r["mabwiser_us_per_step"], f"{r['ctr_recforge']:.4f}", f"{r['ctr_mabwiser']:.4f}")
        for r in results
    ]
    speedups = [r["speedup"] for r in results]
    target = [r["policy"] for r in results if r["speedup"] < 20]
    lines = [
        "# Bandits: recforge vs MABWiser",
        "",
        f"{params['steps']:,} select + update steps per policy, {params['n_arms']} arms, "
        f"{params['n_features']} context features (LinUCB), batches of {params['batch']} contexts, "
        f"1 thread each, median of {params['repeats']} interleaved repeats. Rewards: clicks from a fixed "
        "linear-logistic model, the same stream for both.",
        "",
        H.markdown_table(["policy", "recforge s", "MABWiser s", "speed-up", "recforge us/step", "MABWiser us/step",
                          "CTR recforge", "CTR MABWiser"], rows),
        "",
        f"Median speed-up {statistics.median(speedups):.1f}x. "
        + ("Every policy meets the 20x target." if not target else
           f"Below the 20x target: {', '.join(target)}."),
        "",
        H.describe_env_markdown(env),
        f"- MABWiser {env.get('mabwiser')}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
