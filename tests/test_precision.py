"""float16 and bfloat16 parameters, master weights, stochastic rounding and bfloat16 state (Kahan's
compensation: tests/test_kahan.py, with this file's reference).

The references compute as the kernels do: widen the stored numbers to float32,
take the family's step (tests/reference.py) in float32, and round back to the
storage format to nearest even (NumPy's and ml_dtypes' casts).
"""

import numpy as np
import pytest

import numadam
from arrays import random_array, tiered
from reference import step_tree
from test_families import CASES, case_id, hyperparameters, initial_carry, initial_state
from test_storage import random_bits_written_out

from numadam.core.pipeline import _salt
from numadam.targets.primitives import INTERPRETED
from numadam.targets.storage import stochastic_rounding

ml_dtypes = pytest.importorskip("ml_dtypes")
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
SIXTEEN_BITS = [np.dtype(np.float16), BFLOAT16]
LR = 1e-2


def parameters(seed, dtype, shapes=((6, 5), (17,))):
    rng = np.random.default_rng(seed)
    return [random_array(rng, shape, np.float32).astype(dtype) for shape in shapes]


def gradients(seed, params, steps):
    rng = np.random.default_rng(seed)
    return [[random_array(rng, p.shape, np.float32).astype(p.dtype) for p in params] for _ in range(steps)]


class Reference:
    """A family's step in float32 on widened numbers; the parameter (or master copy) rounded back."""

    def __init__(self, method, options, params, master=False, state_dtype=np.float32, compensation=False):
        self.method, self.h = method, hyperparameters(method, options)
        self.dtype = params[0].dtype
        self.master = [p.astype(np.float32) for p in params] if master else None
        self.compensation = [np.zeros_like(p) for p in params] if compensation else None
        self.params = [p.copy() for p in params]
        self.state = [{name: value.astype(state_dtype) for name, value in
                       initial_state(method, p.astype(np.float32), self.h).items()} for p in params]
        self.carry, self.t = initial_carry(method), 0

    def step(self, grads):
        self.t += 1
        starts = [self.master[k] if self.master is not None else p.astype(np.float32) for k, p in enumerate(self.params)]
        states = [{name: value.astype(np.float32) for name, value in state.items()} for state in self.state]
        results, states, self.carry = step_tree(self.method, starts, [g.astype(np.float32) for g in grads], states,
                                                self.t, self.carry, self.h)
        for k, (updated, state) in enumerate(zip(results, states)):
            if self.master is not None:
                self.master[k] = updated
            if self.compensation is not None:
                self.params[k], self.compensation[k] = kahan_store(self.params[k], updated, self.compensation[k])
            else:
                self.params[k] = updated.astype(self.dtype)
            self.state[k] = {name: value.astype(self.state[k][name].dtype) for name, value in state.items()}


def kahan_store(param, updated, compensation):
    """Kahan's compensated summation of a float32 update into a 16-bit parameter: with p the
    parameter and c the compensation, both widened to float32, and p' the step's float32 result,
    y = (p' - p) + c; the parameter becomes s = round(p + y) and the compensation round(y - (s - p)),
    the part of y that rounding s lost. Returns the new (parameter, compensation), both 16-bit."""
    p = param.astype(np.float32)
    y = (updated - p) + compensation.astype(np.float32)
    s = (p + y).astype(param.dtype)
    return s, (y - (s.astype(np.float32) - p)).astype(param.dtype)


def assert_bits_equal(actual, expected):
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype
        np.testing.assert_array_equal(a.view(np.uint16) if a.itemsize == 2 else a, e.view(np.uint16)
                                      if e.itemsize == 2 else e)


@pytest.mark.parametrize("dtype", SIXTEEN_BITS, ids=str)
@pytest.mark.parametrize("case", tiered(CASES[::2], lambda case: case[0] == "adam" and not case[1]), ids=case_id)
def test_sixteen_bit_parameters_compute_in_float32_and_round_to_nearest(case, dtype):
    method, options = case
    params = parameters(1, dtype)
    reference = Reference(method, options, params)
    opt = numadam.families()[method](params, lr=LR, **options)
    for grads in gradients(2, params, 5):
        opt.step(grads)
        reference.step(grads)
    assert_bits_equal(params, reference.params)
    state = opt.state_dict()
    for name in reference.state[0]:
        assert_bits_equal([state[name]] if not isinstance(state[name], list) else state[name],
                          [s[name] for s in reference.state])


@pytest.mark.parametrize("dtype", SIXTEEN_BITS, ids=str)
@pytest.mark.parametrize("method", tiered(["adam", "lion", "schedule_free_adamw"], lambda method: method == "adam"))
def test_master_weights_keep_the_float32_trajectory(method, dtype):
    params = parameters(3, dtype)
    reference = Reference(method, {}, params, master=True)
    opt = numadam.families()[method](params, lr=LR, master_weights=True)
    for grads in gradients(4, params, 6):
        opt.step(grads)
        reference.step(grads)
    assert_bits_equal(params, reference.params)


@pytest.mark.parametrize("method", tiered(["adam", "adamw", "nadam"], lambda method: method == "adam"))
def test_bfloat16_state_is_rounded_every_step(method):
    params = parameters(5, np.float32)
    reference = Reference(method, {}, params, state_dtype=BFLOAT16)
    opt = numadam.families()[method](params, lr=LR, state_dtype="bfloat16")
    for grads in gradients(6, params, 5):
        opt.step(grads)
        reference.step(grads)
    assert_bits_equal(params, reference.params)
    assert opt.state_dict()["exp_avg"][0].dtype == BFLOAT16


@pytest.mark.parametrize("dtype", tiered(SIXTEEN_BITS, lambda dtype: dtype == BFLOAT16), ids=str)
def test_stochastic_rounding_is_unbiased_and_repeatable(dtype):
    """Steps far below the storage's resolution: nearest rounding loses them, stochastic rounding does not."""
    size = 20000
    start = np.full(size, 2.0, np.float32).astype(dtype)
    runs = {}
    for name, options in {"nearest": {}, "stochastic": {"stochastic_rounding": True, "seed": 7},
                          "again": {"stochastic_rounding": True, "seed": 7},
                          "other seed": {"stochastic_rounding": True, "seed": 8}}.items():
        params = start.copy()
        opt = numadam.Lion(params, lr=1e-4, weight_decay=0.0, **options)  # steps of exactly lr
        for _ in range(20):
            opt.step(np.ones(size, dtype))
        runs[name] = params.astype(np.float32)
    expected = 2.0 - 20 * 1e-4
    assert np.all(runs["nearest"] == 2.0), "each step is below half a unit: nearest rounding stands still"
    assert abs(runs["stochastic"].mean() - expected) < 2e-4
    np.testing.assert_array_equal(runs["stochastic"], runs["again"])
    assert not np.array_equal(runs["stochastic"], runs["other seed"])


@pytest.mark.parametrize("dtype", tiered(SIXTEEN_BITS, lambda dtype: dtype == BFLOAT16), ids=str)
def test_stochastic_rounding_draws_each_element_s_bits_from_its_position_and_the_step(dtype):
    """Each element rounds with the random bits of its position in the sequence of its bucket (the
    parameters laid end to end, each in C order) and of the step's salt: the float32 step of the
    reference, each element then rounded by the storage's stochastic rounding, bit for bit."""
    code = "bf16" if dtype == BFLOAT16 else "f2"
    narrow = stochastic_rounding(code, INTERPRETED)
    params = parameters(4, dtype, shapes=((6, 5), (17,), (3, 4)))
    reference = Reference("adam", {}, params, master=True)  # its float32 results, before rounding
    opt = numadam.Adam(params, lr=LR, stochastic_rounding=True, seed=11)
    for grads in gradients(7, params, 3):
        opt.step(grads)
        reference.step(grads)
        salt = _salt(11, reference.t)
        first = 0
        for param, exact in zip(params, reference.master):
            positions = first + np.arange(exact.size)
            rounded = [narrow(value, np.uint32(random_bits_written_out(int(k), salt)))
                       for value, k in zip(exact.ravel(), positions)]
            np.testing.assert_array_equal(param.view(np.uint16).ravel(), np.array(rounded, np.uint16))
            first += exact.size
        reference.master = [p.astype(np.float32) for p in params]  # the next step starts from the rounded ones


def test_sixteen_bit_options_are_checked():
    with pytest.raises(ValueError, match="master_weights rounds float16 and bfloat16 parameters"):
        numadam.Adam(np.zeros(3, np.float32), master_weights=True)
    with pytest.raises(ValueError, match="choose one"):
        numadam.Adam(np.zeros(3, np.float16), master_weights=True, stochastic_rounding=True)
    with pytest.raises(ValueError, match="state_dtype must be one of"):
        numadam.Adam(np.zeros(3, np.float32), state_dtype="float16")
    with pytest.raises(ValueError, match="holds real numbers"):
        numadam.Adam(np.zeros(3, np.complex64), state_dtype="bfloat16")


def test_functional_steps_take_sixteen_bit_parameters_with_float32_state():
    params = parameters(9, np.float16, shapes=((11,),))
    reference = Reference("adam", {}, params)
    m, v = np.zeros(11, np.float32), np.zeros(11, np.float32)
    for t, grads in enumerate(gradients(10, params, 3), start=1):
        numadam.adam_step(params[0], grads[0], m, v, step=t, lr=LR)
        reference.step(grads)
    assert_bits_equal(params, reference.params)
    np.testing.assert_array_equal(m, reference.state[0]["exp_avg"])


@pytest.mark.parametrize("dtype", [np.dtype(np.float32)] + SIXTEEN_BITS, ids=str)
def test_functional_steps_take_bfloat16_state(dtype):
    """State arrays the caller keeps in bfloat16 (``state_dtype="bfloat16"``): rounded every step as
    the optimizers round theirs; a mix of state dtypes, or bfloat16 state for float64, is refused."""
    params = parameters(11, dtype, shapes=((13,),))
    reference = Reference("adam", {}, params, state_dtype=BFLOAT16)
    m, v = np.zeros(13, BFLOAT16), np.zeros(13, BFLOAT16)
    for t, grads in enumerate(gradients(12, params, 3), start=1):
        numadam.adam_step(params[0], grads[0], m, v, step=t, lr=LR)
        reference.step(grads)
    assert_bits_equal(params, reference.params)
    assert_bits_equal([m, v], [reference.state[0]["exp_avg"], reference.state[0]["exp_avg_sq"]])
    before = params[0].copy()
    with pytest.raises(TypeError, match="exp_avg_sq has dtype float32 but param(?:'s bfloat16 state)? has dtype bfloat16"):
        numadam.adam_step(params[0], grads[0], m, np.zeros(13, np.float32), step=4, lr=LR)
    assert_bits_equal(params, [before])
    with pytest.raises(TypeError, match="exp_avg has dtype bfloat16 but param has dtype float64"):
        numadam.adam_step(np.zeros(3), np.zeros(3), np.zeros(3, BFLOAT16), np.zeros(3, BFLOAT16), step=1)
