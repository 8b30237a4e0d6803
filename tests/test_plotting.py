"""plot_convergence: the history drawn with matplotlib (Agg-safe, no pyplot), saved as PNG on request."""

import numpy as np
import pytest

import numadam

matplotlib = pytest.importorskip("matplotlib")


def solved():
    return numadam.minimize(lambda x: (float(x @ x), 2 * x), np.array([1.0, -2.0]), jac=True, lr=0.1, maxiter=60)


def test_a_result_is_drawn_and_saved_as_png(tmp_path):
    res = solved()
    path = tmp_path / "convergence.png"
    ax = numadam.plot_convergence(res, path=path)
    line, = ax.lines
    np.testing.assert_array_equal(line.get_ydata(), res.history)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(res.nit + 1))
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(path).shape
    assert (width, height) == (600, 400)


def test_it_draws_into_a_given_axes_and_keeps_a_linear_scale_for_signed_losses():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    returned = numadam.plot_convergence(np.array([1.0, -0.5, -2.0]), ax=ax)
    assert returned is ax and ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, -0.5, -2.0])


def test_a_plain_list_and_a_dict_with_history_are_accepted():
    assert len(numadam.plot_convergence([3, 2, 1]).lines[0].get_xdata()) == 3
    assert len(numadam.plot_convergence({"history": [5.0, 4.0]}).lines[0].get_xdata()) == 2


@pytest.mark.parametrize("history", [[], [[1.0, 2.0]], 3.0])
def test_a_history_must_be_a_non_empty_sequence(history):
    with pytest.raises(ValueError, match="the history must be a non-empty 1-D sequence of losses"):
        numadam.plot_convergence(history)
