"""Kahan-compensated 16-bit parameters (``compensation="kahan"``).

Two kinds of check:

- **bits**: every family's step on float16 and bfloat16 parameters with the
  compensation equals test_precision's reference, whose store is
  :func:`test_precision.kahan_store` (Kahan's summation written out in
  NumPy), parameter and compensation bit for bit;
- **accuracy** (issue 57's test): bfloat16 parameters of order 1 (uniform in
  [-1, 1], where a plain bfloat16 run keeps 1.5% of them equal, the issue's
  figure) stepped 1000 times with lr 1e-3 and gradients N(0.5, 1), so that a
  plain bfloat16 step rarely moves them, against a float64 run of the same
  updates. At least 97% of
  the parameters equal that run rounded to bfloat16, and every one lies within
  one bfloat16 ulp of it, the ulp taken at max(|x|, 2^-6).

"The same updates": the float64 run keeps the family's state (the moments,
which do not depend on the parameters here) in float32, as the kernels do, and
adds each step's float32 update direction to float64 parameters, its decoupled
decay computed in float64. A float64 run that also computed the state in
float64 would take other signs for Lion wherever its momentum is near zero,
and so measure Lion's sensitivity rather than the rounding of the parameters.
"""

import numpy as np
import pytest

import numadam
from arrays import tiered
from reference import REFERENCES
from repo_scripts import script
from test_families import CASES, case_id, hyperparameters, initial_state
from test_precision import SIXTEEN_BITS, BFLOAT16, LR, Reference, assert_bits_equal, gradients, parameters

#: The accuracy test's size, steps, learning rate and gradients' mean (issue 57).
SIZE, STEPS, ACCURACY_LR, GRADIENT_MEAN = 20000, 1000, 1e-3, 0.5
#: The families of the accuracy test, the options they run with, and the thresholds they meet: the
#: share of parameters equal to the float64 run rounded to bfloat16, and the largest distance from it
#: in bfloat16 ulps taken at max(|x|, 2^-6). SGD and AdamW meet issue 57's (97%, 1 ulp). Lion does
#: not, and no rounding of a 16-bit compensation to nearest can: its steps all have the size lr, so
#: the compensation takes the same few values over and over and the errors of rounding them add up
#: instead of cancelling (82.8%, 3.0 ulp; a float32 compensation reaches 99.8%, 0.5 ulp;
#: docs/precision.md). Its thresholds keep what it reaches from slipping.
ACCURACY_CASES = {"sgd": ({}, 0.97, 1.0), "adamw": ({}, 0.97, 1.0), "lion": ({}, 0.80, 3.5)}


def _compensation(opt):
    return opt.state_dict()["compensation"]


@pytest.mark.parametrize("dtype", SIXTEEN_BITS, ids=str)
@pytest.mark.parametrize("case", tiered(CASES, lambda case: case[0] in ("adam", "lion") and not case[1]),
                         ids=case_id)
def test_every_family_stores_its_step_with_kahan_s_compensation(case, dtype):
    method, options = case
    params = parameters(21, dtype)
    reference = Reference(method, options, params, compensation=True)
    opt = numadam.families()[method](params, lr=LR, compensation="kahan", **options)
    for grads in gradients(22, params, 6):
        opt.step(grads)
        reference.step(grads)
    assert_bits_equal(params, reference.params)
    assert_bits_equal(_compensation(opt), reference.compensation)


@pytest.mark.parametrize("layout", ["strided", "fortran"])
def test_the_compensation_follows_the_parameter_s_layout(layout):
    dtype = BFLOAT16
    base = parameters(23, dtype, shapes=((9, 14),))[0]
    param = base[:, ::2] if layout == "strided" else np.asfortranarray(base)
    reference = Reference("adamw", {}, [param.copy()], compensation=True)
    opt = numadam.AdamW([param], lr=LR, compensation="kahan")
    for grads in gradients(24, [param], 5):
        opt.step(grads)
        reference.step(grads)
    assert_bits_equal([param], reference.params)
    assert_bits_equal(_compensation(opt), reference.compensation)


def test_compensation_moves_parameters_that_plain_rounding_leaves_in_place():
    """Steps of a quarter of a unit: rounded to nearest, each is lost; compensated, they add up."""
    start = np.full(1000, 1.0, np.float32).astype(BFLOAT16)  # one bfloat16 unit at 1.0 is 2^-7
    runs = {}
    for name, options in {"plain": {}, "kahan": {"compensation": "kahan"}}.items():
        params = start.copy()
        opt = numadam.SGD(params, lr=2.0**-9, **options)
        for _ in range(8):
            opt.step(np.full(1000, -1.0, BFLOAT16))
        runs[name] = params.astype(np.float32)
    np.testing.assert_array_equal(runs["plain"], 1.0)
    np.testing.assert_array_equal(runs["kahan"], 1.0 + 8 * 2.0**-9)


def test_bounds_hold_the_compensated_parameter():
    """nonneg=True with steps that push below zero: the stored parameter stays at or above the bound
    (the compensation carries only what rounding lost, not what the bound cut off), and elsewhere
    the store is Kahan's, bit for bit."""
    rng = np.random.default_rng(27)
    start = (np.abs(rng.standard_normal(400)) * 0.01).astype(BFLOAT16)
    params = start.copy()
    opt = numadam.SGD(params, lr=1e-3, nonneg=True, compensation="kahan")
    p, c = start.copy(), np.zeros_like(start)
    for _ in range(30):
        g = (rng.standard_normal(400) + 2.0).astype(BFLOAT16)
        opt.step(g)
        updated = np.maximum(p.astype(np.float32) - np.float32(1e-3) * g.astype(np.float32), np.float32(0))
        wide = p.astype(np.float32)
        y = (updated - wide) + c.astype(np.float32)
        y = np.where(wide + y < 0, np.float32(0) - wide, y)
        s = (wide + y).astype(BFLOAT16)
        p, c = s, (y - (s.astype(np.float32) - wide)).astype(BFLOAT16)
    assert np.all(params.astype(np.float32) >= 0) and np.any(params.astype(np.float32) == 0)
    assert_bits_equal([params], [p])
    assert_bits_equal([_compensation(opt)], [c])  # (one array: the state dict holds it bare)


def _float64_run_of_the_same_updates(method, options, start, grads):
    """``start`` (bfloat16) stepped by ``grads`` in float64: the state and each update direction in
    float32 as the kernels compute them (the reference from a zero parameter, without decay), the
    decoupled decay and the sum in float64 (see the module docstring)."""
    h = hyperparameters(method, {**options, "lr": ACCURACY_LR})
    decay, direction_h = h.get("weight_decay", 0.0), {**h, "weight_decay": 0.0}
    zero = np.zeros(start.shape, np.float32)
    state, carry = initial_state(method, zero, direction_h), REFERENCES[method].carry
    x = start.astype(np.float64)
    for t, g in enumerate(grads, start=1):
        step, state, carry = REFERENCES[method].step(zero, g.astype(np.float32), state, t, carry, direction_h)
        x = x * (1.0 - ACCURACY_LR * decay) + step.astype(np.float64)
    return x


def accuracy(method, options, runs, seed=0):
    """Issue 57's accuracy test for ``method``: ``runs`` maps a name to a function ``(start, grads) ->
    final bfloat16 parameters``; returns, for each, the share of parameters equal to the float64 run
    rounded to bfloat16 and the largest distance from it in ulps at max(|x|, 2^-6)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-1.0, 1.0, SIZE).astype(BFLOAT16)
    grads = [(rng.standard_normal(SIZE) + GRADIENT_MEAN).astype(BFLOAT16) for _ in range(STEPS)]
    exact = _float64_run_of_the_same_updates(method, options, start, grads)
    ulp = np.maximum(np.abs(exact), 2.0**-6) * 2.0**-7
    results = {}
    for name, run in runs.items():
        final = run(start.copy(), grads)
        results[name] = (float(np.mean(final.view(np.uint16) == exact.astype(BFLOAT16).view(np.uint16))),
                         float(np.max(np.abs(final.astype(np.float64) - exact) / ulp)))
    return results


def numadam_run(method, options, **policy):
    """A run of numadam's ``method`` for :func:`accuracy`."""
    def run(params, grads):
        opt = numadam.families()[method](params, lr=ACCURACY_LR, **options, **policy)
        for g in grads:
            opt.step(g)
        return params
    return run


@pytest.mark.parametrize("method", tiered(list(ACCURACY_CASES), lambda method: method == "sgd"))
def test_bfloat16_with_compensation_tracks_the_float64_run(method):
    options, equal_share, worst_ulps = ACCURACY_CASES[method]
    results = accuracy(method, options, {"plain": numadam_run(method, options),
                                          "kahan": numadam_run(method, options, compensation="kahan")})
    equal, worst = results["kahan"]
    assert equal >= equal_share and worst <= worst_ulps, results
    assert results["plain"][0] < 0.02, f"the test must be one that plain rounding fails: {results}"


def test_torch_optimi_s_kahan_sum_on_the_same_test():
    """The comparison of docs/precision.md (tools/kahan_accuracy.py): torch-optimi's SGD with
    ``kahan_sum=True`` computes in 16 bits in its own order; on this test it keeps fewer parameters
    equal to the float64 run than numadam's compensation, and more than its plain bfloat16 run."""
    pytest.importorskip("torch")
    pytest.importorskip("optimi")
    tool = script("tools/kahan_accuracy.py")
    results = accuracy("sgd", {}, {"numadam": numadam_run("sgd", {}, compensation="kahan"),
                                   "optimi": tool.optimi_run("sgd", kahan=True),
                                   "optimi plain": tool.optimi_run("sgd", kahan=False)})
    assert results["optimi plain"][0] < results["optimi"][0] < results["numadam"][0], results


def test_a_state_dict_carries_the_compensation():
    params = parameters(25, BFLOAT16, shapes=((7, 3), (5,)))
    twin = [p.copy() for p in params]
    steps = gradients(26, params, 6)
    opt = numadam.Lion(params, lr=LR, compensation="kahan")
    for grads in steps[:3]:
        opt.step(grads)
    saved = opt.state_dict()
    assert [c.dtype for c in saved["compensation"]] == [BFLOAT16, BFLOAT16]
    assert any(np.any(c.astype(np.float32) != 0) for c in saved["compensation"])
    for p, q in zip(twin, params):
        p[...] = q
    resumed = numadam.Lion(twin, lr=LR, compensation="kahan")
    resumed.load_state_dict(saved)
    for grads in steps[3:]:
        opt.step(grads)
        resumed.step(grads)
    assert_bits_equal(twin, params)
    assert_bits_equal(_compensation(resumed), _compensation(opt))
    without = dict(saved)
    del without["compensation"]
    before = [p.copy() for p in twin]
    with pytest.raises(ValueError, match="no 'compensation'"):
        numadam.Lion(twin, lr=LR, compensation="kahan").load_state_dict(without)
    assert_bits_equal(twin, before)


@pytest.mark.parametrize("options, message", [
    ({"compensation": "Kahan"}, r"compensation must be one of \[None, 'kahan'\]; got 'Kahan'"),
    ({"compensation": "kahan", "master_weights": True},
     "compensation='kahan' and master_weights are two ways of rounding 16-bit parameters; choose one"),
    ({"compensation": "kahan", "stochastic_rounding": True},
     "compensation='kahan' and stochastic_rounding are two ways of rounding 16-bit parameters; choose one"),
])
def test_compensation_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        numadam.Adam(np.zeros(3, np.float16), **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64], ids=lambda d: np.dtype(d).name)
def test_compensation_is_for_sixteen_bit_parameters(dtype):
    with pytest.raises(ValueError, match=f"compensation rounds float16 and bfloat16 parameters; "
                                         f"params\\[1\\] is {np.dtype(dtype).name}"):
        numadam.Adam([np.zeros(3, np.float16), np.zeros(3, dtype)], compensation="kahan")
