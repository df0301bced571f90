"""Regret curves of the bandit policies in simulation with known rewards.

Three environments: context-free Bernoulli arms (10 arms, click rates 0.05 .. 0.6), a linear
problem with Gaussian contexts (8 arms, 5 features), and an environment built from ALS fitted
on MovieLens 100k (the 20 most popular movies as arms, a user's factor vector as context, a
logistic click model on the ALS score with mean CTR 0.05). Writes
``results/bandits_regret.{json,md}`` and one figure per environment.

    python benchmarks/bandits_regret.py
"""

from __future__ import annotations

import sys
from typing import Any

import _harness as H

H.prepare_environment(1)

import numpy as np  # noqa: E402

NAME = "bandits_regret"


def policies(n_arms: int, d: int | None) -> dict[str, Any]:
    from recforge import bandits as B

    out = {
        "epsilon-greedy 0.1": B.EpsilonGreedy(0.1, random_state=1),
        "epsilon-greedy decay": B.EpsilonGreedy(1.0, decay=0.01, random_state=1),
        "UCB1": B.UCB1(random_state=1),
        "Thompson": B.ThompsonSampling(random_state=1) if d is None or d == 0 else
        B.ThompsonSampling("gaussian", noise_sd=0.5, random_state=1),
        "softmax 0.05": B.Softmax(0.05, random_state=1),
    }
    if d:
        out["LinUCB"] = B.LinUCB(0.5, n_features=d, random_state=1)
        out["LinTS"] = B.LinTS(0.2, n_features=d, random_state=1)
    for p in out.values():
        p.add_arms(np.arange(n_arms))
    return out


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recforge import simulation as S

    envs: dict[str, tuple[Any, int, int]] = {
        "bernoulli": (S.BernoulliEnvironment(np.linspace(0.05, 0.6, 10)), 40000, 0),
        "linear": (S.LinearEnvironment(8, 5, noise_sd=0.1, random_state=0), 10000, 5),
    }
    try:
        import recforge as rf
        from recforge.datasets import read_movielens, shared_data_path

        path = shared_data_path("ml-100k")
        if path is not None:
            data = read_movielens(path)
            als = rf.ALS(factors=16, iterations=10, random_state=0, n_threads=1).fit(data, show_progress=False)
            envs["movielens-100k ALS"] = (S.RecommenderEnvironment(als, n_arms=20, mean_ctr=0.05), 20000, 16)
    except Exception as exc:  # noqa: BLE001 - the synthetic parts stay useful
        print(f"skipping the MovieLens environment: {exc}", file=sys.stderr)

    results = {}
    md = ["# Bandit regret in simulation", "",
          "Cumulative expected regret (best arm's expected reward minus the chosen arm's, summed) and CTR; "
          "every policy sees the same contexts and reward noise. Batches of 10 rounds per select + update.", ""]
    for name, (env, rounds, d) in envs.items():
        res = S.simulate(policies(env.n_arms, d), env, rounds, batch_size=10, random_state=0)
        summary = res.summary()
        results[name] = {"rounds": rounds, "summary": summary.to_dict(orient="index")}
        fig, ax = plt.subplots(figsize=(7, 4))
        S.plot_regret(res, ax=ax)
        ax.set_title(f"{name}: cumulative regret over {rounds:,} rounds")
        fig.tight_layout()
        fig.savefig(H.RESULTS_DIR / f"{NAME}_{name.split()[0].replace('-', '_')}.png", dpi=110)
        plt.close(fig)
        md += [f"## {name} ({rounds:,} rounds, {env.n_arms} arms)", "",
               H.markdown_table(["policy", "cumulative regret", "regret 1st half", "regret 2nd half", "CTR"],
                                [(p, float(r["cumulative_regret"]), float(r["regret_first_half"]),
                                  float(r["regret_second_half"]), float(r["ctr"])) for p, r in summary.iterrows()]),
               "", f"![regret](bandits_regret_{name.split()[0].replace('-', '_')}.png)", ""]
        print(name, "\n", summary, flush=True)
    env_rec = H.environment(1)
    md += [H.describe_env_markdown(env_rec)]
    H.write_results(NAME, {"params": {"batch_size": 10}, "env": env_rec, "results": results}, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
