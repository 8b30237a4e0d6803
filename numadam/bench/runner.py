"""One benchmark run: for each case and variant, build, check, then time every contender.

Before anything is timed, every contender takes two steps from the same
parameters with two different gradients (one step from zero state moves every
element by about ``lr`` whatever the betas, so it would hide a wrong update);
its parameters must then agree with numadam's, or it is reported as wrong and
not timed. Then all contenders are timed together by
:func:`~numadam.bench.timing.interleaved_medians`.
"""

from functools import partial
from typing import NamedTuple

import numba
import numpy as np

from .cases import LR, VARIANTS, Case, Variant
from .contenders import (NumadamFunctional, NumadamObject, NumpyInPlace, NumpyNaive, Problem,
                         SameTrafficFlat, SameTrafficPerArray)
from .frameworks import OptaxAdam, TorchAdam, Unavailable
from .timing import interleaved_medians


class Result(NamedTuple):
    """One row of the table: ``seconds`` per step, or ``None`` and the reason."""

    case: Case
    variant: Variant
    label: str
    role: str  # "numadam", "roofline" or "other"
    seconds: float | None
    note: str = ""
    wrong: bool = False


def contender_builders(case):
    """``(label, role, build)`` for every contender of ``case``; ``build(problem, variant)``."""
    builders = [
        ("numadam", "numadam", NumadamObject),
        ("numadam.adam_step", "other", NumadamFunctional),
        ("same-traffic kernel, parallel", "roofline", partial(SameTrafficFlat, parallel=True)),
        ("same-traffic kernel, serial", "roofline", partial(SameTrafficFlat, parallel=False)),
    ]
    if not case.single:
        builders.append(("same-traffic kernel, one call per array", "other", SameTrafficPerArray))
    builders += [
        ("NumPy in place", "other", NumpyInPlace),
        ("NumPy naive", "other", NumpyNaive),
        ("torch fused", "other", partial(TorchAdam, mode="fused")),
        ("torch foreach", "other", partial(TorchAdam, mode="foreach")),
        ("optax (jax.jit)", "other", OptaxAdam),
    ]
    return builders


def disagreement(reference, candidate, dtype):
    """Why ``candidate`` parameters differ from numadam's ``reference``, or ``None``.

    The tolerance is a thousandth of a step (``1e-3 * lr``) plus 8 epsilons relative: far
    below what a wrong beta, bias correction or decay changes, far above
    rounding differences between correct implementations.
    """
    rtol = 8 * np.finfo(dtype).eps
    atol = 1e-3 * LR
    for k, (expected, actual) in enumerate(zip(reference, candidate)):
        expected, actual = np.asarray(expected).ravel(), np.asarray(actual).ravel()
        if not np.allclose(actual, expected, rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(actual.astype(np.float64) - expected)))
            return f"array {k} differs from numadam's by up to {worst:.3g} after two steps"
    return None


def _random_arrays(rng, case):
    return [rng.standard_normal(shape, dtype=case.dtype) for shape in case.shapes]


def run_case(case, rounds, min_batch_seconds, seed=0, progress=None):
    """Check and time every contender of ``case`` for every variant; a list of :class:`Result`."""
    rng = np.random.default_rng(seed)
    params, first_grads, second_grads = (_random_arrays(rng, case) for _ in range(3))
    problem = Problem(params, [g.copy() for g in first_grads], case.single)
    results = []
    for variant in VARIANTS:
        if progress:
            progress(f"{case.name} / {variant.name}")
        for grad, first in zip(problem.grads, first_grads):
            grad[...] = first
        results += _run_variant(case, problem, variant, second_grads, rounds, min_batch_seconds, seed)
    return results


def _run_variant(case, problem, variant, second_grads, rounds, min_batch_seconds, seed):
    """Build the contenders, check their second step against numadam's, time the ones that agree."""
    results, built = [], []
    for label, role, build in contender_builders(case):
        try:
            built.append((label, role, build(problem, variant)))
        except Unavailable as reason:
            results.append(Result(case, variant, label, role, None, str(reason)))
    for _, _, contender in built:
        contender.step()
    for grad, second in zip(problem.grads, second_grads):
        grad[...] = second
    for _, _, contender in built:
        contender.reload_grads()
        contender.step()
    reference = built[0][2].parameters()
    timed = []
    for label, role, contender in built:
        why = disagreement(reference, contender.parameters(), case.dtype) if contender.checked else None
        if why:
            results.append(Result(case, variant, label, role, None, why, wrong=True))
        else:
            timed.append((label, role, contender))
    medians = interleaved_medians([contender for _, _, contender in timed], rounds, min_batch_seconds, seed)
    return results + [Result(case, variant, label, role, seconds) for (label, role, _), seconds in zip(timed, medians)]


def set_threads(threads):
    """Use ``threads`` Numba threads (torch follows Numba); ``None`` keeps them all."""
    available = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        threads = available
    if not 1 <= threads <= available:
        raise ValueError(f"threads must be between 1 and {available} (NUMBA_NUM_THREADS); got {threads}")
    numba.set_num_threads(threads)
    return threads
