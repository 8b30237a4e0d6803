"""Benchmark a range of commits with asv, publish its HTML, and plot the 1e7 Adam step over them.

From the repository root (asv builds each commit in its own virtualenv; pip
needs to reach PyPI once, for numpy, numba and scipy)::

    python asv_benchmarks/history.py                    # the last 10 commits of main
    python asv_benchmarks/history.py --commits 20 --benchmarks all

It runs ``asv run --quick`` over the commits (results already there are kept),
``asv publish`` (the HTML lands in ``asv_benchmarks/.asv/html``; open its
``index.html``, or ``asv preview``), and writes ``docs/bench/history-adam-1e7.png``:
the time of ``OneArray.time_step`` for one float32 array of 1e7 elements with
Adam, per commit, which docs/performance.md shows.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLOT = HERE.parent / "docs" / "bench" / "history-adam-1e7.png"
BENCHMARK = "single_array.OneArray.time_step"
#: (backend, dtype, size, variant) of the plotted step.
PLOTTED = ("'numpy'", "'float32'", "10000000", "'adam'")


def asv(*arguments):
    command = [sys.executable, "-m", "asv", *arguments]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=HERE, check=True)


def plotted_times(results_dir):
    """``[(date, commit, seconds)]`` of the plotted step, one per commit with a result, by date."""
    points = []
    for path in results_dir.glob("*/*.json"):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        entry = data.get("results", {}).get(BENCHMARK)
        if entry is None:
            continue
        columns = data["result_columns"]
        values, params = entry[columns.index("result")], entry[columns.index("params")]
        index, stride = 0, 1
        for axis, wanted in zip(reversed(params), reversed(PLOTTED)):
            if wanted not in axis:
                break
            index += axis.index(wanted) * stride
            stride *= len(axis)
        else:
            if values[index] is not None:
                points.append((data["date"], data["commit_hash"][:8], values[index]))
    return sorted(points)


def plot(points, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.plot(range(len(points)), [1e3 * seconds for _, _, seconds in points], marker="o")
    axis.set_xticks(range(len(points)), [commit for _, commit, _ in points], rotation=45, ha="right", fontsize=7)
    axis.set_ylabel("ms per step")
    axis.set_ylim(bottom=0)
    axis.set_title("Adam, one float32 array of 1e7 elements (asv OneArray.time_step, --quick)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10, help="how many commits back from main (default 10)")
    parser.add_argument("--benchmarks", default=BENCHMARK,
                        help=f"an asv -b regular expression, or 'all' (default: {BENCHMARK})")
    args = parser.parse_args(argv)
    asv("machine", "--yes")
    selection = [] if args.benchmarks == "all" else ["-b", args.benchmarks]
    asv("run", "--quick", "--skip-existing-commits", "--show-stderr", *selection, f"main~{args.commits}..main")
    asv("publish")
    points = plotted_times(HERE / ".asv" / "results")
    if not points:
        print("no result of the plotted step: nothing to plot", file=sys.stderr)
        return 1
    plot(points, PLOT)
    print(f"plot written to {PLOT} ({len(points)} commits); HTML in {HERE / '.asv' / 'html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
