"""minimize compiled whole: the same iterates as the Python loop over ``fun.py_func``, bit for bit,
for every family and option; refusals that say why; objectives that return the wrong things."""

import math
import os
import pathlib
import re
import sys

import numpy as np
import pytest
from numba import njit
from scipy.optimize import Bounds

import numadam
from arrays import tiered
from numadam import schedules
from numadam.solver import compiled as compiled_solves


# -- objectives: float64 arithmetic on scalars, so Numba and Python compute the same bits -----------


@njit
def rosenbrock(x):
    """The Rosenbrock valley over consecutive pairs, and its gradient (float64)."""
    flat = x.reshape(-1)
    value = 0.0
    grad = np.zeros(flat.size)
    for i in range(flat.size - 1):
        a = np.float64(flat[i])
        b = np.float64(flat[i + 1])
        rise = b - a * a
        gap = 1.0 - a
        value += 100.0 * rise * rise + gap * gap
        grad[i] += -400.0 * rise * a - 2.0 * gap
        grad[i + 1] += 200.0 * rise
    return value, grad.reshape(x.shape)


@njit
def bowl_value(x, centre, scale):
    """:math:`s \\sum_i (x_i - c_i)^2`, with ``args=(centre, scale)``."""
    value = 0.0
    for i in range(x.size):
        gap = np.float64(x[i]) - centre[i]
        value += scale * gap * gap
    return value


@njit
def bowl_gradient(x, centre, scale):
    grad = np.empty(x.size)
    for i in range(x.size):
        grad[i] = 2.0 * scale * (np.float64(x[i]) - centre[i])
    return grad


@njit
def blows_up(x):
    """Finite while x[0] < 0.5, then NaN: the solve must stop and step back."""
    value, grad = rosenbrock(x)
    if x[0] >= 0.5:
        value = math.nan
    return value, grad


@njit
def float32_gradient(x):
    """A float32 gradient of a float32 value (cast to float64 and to x's dtype by the solver)."""
    grad = np.empty(x.size, np.float32)
    value = np.float32(0.0)
    for i in range(x.size):
        grad[i] = np.float32(2.0) * x[i]
        value += x[i] * x[i]
    return value, grad


@njit
def fortran_gradient(x):
    """The gradient in Fortran order (a layout the solve walks in C order, through a copy)."""
    value, grad = rosenbrock(x)
    return value, np.asfortranarray(grad)


@njit
def integer_gradient(x):
    """An integer gradient (cast to x's dtype by the solver)."""
    value, grad = rosenbrock(x)
    return value, np.round(grad).astype(np.int64)


def both(fun, x0, **options):
    """The compiled solve and the Python loop over ``fun.py_func`` with the same options."""
    jac = options.pop("jac", True)
    compiled = numadam.minimize(fun, x0, jac=jac, compiled=True, **options)
    python = numadam.minimize(fun.py_func, x0, jac=jac if jac is True else jac.py_func, compiled=False, **options)
    assert compiled.compiled and not python.compiled
    return compiled, python


def assert_same_solve(compiled, python):
    assert compiled.nit == python.nit and compiled.nfev == python.nfev and compiled.status == python.status
    assert compiled.message == python.message and compiled.success == python.success
    assert compiled.x.dtype == python.x.dtype and compiled.x.shape == python.x.shape
    np.testing.assert_array_equal(compiled.x, python.x)
    np.testing.assert_array_equal(compiled.jac, python.jac)
    np.testing.assert_array_equal(compiled.history, python.history)
    assert compiled.fun == python.fun or (math.isnan(compiled.fun) and math.isnan(python.fun))


X0 = np.array([-1.2, 1.0, -0.5, 0.8, 0.3, -0.9])


# -- every family, both dtypes ------------------------------------------------------------------------


#: The families the compiled solve takes: every one.
COMPILED_FAMILIES = list(numadam.families())


@pytest.mark.parametrize("dtype", tiered([np.float64, np.float32], lambda dtype: dtype == np.float64))
@pytest.mark.parametrize("name", tiered(COMPILED_FAMILIES, lambda name: name == "adam"))
def test_every_family_compiled_takes_the_python_loop_s_iterates(name, dtype):
    compiled, python = both(rosenbrock, X0.astype(dtype), method=name, lr=2e-3, maxiter=150, gtol=0.0)
    assert compiled.nit == 150 and compiled.status == 1
    assert_same_solve(compiled, python)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(2, 3), (3, 1, 2)])
def test_adafactor_compiled_takes_the_python_loop_s_iterates_over_matrices(shape):
    """A matrix and a batch of them keep row and column factors: the compiled solve steps them with
    the optimizer's one-call factored step (its factors' pass, norms and update)."""
    compiled, python = both(rosenbrock, X0.reshape(shape), method="adafactor", lr=2e-2, maxiter=150, gtol=0.0)
    assert compiled.nit == 150
    assert_same_solve(compiled, python)


@njit
def sparse_rows(x):
    """A bowl in the first row of a matrix only: the other rows' gradients are 0, their factors 0
    and their scales infinite, so the factors' pass leaves the norms to the norms pass."""
    value = 0.0
    grad = np.zeros_like(x)
    for j in range(x.shape[1]):
        gap = x[0, j] - 1.0
        value += gap * gap
        grad[0, j] = 2.0 * gap
    return value, grad


@pytest.mark.slow
def test_adafactor_compiled_runs_the_norms_pass_where_the_factors_pass_cannot():
    compiled, python = both(sparse_rows, np.full((3, 4), 0.5), method="adafactor", lr=1e-2, eps=(1e-3, 1e-3),
                            maxiter=60, gtol=0.0)
    assert compiled.nit == 60
    assert_same_solve(compiled, python)


@pytest.mark.slow
def test_adafactor_compiled_takes_the_python_loop_s_iterates_past_the_parallel_size():
    """Past 65536 elements the objects' factors' pass runs on every core (a vector's in chunks, their
    sums added in order); the compiled solve's one call sums in the same order on one thread."""
    rng = np.random.default_rng(0)
    for x0 in (rng.standard_normal(70_000) * 0.1, rng.standard_normal((300, 250)) * 0.1):
        compiled, python = both(rosenbrock, x0, method="adafactor", lr=1e-2, maxiter=3, gtol=0.0)
        assert_same_solve(compiled, python)


# -- the options -------------------------------------------------------------------------------------


CENTRE = np.array([1.0, -2.0, 0.5, 3.0])

OPTIONS = {
    "gtol": (rosenbrock, X0, {"lr": 0.05, "maxiter": 20000, "gtol": 1e-3}),
    "ftol": (rosenbrock, X0, {"lr": 1e-3, "maxiter": 5000, "ftol": 1e-4, "patience": 3}),
    "xtol": (rosenbrock, X0, {"lr": 1e-4, "maxiter": 5000, "xtol": 1e-3, "patience": 4}),
    "maxiter-0": (rosenbrock, X0, {"maxiter": 0}),
    "hyperparameters": (rosenbrock, X0, {"method": "adamw", "lr": 5e-3, "betas": (0.8, 0.99), "eps": 1e-6,
                                          "weight_decay": 0.1, "maximize": False, "maxiter": 200, "gtol": 0.0}),
    "keras": (rosenbrock, X0, {"lr": 5e-3, "convention": "keras", "maxiter": 200, "gtol": 0.0}),
    "clip-value": (rosenbrock, X0, {"lr": 1e-2, "clip": ("value", 0.5), "maxiter": 200, "gtol": 0.0}),
    "clip-norm": (rosenbrock, X0, {"lr": 1e-2, "clip": ("norm", 1.0), "maxiter": 200, "gtol": 0.0}),
    "clip-global-norm": (rosenbrock, X0, {"lr": 1e-2, "clip": ("global_norm", 0.7), "maxiter": 200,
                                          "gtol": 0.0}),
    "bounds-numbers": (rosenbrock, X0, {"lr": 1e-2, "bounds": [(-0.5, 0.5)] * 6, "maxiter": 300, "gtol": 1e-9}),
    "bounds-arrays": (rosenbrock, X0, {"lr": 1e-2, "maxiter": 300, "gtol": 1e-9,
                                       "bounds": Bounds([-1, -1, 0, 0, -2, -2.0], [0, 2, 1, 1, 0.1, 3])}),
    "nonneg": (rosenbrock, X0, {"lr": 1e-2, "nonneg": True, "maxiter": 300, "gtol": 0.0}),
    "amsgrad": (rosenbrock, X0, {"lr": 1e-2, "amsgrad": True, "maxiter": 200, "gtol": 0.0}),
    "sgd-momentum": (rosenbrock, X0, {"method": "sgd", "lr": 1e-4, "momentum": 0.9, "nesterov": True,
                                      "maxiter": 200, "gtol": 0.0}),
    "rmsprop-centered-momentum": (rosenbrock, X0.astype(np.float32), {
        "method": "rmsprop", "lr": 1e-3, "centered": True, "momentum": 0.5, "maxiter": 200, "gtol": 0.0}),
    "adafactor-options": (rosenbrock, X0.reshape(3, 2).astype(np.float32), {
        "method": "adafactor", "lr": 1e-2, "weight_decay": 0.01, "d": 1.5, "beta2_decay": -0.6, "eps": (1e-4, 1e-3),
        "bounds": Bounds(-0.5, 0.5), "schedule": schedules.CosineDecay(2e-2, 150, 1e-3), "maxiter": 150,
        "gtol": 1e-9}),
    "lamb-options": (rosenbrock, X0.astype(np.float32), {
        "method": "lamb", "lr": 1e-2, "weight_decay": 0.01, "convention": "apex", "clip": ("norm", 2.0),
        "bounds": [(-0.5, 0.5)] * 6, "schedule": schedules.ExponentialDecay(1e-2, gamma=0.995), "maxiter": 200,
        "gtol": 1e-9}),
    "step-decay": (rosenbrock, X0, {"schedule": schedules.StepDecay(1e-2, step_size=7, gamma=0.7), "maxiter": 100,
                                    "gtol": 0.0}),
    "exponential": (rosenbrock, X0, {"schedule": schedules.ExponentialDecay(1e-2, gamma=0.99), "maxiter": 100,
                                     "gtol": 0.0}),
    "cosine-warmup": (rosenbrock, X0, {"schedule": schedules.LinearWarmup(schedules.CosineDecay(1e-2, 60, 1e-4), 9),
                                       "maxiter": 100, "gtol": 0.0}),
    "constant": (rosenbrock, X0, {"schedule": schedules.Constant(3e-3), "maxiter": 100, "gtol": 0.0}),
    "args-and-jac": (bowl_value, np.zeros(4), {"jac": bowl_gradient, "args": (CENTRE, 0.5), "lr": 0.1,
                                               "maxiter": 3000, "gtol": 1e-6}),
    "two-dimensional-x": (rosenbrock, X0.reshape(2, 3), {"lr": 1e-2, "maxiter": 100, "gtol": 0.0}),
    "float32-objective": (float32_gradient, np.linspace(-1, 1, 5).astype(np.float32), {"lr": 0.05, "maxiter": 100,
                                                                                        "gtol": 0.0}),
    "fortran-gradient": (fortran_gradient, X0.reshape(2, 3), {"lr": 1e-2, "maxiter": 100, "gtol": 0.0}),
    "integer-gradient": (integer_gradient, X0.astype(np.float32), {"lr": 1e-2, "maxiter": 100, "gtol": 0.0}),
    "float64-gradient-bounds-float32-x": (rosenbrock, X0.astype(np.float32), {
        "lr": 1e-2, "bounds": [(-0.5, 0.5)] * 6, "maxiter": 200, "gtol": 1e-9}),
    "non-finite": (blows_up, np.zeros(4), {"lr": 0.05, "maxiter": 1000, "gtol": 0.0}),
    "non-finite-at-x0": (blows_up, np.ones(4), {"maxiter": 10}),
}


@pytest.mark.parametrize("case", tiered(sorted(OPTIONS), lambda case: case == "clip-norm"))
def test_each_option_compiled_takes_the_python_loop_s_iterates(case):
    fun, x0, options = OPTIONS[case]
    given = x0.copy()
    compiled, python = both(fun, x0, **options)
    assert_same_solve(compiled, python)
    np.testing.assert_array_equal(x0, given)  # x0 is never written
    if case == "non-finite":
        assert compiled.status == 4 and 0 < compiled.nit < 1000 and "returning the last finite iterate" in compiled.message
    if case == "non-finite-at-x0":
        assert compiled.status == 4 and compiled.nit == 0 and compiled.message.endswith("returning x0")
    if case in ("gtol", "ftol", "xtol"):
        assert compiled.status == {"gtol": 0, "ftol": 2, "xtol": 3}[case] and compiled.success


@pytest.mark.parametrize("case", tiered(["gtol", "non-finite", "bounds-numbers"], lambda case: case == "non-finite"))
def test_a_history_that_grows_past_its_first_capacity_takes_the_python_loop_s_values(case, monkeypatch):
    """The compiled history starts at HISTORY_CAPACITY values and doubles: made tiny here, it grows
    many times in one solve."""
    monkeypatch.setattr(compiled_solves, "HISTORY_CAPACITY", 4)
    fun, x0, options = OPTIONS[case]
    compiled, python = both(fun, x0, **options)
    assert compiled.nit > 8  # grown from 4 to 8 to 16 values
    assert_same_solve(compiled, python)


@njit
def nan_at_evaluation(x, count, when, where):
    """The Rosenbrock valley, counting its evaluations in ``count[0]``; evaluation ``when`` returns a
    NaN value (``where`` 0) or a NaN in its gradient (``where`` 1): a candidate refused at a chosen
    iteration."""
    count[0] += 1
    value, grad = rosenbrock(x)
    if count[0] == when:
        if where == 0:
            value = math.nan
        else:
            grad[grad.size - 1] = math.nan
    return value, grad


def _stops(fun, x0, args, **options):
    """The compiled solve and the Python loop, ``args``' first array (a count) zeroed before each."""
    solves = []
    for compiled in (True, False):
        args[0][:] = 0
        solves.append(numadam.minimize(fun if compiled else fun.py_func, x0, jac=True, args=args, compiled=compiled,
                                       **options))
    return solves


def test_every_stop_from_an_even_and_an_odd_iterate_takes_the_python_loop_s_solve():
    """The compiled loop alternates two pairs of (gradient, previous iterate) arrays, one for the
    iterates of even and one for those of odd iteration counts (:data:`compiled_solves._TEMPLATE`):
    each rule stops it from both, with the Python loop's iterate, gradient and history."""
    parities = {}
    for when in range(2, 8):  # the candidate of iteration when - 1 is refused
        for where in (0, 1):
            compiled, python = _stops(nan_at_evaluation, X0, (np.zeros(1, np.int64), when, where), lr=1e-2,
                                      maxiter=50, gtol=0.0)
            assert_same_solve(compiled, python)
            assert compiled.status == 4 and compiled.nit == when - 2
            parities.setdefault("non-finite", set()).add(compiled.nit % 2)
    for maxiter in range(1, 7):
        compiled, python = both(rosenbrock, X0, lr=1e-2, maxiter=maxiter, gtol=0.0)
        assert_same_solve(compiled, python)
        parities.setdefault("maxiter", set()).add(compiled.nit % 2)
    rules = [("xtol", {"xtol": 8e-5, "patience": patience, "lr": 1e-4}) for patience in (1, 2)]
    rules += [("ftol", {"ftol": tolerance, "patience": 1, "lr": 1e-4}) for tolerance in (3e-5, 2e-5, 1e-5)]
    rules += [("gtol", {"gtol": tolerance, "lr": 0.05}) for tolerance in (9.0, 6.0, 4.5, 3.0)]
    for rule, options in rules:
        compiled, python = both(rosenbrock, X0, maxiter=20000, **options)
        assert_same_solve(compiled, python)
        assert compiled.status == {"gtol": 0, "ftol": 2, "xtol": 3}[rule]
        parities.setdefault(rule, set()).add(compiled.nit % 2)
    assert parities == dict.fromkeys(("non-finite", "maxiter", "xtol", "ftol", "gtol"), {0, 1})


@pytest.mark.slow
def test_the_options_change_the_solve():
    """The option cases are not all the plain solve (each option reaches the compiled code)."""
    plain = numadam.minimize(rosenbrock, X0, jac=True, lr=1e-2, maxiter=200, gtol=0.0, compiled=True)
    for case in ("clip-value", "clip-norm", "nonneg"):
        fun, x0, options = OPTIONS[case]
        res = numadam.minimize(fun, x0, jac=True, compiled=True, **options)
        assert not np.array_equal(res.x[:6], plain.x), case


# -- choosing the compiled path, and refusing it -----------------------------------------------------------


def test_compiled_none_compiles_numba_objectives_and_runs_python_ones_in_python():
    assert numadam.minimize(rosenbrock, X0, jac=True, maxiter=5).compiled
    assert not numadam.minimize(rosenbrock.py_func, X0, jac=True, maxiter=5).compiled
    assert not numadam.minimize(rosenbrock, X0, jac=True, maxiter=5, callback=lambda x: None).compiled
    assert not numadam.minimize(rosenbrock, X0, jac=True, maxiter=5, compiled=False).compiled


REFUSALS = {
    "a Python fun": ({"fun": rosenbrock.py_func}, "fun is not a Numba function"),
    "a Python jac": ({"fun": bowl_value, "jac": bowl_gradient.py_func, "args": (CENTRE, 1.0), "x0": np.zeros(4)},
                     "jac is not a Numba function"),
    "a callback": ({"callback": lambda x: None}, "a callback is Python code"),
    "progress": ({"progress": True}, "progress=True"),
    "skip": ({"nonfinite": "skip"}, "nonfinite='skip'"),
    "a callable clip": ({"clip": np.sign}, "a callable clip is Python code"),
    "ReduceOnPlateau": ({"schedule": schedules.ReduceOnPlateau(1e-3)}, "the schedule ReduceOnPlateau(lr=0.001"),
    "an optimizer option": ({"clip_value": 1.0}, "the option clip_value=1.0"),
    "a Python callback": ({"callback": print}, "a callback is Python code"),
    "complex x0": ({"x0": X0.astype(np.complex128)}, "x0 is not a real NumPy array"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_compiled_true_says_why_a_solve_cannot_compile(case):
    given, reason = REFUSALS[case]
    arguments = {"fun": rosenbrock, "x0": X0, "jac": True, "maxiter": 3, **given}
    with pytest.raises(TypeError, match="compiled=True: the solve cannot compile: " + re.escape(reason)):
        numadam.minimize(compiled=True, **arguments)


def test_compiled_must_be_none_true_or_false():
    with pytest.raises(TypeError, match="compiled must be None .* got 'yes'"):
        numadam.minimize(rosenbrock, X0, jac=True, compiled="yes")


# -- objectives that return the wrong things ----------------------------------------------------------------


@njit
def value_only(x):
    return float(x[0] ** 2)


@njit
def complex_value(x):
    return 1j * x[0], 2 * x


@njit
def matrix_gradient(x):
    return 1.0, np.zeros((x.size, 1))


@njit
def short_gradient(x):
    return 1.0, np.zeros(x.size - 1)


BAD_OBJECTIVES = {
    "no pair": (value_only, TypeError, "with jac=True, fun must return (value, gradient): a real scalar and a real "
                                       "array of 1 dimension (x's shape (6,)); it returns float64"),
    "complex value": (complex_value, TypeError, "fun must return a real scalar as its value; it returns complex128"),
    "2-D gradient": (matrix_gradient, TypeError, "the gradient must be a real array of 1 dimension (x's shape (6,)); "
                                                "fun returns array(float64, 2d, C)"),
    "short gradient": (short_gradient, ValueError, "the gradient must have x's shape (6,); got shape (5,)"),
}


@pytest.mark.parametrize("case", sorted(BAD_OBJECTIVES))
def test_an_objective_returning_the_wrong_things_is_refused_before_the_loop(case):
    fun, error, message = BAD_OBJECTIVES[case]
    x0 = X0.copy()
    with pytest.raises(error, match=re.escape(message)):
        numadam.minimize(fun, x0, jac=True, compiled=True)
    np.testing.assert_array_equal(x0, X0)


# -- the disk cache ------------------------------------------------------------------------------------------


SCRIPT = """
import numpy as np, numba, numadam
from numadam.solver import compiled
from objective import valley
res = numadam.minimize(valley, np.zeros(3), jac=True, lr=0.01, maxiter=50, gtol=0.0, compiled=True)
solve = list(compiled._LOADED.values())[0]
print(repr(float(res.x[0])), sum(solve.stats.cache_hits.values()))
"""

OBJECTIVE = """
import os
import numpy as np, numba

DATA = np.full(3, float(os.environ.get("SHIFT", "0")))  # a global array: Numba freezes it into the code


@numba.njit
def valley(x):
    return float(((x - {target} - DATA) ** 2).sum()), 2 * (x - {target} - DATA)
"""


@pytest.mark.subprocess
def test_a_new_process_loads_the_compiled_solve_and_an_edited_objective_or_new_data_compiles_anew(tmp_path):
    import subprocess
    import sys

    (tmp_path / "objective.py").write_text(OBJECTIVE.format(target=1.0))
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**__import__("os").environ, "NUMADAM_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def run():
        done = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True)
        x, hits = done.stdout.split()
        return float(x), int(hits)

    first, hits = run()
    assert hits == 0
    again, hits = run()
    assert hits == 1 and again == first  # the machine code came from the disk
    (tmp_path / "objective.py").write_text(OBJECTIVE.format(target=-1.0))
    edited, hits = run()
    assert hits == 0 and edited < 0 < first  # the edit compiled anew
    env["SHIFT"] = "5"
    shifted, hits = run()
    assert hits == 0 and shifted > first  # other data in a global array: compiled anew, not the old array


EDITING_SCRIPT = """
import pathlib
import numpy as np, numadam
from numadam.solver import compiled
from objective import valley
pathlib.Path("objective.py").write_text(pathlib.Path("edited.txt").read_text())  # after the import
res = numadam.minimize(valley, np.zeros(3), jac=True, lr=0.01, maxiter=50, gtol=0.0, compiled=True)
solve = list(compiled._LOADED.values())[0]
print(repr(float(res.x[0])), sum(solve.stats.cache_hits.values()))
"""


@pytest.mark.subprocess
def test_an_objective_edited_after_its_import_keys_the_code_that_ran_not_the_file(tmp_path):
    """A process runs the objective it imported; its file, edited since, must not key that code,
    or the next process, importing the edit, would load the old machine code."""
    import subprocess
    import sys

    (tmp_path / "objective.py").write_text(OBJECTIVE.format(target=1.0))
    (tmp_path / "edited.txt").write_text(OBJECTIVE.format(target=-1.0))
    (tmp_path / "editing.py").write_text(EDITING_SCRIPT)
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**__import__("os").environ, "NUMADAM_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def run(script):
        done = subprocess.run([sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True)
        x, hits = done.stdout.split()
        return float(x), int(hits)

    imported, hits = run("editing.py")
    assert hits == 0 and imported > 0  # the code it imported (target 1), though the file now says -1
    edited, hits = run("run.py")
    assert hits == 0 and edited < 0  # the edit, compiled anew: not the machine code saved above
    again, hits = run("run.py")
    assert hits == 1 and again == edited


def test_a_numadam_source_changed_after_the_import_keeps_compiled_solves_off_the_disk(monkeypatch):
    """Where a file of numadam changed after this process imported it, the code this process runs
    may not be the file's: its solves compile here, and are neither saved nor loaded."""
    from numadam.targets import fingerprint

    compiled = compiled_solves
    assert compiled._numadam_sources_digest.__wrapped__() is not None
    changed = str(pathlib.Path(compiled.__file__).with_name("rules.py"))
    real = fingerprint.changed_since_import
    seen = []

    def changed_since_import(status):
        seen.append(status)
        return status.st_ino == os.stat(changed).st_ino or real(status)

    monkeypatch.setattr(fingerprint, "changed_since_import", changed_since_import)
    assert compiled._numadam_sources_digest.__wrapped__() is None and seen
    monkeypatch.setattr(compiled, "_numadam_sources_digest", lambda: None)
    monkeypatch.setattr(compiled, "_cached_solve", lambda *args: pytest.fail("a solve went to the disk cache"))
    solve = compiled._dispatcher("def solve(x):\n    return x\n", squares, None)
    assert solve.py_func.__code__.co_filename == "<numadam compiled solve>"


@njit
def squares(x):
    return float((x * x).sum()), 2 * x


SCALE = 2.0  # a global number: Numba freezes it into the code


@njit
def scaled_squares(x):
    return float((SCALE * x * x).sum()), 2 * SCALE * x


def test_the_objective_s_key_holds_its_code_defaults_options_and_the_global_numbers_it_reads(monkeypatch):
    """The key of a solve's objective is the code this process runs, its default arguments, its
    dispatcher's options and the global values Numba freezes into it: another number, default,
    option or code is another key; the same, the same key."""
    digest = compiled_solves._objective_digest
    first = digest([scaled_squares])
    assert digest([scaled_squares]) == first and digest([squares]) != first
    monkeypatch.setattr(sys.modules[__name__], "SCALE", 3.0)
    assert digest([scaled_squares]) != first
    monkeypatch.setattr(sys.modules[__name__], "SCALE", 2.0)
    assert digest([scaled_squares]) == first
    assert digest([njit(fastmath=True)(scaled_squares.py_func)]) != first
    monkeypatch.setattr(scaled_squares.py_func, "__defaults__", (1.0,))
    assert digest([scaled_squares]) != first


@njit
def one_element_value(x):
    """A value as a one-element array (the Python loop takes it; a compiled solve does not)."""
    value = np.zeros(1)
    value[0] = np.sum(x * x)
    return value, 2 * x


def test_what_only_the_python_loop_takes_runs_there_unless_compiled_is_demanded():
    x0 = np.asfortranarray(np.arange(6.0).reshape(2, 3))  # F order: the compiled solve walks x in C order
    for fun, x, reason in ((squares, x0, "x0 is not in C order"),
                           (one_element_value, X0, "a compiled solve takes a real scalar value")):
        res = numadam.minimize(fun, x, jac=True, lr=1e-2, maxiter=20)
        assert not res.compiled and res.nit == 20
        with pytest.raises(TypeError, match=re.escape(reason)):
            numadam.minimize(fun, x, jac=True, compiled=True)


def test_an_objective_without_a_file_compiles_once_per_process():
    def make(target):
        @njit
        def bowl(x):
            return float(((x - target) ** 2).sum()), 2 * (x - target)
        return bowl

    bowl = make(2.0)  # a closure: no module-level name, so no disk cache
    first = numadam.minimize(bowl, np.zeros(3), jac=True, lr=0.1, maxiter=50, compiled=True)
    again = numadam.minimize(bowl, np.ones(3), jac=True, lr=0.2, maxiter=60, compiled=True)
    assert first.compile_time > 0 and again.compile_time == 0.0 and again.nit == 60


def test_minimize_checks_its_optimizer_without_making_its_state():
    """numadam.minimize's optimizer is checked whole at once, but its state and plan are made only
    for the Python loop (a compiled solve keeps its own): the same steps either way."""
    x = X0.copy()
    deferred = numadam.Adam._checked_without_state(x, lr=1e-2, weight_decay=0.1)
    assert deferred._engine.buckets is None
    with pytest.raises(ValueError, match="lr"):
        numadam.Adam._checked_without_state(X0.copy(), lr=-1.0)
    deferred._install_state()
    eager = numadam.Adam(X0.copy(), lr=1e-2, weight_decay=0.1)
    y = eager.params
    for k in range(3):
        g = np.cos(np.arange(6.0) + k)
        deferred.step(g)
        eager.step(g)
    np.testing.assert_array_equal(x, y)
    python = numadam.minimize(rosenbrock.py_func, X0, jac=True, lr=1e-2, maxiter=30, compiled=False)
    assert python.nit == 30  # the Python loop made the state before stepping


@pytest.mark.slow  # 12 s of compiling Prodigy's two passes into a solve: the full tier's
@pytest.mark.parametrize("options", [{}, {"betas": (0.0, 0.999), "weight_decay": 0.1, "decouple": False,
                                          "bounds": Bounds(-1.0, 0.9)}])
def test_prodigy_compiled_needs_no_lr_and_takes_the_objects_steps(options):
    """Prodigy's d moves between its two passes: the compiled solve steps it through numadam.jit's
    prodigy_step (the sums over the one iterate are the whole optimizer's), with its default lr
    of 1: the Python loop's iterates bit for bit, and numadam.Prodigy's own."""
    compiled = numadam.minimize(rosenbrock, X0.copy(), jac=True, method="prodigy", maxiter=300, gtol=0.0,
                                compiled=True, **options)
    python = numadam.minimize(rosenbrock, X0.copy(), jac=True, method="prodigy", maxiter=300, gtol=0.0,
                              compiled=False, **options)
    assert compiled.compiled and not python.compiled and compiled.nit == 300
    assert_same_solve(compiled, python)
    assert compiled.fun < rosenbrock(X0)[0]
    if not options:
        x = X0.copy()
        opt = numadam.Prodigy(x)
        for _ in range(300):
            opt.step(rosenbrock(x)[1])
        np.testing.assert_array_equal(python.x, x)
