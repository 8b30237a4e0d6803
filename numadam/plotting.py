"""``plot_convergence``: the objective against the iteration, drawn with matplotlib."""

import os

import numpy as np


def plot_convergence(result_or_history, path=None, ax=None):
    r"""Draw the objective :math:`f_k` against the iteration :math:`k`; return the ``Axes``.

    Parameters
    ----------
    result_or_history : OptimizeResult, dict with ``"history"``, or 1-D array_like
        A :func:`numadam.minimize` result (its ``history``) or the losses themselves.
    path : str or path-like, optional
        Save the figure there (PNG unless the suffix says otherwise).
    ax : matplotlib Axes, optional
        Draw into it; otherwise a new ``Figure`` is made without ``pyplot``, so no
        GUI backend is involved (``ax.figure`` is that figure).

    The y axis is logarithmic when every value is positive. matplotlib is an
    optional dependency, imported here only.

    Examples
    --------
    >>> import numadam
    >>> ax = numadam.plot_convergence([4.0, 2.0, 1.0, 0.5])
    >>> ax.get_yscale(), len(ax.lines[0].get_xdata())
    ('log', 4)
    """
    history = result_or_history
    if isinstance(history, dict) and "history" in history:
        history = history["history"]
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 1 or history.size == 0:
        raise ValueError(f"the history must be a non-empty 1-D sequence of losses; got shape {history.shape}")
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(6, 4), layout="constrained").add_subplot()
    finite = history[np.isfinite(history)]
    ax.plot(np.arange(history.size), history, linewidth=1.5)
    if finite.size and np.all(finite > 0):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_title("convergence")
    ax.grid(True, which="both", alpha=0.3)
    if path is not None:
        ax.figure.savefig(os.fspath(path), dpi=100)
    return ax
