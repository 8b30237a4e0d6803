"""asv's history of numadam, kept in the repository per CPU model: fill it, extend it, plot it, check it.

From the repository root (asv builds each commit in its own virtualenv; pip
must reach a package index for numpy and numba)::

    python asv_benchmarks/history.py                  # new commits that touch the kernels or the engine, then the plots
    python asv_benchmarks/history.py backfill --count 20   # 20 commits spread evenly since the engine redesign
    python asv_benchmarks/history.py backfill --count 20 --until aa62201   # the same span as a backfill begun then
    python asv_benchmarks/history.py check            # HEAD against its parent: slower by > 10%, confirmed once
    python asv_benchmarks/history.py plot             # only redraw the plots

The results live in ``asv_benchmarks/results/<machine>/`` (asv's own JSON, one
file per commit), which git keeps; environments and HTML stay in the ignored
``.asv/``. The machine is named from the CPU (:func:`machine_name`), because
``lscpu``'s model name is the same for every EPYC and Xeon these machines
have: ``amd-f25-m17-2cpu-32mib`` is a 2-core Zen 4 with 32 MiB of L3. Only the
headline benchmarks (:data:`HEADLINE`) are run: they use numadam's public API,
so the same benchmark runs on old commits and new ones.

Each machine's history is drawn to ``docs/bench/history-<machine>.png``
(:data:`PLOTTED`), which docs/performance.md shows.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PLOTS = ROOT / "docs" / "bench"

#: The first commit of the engine all later commits share (its redesign): backfills start here.
ENGINE_REDESIGN = "59ed95d"

#: The paths whose changes ``history.py`` (no command) benchmarks: the kernels, the engine, the
#: families and the public classes that drive them.
TRACKED_PATHS = ("numadam/engine", "numadam/targets", "numadam/families", "numadam/core", "numadam/optimizers.py",
                 "numadam/functional.py")

#: asv ``-b`` regular expressions of the headline benchmarks (asv matches ``name(param, ...)``):
#: the per-call costs, the roofline step (one array of 1e7, Adam and AdamW), every family's ratio to
#: its same-traffic kernel, the step beside DeepSpeed's (skipped where it is not installed) and
#: Adafactor's over narrow and wide matrices.
HEADLINE = (
    r"^calls\.",
    r"^single_array\.OneArray\.(time_step|track_bandwidth)\('numpy', 'float32', 10000000, '(adam|adamw)'\)",
    r"^suites\.Suites\.track_ratio_to_same_traffic\('families: ",
    r"^deepspeed\.",
    r"^adafactor\.AdafactorMatrix\.time_step\('numpy'",
)

#: ``(title, benchmark, parameters, unit scale, unit)`` of each panel of a machine's plot; a
#: ``None`` parameter is a wildcard whose series are drawn together.
PLOTTED = (
    ("Adam, one float32 array of 1e7 (roofline)", "single_array.OneArray.time_step",
     ("'numpy'", "'float32'", "10000000", "'adam'"), 1e3, "ms"),
    ("One call, 1e3 float32: a new gradient array each step", "calls.NewGradientArrays.time_step",
     (None, "'new arrays'"), 1e6, "µs"),
    ("Each family over its same-traffic kernel (1e6 float32)", "suites.Suites.track_ratio_to_same_traffic",
     (None,), 1.0, "×"),
    ("numadam's and DeepSpeed's step", "deepspeed.AdamBesideDeepSpeed.time_step", (None, "'adam'", None), 1e3, "ms"),
    ("SparseAdam: a minibatch's 64 rows of a 200000 x 32 table", "calls.MinibatchRows.time_step", (), 1e6, "µs"),
)

#: ``asv compare``'s factor above which a benchmark counts as changed.
FACTOR = 1.10


# -- naming the machine -------------------------------------------------------------------------


def machine_name(cpuinfo=None, cpus=None, l3_bytes=None):
    """A name for this CPU model: vendor, family, model, CPU count and L3 size, e.g.
    ``amd-f25-m17-2cpu-32mib`` (``/proc/cpuinfo``, ``os.cpu_count()`` and sysfs by default)."""
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(re.findall(r"^(vendor_id|cpu family|model)\s*:\s*(\S+)", cpuinfo, re.MULTILINE))
    vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(fields.get("vendor_id"), platform.machine().lower())
    cpus = os.cpu_count() if cpus is None else cpus
    l3_bytes = _l3_bytes() if l3_bytes is None else l3_bytes
    parts = [vendor]
    if "cpu family" in fields:
        parts += [f"f{fields['cpu family']}", f"m{fields.get('model', '0')}"]
    parts.append(f"{cpus}cpu")
    if l3_bytes:
        parts.append(f"{l3_bytes // 2**20}mib")
    return "-".join(parts)


def _l3_bytes():
    """The L3 size the kernel reports for CPU 0, or 0."""
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "level").read_text().strip() == "3":
                size = (index / "size").read_text().strip()
                scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
                return int(size.rstrip("KMG")) * scale
        except OSError:
            pass
    return 0


# -- choosing commits ------------------------------------------------------------------------------


def git(*arguments):
    return subprocess.run(["git", *arguments], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def spread(commits, count):
    """``count`` of ``commits`` (oldest first) spread evenly, the first and the last included."""
    if count >= len(commits):
        return list(commits)
    if count == 1:
        return [commits[-1]]
    step = (len(commits) - 1) / (count - 1)
    return [commits[round(i * step)] for i in range(count)]


def coarse_to_fine(commits):
    """``commits`` reordered so that every prefix spans the range: the last, the first, then the
    middle of each gap in turn (a backfill cut short still covers its whole span)."""
    if len(commits) <= 2:
        return list(reversed(commits))
    order, gaps = [len(commits) - 1, 0], [(0, len(commits) - 1)]
    while gaps:
        low, high = gaps.pop(0)
        if high - low < 2:
            continue
        middle = (low + high) // 2
        order.append(middle)
        gaps += [(low, middle), (middle, high)]
    return [commits[i] for i in order]


def main_line(since, until="main", paths=()):
    """The commits of ``until``'s first-parent line after ``since`` (and ``since`` itself), oldest
    first; with ``paths``, only those that touch them."""
    listed = git("rev-list", "--first-parent", "--reverse", f"{since}..{until}", "--", *paths).split()
    return ([git("rev-parse", since).strip()] if not paths else []) + listed


def benchmarked(machine):
    """The commit hashes with a result file for ``machine``."""
    folder = RESULTS / machine
    return {json.loads(path.read_text())["commit_hash"] for path in folder.glob("*.json")
            if path.name != "machine.json"} if folder.is_dir() else set()


# -- running asv ---------------------------------------------------------------------------------


def asv(*arguments, check=True, capture=False):
    """Run ``python -m asv`` in this folder, its output shown (or returned, with ``capture``)."""
    command = [sys.executable, "-m", "asv", *arguments]
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=HERE, check=check, capture_output=capture, text=True)


def record_machine(machine):
    asv("machine", "--machine", machine, "--yes")


def run_commits(machine, commits, benchmarks=HEADLINE, quick=True):
    """Benchmark ``commits`` (hashes) on ``machine``; commits with results already are skipped."""
    if not commits:
        print("no commit to benchmark")
        return
    hashes = HERE / ".asv" / "commits-to-run.txt"
    hashes.parent.mkdir(exist_ok=True)
    hashes.write_text("\n".join(commits) + "\n")
    selection = [argument for regex in benchmarks for argument in ("-b", regex)]
    asv("run", "--machine", machine, "--skip-existing-commits", "--show-stderr", *(["--quick"] if quick else []),
        *selection, f"HASHFILE:{hashes}", check=False)  # a failing benchmark is recorded, not fatal


# -- comparing commits -----------------------------------------------------------------------------


def slower(compare_output):
    """The benchmarks (``name(parameters)``) that ``asv compare``'s table marks slower (``+``) or newly
    failing (``!``): its rows are ``| change | before | after | ratio | benchmark |``."""
    names = []
    for line in compare_output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) == 5 and cells[0] in ("+", "!"):
            names.append(cells[4])
    return names


def compared(machine, before, after):
    """The benchmarks :func:`slower` finds in ``asv compare``'s table of ``before`` and ``after``;
    a comparison that fails or has no table raises (it is not "no regression")."""
    result = asv("compare", "--machine", machine, "--factor", str(FACTOR), "--split", before, after, check=False,
                 capture=True)
    print(result.stdout, result.stderr, sep="")
    if result.returncode != 0 or "| Change" not in result.stdout:
        raise RuntimeError(f"asv compare {before[:8]} {after[:8]} on {machine} gave no table "
                           f"(status {result.returncode}): were both commits benchmarked?")
    return slower(result.stdout)


def check(machine, commit="HEAD"):
    """``commit`` against its parent on ``machine``: each benchmark slower by more than
    :data:`FACTOR` is run again on both commits, and reported only if it is slower again."""
    after = git("rev-parse", commit).strip()
    before = git("rev-parse", f"{after}^").strip()
    run_commits(machine, [before, after])
    first = compared(machine, before, after)
    if not first:
        print(f"no benchmark slower by more than {FACTOR:g}x")
        return []
    print(f"slower at first: {', '.join(first)}; running them again on both commits")
    again = [f"^{re.escape(name)}$" for name in first]  # asv matches ``name(parameters)``
    for commit_hash in (before, after):
        asv("run", "--machine", machine, "--show-stderr", *[a for r in again for a in ("-b", r)],
            f"{commit_hash}^!", check=False)
    confirmed = [name for name in compared(machine, before, after) if name in first]
    print("regressions confirmed by a second run:", ", ".join(confirmed) if confirmed else "none")
    return confirmed


# -- plotting ------------------------------------------------------------------------------------


def series(machine, benchmark, wanted):
    """``{parameters: [(date, commit, value)]}`` of ``benchmark`` on ``machine``, by date; ``wanted``
    is a tuple of parameter values (strings as asv keeps them), ``None`` for any."""
    found = {}
    for path in sorted((RESULTS / machine).glob("*.json")):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        entry = data.get("results", {}).get(benchmark)
        if entry is None:
            continue
        columns = data["result_columns"]
        values, params = entry[columns.index("result")], entry[columns.index("params")]
        if values is None:  # asv saves a benchmark that failed (or was skipped) everywhere as None
            continue
        combinations = _product(params)
        if not params:
            combinations, values = [()], [values] if not isinstance(values, list) else values
        for combination, value in zip(combinations, values):
            if value is None or len(combination) != len(wanted) or not all(
                    w is None or w == c for w, c in zip(wanted, combination)):
                continue
            found.setdefault(combination, []).append((data["date"], data["commit_hash"][:8], value))
    return {key: sorted(points) for key, points in found.items()}


def _product(params):
    combinations = [()]
    for axis in params:
        combinations = [c + (value,) for c in combinations for value in axis]
    return combinations


def plot(machine):
    """Draw ``machine``'s panels (:data:`PLOTTED`) to ``docs/bench/history-<machine>.png``; its path,
    or ``None`` where it has no result."""
    panels = [(title, series(machine, name, wanted), scale, unit) for title, name, wanted, scale, unit in PLOTTED]
    panels = [panel for panel in panels if panel[1]]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    commits = sorted({(date, commit) for _, lines, _, _ in panels for points in lines.values()
                      for date, commit, _ in points})
    position = {commit: i for i, (_, commit) in enumerate(commits)}
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), sharex=True, squeeze=False)
    for axis, (title, lines, scale, unit) in zip(axes[:, 0], panels):
        for key, points in sorted(lines.items()):
            label = ", ".join(part.strip("'") for part in key if part) or None
            axis.plot([position[c] for _, c, _ in points], [v * scale for _, _, v in points], marker="o",
                      markersize=3, linewidth=1, label=label)
        axis.set_title(title, fontsize=9)
        axis.set_ylabel(unit)
        axis.set_ylim(bottom=0)
        if 1 < len(lines) <= 8:
            axis.legend(fontsize=6, ncol=2)
    axes[-1, 0].set_xticks(range(len(commits)), [c for _, c in commits], rotation=60, ha="right", fontsize=6)
    figure.suptitle(f"asv history on {machine} (--quick, one run per commit)", fontsize=10)
    figure.tight_layout()
    path = PLOTS / f"history-{machine}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def plot_all():
    machines = sorted(p.name for p in RESULTS.iterdir() if p.is_dir() and benchmarked(p.name)) \
        if RESULTS.is_dir() else []
    for machine in machines:
        path = plot(machine)
        print(f"{machine}: {path or 'no result to plot'}")


# -- the commands ------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default=None, help="the results' machine name (default: machine_name())")
    commands = parser.add_subparsers(dest="command")
    new = commands.add_parser("new", help="benchmark main's commits after the newest benchmarked one that touch "
                                          "the kernels or the engine, then plot (the default)")
    new.add_argument("--until", default="main")
    backfill = commands.add_parser("backfill", help="benchmark commits spread evenly over main since a commit")
    backfill.add_argument("--since", default=ENGINE_REDESIGN)
    backfill.add_argument("--count", type=int, default=20)
    backfill.add_argument("--until", default="main",
                          help="the last commit of the span (keep one: the spread moves with the tip)")
    commands.add_parser("check", help=f"HEAD against its parent: benchmarks slower by more than {FACTOR:g}x, "
                                      "each confirmed by a second run")
    commands.add_parser("plot", help="redraw each machine's plot from the kept results")
    args = parser.parse_args(argv)
    machine = args.machine or machine_name()
    command = args.command or "new"
    if command == "plot":
        plot_all()
        return 0
    record_machine(machine)
    if command == "check":
        return 1 if check(machine) else 0
    if command == "backfill":
        commits = coarse_to_fine(spread(main_line(args.since, args.until), args.count))
    else:
        done, until = benchmarked(machine), getattr(args, "until", "main")
        line = main_line(ENGINE_REDESIGN, until)
        newest = max((i for i, commit in enumerate(line) if commit in done), default=None)
        touching = set(main_line(ENGINE_REDESIGN, until, TRACKED_PATHS))
        commits = [c for c in line[(newest + 1 if newest is not None else len(line) - 1):] if c in touching
                   or c == line[-1]]
    run_commits(machine, commits)
    plot_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
