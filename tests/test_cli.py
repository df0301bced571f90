from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recforge", *args], capture_output=True, text=True, timeout=600)


def parse_table(stdout: str) -> dict[str, dict[str, float]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model")) + 1
    header = lines[start - 1].split()[1:]
    rows = {}
    for line in lines[start:]:
        if not line.strip():
            break
        name, *values = line.rsplit(maxsplit=len(header))
        rows[name.strip()] = dict(zip(header, map(float, values)))
    return rows


def test_demo_prints_a_table_with_popularity_ahead_of_random(tmp_path):
    plot = tmp_path / "demo.png"
    out = run("demo", "--users", "500", "--items", "300", "--plot", str(plot))
    assert out.returncode == 0, out.stderr
    table = parse_table(out.stdout)
    assert {"Popularity", "Random"} <= set(table)
    for metric in ("ndcg@10", "recall@10", "precision@10"):
        assert table["Popularity"][metric] > 2 * table["Random"][metric], metric
    assert plot.exists() and plot.stat().st_size > 1000


def test_info_and_bad_arguments():
    out = run("info")
    assert out.returncode == 0 and "top-k kernel" in out.stdout
    out = run("demo", "--users", "0")
    assert out.returncode != 0 and "--users" in out.stderr
    out = run("nonsense")
    assert out.returncode != 0
