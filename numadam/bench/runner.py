"""One benchmark run: for each case and variant, build, check, then time every contender.

Before anything is timed, every contender takes two steps from the same
parameters with two different gradients (one step from zero state moves every
element by about ``lr`` whatever the betas, so it would hide a wrong update);
its parameters must then agree with numadam's, or it is reported as wrong and
not timed. Then all contenders are timed together, by the platform's timer:
:func:`~numadam.bench.timing.interleaved_medians` on the CPU,
:func:`~numadam.bench.cuda_timing.cuda_interleaved_medians` on a GPU.
"""

from functools import partial
from typing import Callable, NamedTuple

import numba
import numpy as np

import numadam

from .cases import LR, VARIANTS, Case, Variant
from .contenders import (NumadamAlgorithm, NumadamFunctional, NumadamObject, NumadamWithReduction, NumpyInPlace,
                         NumpyNaive, Problem, SameTrafficFlat, SameTrafficPerArray)
from .frameworks import DeepSpeedAdam, NumadamOnTensors, OptaxAdam, TorchAdam, Unavailable
from .timing import interleaved_medians


class Result(NamedTuple):
    """One row of the table: ``seconds`` per step, or ``None`` and the reason.

    On a GPU, ``seconds`` is the device time per step of many queued steps
    (CUDA events); ``wall_queued`` is the host's time per step over the same
    queued steps, ``wall_synchronized`` that of one step waited for.
    """

    case: Case
    variant: Variant
    label: str
    role: str  # "numadam", "roofline", "copy" or "other"
    seconds: float | None
    note: str = ""
    wrong: bool = False
    wall_queued: float | None = None
    wall_synchronized: float | None = None


def contender_builders(case):
    """``(label, role, build)`` for every contender of ``case``; ``build(problem, variant)``."""
    if case.name == "dask":
        from .dask_contenders import NumadamOnDask

        return [("numadam", "numadam", NumadamObject),
                ("numadam on Dask", "other", NumadamOnDask),
                ("numadam on Dask, 4 steps in flight", "other", partial(NumadamOnDask, in_flight=4)),
                ("same-traffic kernel, parallel", "roofline", partial(SameTrafficFlat, parallel=True))]
    builders = [
        ("numadam", "numadam", NumadamObject),
        ("numadam.adam_step", "other", NumadamFunctional),
        ("same-traffic kernel, parallel", "roofline", partial(SameTrafficFlat, parallel=True)),
        ("same-traffic kernel, serial", "roofline", partial(SameTrafficFlat, parallel=False)),
    ]
    if not case.single:
        builders.append(("same-traffic kernel, one call per array", "other", SameTrafficPerArray))
    if case.name == "small":  # what a call costs: every algorithm's, and the reduction pre-pass's
        builders.append(("numadam, clip_global_norm + nonfinite='skip'", "other", NumadamWithReduction))
        builders += [(f"numadam {cls.__name__}", "other", partial(_in_adam_variant, NumadamAlgorithm, method=name))
                     for name, cls in numadam.families().items() if name not in ("adam", "adamw")]
    builders += [
        ("NumPy in place", "other", NumpyInPlace),
        ("NumPy naive", "other", NumpyNaive),
        ("torch fused", "other", partial(TorchAdam, mode="fused")),
        ("torch foreach", "other", partial(TorchAdam, mode="foreach")),
        ("DeepSpeedCPUAdam", "other", DeepSpeedAdam),
        ("numadam, convention='deepspeed'", "other", partial(NumadamObject, convention="deepspeed")),
        ("numadam on torch tensors", "other", NumadamOnTensors),
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
            wide = np.result_type(actual.dtype, np.float64)
            worst = float(np.max(np.abs(actual.astype(wide) - expected)))
            return f"array {k} differs from numadam's by up to {worst:.3g} after two steps"
    return None


def _random_arrays(rng, case):
    if case.dtype.kind == "c":
        real = case.dtype.type(0).real.dtype
        return [rng.standard_normal(shape + (2,), dtype=real).view(case.dtype)[..., 0] for shape in case.shapes]
    return [rng.standard_normal(shape, dtype=case.dtype) for shape in case.shapes]


def _cpu_timer(contenders, rounds, min_batch_seconds, seed):
    return [(seconds, None, None) for seconds in interleaved_medians(contenders, rounds, min_batch_seconds, seed)]


def _cpu_assign(arrays, values):
    for array, value in zip(arrays, values):
        array[...] = value


class Platform(NamedTuple):
    """Where contenders run: who they are, how they are timed, where the gradients live.

    ``timer(contenders, rounds, min_batch_seconds, seed)`` returns one
    ``(seconds, wall_queued, wall_synchronized)`` per contender;
    ``gradients(host arrays)`` makes the arrays every contender reads and
    ``assign(arrays, host arrays)`` refills them; ``release()`` runs after each
    variant, when its contenders are gone.
    """

    builders: Callable
    timer: Callable
    gradients: Callable
    assign: Callable
    xp: object = np
    release: Callable = lambda: None


CPU = Platform(contender_builders, _cpu_timer, lambda arrays: [a.copy() for a in arrays], _cpu_assign)


class NotApplicable(Exception):
    """This contender has no row in this variant (the table leaves it out, with no note)."""


def _in_adam_variant(build, problem, variant, **options):
    """``build(problem, variant, **options)`` in the ``adam`` variant only: another algorithm's row."""
    if variant.name != "adam":
        raise NotApplicable
    return build(problem, variant, **options)


def run_case(case, rounds, min_batch_seconds, seed=0, progress=None, platform=CPU):
    """Check and time every contender of ``case`` for every variant; a list of :class:`Result`."""
    rng = np.random.default_rng(seed)
    params, first_grads, second_grads = (_random_arrays(rng, case) for _ in range(3))
    problem = Problem(params, platform.gradients(first_grads), case.single, platform.xp)
    results = []
    for variant in VARIANTS:
        if progress:
            progress(f"{case.name} / {variant.name}")
        platform.assign(problem.grads, first_grads)
        results += _run_variant(case, problem, variant, second_grads, rounds, min_batch_seconds, seed, platform)
        platform.release()
    return results


def _run_variant(case, problem, variant, second_grads, rounds, min_batch_seconds, seed, platform):
    """Build the contenders, check their second step against numadam's, time the ones that agree.

    A contender other than numadam whose construction or first step raises is
    reported as not timed, with the error, and the run goes on.
    """
    results, built = [], []
    for label, role, build in platform.builders(case):
        try:
            contender = build(problem, variant)
            if role != "numadam":
                contender.check_step()
        except NotApplicable:
            continue
        except Unavailable as reason:
            results.append(Result(case, variant, label, role, None, str(reason)))
            continue
        except Exception as error:  # noqa: BLE001 -- one broken contender must not end the run
            if role == "numadam":
                raise
            results.append(Result(case, variant, label, role, None, f"raised {type(error).__name__}: {error}"))
            continue
        if role == "numadam":
            contender.check_step()
        built.append((label, role, contender))
    platform.assign(problem.grads, second_grads)
    for _, _, contender in built:
        contender.reload_grads()
        contender.check_step()
    reference = built[0][2].parameters()
    timed = []
    for label, role, contender in built:
        why = disagreement(reference, contender.parameters(), case.dtype) if contender.checked else None
        if why:
            results.append(Result(case, variant, label, role, None, why, wrong=True))
        else:
            timed.append((label, role, contender))
    timings = platform.timer([contender for _, _, contender in timed], rounds, min_batch_seconds, seed)
    return results + [Result(case, variant, label, role, seconds, wall_queued=queued, wall_synchronized=synced)
                      for (label, role, _), (seconds, queued, synced) in zip(timed, timings)]


def set_threads(threads):
    """Use ``threads`` Numba threads (torch follows Numba); ``None`` keeps them all."""
    available = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        threads = available
    if not 1 <= threads <= available:
        raise ValueError(f"threads must be between 1 and {available} (NUMBA_NUM_THREADS); got {threads}")
    numba.set_num_threads(threads)
    return threads
