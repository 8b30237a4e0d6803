"""``numadam demo``: each example learns in quick mode and the report prints (the CLI run is in test_cli)."""

import sys

import numpy as np
import pytest

from numadam.demo import (deconvolution, linear_fit, mlp_digits, one_blas_thread, pixel_decay, run_demo,
                          sequence_lstm)


@pytest.fixture(scope="module")
def quick_demo_without_matplotlib(tmp_path_factory):
    """Run the whole quick demo once, in process, with matplotlib made unimportable."""
    output = tmp_path_factory.mktemp("demo") / "figures"
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib", None)
        patch.setitem(sys.modules, "matplotlib.figure", None)
        results = run_demo(quick=True, output=str(output), out=lines.append)
    return {result.title: result for result in results}, lines, output


def result_of(demo, module):
    results, _, _ = demo
    return results[module.TITLE]


def test_linear_fit_reaches_the_line(quick_demo_without_matplotlib):
    result = result_of(quick_demo_without_matplotlib, linear_fit)
    _, _, losses = result.curves[0]
    assert losses[-1] < 1e-10 * losses[0]
    assert abs(2 * result.metrics["W"] + result.metrics["b"] - 4) < 1e-6


def test_mlp_learns_the_digits_in_quick_mode(quick_demo_without_matplotlib):
    result = result_of(quick_demo_without_matplotlib, mlp_digits)
    assert result.metrics["test_accuracy"] > 0.8  # chance is 0.1
    assert result.metrics["train_accuracy"] > 0.8
    (_, _, train_losses), (_, _, test_losses) = result.curves
    assert train_losses[-1] < 0.3 * train_losses[0]
    assert test_losses[-1] < 0.3 * test_losses[0]


def test_lstm_beats_persistence_with_clipping_active(quick_demo_without_matplotlib):
    metrics = result_of(quick_demo_without_matplotlib, sequence_lstm).metrics
    assert metrics["test_mse"] < 0.1 * metrics["initial_test_mse"]
    assert metrics["test_mse"] < 0.5 * metrics["persistence_mse"]
    assert 0 < metrics["clipped_fraction"] < 1


def test_deconvolution_adam_gets_close_to_lbfgs(quick_demo_without_matplotlib):
    metrics = result_of(quick_demo_without_matplotlib, deconvolution).metrics
    assert abs(metrics["lbfgs_fun"] - metrics["exact_fun"]) < 1e-8 * metrics["exact_fun"]
    assert -1e-8 < metrics["relative_gap"] < 1e-3
    assert metrics["solution_difference"] < 1e-2
    assert metrics["compiled"] and metrics["compiled_difference"] < 1e-10  # the compiled solve, beside it


def test_pixel_decay_batch_finds_scipy_s_rates(quick_demo_without_matplotlib):
    metrics = result_of(quick_demo_without_matplotlib, pixel_decay).metrics
    assert metrics["compiled"] and metrics["converged"] == 1.0
    assert metrics["rate_difference"] < 1e-5  # the same minimizer as Levenberg-Marquardt's
    assert metrics["batch_rate_error"] < 0.1 and metrics["scipy_rate_error"] < 0.1  # the noise's doing, for both


def test_the_pixel_decay_misfit_s_gradient_is_its_derivative(rng):
    t, stack, _ = pixel_decay.make_stack(rng, side=2)
    x, y = np.array([1.3, 0.7, 0.05]), stack[0, 0]
    value, grad = pixel_decay.decay_misfit(x, t, y)
    for j in range(3):
        step = np.zeros(3)
        step[j] = 1e-6
        difference = (pixel_decay.decay_misfit(x + step, t, y)[0] - pixel_decay.decay_misfit(x - step, t, y)[0]) / 2e-6
        assert grad[j] == pytest.approx(difference, rel=1e-6, abs=1e-9)
    assert value == pytest.approx(np.mean((1.3 * np.exp(-0.7 * t) + 0.05 - y) ** 2), rel=1e-14)


def test_the_compiled_objective_is_the_numpy_objective(rng):
    objective, kernel, y, _, alpha = deconvolution.make_problem(rng, n=60)
    x = rng.standard_normal(60)
    value, grad = objective(x)
    compiled_value, compiled_grad = deconvolution.compiled_tikhonov(x, kernel, y, alpha)
    assert compiled_value == pytest.approx(value, rel=1e-13)
    np.testing.assert_allclose(compiled_grad, grad, rtol=1e-12, atol=1e-14)


def test_report_has_every_section_and_skips_the_plot_without_matplotlib(quick_demo_without_matplotlib):
    _, lines, output = quick_demo_without_matplotlib
    text = "\n".join(lines)
    for number in range(1, 5):
        assert f"== {number}. " in text
    assert "== summary ==" in text
    assert "plot skipped: matplotlib is not installed" in text
    assert not output.exists()


def test_blas_threads_are_left_alone_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    context, note = one_blas_thread()
    assert note == "BLAS threads left as configured (threadpoolctl is not installed)"
    with context:
        pass


def test_digits_data_set_is_complete():
    images, labels = mlp_digits.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 16
    counts = np.bincount(labels, minlength=10)
    assert len(counts) == 10 and counts.min() >= 170


def test_blur_spreads_an_impulse_into_the_kernel_and_is_self_adjoint(rng):
    kernel = deconvolution.gaussian_kernel(2.0)
    assert len(kernel) == 17 and kernel.sum() == pytest.approx(1.0)
    impulse = np.zeros(40)
    impulse[20] = 1.0
    np.testing.assert_allclose(deconvolution.blur(impulse, kernel)[12:29], kernel, rtol=1e-14)
    x, r = rng.standard_normal(40), rng.standard_normal(40)
    assert deconvolution.blur(x, kernel) @ r == pytest.approx(x @ deconvolution.blur(r, kernel), rel=1e-12)
    np.testing.assert_allclose(deconvolution.blur_matrix(40, kernel) @ x, deconvolution.blur(x, kernel), atol=1e-14)


def test_difference_adjoint_is_the_transpose(rng):
    x, r = rng.standard_normal(20), rng.standard_normal(19)
    assert deconvolution.difference(x) @ r == pytest.approx(x @ deconvolution.difference_adjoint(r), rel=1e-12)


def test_deconvolution_gradient_and_exact_solution(rng):
    objective, kernel, y, _, alpha = deconvolution.make_problem(rng, n=60)
    x, direction = rng.standard_normal(60), rng.standard_normal(60)
    step = 1e-6
    slope = (objective(x + step * direction)[0] - objective(x - step * direction)[0]) / (2 * step)
    assert objective(x)[1] @ direction == pytest.approx(slope, rel=1e-6)
    x_exact = deconvolution.exact_solution(kernel, y, alpha)
    assert np.linalg.norm(objective(x_exact)[1]) < 1e-10 * np.linalg.norm(objective(np.zeros(60))[1])


@pytest.mark.slow
def test_sixteen_bit_storage_trains_on_the_rounded_numbers():
    """The precision study's bfloat16 parameters: the example computes with the rounded numbers."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from numadam.demo import mlp_digits
    from numadam.demo.storage import Storage

    storage = Storage("bfloat16 parameters, master weights", "bfloat16", {"master_weights": True})
    rng = np.random.default_rng(0)
    params = mlp_digits.init_params(rng)
    opt = storage.optimizer(params, 1e-2)
    for _ in range(3):
        opt.step({name: rng.standard_normal(value.shape).astype(np.float32) for name, value in params.items()})
    assert opt.step_count == 3
    for name, value in params.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, value.astype(ml_dtypes.bfloat16).astype(np.float32))
        np.testing.assert_array_equal(value, opt.stored[name].astype(np.float32))
    result = mlp_digits.run(quick=True, out=lambda *a: None, storage=Storage("int8", None, {"state_dtype": "int8"}))
    assert result.metrics["test_accuracy"] > 0.8
