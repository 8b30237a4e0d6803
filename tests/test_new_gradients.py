"""Gradients that are new arrays at every step, as users compute them (``g = A.T @ r``, autograd).

A new array of its parameter's type, dtype, shape and strides moves the last
step's plan onto itself (:meth:`numadam.engine.bucket.Bucket.rebound`: its
address written into the plan's table) instead of a new plan. The steps must be
the reference's, every check of a new plan must still refuse what it refused
(memory shared with a parameter or the state, a misaligned array), and a plan
whose rows were merged across parameters for the old gradients' addresses must
never be moved onto new ones.
"""

import re

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array, tiered
from numadam.engine.bucket import Bucket
from test_families import LR, Reference, assert_bitwise

SHAPES = [(6, 5), (7,), (3, 4)]
CONTAINERS = {"one array": None, "list": list, "tuple": tuple}


def _counting_binds(monkeypatch):
    """A list that grows by one at every :meth:`Bucket.bind` (a new plan, every check made)."""
    calls = []
    bind = Bucket.bind

    def counted(self, grads, written):
        calls.append(len(grads))
        return bind(self, grads, written)

    monkeypatch.setattr(Bucket, "bind", counted)
    return calls


def _tree(container, arrays):
    return arrays[0] if container is None else container(arrays)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("container", CONTAINERS, ids=list(CONTAINERS))
@pytest.mark.parametrize("method", ["adam", "adamw", "lamb", "adafactor", "lion", "sgd"])
def test_new_gradient_arrays_every_step_take_the_reference_s_steps(method, container, layout, monkeypatch):
    rng = np.random.default_rng(11)
    wrap = CONTAINERS[container]
    shapes = SHAPES[:1] if wrap is None else SHAPES
    params = [in_layout(random_array(rng, shape, np.float32), layout) for shape in shapes]
    reference = Reference(method, {}, params)
    opt = numadam.families()[method](_tree(wrap, params), lr=LR)
    binds = _counting_binds(monkeypatch)
    for _ in range(4):
        grads = [in_layout(random_array(rng, shape, np.float32), layout) for shape in shapes]
        opt.step(_tree(wrap, grads))
        reference.step(grads)
    assert_bitwise(params, reference.params, method)
    assert len(binds) == 1, binds  # a new plan only for the first step


def test_new_arrays_alternating_with_the_same_ones_keep_every_step_exact():
    rng = np.random.default_rng(3)
    params = [random_array(rng, shape, np.float64) for shape in SHAPES]
    reference = Reference("adam", {}, params)
    opt = numadam.Adam(params, lr=LR)
    buffers = [np.empty(shape) for shape in SHAPES]
    for step in range(6):
        grads = [random_array(rng, shape, np.float64) for shape in SHAPES]
        if step % 2:
            for buffer, grad in zip(buffers, grads):
                buffer[...] = grad
            opt.step(buffers)
        else:
            opt.step(grads)
        reference.step(grads)
    assert_bitwise(params, reference.params)


def _state_arrays(opt):
    return [np.array(array, copy=True) for bucket in opt._engine.buckets for arrays in bucket.state.values()
            for array in arrays]


def _moved_and_fresh(make, start, grads, wrap, monkeypatch):
    """``(params, state_dict, steps bound)`` after stepping ``make(params)`` (params: copies of
    ``start``) over ``grads`` (a list of gradient lists), each step's gradients new copies: once as
    the engine takes them (the plans moved onto each), once with new plans at every step. A step
    bound is a :meth:`Bucket.bind` of each of the optimizer's buckets (one per dtype of its state)."""
    def run(new_plans):
        params = [p.copy(order="K") for p in start]
        opt = make(_tree(wrap, params))
        with monkeypatch.context() as patch:
            if new_plans:
                patch.setattr(Bucket, "_rebinding_of", lambda self, plan, addresses: None)
            binds = _counting_binds(patch)
            for step_grads in grads:
                opt.step(_tree(wrap, [g.copy(order="K") for g in step_grads]))
        assert len(binds) % len(opt._engine.buckets) == 0
        return params, opt.state_dict(), len(binds) // len(opt._engine.buckets)

    return run(new_plans=False), run(new_plans=True)


def _assert_same_steps(moved, fresh, n_steps):
    """The same parameters and state to the bit, the moved run bound at its first step only."""
    assert (moved[2], fresh[2]) == (1, n_steps)
    for a, b in zip(moved[0], fresh[0]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert moved[1].keys() == fresh[1].keys()
    for name, value in moved[1].items():
        if isinstance(value, (np.ndarray, list, tuple)):
            assert _leaf_bytes(value) == _leaf_bytes(fresh[1][name]), name
        else:  # the step count, the skipped steps, the hyperparameters
            assert value == fresh[1][name], name


def _leaf_bytes(tree):
    """The bytes of each array of a state dict's entry (a list or tuple of arrays, or one array)."""
    return [np.asarray(leaf).tobytes() for leaf in (tree if isinstance(tree, (list, tuple)) else [tree])]


def _random_grads(rng, shapes, order, steps, dtype=np.float32):
    return [[np.asarray(random_array(rng, shape, dtype), order=order) for shape in shapes] for _ in range(steps)]


#: Adafactor's cases: the one call (a layout of its own, holding the gradients' addresses) and,
#: from 2**16 elements, the passes on every core (the host's factors' pass reads the arrays).
ADAFACTOR_CASES = {
    "every core, C": ([(300, 300)], "C"),
    "every core, F": ([(300, 300)], "F"),
    "one call, C": ([(30, 33), (7,), (0, 4), (2, 5, 6)], "C"),
    "one call, F": ([(30, 33), (1, 9), (7,)], "F"),
    "one call, one vector": ([(300,)], "C"),
}


@pytest.mark.parametrize("case, container", [(case, container) for case in ADAFACTOR_CASES for container in CONTAINERS
                                              if len(ADAFACTOR_CASES[case][0]) == 1 or container != "one array"])
def test_adafactor_moves_its_plan_and_its_one_call_onto_new_arrays(case, container, monkeypatch):
    """Adafactor on new gradient arrays every step takes one plan, moved from array to array, and
    the bits of a new plan at every step (the factors and the parameters)."""
    shapes, order = ADAFACTOR_CASES[case]
    rng = np.random.default_rng(13)
    start = [np.asarray(random_array(rng, shape, np.float32), order=order) for shape in shapes]
    grads = _random_grads(rng, shapes, order, 5)
    moved, fresh = _moved_and_fresh(lambda tree: numadam.Adafactor(tree, lr=1e-2), start, grads,
                                    CONTAINERS[container], monkeypatch)
    _assert_same_steps(moved, fresh, len(grads))


#: Steps with a policy: (family, options, the parameters' dtype, shapes). Each takes the policy
#: pipeline's passes (a pre-pass, the host's decisions), which read the moved plan's table.
POLICY_CASES = {
    "clip_global_norm": ("adam", {"clip_global_norm": 0.5}, np.float32, SHAPES),
    "nonfinite skip": ("adam", {"nonfinite": "skip"}, np.float32, SHAPES),
    "clip_value": ("adamw", {"clip_value": 0.3}, np.float64, SHAPES),
    "accumulate": ("adam", {"accumulate": 3}, np.float32, SHAPES),
    "ema and bounds": ("lion", {"ema": 0.9, "bounds": (-0.5, 0.5)}, np.float32, SHAPES),
    "bfloat16 state": ("adam", {"state_dtype": "bfloat16"}, np.float32, SHAPES),
    "int8 state": ("adam", {"state_dtype": "int8"}, np.float32, [(70, 70), (9,)]),  # (9,): a bucket of its own
    "master weights": ("adam", {"master_weights": True}, np.float16, SHAPES),
    "kahan": ("adamw", {"compensation": "kahan"}, np.float16, SHAPES),
    "stochastic rounding": ("adam", {"stochastic_rounding": True, "seed": 4}, np.float16, SHAPES),
    "LAMB clipped": ("lamb", {"clip_global_norm": 0.5}, np.float32, SHAPES),
    "Adafactor skipping": ("adafactor", {"nonfinite": "skip"}, np.float32, SHAPES),
    "Prodigy slice_p": ("prodigy", {"slice_p": 3}, np.float32, [(40, 7), (9,)]),
}


#: The policy cases the quick tier runs (with both containers); the full tier runs them all.
QUICK_POLICY_CASES = ("clip_global_norm", "int8 state", "master weights", "Adafactor skipping")


@pytest.mark.parametrize("container", ["one array", "list"])
@pytest.mark.parametrize("case", tiered(list(POLICY_CASES), lambda case: case in QUICK_POLICY_CASES))
def test_steps_with_a_policy_move_the_plan_onto_new_arrays(case, container, monkeypatch):
    """A step with a policy on new gradient arrays takes the plan of the first step, moved onto
    them, and the bits of a new plan at every step: parameters, state, and the count of steps taken
    and skipped (one step's gradient holds a NaN)."""
    method, options, dtype, shapes = POLICY_CASES[case]
    shapes = shapes[:1] if container == "one array" else shapes
    rng = np.random.default_rng(17)
    start = [random_array(rng, shape, dtype) for shape in shapes]
    grads = _random_grads(rng, shapes, "C", 7, dtype)
    grads[3][0].reshape(-1)[1] = np.nan if options.get("nonfinite") == "skip" else grads[3][0].reshape(-1)[1]
    moved, fresh = _moved_and_fresh(lambda tree: numadam.families()[method](tree, lr=1e-2, **options), start, grads,
                                    CONTAINERS[container], monkeypatch)
    _assert_same_steps(moved, fresh, len(grads))
    if options.get("nonfinite") == "skip":
        assert moved[1]["skipped_steps"] == 1


@pytest.mark.parametrize("method", ["adam", "adafactor"])
def test_parameters_of_two_dtypes_move_both_plans_onto_new_arrays(method, monkeypatch):
    """Parameters of two dtypes keep two buckets: new arrays move each one's plan."""
    rng = np.random.default_rng(19)
    dtypes = [np.float32, np.float64, np.float32]
    start = [random_array(rng, shape, dtype) for shape, dtype in zip(SHAPES, dtypes)]
    grads = [[random_array(rng, shape, dtype) for shape, dtype in zip(SHAPES, dtypes)] for _ in range(5)]
    moved, fresh = _moved_and_fresh(lambda tree: numadam.families()[method](tree, lr=1e-2), start, grads, list,
                                    monkeypatch)
    _assert_same_steps(moved, fresh, len(grads))


@pytest.mark.parametrize("method", ["adam", "lamb", "adafactor"])
def test_a_schedule_on_new_arrays_keeps_one_launch_and_steps_as_new_plans(method, monkeypatch):
    """A schedule sets ``lr`` at every step, and its flags stay: the launch made at the first step
    serves every step (Adafactor's one call, moved onto each step's arrays, once)."""
    from numadam.engine.local import LocalEngine

    launches = []
    made = LocalEngine._direct_launcher
    monkeypatch.setattr(LocalEngine, "_direct_launcher",
                        lambda self, *arguments: launches.append(1) or made(self, *arguments))
    rng = np.random.default_rng(29)
    start = [random_array(rng, (12, 7), np.float32)]
    grads = _random_grads(rng, [(12, 7)], "C", 6)

    def make(tree):
        opt = numadam.families()[method](tree, lr=1e-2)
        opt.schedule = numadam.schedules.CosineDecay(1e-2, total_steps=8)
        return opt

    moved, fresh = _moved_and_fresh(make, start, grads, None, monkeypatch)
    _assert_same_steps(moved, fresh, len(grads))
    assert len(launches) == 1 + len(grads)  # the moved run's one, then one per new plan


@pytest.mark.parametrize("method", ["adam", "adafactor"])
def test_a_bucket_of_empty_parameters_steps_on_new_arrays(method):
    """A dtype whose parameters are all empty has a bucket with an empty plan, which has nothing to move."""
    rng = np.random.default_rng(31)
    params = [random_array(rng, (3, 4), np.float32), np.ones((0, 4))]
    reference = Reference(method, {}, [params[0]])
    opt = numadam.families()[method](params, lr=LR)
    for _ in range(3):
        grad = random_array(rng, (3, 4), np.float32)
        opt.step([grad, np.ones((0, 4))])
        reference.step([grad])
    assert_bitwise(params[:1], reference.params, method)
    assert opt.step_count == 3


@pytest.mark.parametrize("tree", ["dict", "groups"])
def test_new_arrays_in_a_dict_or_in_groups_move_the_plan(tree, monkeypatch):
    """Trees other than one flat list take the tree's checks at every step, then
    :meth:`Bucket.bind` moves the last plan onto the new arrays instead of making one."""
    rng = np.random.default_rng(23)
    plans = []
    made = Bucket._rebinding_of
    monkeypatch.setattr(Bucket, "_rebinding_of", lambda self, *arguments: plans.append(1) or made(self, *arguments))
    params = [random_array(rng, shape, np.float32) for shape in SHAPES]
    reference = Reference("adam", {}, params)
    if tree == "dict":
        opt = numadam.Adam(dict(zip("abc", params)), lr=LR)
    else:
        opt = numadam.Adam([numadam.Group(params[:1], lr=LR), numadam.Group(params[1:])], lr=LR)
    for _ in range(4):
        grads = [random_array(rng, shape, np.float32) for shape in SHAPES]
        opt.step(dict(zip("abc", grads)) if tree == "dict" else [grads[:1], grads[1:]])
        reference.step(grads)
    assert_bitwise(params, reference.params)
    assert len(plans) == 1


@pytest.mark.parametrize("method", ["adam", "adafactor"])
@pytest.mark.parametrize("bad", ["a parameter", "the state", "misaligned", "another dtype", "another shape"])
def test_after_new_arrays_a_gradient_that_breaks_a_rule_is_refused_with_nothing_written(bad, method):
    rng = np.random.default_rng(5)
    params = [random_array(rng, shape, np.float32) for shape in SHAPES]
    opt = numadam.families()[method](params, lr=LR)
    for _ in range(3):
        opt.step([random_array(rng, shape, np.float32) for shape in SHAPES])
    grads = [random_array(rng, shape, np.float32) for shape in SHAPES]
    if bad == "a parameter":
        grads[1], error, message = params[1][::-1][::-1], ValueError, "grads[1] shares memory with a parameter"
    elif bad == "the state":  # (the second parameter's, a vector: Adam's first moment, Adafactor's second)
        state = opt._engine.buckets[0].state["exp_avg" if method == "adam" else "row_var"][1]
        grads[1], error, message = state, ValueError, "grads[1] shares memory with a parameter or the optimizer state"
    elif bad == "misaligned":
        raw = np.zeros(grads[0].nbytes + 1, np.uint8)
        view = np.frombuffer(raw.data, np.float32, count=grads[0].size, offset=1).reshape(grads[0].shape)
        grads[0], error, message = view, ValueError, "grads[0] must be aligned"
    elif bad == "another dtype":
        grads[1], error, message = grads[1].astype(np.float64), TypeError, "grads[1] has dtype float64"
    else:
        grads[2], error, message = np.zeros((4, 3), np.float32), ValueError, "grads[2] has shape (4, 3)"
    before_params, before_state = [p.copy() for p in params], _state_arrays(opt)
    with pytest.raises(error, match=re.escape(message)):
        opt.step(grads)
    for after, before in zip(params, before_params):
        np.testing.assert_array_equal(after, before, strict=True)
    for after, before in zip(_state_arrays(opt), before_state):
        np.testing.assert_array_equal(after, before, strict=True)
    assert opt.step_count == 3


def test_a_read_only_new_gradient_is_read():
    rng = np.random.default_rng(8)
    params = [random_array(rng, (9,), np.float64)]
    reference = Reference("adam", {}, params)
    opt = numadam.Adam(params, lr=LR)
    for _ in range(3):
        grad = random_array(rng, (9,), np.float64)
        grad.flags.writeable = False
        opt.step([grad])
        reference.step([grad])
    assert_bitwise(params, reference.params)


def test_a_plan_merged_across_parameters_is_never_moved_onto_new_arrays(monkeypatch):
    """Parameters that are consecutive views of one buffer, with gradients that are consecutive
    views of another, take one merged row; new gradients apart from each other must not be read
    through that row (the second would be read from where the first one's buffer went on)."""
    rng = np.random.default_rng(9)
    sizes = [5, 7, 4]
    flat = random_array(rng, (sum(sizes),), np.float32)
    params = np.split(flat, np.cumsum(sizes)[:-1])
    reference = Reference("adam", {}, [p.copy() for p in params])
    opt = numadam.Adam(params, lr=LR)
    assert len(opt._engine.buckets[0]._fast_rows) == 3
    together = random_array(rng, (sum(sizes),), np.float32)
    grads = np.split(together, np.cumsum(sizes)[:-1])
    opt.step(grads)
    reference.step(grads)
    assert len(opt._engine.buckets[0].last_plan.rows) == 1  # merged: one row for the three
    binds = _counting_binds(monkeypatch)
    for _ in range(3):
        apart = [random_array(rng, (size,), np.float32) for size in sizes]
        opt.step(apart)
        reference.step(apart)
    assert_bitwise(params, reference.params)
    assert len(binds) == 1  # the merged plan could not move: a new one, which then moves
