"""Updates out of place (``run_step(..., sources=...)``, what a Dask step runs on each chunk):
the new values land in fresh arrays, bit for bit the reference's, and the old arrays stay as
they were; a bad source is refused before anything is written."""

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array, tiered
from numadam.functional import run_step
from test_families import CASES, Reference, case_id, hyperparameters, initial_carry

#: The cases that step out of place in one call: not a family with a norms pass (LAMB), which reads the
#: state it writes.
OUT_OF_PLACE = [case for case in CASES if numadam.families()[case[0]].algorithm.norms is None]


def checked(method, options):
    family = numadam.families()[method].algorithm
    values = hyperparameters(method, options)
    return {h.name: h.check(h.name, values[h.name]) for h in family.hyperparameters}


def step_out_of_place(method, hyper, carry, t, grad, param, state, layout):
    """One step from ``param`` and ``state`` into new arrays laid out alike (NaN first: every
    element must be written); returns them and the carry."""
    cls = numadam.families()[method]
    fresh = lambda a: in_layout(np.full(a.shape, np.nan, a.dtype), layout)  # noqa: E731
    new_param, new_state = fresh(param), {name: fresh(a) for name, a in state.items()}
    carry = run_step(cls, {"param": new_param, "grad": grad, **new_state}, t, hyper, carry,
                     sources={"param": param, **state})
    return new_param, new_state, carry


def assert_out_of_place_steps_match_the_reference(method, options, layout, dtype):
    rng = np.random.default_rng(5)
    host = random_array(rng, (6, 7), dtype)
    reference = Reference(method, options, [host])
    hyper, carry = checked(method, options), initial_carry(method)
    param = in_layout(host, layout)
    state = {name: in_layout(value, layout) for name, value in reference.state[0].items()}
    for t in range(1, 4):
        grad = in_layout(random_array(rng, host.shape, dtype), layout)
        kept = [param.copy()] + [a.copy() for a in state.values()]
        new_param, new_state, carry = step_out_of_place(method, hyper, carry, t, grad, param, state, layout)
        reference.step([np.array(grad)])
        np.testing.assert_array_equal(new_param, reference.params[0], strict=True)
        for name, array in new_state.items():
            np.testing.assert_array_equal(array, reference.state[0][name], strict=True)
        for old, before in zip([param, *state.values()], kept):
            np.testing.assert_array_equal(old, before, strict=True)
        param, state = new_param, new_state


@pytest.mark.parametrize("number", tiered(range(len(OUT_OF_PLACE)), lambda k: OUT_OF_PLACE[k] == ("adam", {})),
                         ids=lambda k: case_id(OUT_OF_PLACE[k]))
def test_every_family_steps_out_of_place_as_its_reference_and_leaves_the_sources(number):
    """Float32 strided and complex64 Fortran in turn (each case compiles its kernels)."""
    dtype, layout = [(np.float32, "strided"), (np.complex64, "F")][number % 2]
    assert_out_of_place_steps_match_the_reference(*OUT_OF_PLACE[number], layout, dtype)


@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64, np.complex64, np.complex128],
                                         lambda dtype: dtype in (np.float32, np.complex64)))
@pytest.mark.parametrize("layout", tiered(["C", "F", "strided", "reversed", "transposed"], lambda layout: layout == "F"))
def test_adam_steps_out_of_place_in_every_dtype_and_layout(dtype, layout):
    assert_out_of_place_steps_match_the_reference("adam", {"amsgrad": True, "weight_decay": 0.1}, layout, dtype)


def test_a_source_may_be_given_for_some_operands_only():
    """The others update in place, as without sources."""
    rng = np.random.default_rng(1)
    param, grad = random_array(rng, (50,), np.float32), random_array(rng, (50,), np.float32)
    m, v = np.zeros(50, np.float32), np.zeros(50, np.float32)
    twin = [a.copy() for a in (param, m, v)]
    hyper = checked("adam", {})
    run_step(numadam.Adam, {"param": twin[0], "grad": grad, "exp_avg": twin[1], "exp_avg_sq": twin[2]}, 1, hyper, ())
    new_m = np.empty_like(m)
    run_step(numadam.Adam, {"param": param, "grad": grad, "exp_avg": new_m, "exp_avg_sq": v}, 1, hyper, (),
             sources={"exp_avg": m})
    for actual, expected in zip((param, new_m, v), twin):
        np.testing.assert_array_equal(actual, expected, strict=True)
    assert not m.any()


def _operands(rng, n=40):
    param, grad = random_array(rng, (n,), np.float32), random_array(rng, (n,), np.float32)
    return {"param": np.zeros(n, np.float32), "grad": grad, "exp_avg": np.zeros(n, np.float32),
            "exp_avg_sq": np.zeros(n, np.float32)}, param


@pytest.mark.parametrize("bad, error, message", [
    (lambda ops, old: {"grad": old}, ValueError, "sources may name the parameter, the state and the master copy"),
    (lambda ops, old: {"max_exp_avg_sq": old}, ValueError, "sources may name the parameter, the state and the master copy"),
    (lambda ops, old: {"param": old.astype(np.float64)}, ValueError, "laid out as param is"),
    (lambda ops, old: {"param": old[:-1]}, ValueError, "laid out as param is"),
    (lambda ops, old: {"param": np.repeat(old, 2)[::2]}, ValueError, "laid out as param is"),
    (lambda ops, old: {"param": ops["exp_avg"]}, ValueError, "share memory"),
    (lambda ops, old: {"param": ops["param"]}, ValueError, "share memory"),
    (lambda ops, old: {"param": list(old)}, ValueError, "laid out as param is"),
])
def test_a_bad_source_is_refused_before_anything_is_written(bad, error, message):
    rng = np.random.default_rng(2)
    operands, old = _operands(rng)
    before = {name: a.copy() for name, a in operands.items()}
    with pytest.raises(error, match=message):
        run_step(numadam.Adam, operands, 1, checked("adam", {}), (), sources=bad(operands, old))
    for name, array in operands.items():
        np.testing.assert_array_equal(array, before[name], strict=True)


def test_lamb_refuses_to_step_out_of_place():
    rng = np.random.default_rng(3)
    operands, old = _operands(rng)
    with pytest.raises(ValueError, match="norms pass"):
        run_step(numadam.LAMB, operands, 1, checked("lamb", {}), (), sources={"param": old})
