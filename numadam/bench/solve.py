r"""``numadam bench --solve``: what a whole solve costs per iteration, compiled and in Python.

The problem is the one solvers embed: Adam (lr 1e-3) on the 10-parameter
Rosenbrock function, float64, a fixed number of iterations (``gtol=0``). The
contenders, timed together in one interleaved run
(:func:`~numadam.bench.timing.interleaved_medians`), per iteration:

- ``numadam.minimize`` with the objective as a Numba function: the compiled solve;
- the same with ``compiled=False``: the Python loop (fewer iterations: it is slow);
- a hand-written ``@njit`` loop calling ``numadam.jit.adam_step``: what a user
  can write without ``minimize``, with no stop rules or checks;
- optax's ``adam`` in a ``jax.jit``-compiled ``lax.fori_loop``, when jax and
  optax are installed (an optional contender; the CPU backend of XLA).

The compile time of the solve is counted apart: the first call in a process
compiles it, or loads it from the disk cache.
"""

import time

import numpy as np
from numba import njit

from .. import jit as jit_steps
from .timing import interleaved_medians

#: The issue's targets: the compiled solve's time over each contender's, at most (``None``: at least 50x faster).
TARGETS = {"Python loop": 1 / 50, "hand-written @njit loop": 1.3, "optax, jax.jit fori_loop": 1.0}


@njit
def rosenbrock(x):
    r""":math:`\sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2` and its gradient."""
    value = 0.0
    grad = np.zeros(x.size)
    for i in range(x.size - 1):
        rise = x[i + 1] - x[i] * x[i]
        gap = 1.0 - x[i]
        value += 100.0 * rise * rise + gap * gap
        grad[i] += -400.0 * rise * x[i] - 2.0 * gap
        grad[i + 1] += 200.0 * rise
    return value, grad


@njit
def hand_written_loop(x, iterations, lr):
    """Adam on :func:`rosenbrock` as a user writes it with ``numadam.jit`` (no stop rules, no checks)."""
    exp_avg, exp_avg_sq = np.zeros_like(x), np.zeros_like(x)
    value = 0.0
    for step in range(1, iterations + 1):
        value, grad = rosenbrock(x)
        jit_steps.adam_step(x, grad, exp_avg, exp_avg_sq, step, lr, 0.9, 0.999, 1e-8, 0.0)
    return value


class _Solve:
    """One contender: ``step()`` runs a whole solve of ``steps_per_call`` iterations from ``x0``."""

    def __init__(self, label, solve, iterations):
        self.label, self._solve, self.steps_per_call = label, solve, iterations

    def step(self):
        return self._solve()


def contenders(x0, iterations, lr=1e-3):
    """The contenders over ``x0`` (see the module docstring); optax's only where jax and optax import."""
    import numadam

    def minimize(fun, n, compiled):
        return numadam.minimize(fun, x0, jac=True, lr=lr, maxiter=n, gtol=0.0, compiled=compiled)

    python_iterations = max(1, iterations // 20)
    found = [
        _Solve("numadam.minimize, compiled", lambda: minimize(rosenbrock, iterations, True), iterations),
        _Solve("Python loop", lambda: minimize(rosenbrock.py_func, python_iterations, False), python_iterations),
        _Solve("hand-written @njit loop", lambda: hand_written_loop(x0.copy(), iterations, lr), iterations),
    ]
    optax_solve = _optax_solve(x0, iterations, lr)
    if optax_solve is not None:
        found.append(_Solve("optax, jax.jit fori_loop", optax_solve, iterations))
    return found


def _optax_solve(x0, iterations, lr):
    try:
        import jax
        import optax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def value(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    adam = optax.adam(lr)

    @jax.jit
    def solve(x):
        def body(_, carry):
            x, state = carry
            updates, state = adam.update(jax.grad(value)(x), state)
            return optax.apply_updates(x, updates), state

        return jax.lax.fori_loop(0, iterations, body, (x, adam.init(x)))[0]

    start = jnp.asarray(x0)
    solve(start).block_until_ready()
    return lambda: solve(start).block_until_ready()


def run(iterations=100_000, rounds=7, min_batch_seconds=0.0, progress=print):
    """Time the contenders; ``(rows, compile_seconds, same)``: ``(label, seconds per iteration)`` rows,
    the first compiled call's compile (or cache load) time, and whether the compiled solve took
    the Python loop's iterates bit for bit."""
    import numadam

    x0 = np.zeros(10)
    started = time.perf_counter()
    first = numadam.minimize(rosenbrock, x0, jac=True, lr=1e-3, maxiter=200, gtol=0.0, compiled=True)
    compile_seconds = first.compile_time
    progress(f"compiled solve ready after {time.perf_counter() - started:.2f} s "
             f"(compiling or loading {compile_seconds:.2f} s)")
    python = numadam.minimize(rosenbrock.py_func, x0, jac=True, lr=1e-3, maxiter=200, gtol=0.0, compiled=False)
    same = bool(np.array_equal(first.x, python.x) and np.array_equal(first.history, python.history))
    found = contenders(x0, iterations)
    for contender in found:
        contender.step()  # compiled and warm
    progress(f"timing {len(found)} contenders, {rounds} interleaved rounds")
    medians = interleaved_medians(found, rounds, min_batch_seconds)
    return [(c.label, seconds) for c, seconds in zip(found, medians)], compile_seconds, same


def markdown(rows, compile_seconds, same, iterations):
    """The table of :func:`run`: time per iteration, and the compiled solve's ratio to each contender."""
    compiled = rows[0][1]
    lines = [f"Adam (lr 1e-3) on the 10-parameter Rosenbrock function, float64, {iterations} iterations "
             f"(the Python loop {max(1, iterations // 20)}), per iteration. Compile or cache load of the solve, "
             f"apart: {compile_seconds:.2f} s. The compiled solve took the Python loop's iterates bit for bit: "
             f"{'yes' if same else 'NO'}.",
             "",
             "| loop | per iteration | whole solve | compiled solve × this | target |",
             "|---|---|---|---|---|"]
    for label, seconds in rows:
        ratio = compiled / seconds
        target = TARGETS.get(label)
        verdict = "" if target is None else f"≤ {target:g} {'✓' if ratio <= target else '✗'}"
        lines.append(f"| {label} | {seconds * 1e9:.0f} ns | {seconds * iterations * 1e3:.1f} ms "
                     f"| {ratio:.3g} | {verdict} |")
    return "\n".join(lines) + "\n"
