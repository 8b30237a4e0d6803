"""The results as Markdown: one table per case, ratios measured in the same run.

For every implementation: the median time per step, the effective bandwidth
(the least bytes a step must move, :meth:`~numadam.bench.cases.Variant.bytes_per_element`
times the element count, over that time), and the time as a multiple of the
roofline (the faster same-traffic kernel) and of numadam. GPU runs add the
bandwidth as a percentage of the device's copy bandwidth (the faster device
copy moving the same bytes) and two host-clock times: per step of many queued
steps, and of one step waited for.

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


def copy_times(results):
    """``{(case name, variant name): seconds}`` of the faster device copy (role ``"copy"``)."""
    copies = {}
    for result in results:
        if result.role == "copy" and result.seconds is not None:
            key = (result.case.name, result.variant.name)
            copies[key] = min(copies.get(key, result.seconds), result.seconds)
    return copies


def _ratio(seconds, reference):
    return "" if reference is None else f"{seconds / reference:.2f}"


def _percent(reference, seconds):
    return "" if reference is None else f"{100 * reference / seconds:.0f}%"


def _wall(seconds):
    return "" if seconds is None else format_seconds(seconds)


def markdown_tables(results):
    """One Markdown section per case: a table, then what was not timed and why."""
    references = reference_times(results)
    copies = copy_times(results)
    cases = list({result.case.name: result.case for result in results}.values())
    sections = []
    for case in cases:
        mine = [result for result in results if result.case.name == case.name]
        with_copy = any(key[0] == case.name for key in copies)
        with_walls = any(result.wall_queued is not None for result in mine)
        headings = ["variant", "implementation", "time per step", "GB/s"]
        headings += ["% of copy"] * with_copy + ["× roofline", "× numadam"]
        headings += ["wall, queued", "wall, synchronized"] * with_walls
        lines = [
            f"### {case.title}",
            "",
            "| " + " | ".join(headings) + " |",
            "|---|---|" + "---:|" * (len(headings) - 2),
        ]
        notes = {}
        for result in mine:
            if result.seconds is None:
                notes.setdefault((result.label, result.note, result.wrong), []).append(result.variant.name)
                continue
            key = (case.name, result.variant.name)
            roofline, numadam = references[key]
            moved = case.n_elements * result.variant.bytes_per_element(case.dtype)
            cells = [result.variant.name, result.label, format_seconds(result.seconds),
                     f"{moved / result.seconds / 1e9:.1f}"]
            cells += [_percent(copies.get(key), result.seconds)] * with_copy
            cells += [_ratio(result.seconds, roofline), _ratio(result.seconds, numadam)]
            cells += [_wall(result.wall_queued), _wall(result.wall_synchronized)] * with_walls
            lines.append("| " + " | ".join(cells) + " |")
        if notes:
            lines.append("")
            for (label, note, wrong), variants in notes.items():
                verdict = "WRONG RESULT, not timed" if wrong else "not timed"
                lines.append(f"- {label} ({', '.join(variants)}): {verdict}: {note}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"
