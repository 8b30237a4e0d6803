"""Bad input: a clear TypeError/ValueError naming the rule and the value, and nothing changed."""

import re

import numpy as np
import pytest

import numadam
from reference import adam_exact

HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}


class FakeCudaArray:
    """Looks like a CUDA array to the dispatcher (it has __cuda_array_interface__)."""

    __cuda_array_interface__ = {}
    shape = (3,)
    dtype = np.dtype(np.float32)


def operands(dtype=np.float32, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
            np.zeros(n, dtype), np.zeros(n, dtype)]


def snapshot(arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(arrays, before):
    for a, b in zip(arrays, before):
        if b is not None:
            np.testing.assert_array_equal(a, b, strict=True)


# -- functional: hyperparameters ---------------------------------------------------

BAD_HYPER = [
    ({"lr": -1.0}, ValueError, "lr must be finite and >= 0; got -1.0"),
    ({"lr": float("nan")}, ValueError, "lr must be finite"),
    ({"lr": float("inf")}, ValueError, "lr must be finite"),
    ({"lr": "0.1"}, TypeError, "lr must be a real number"),
    ({"lr": True}, TypeError, "lr must be a real number"),
    ({"lr": numadam.schedules.CosineDecay(0.1, 10)}, TypeError,
     "lr must be a real number; got the callable CosineDecay(lr=0.1, total_steps=10, min_lr=0.0). Pass a "
     "learning-rate schedule as schedule=... (numadam.Adam, AdamW, minimize), or with adam_step pass "
     "lr=schedule(step - 1) each step"),
    ({"betas": (1.0, 0.999)}, ValueError, "beta1 must be in [0, 1); got 1.0"),
    ({"betas": (0.9, -0.1)}, ValueError, "beta2 must be in [0, 1); got -0.1"),
    ({"betas": (0.9,)}, TypeError, "betas must be a pair"),
    ({"betas": 0.9}, TypeError, "betas must be a pair"),
    ({"eps": -1e-8}, ValueError, "eps must be finite and >= 0"),
    ({"eps": float("nan")}, ValueError, "eps must be finite and >= 0"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay must be finite and >= 0; got -0.1"),
    ({"step": 0}, ValueError, "step must be >= 1"),
    ({"step": 1.5}, TypeError, "step must be an integer"),
    ({"step": True}, TypeError, "step must be an integer"),
    ({"amsgrad": 1}, TypeError, "amsgrad must be True or False; got 1"),
    ({"maximize": "yes"}, TypeError, "maximize must be True or False"),
    ({"decoupled_weight_decay": None}, TypeError, "decoupled_weight_decay must be True or False"),
]


@pytest.mark.parametrize("change, error, message", BAD_HYPER)
def test_adam_step_rejects_bad_hyperparameters(change, error, message):
    arrays = operands()
    before = snapshot(arrays)
    kwargs = {"step": 1, **HYPER, **change}
    with pytest.raises(error, match=re.escape(message)):
        numadam.adam_step(*arrays, **kwargs)
    assert_unchanged(arrays, before)


# -- functional: arrays -------------------------------------------------------------

def replace(arrays, index, value):
    arrays = list(arrays)
    arrays[index] = value
    return arrays


def bad_array_cases():
    a = operands()
    shared = np.zeros(10, np.float32)
    readonly = np.zeros(5, np.float32)
    readonly.flags.writeable = False
    unaligned = np.frombuffer(np.zeros(24, np.uint8).data, np.float32, count=5, offset=1)
    swapped = np.zeros(5, ">f4")
    return [
        ("int param", replace(a, 0, np.zeros(5, np.int64)), TypeError, "param has dtype int64; numadam updates"),
        ("bool param", replace(a, 0, np.zeros(5, bool)), TypeError, "param has dtype bool"),
        ("object param", replace(a, 0, np.zeros(5, object)), TypeError, "param has dtype object"),
        ("str param", replace(a, 0, np.array(["a"] * 5)), TypeError, "param has dtype <U1"),
        ("big-endian", [swapped, swapped.copy(), swapped.copy(), swapped.copy()], TypeError,
         "param must be in native byte order"),
        ("grad dtype", replace(a, 1, a[1].astype(np.float64)), TypeError,
         "grad has dtype float64 but param has dtype float32"),
        ("state dtype", replace(a, 3, a[3].astype(np.float64)), TypeError, "exp_avg_sq has dtype float64"),
        ("grad shape", replace(a, 1, np.zeros(6, np.float32)), ValueError,
         "grad has shape (6,) but param has shape (5,)"),
        ("read-only param", replace(a, 0, readonly), ValueError, "param is read-only"),
        ("read-only state", replace(a, 2, readonly), ValueError, "exp_avg is read-only"),
        ("unaligned", replace(a, 2, unaligned), ValueError, "exp_avg must be aligned to its 4-byte elements"),
        ("same array twice", replace(a, 2, a[0]), ValueError, "param and exp_avg share memory"),
        ("grad is param", replace(a, 1, a[0]), ValueError, "param and grad share memory"),
        ("overlapping views", replace(replace(a, 2, shared[:5]), 3, shared[3:8]), ValueError,
         "exp_avg and exp_avg_sq share memory"),
        ("self-overlap", replace(a, 0, np.lib.stride_tricks.as_strided(np.zeros(5, np.float32), (5,), (0,))),
         ValueError, "param has elements that may share memory"),
        ("python list", replace(a, 1, [0.0] * 5), TypeError, "grad must be a numpy.ndarray or a CUDA array"),
        ("python scalar", replace(a, 0, 1.0), TypeError, "param must be a numpy.ndarray or a CUDA array"),
        ("None grad", replace(a, 1, None), TypeError, "grad must be a numpy.ndarray or a CUDA array"),
        ("masked array", replace(a, 0, np.ma.zeros(5, np.float32)), TypeError, "param must be a numpy.ndarray"),
        ("mixed backends", replace(a, 1, FakeCudaArray()), TypeError,
         "grad is a test_validation.FakeCudaArray but param is a numpy.ndarray"),
    ]


@pytest.mark.parametrize("name, arrays, error, message", bad_array_cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_adam_step_rejects_bad_arrays_and_writes_nothing(name, arrays, error, message):
    before = snapshot([a if isinstance(a, np.ndarray) else None for a in arrays])
    with pytest.raises(error, match=re.escape(message)):
        numadam.adam_step(*arrays, step=1, **HYPER)
    assert_unchanged(arrays, before)


def test_amsgrad_and_its_state_go_together():
    arrays = operands()
    with pytest.raises(ValueError, match="amsgrad=True needs max_exp_avg_sq"):
        numadam.adam_step(*arrays, step=1, amsgrad=True, **HYPER)
    with pytest.raises(ValueError, match="max_exp_avg_sq is only used with amsgrad=True"):
        numadam.adam_step(*arrays, step=1, max_exp_avg_sq=np.zeros(5, np.float32), **HYPER)


def test_disjoint_interleaved_views_are_accepted():
    """Views that interleave without sharing an element are separate arrays."""
    buffer = np.zeros(10, np.float64)
    param, grad = np.ones(5), np.ones(5)
    numadam.adam_step(param, grad, buffer[0::2], buffer[1::2], step=1, **HYPER)
    expected = adam_exact(np.ones(5), np.ones(5), np.zeros(5), np.zeros(5), step=1, **HYPER)
    np.testing.assert_array_equal(param, expected[0])
    np.testing.assert_array_equal(buffer[0::2], expected[1])
    np.testing.assert_array_equal(buffer[1::2], expected[2])


def test_read_only_gradients_are_fine():
    arrays = operands()
    arrays[1].flags.writeable = False
    expected = adam_exact(*snapshot(arrays), step=1, **HYPER)
    numadam.adam_step(*arrays, step=1, **HYPER)
    np.testing.assert_array_equal(arrays[0], expected[0])


# -- objects --------------------------------------------------------------------------

def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32)}


def make_grads(seed=1):
    return make_params(seed)


@pytest.mark.parametrize("params, error, message", [
    ({}, ValueError, "params must hold at least one array"),
    ([1.0, 2.0], TypeError, "params[0] must be a numpy.ndarray or a CUDA array"),
    ({"w": np.zeros(3, np.int32)}, TypeError, "params['w'] has dtype int32"),
    ({"w": [np.zeros(3), "x"]}, TypeError, "params['w'][1] must be a numpy.ndarray"),
])
def test_optimizer_rejects_bad_params(params, error, message):
    with pytest.raises(error, match=re.escape(message)):
        numadam.Adam(params)


def test_optimizer_rejects_shared_and_read_only_params():
    w = np.zeros(6)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        numadam.Adam([w, w])
    with pytest.raises(ValueError, match=r"params\['a'\] and params\['b'\] share memory"):
        numadam.Adam({"a": w[:4], "b": w[2:]})
    w.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['w'\] is read-only"):
        numadam.Adam({"w": w})
    with pytest.raises(TypeError, match=r"params\[1\] is a test_validation.FakeCudaArray but params\[0\] is"):
        numadam.Adam([np.zeros(3, np.float32), FakeCudaArray()])


@pytest.mark.parametrize("option, value, error, message", [
    ("lr", -0.5, ValueError, "lr must be finite and >= 0; got -0.5"),
    ("betas", (0.9, 1.0), ValueError, "beta2 must be in [0, 1); got 1.0"),
    ("eps", -1.0, ValueError, "eps must be finite and >= 0"),
    ("weight_decay", float("inf"), ValueError, "weight_decay must be finite and >= 0"),
    ("amsgrad", "no", TypeError, "amsgrad must be True or False"),
])
def test_optimizer_rejects_bad_options(option, value, error, message):
    with pytest.raises(error, match=re.escape(message)):
        numadam.Adam(make_params(), **{option: value})


def unaligned_like(array):
    raw = np.zeros(array.nbytes + 1, np.uint8)
    view = np.frombuffer(raw.data, array.dtype, count=array.size, offset=1).reshape(array.shape)
    return view


def bad_grads_cases():
    g = make_grads()
    return [
        ("missing key", {"W": g["W"]}, ValueError, "grads must have the parameters' keys ['W', 'b']; missing ['b']"),
        ("extra key", {**g, "c": g["b"]}, ValueError, "unexpected ['c']"),
        ("list for dict", [g["W"], g["b"]], TypeError, "grads must be a dict like the parameters' {'W': *, 'b': *}; got a list"),
        ("wrong shape", {**g, "b": np.zeros(4, np.float32)}, ValueError,
         "grads['b'] has shape (4,) but its parameter has shape (3,)"),
        ("wrong dtype", {**g, "W": g["W"].astype(np.float64)}, TypeError,
         "grads['W'] has dtype float64 but its parameter has dtype float32"),
        ("scalar", {**g, "b": 0.5}, TypeError, "grads['b'] must be a numpy.ndarray or a CUDA array (CuPy, __cuda_array_interface__); got float (0.5)"),
        ("list leaf", {**g, "b": [0.0, 0.0, 0.0]}, TypeError, "grads['b'] must be an array like its parameter; got a list"),
        ("cuda grad", {**g, "b": FakeCudaArray()}, TypeError, "grads['b'] is a test_validation.FakeCudaArray"),
        ("unaligned", {**g, "W": unaligned_like(g["W"])}, ValueError, "grads['W'] must be aligned"),
    ]


@pytest.mark.parametrize("name, grads, error, message", bad_grads_cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_failed_step_changes_nothing_and_the_next_step_is_exact(name, grads, error, message):
    params = make_params()
    opt = numadam.Adam(params, lr=0.01, amsgrad=True)
    opt.step(make_grads(2))
    reference = numadam.Adam(make_params(), lr=0.01, amsgrad=True)
    reference.step(make_grads(2))
    before_params = snapshot(list(params.values()))
    before_state = opt.state_dict()
    with pytest.raises(error, match=re.escape(message)):
        opt.step(grads)
    assert_unchanged(list(params.values()), before_params)
    assert_state_equal(opt.state_dict(), before_state)
    opt.step(make_grads(3))
    reference.step(make_grads(3))
    assert_state_equal(opt.state_dict(), reference.state_dict())
    for name_ in params:
        np.testing.assert_array_equal(params[name_], reference.params[name_])


def test_gradients_may_not_share_memory_with_params_or_state():
    params = make_params()
    opt = numadam.Adam(params)
    before = snapshot(list(params.values()))
    with pytest.raises(ValueError, match=r"grads\['W'\] shares memory with a parameter or the optimizer state"):
        opt.step({"W": params["W"], "b": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"grads\['b'\] shares memory"):
        opt.step({"W": np.zeros((4, 3), np.float32), "b": params["W"][0]})
    exp_avg_view = opt._engine.buckets[0].state["exp_avg"][0]
    with pytest.raises(ValueError, match=r"grads\['W'\] shares memory"):
        opt.step({"W": exp_avg_view, "b": np.zeros(3, np.float32)})
    assert_unchanged(list(params.values()), before)
    assert opt.step_count == 0


def test_gradient_aliasing_a_parameter_is_found_among_interleaved_parameters():
    """params[1] starts inside params[0]'s byte range and ends before the gradient,
    which aliases params[0][2]: the nested ranges must not hide it."""
    base = np.arange(10, dtype=np.float64)
    params = [base[::2], base[1:2]]
    opt = numadam.Adam(params, lr=0.1)
    before = snapshot(params)
    with pytest.raises(ValueError, match=r"grads\[1\] shares memory with a parameter"):
        opt.step([np.ones(5), base[4:5]])
    assert_unchanged(params, before)
    opt.step([np.ones(5), base[3:4].copy()])   # interleaved but disjoint gradients are fine
    assert params[0][2] < 4.0


@pytest.mark.parametrize("kind", [numadam.Adam, numadam.AdamW])
@pytest.mark.parametrize("schedule", [numadam.schedules.CosineDecay(0.1, 10), lambda step: 0.1], ids=["schedule",
                                                                                                      "lambda"])
def test_a_schedule_passed_as_lr_is_refused_with_a_pointer_to_schedule(kind, schedule):
    """The optax and Keras habit, ``lr=schedule``: a TypeError naming ``schedule=``, also for ``opt.lr = ...``."""
    with pytest.raises(TypeError, match=r"lr must be a real number; got the callable .*Pass a learning-rate "
                                        r"schedule as schedule=\.\.\."):
        kind(make_params(), lr=schedule)
    params = make_params()
    opt = kind(params, lr=0.01)
    with pytest.raises(TypeError, match=r"schedule as schedule=\.\.\."):
        opt.lr = schedule
    assert opt.lr == 0.01 and opt.schedule is None
    opt.step(make_grads())
    reference = kind(make_params(), lr=0.01)
    reference.step(make_grads())
    assert_state_equal(opt.state_dict(), reference.state_dict())


def test_bad_hyperparameter_assignment_keeps_the_old_value():
    opt = numadam.Adam(make_params(), lr=0.01)
    with pytest.raises(ValueError, match="lr must be finite and >= 0; got nan"):
        opt.lr = float("nan")
    assert opt.lr == 0.01
    with pytest.raises(ValueError, match="AdamW always has decoupled_weight_decay=True; got False"):
        numadam.AdamW(make_params()).decoupled_weight_decay = False
    with pytest.raises(AttributeError):
        opt.amsgrad = True


# The tree contract, on the first step and after steps that took the fast path (the same gradient
# arrays again): a container of another structure holding those very arrays is refused, naming
# grads and the structure expected, with nothing written.
TREES = {
    "dict": lambda a, b: {"W": a, "b": b},
    "list": lambda a, b: [a, b],
    "tuple": lambda a, b: (a, b),
    "nested": lambda a, b: {"layer": [a, b]},
}
MISMATCHES = [
    ("dict", "list for dict", lambda a, b: [a, b], TypeError,
     "grads must be a dict like the parameters' {'W': *, 'b': *}; got a list"),
    ("dict", "tuple for dict", lambda a, b: (a, b), TypeError,
     "grads must be a dict like the parameters' {'W': *, 'b': *}; got a tuple"),
    ("dict", "other keys", lambda a, b: {"W": a, "c": b}, ValueError,
     "grads must have the parameters' keys ['W', 'b']; missing ['b'], unexpected ['c']"),
    ("dict", "other nesting", lambda a, b: {"W": [a], "b": b}, TypeError,
     "grads['W'] must be an array like its parameter; got a list"),
    ("list", "tuple for list", lambda a, b: (a, b), TypeError,
     "grads must be a list like the parameters' [*, *]; got a tuple"),
    ("list", "dict for list", lambda a, b: {"W": a, "b": b}, TypeError,
     "grads must be a list like the parameters' [*, *]; got a dict"),
    ("list", "other nesting", lambda a, b: [[a], b], TypeError,
     "grads[0] must be an array like its parameter; got a list"),
    ("list", "fewer items", lambda a, b: [a], ValueError, "grads must have 2 items like the parameters' [*, *]; got 1"),
    ("tuple", "list for tuple", lambda a, b: [a, b], TypeError,
     "grads must be a tuple like the parameters' (*, *); got a list"),
    ("nested", "list for the dict", lambda a, b: [a, b], TypeError,
     "grads must be a dict like the parameters' {'layer': [*, *]}; got a list"),
    ("nested", "tuple for the inner list", lambda a, b: {"layer": (a, b)}, TypeError,
     "grads['layer'] must be a list like the parameters' [*, *]; got a tuple"),
    ("nested", "flattened", lambda a, b: {"layer": a}, TypeError,
     "grads['layer'] must be a list like the parameters' [*, *]; got a ndarray"),
]


@pytest.mark.parametrize("after_fast_steps", [False, True], ids=["first-step", "after-fast-steps"])
@pytest.mark.parametrize("tree, name, mismatch, error, message", MISMATCHES, ids=[m[1] for m in MISMATCHES])
def test_a_container_of_another_structure_is_refused_even_holding_the_same_arrays(
        tree, name, mismatch, error, message, after_fast_steps):
    given = make_params()
    params = TREES[tree](given["W"], given["b"])
    opt = numadam.Adam(params, lr=0.01)
    g = make_grads()
    grads = TREES[tree](g["W"], g["b"])
    if after_fast_steps:
        for _ in range(3):  # the second and third find the first's plan by the arrays' identity
            opt.step(grads)
    before_params, before_state = snapshot(list(given.values())), opt.state_dict()
    with pytest.raises(error, match=re.escape(message)):
        opt.step(mismatch(g["W"], g["b"]))
    assert_unchanged(list(given.values()), before_params)
    _assert_same_tree(opt.state_dict(), before_state)
    assert opt.step_count == (3 if after_fast_steps else 0)
    opt.step(grads)  # the right structure still steps
    assert opt.step_count == (4 if after_fast_steps else 1)


def _assert_same_tree(actual, expected):
    assert type(actual) is type(expected)
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            _assert_same_tree(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, b in zip(actual, expected):
            _assert_same_tree(a, b)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(actual, expected, strict=True)
    else:
        assert actual == expected


def assert_state_equal(actual, expected):
    assert actual.keys() == expected.keys()
    for key in expected:
        if key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            for name in expected[key]:
                np.testing.assert_array_equal(actual[key][name], expected[key][name], strict=True)
        else:
            assert actual[key] == expected[key]


def bad_state_cases():
    opt = numadam.Adam(make_params(), amsgrad=True)
    opt.step(make_grads())
    good = opt.state_dict()

    def edit(**changes):
        state = dict(good)
        for key, value in changes.items():
            state[key] = value
        return state

    hyper = dict(good["hyperparameters"])
    return [
        ("not a dict", [good], TypeError, "state must be a dict from state_dict()"),
        ("no step", {k: v for k, v in good.items() if k != "step"}, ValueError, "state is missing ['step']"),
        ("negative step", edit(step=-1), ValueError, "state['step'] must be an integer >= 0; got -1"),
        ("float step", edit(step=1.0), TypeError, "state['step'] must be an integer >= 0; got 1.0"),
        ("bad lr", edit(hyperparameters={**hyper, "lr": -1.0}), ValueError, "lr must be finite and >= 0"),
        ("unknown hyper", edit(hyperparameters={**hyper, "momentum": 0.9}), ValueError, "unexpected ['momentum']"),
        ("wrong shape", edit(exp_avg={**good["exp_avg"], "b": np.zeros(4, np.float32)}), ValueError,
         "state['exp_avg']['b'] has shape (4,) but its parameter has shape (3,)"),
        ("wrong dtype", edit(exp_avg_sq={**good["exp_avg_sq"], "W": np.zeros((4, 3), np.complex64)}), TypeError,
         "state['exp_avg_sq']['W'] has dtype complex64; state is loaded from real float16, bfloat16, float32 "
         "or float64 numbers shaped like its parameter, or 8-bit codes"),
        ("negative v", edit(exp_avg_sq={**good["exp_avg_sq"], "b": -np.ones(3, np.float32)}), ValueError,
         "state['exp_avg_sq']['b'] has negative entries"),
        ("missing max", {k: v for k, v in good.items() if k != "max_exp_avg_sq"}, ValueError,
         "state has amsgrad=True but no 'max_exp_avg_sq'"),
        ("wrong structure", edit(exp_avg=[good["exp_avg"]["W"], good["exp_avg"]["b"]]), TypeError,
         "state['exp_avg'] must be a dict like the parameters"),
    ]


@pytest.mark.parametrize("name, state, error, message", bad_state_cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_failed_load_changes_nothing(name, state, error, message):
    params = make_params(5)
    opt = numadam.Adam(params, lr=0.02, amsgrad=True)
    opt.step(make_grads(6))
    before = opt.state_dict()
    before_params = snapshot(list(params.values()))
    with pytest.raises(error, match=re.escape(message)):
        opt.load_state_dict(state)
    assert_state_equal(opt.state_dict(), before)
    assert_unchanged(list(params.values()), before_params)


@pytest.mark.parametrize("replacement, error, message", [
    (lambda params, grads: params[1], ValueError, "grads[1] shares memory with a parameter"),
    (lambda params, grads: grads[1].astype(np.float64), TypeError, "grads[1] has dtype float64"),
    (lambda params, grads: [0.0] * 3, TypeError, "grads[1] must be an array like its parameter; got a list"),
])
def test_a_reused_gradient_list_changed_in_place_is_checked_again(replacement, error, message):
    """The step skips its checks for the very arrays it checked last time, and only for them."""
    params = [np.ones(5, np.float32), np.ones(3, np.float32)]
    grads = [np.full(5, 0.5, np.float32), np.full(3, 0.25, np.float32)]
    opt = numadam.Adam(params, lr=0.1)
    opt.step(grads)
    opt.step(grads)  # the same list and arrays: the checked plan again
    before = snapshot(params)
    grads[1] = replacement(params, grads)
    with pytest.raises(error, match=re.escape(message)):
        opt.step(grads)
    assert_unchanged(params, before)
    assert opt.step_count == 2


def test_the_same_gradient_tuple_each_step_matches_fresh_gradients_and_a_new_tuple_is_checked():
    """A tuple cannot change: once checked, the same tuple skips even the identity pass; another
    tuple (a new one with the same arrays, or with other arrays) is looked at again."""
    rng = np.random.default_rng(3)
    params = tuple(rng.standard_normal(n).astype(np.float32) for n in (5, 3, 4))
    twin_params = tuple(p.copy() for p in params)
    buffers = tuple(np.empty_like(p) for p in params)
    opt, twin = numadam.Adam(params, lr=0.1), numadam.Adam(twin_params, lr=0.1)
    for _ in range(4):
        fresh = tuple(rng.standard_normal(p.shape).astype(np.float32) for p in params)
        for buffer, g in zip(buffers, fresh):
            buffer[...] = g
        opt.step(buffers)
        twin.step(fresh)
    for p, q in zip(params, twin_params):
        np.testing.assert_array_equal(p, q)
    opt.step(tuple(buffers[k] for k in range(3)))  # the same arrays in a new tuple: still the checked plan
    before = snapshot(params)
    with pytest.raises(ValueError, match=re.escape("grads[1] shares memory with a parameter")):
        opt.step((buffers[0], params[1], buffers[2]))
    assert_unchanged(params, before)
    assert opt.step_count == 5
