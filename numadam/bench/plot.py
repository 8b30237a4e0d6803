"""The results as a PNG: time per step relative to the roofline, per case and variant.

matplotlib is optional and imported here only, with the file-only Agg backend.
"""

from .table import reference_times


def save_plot(results, path):
    """Write the bar chart to ``path``; return ``None``, or why no plot was written."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    matplotlib.use("Agg")
    from matplotlib import pyplot

    references = reference_times(results)
    timed = [r for r in results if r.seconds is not None and r.role != "roofline"
             and references[(r.case.name, r.variant.name)][0] is not None]  # no roofline, no bar
    if not timed:
        return "no implementation was timed next to a roofline: no plot"
    cases = list({r.case.name: r.case for r in timed}.values())
    labels = list(dict.fromkeys(r.label for r in timed))
    colors = {label: pyplot.get_cmap("tab10")(k % 10) for k, label in enumerate(labels)}
    figure, axes = pyplot.subplots(1, len(cases), figsize=(2.9 * len(cases) + 1, 4.6), sharey=True,
                                   squeeze=False)
    for axis, case in zip(axes[0], cases):
        rows = [r for r in timed if r.case.name == case.name]
        variants = list(dict.fromkeys(r.variant.name for r in rows))
        present = [label for label in labels if any(r.label == label for r in rows)]
        width = 0.85 / len(present)
        for k, label in enumerate(present):
            mine = [r for r in rows if r.label == label]
            xs = [variants.index(r.variant.name) - 0.425 + width * (k + 0.5) for r in mine]
            heights = [r.seconds / references[(case.name, r.variant.name)][0] for r in mine]
            axis.bar(xs, heights, width, color=colors[label], label=label)
        axis.axhline(1.0, color="black", linestyle="--", linewidth=1)
        axis.set_xticks(range(len(variants)), variants)
        axis.set_title(case.title, fontsize=9)
        axis.set_yscale("log")
        axis.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("time per step / same-traffic kernel (dashed line)")
    handles, names = [], []
    for axis in axes[0]:
        for handle, name in zip(*axis.get_legend_handles_labels()):
            if name not in names:
                handles.append(handle)
                names.append(name)
    figure.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
    return None
