"""The results as Markdown: one table per case, ratios measured in the same run.

For every implementation: the median time per step, the effective bandwidth
(the least bytes a step must move, :meth:`~numadam.bench.cases.Variant.bytes_per_element`
times the element count, over that time), and the time as a multiple of the
roofline (the faster same-traffic kernel) and of numadam.

Examples
--------
>>> format_seconds(0.0123), format_seconds(4.5e-6)
('12.3 ms', '4.50 µs')
"""


def format_seconds(seconds):
    """Three significant digits in s, ms or µs."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value >= 10 else f"{value:.2f} {unit}"


def reference_times(results):
    """``{(case name, variant name): (roofline seconds, numadam seconds)}``."""
    references = {}
    for result in results:
        if result.seconds is None:
            continue
        key = (result.case.name, result.variant.name)
        roofline, numadam = references.get(key, (None, None))
        if result.role == "roofline":
            roofline = result.seconds if roofline is None else min(roofline, result.seconds)
        elif result.role == "numadam":
            numadam = result.seconds
        references[key] = (roofline, numadam)
    return references


def _ratio(seconds, reference):
    return "" if reference is None else f"{seconds / reference:.2f}"


def markdown_tables(results):
    """One Markdown section per case: a table, then what was not timed and why."""
    references = reference_times(results)
    cases = list({result.case.name: result.case for result in results}.values())
    sections = []
    for case in cases:
        lines = [
            f"### {case.title}",
            "",
            "| variant | implementation | time per step | GB/s | × roofline | × numadam |",
            "|---|---|---:|---:|---:|---:|",
        ]
        notes = {}
        for result in results:
            if result.case.name != case.name:
                continue
            if result.seconds is None:
                notes.setdefault((result.label, result.note, result.wrong), []).append(result.variant.name)
                continue
            roofline, numadam = references[(case.name, result.variant.name)]
            moved = case.n_elements * result.variant.bytes_per_element(case.dtype)
            lines.append(
                f"| {result.variant.name} | {result.label} | {format_seconds(result.seconds)} | "
                f"{moved / result.seconds / 1e9:.1f} | {_ratio(result.seconds, roofline)} | "
                f"{_ratio(result.seconds, numadam)} |"
            )
        if notes:
            lines.append("")
            for (label, note, wrong), variants in notes.items():
                verdict = "WRONG RESULT, not timed" if wrong else "not timed"
                lines.append(f"- {label} ({', '.join(variants)}): {verdict}: {note}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"
