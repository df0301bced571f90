"""Command line: ``python -m recforge demo`` and friends."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import pandas as pd


def _demo(args: argparse.Namespace) -> int:
    import recforge as rf

    t0 = time.perf_counter()
    data = rf.datasets.make_synthetic(
        n_users=args.users, n_items=args.items, random_state=args.seed
    )
    print(f"data   {data!r}")
    train, test = rf.split.leave_last_n_out(data, n=args.holdout)
    print(f"split  leave the last {args.holdout} interactions of each user out: "
          f"{train.nnz:,} train / {test.nnz:,} test")
    print(f"       {rf.split.check_leakage(train, test)}")
    span = float(data.timestamps.max() - data.timestamps.min()) if data.timestamps is not None else 0.0
    models = {
        "Popularity": rf.Popularity(),
        "Popularity (recent)": rf.Popularity(half_life=max(span / 10.0, 1.0)),
        "Random": rf.Random(random_state=args.seed),
    }
    ks = tuple(sorted(set(args.k)))
    tables = {}
    for name, model in models.items():
        table = rf.evaluate(model, train, test, k=ks)
        tables[name] = table
    combined = pd.concat([t.assign(model=n) for n, t in tables.items()], ignore_index=True)
    combined["column"] = combined["metric"] + "@" + combined["k"].astype(str)
    wide = combined.pivot_table(index="model", columns="column", values="value", sort=False)
    wide = wide.loc[list(models)]
    wide.columns.name = None
    wide.index.name = "model"
    n_users = int(combined["n_users"].max())
    print(f"\nTop-k evaluation on {n_users:,} test users (means over users):\n")
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 200):
        print(wide.reset_index().to_string(index=False, justify="left", formatters={"model": "{:<20}".format}))
    print(f"\nfinished in {time.perf_counter() - t0:.1f} s")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .plot import plot_metrics

        ax = plot_metrics(tables, k=ks[0])
        ax.figure.tight_layout()
        ax.figure.savefig(args.plot, dpi=120)
        print(f"plot written to {args.plot}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import recforge as rf
    from ._validation import available_cores

    print(f"recforge {rf.__version__}")
    print(f"top-k kernel: {rf.retrieval.kernel_name()}")
    print(f"cores available: {available_cores()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recforge", description="recforge command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train and evaluate the baselines on synthetic data")
    demo.add_argument("--users", type=int, default=2000, help="number of synthetic users")
    demo.add_argument("--items", type=int, default=1000, help="number of synthetic items")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--holdout", type=int, default=2, help="test interactions per user")
    demo.add_argument("-k", type=int, nargs="+", default=[10, 20], help="cut-offs")
    demo.add_argument("--plot", metavar="PNG", help="also write a bar chart of the results")
    demo.set_defaults(func=_demo)
    info = sub.add_parser("info", help="version and build information")
    info.set_defaults(func=_info)
    args = parser.parse_args(argv)
    if getattr(args, "users", 1) <= 0 or getattr(args, "items", 1) <= 0:
        parser.error("--users and --items must be positive")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
