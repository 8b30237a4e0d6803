"""The functional steps against the NumPy references: every family's in every shape and dtype, and
Adam's in depth (layouts of each operand, trajectories, the paper's arrangement, NaN and infinity)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numadam
from arrays import DTYPES, LAYOUTS, OPTIONS, in_layout, random_array, tiered
from numadam.registry import functional_step
from reference import adam_exact, adam_paper, as_real
from test_families import CASES, STEPS, Reference, case_id, hyperparameters, takes_complex
from test_families import assert_bitwise as assert_family_bitwise

HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4), (4, 1, 3), (300,)]


def make_state(rng, shape, dtype, amsgrad, scale=1.0):
    param = random_array(rng, shape, dtype)
    grad = random_array(rng, shape, dtype, scale)
    exp_avg = random_array(rng, shape, dtype, 0.1)
    exp_avg_sq = random_array(rng, shape, dtype, 0.01, positive=True)
    peak = np.asarray(exp_avg_sq * 1.5, dtype) if amsgrad else None
    return param, grad, exp_avg, exp_avg_sq, peak


def run_both(rng, shape, dtype, options, layouts=("C",) * 5, steps=1, scale=1.0):
    """Take ``steps`` steps with numadam (in the given layouts) and with the reference."""
    amsgrad = options.get("amsgrad", False)
    values = make_state(rng, shape, dtype, amsgrad, scale)
    expected = list(values)
    arrays = [None if v is None else in_layout(v.copy(), layout) for v, layout in zip(values, layouts)]
    for step in range(1, steps + 1):
        grad = random_array(rng, shape, dtype, scale)
        arrays[1][...] = grad
        numadam.adam_step(*arrays[:4], step=step, max_exp_avg_sq=arrays[4], **HYPER, **options)
        p, m, v, peak = adam_exact(expected[0], grad, expected[2], expected[3], expected[4],
                                   step=step, **HYPER, **options)
        expected = [p, grad, m, v, peak]
    return arrays, expected


def assert_bitwise(actual, expected):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
            continue
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e, strict=True)


#: (case, shape) of every family's functional step: each case of tests/test_families.py in every shape.
FAMILY_CASES = [(case, shape) for case in CASES for shape in SHAPES]


@pytest.mark.parametrize("dtype", tiered(DTYPES, lambda dtype: dtype == np.float32))
@pytest.mark.parametrize("case, shape", tiered(FAMILY_CASES, lambda pair: not pair[0][1] and (
    pair[1] == (3, 5) or pair[0][0] == "adam"), unpack=True), ids=lambda v: case_id(v) if isinstance(v, tuple)
    and len(v) == 2 and isinstance(v[1], dict) else str(v))
def test_every_family_s_functional_step_matches_its_reference(case, shape, dtype):
    """Every family's functional step, every option of tests/test_families.py's cases, every shape
    (empty and scalar ones too), eight steps: bit for bit its NumPy reference (LAMB: to a few ulps)."""
    method, options = case
    cls = numadam.families()[method]
    step_function = functional_step(method)
    rng = np.random.default_rng(7)
    param = random_array(rng, shape, dtype)
    if np.dtype(dtype).kind == "c" and not takes_complex(method):
        state = Reference(method, options, [param.real.copy()]).state[0]
        with pytest.raises(TypeError, match="takes real parameters"):
            step_function(param, param.copy(), *state.values(), step=1)
        return
    reference = Reference(method, options, [param])
    state = {name: np.array(value, copy=True) for name, value in reference.state[0].items()}
    always = [kind.name for kind in cls.algorithm.state if kind.present is None and not kind.derived]
    optional = {name: value for name, value in state.items() if name not in always}
    keywords = {**hyperparameters(method, options), **optional}  # AdamW's pinned options included
    carry = None
    for t in range(1, STEPS + 1):
        grad = random_array(rng, param.shape, dtype)
        if cls.algorithm.carry is not None:
            keywords["carry"] = carry
        carry = step_function(param, grad, *[state[n] for n in always], step=t, **keywords)
        reference.step([grad])
    assert_family_bitwise([param] + list(state.values()), reference.params + list(reference.state[0].values()),
                          method)
    if cls.algorithm.carry is not None and method == "prodigy":  # float64 sums in another order
        np.testing.assert_allclose(carry, reference.carry, rtol=1e-9, atol=0)
    elif cls.algorithm.carry is not None:
        assert carry == reference.carry


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.0, 1e-6, 1.0, 1e3])
@pytest.mark.parametrize("option", ["adam", "adamw", "amsgrad", "everything"])
def test_trajectories_over_gradient_scales(rng, dtype, scale, option):
    arrays, expected = run_both(rng, (5, 6), dtype, OPTIONS[option], steps=12, scale=scale)
    assert_bitwise([arrays[0], arrays[2], arrays[3], arrays[4]], [expected[0], expected[2], expected[3], expected[4]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_is_updated_in_place(rng, dtype, layout):
    """Each operand in its own layout; the parameter's own memory holds the result."""
    layouts = [layout, "C", LAYOUTS[(LAYOUTS.index(layout) + 1) % len(LAYOUTS)], layout, "F"]
    arrays, expected = run_both(rng, (4, 6, 3), dtype, OPTIONS["everything"], layouts, steps=3)
    assert_bitwise([arrays[0], arrays[2], arrays[3], arrays[4]], [expected[0], expected[2], expected[3], expected[4]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_take_the_parallel_path(rng, dtype):
    arrays, expected = run_both(rng, (300_001,), dtype, OPTIONS["everything"], steps=2)
    assert_bitwise([arrays[0], arrays[2], arrays[3], arrays[4]], [expected[0], expected[2], expected[3], expected[4]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_documented_order_agrees_with_the_paper(rng, dtype, option):
    """The kernel's arrangement of the formula equals Algorithm 1's up to rounding."""
    options = OPTIONS[option]
    amsgrad = options.get("amsgrad", False)
    param, grad, exp_avg, exp_avg_sq, peak = make_state(rng, (50,), dtype, amsgrad)
    original = [None if a is None else a.copy() for a in (param, grad, exp_avg, exp_avg_sq, peak)]
    numadam.adam_step(param, grad, exp_avg, exp_avg_sq, step=3, max_exp_avg_sq=peak, **HYPER, **options)
    paper_param = adam_paper(*original, step=3, **HYPER, **options)[0]
    tolerance = 1e-5 if as_real(param).dtype == np.float32 else 1e-12
    np.testing.assert_allclose(as_real(param), paper_param, rtol=tolerance, atol=tolerance * HYPER["lr"])


def test_first_step_moves_each_element_by_lr():
    """Adam's first step is lr * sign(g) (up to eps): a property independent of any reference."""
    param = np.array([0.0, 1.0, -1.0, 5.0])
    grad = np.array([3.0, -1e-3, 1e4, -2.0])
    numadam.adam_step(param, grad, np.zeros(4), np.zeros(4), step=1, lr=0.1, betas=(0.9, 0.999), eps=0.0)
    np.testing.assert_allclose(param, [-0.1, 1.1, -1.1, 5.1], rtol=1e-12)


layouts = st.sampled_from(LAYOUTS)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from(DTYPES),
    option=st.sampled_from(sorted(OPTIONS)),
    operand_layouts=st.tuples(layouts, layouts, layouts, layouts, layouts),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shape_layout_and_options(shape, dtype, option, operand_layouts, steps, seed):
    rng = np.random.default_rng(seed)
    arrays, expected = run_both(rng, shape, dtype, OPTIONS[option], operand_layouts, steps=steps)
    assert_bitwise([arrays[0], arrays[2], arrays[3], arrays[4]], [expected[0], expected[2], expected[3], expected[4]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_like_the_reference(rng, dtype):
    """NaN and inf flow through exactly as NumPy's arithmetic (and numpy.maximum) carry them."""
    param, grad, exp_avg, exp_avg_sq, _ = make_state(rng, (6,), dtype, False)
    grad[0], grad[1], grad[2] = np.nan, np.inf, -np.inf
    peak = np.asarray(exp_avg_sq * 2, dtype)
    peak[3] = np.nan
    original = [a.copy() for a in (param, grad, exp_avg, exp_avg_sq, peak)]
    numadam.adam_step(param, grad, exp_avg, exp_avg_sq, step=2, max_exp_avg_sq=peak,
                      amsgrad=True, weight_decay=0.1, **HYPER)
    with np.errstate(invalid="ignore"):
        expected = adam_exact(*original, step=2, amsgrad=True, weight_decay=0.1, **HYPER)
    assert_bitwise([param, exp_avg, exp_avg_sq, peak], expected)
    assert np.isnan(peak[0]) and np.isnan(peak[3])


def test_a_gradient_in_another_memory_order_does_not_split_the_table(rng):
    """A C-ordered parameter with a Fortran-ordered gradient: two long segments, not one per row."""
    from numadam.targets.dispatch import backend_for
    from numadam.engine.operands import operand_rows

    param = random_array(rng, (1000, 2), np.float64)
    grad = np.asfortranarray(random_array(rng, (1000, 2), np.float64))
    state = [np.zeros_like(param) for _ in range(2)]
    arrays = [param, grad, *state]
    backend = backend_for(arrays, ["param", "grad", "exp_avg", "exp_avg_sq"])
    rows = operand_rows([backend.describe(a) for a in arrays] + [None] * 5)  # no max_exp_avg_sq, no policies
    assert len(rows) == 2
    expected = adam_exact(param, grad, state[0], state[1], step=1, **HYPER)
    numadam.adam_step(param, grad, *state, step=1, **HYPER)
    assert_bitwise([param, state[0], state[1]], expected[:3])


def test_a_loop_over_arrays_keeps_each_ones_plan_and_hyperparameters(rng, monkeypatch):
    """A loop stepping several arrays, each with its own learning rate, plans each set of arrays
    once: later calls with the very same arrays and hyperparameters reuse it. A changed
    hyperparameter, a new array or a freed array's successor is planned again; every step stays
    the reference's, bit for bit."""
    import numadam.functional as functional

    planned = []
    original = functional.prepared
    monkeypatch.setattr(functional, "prepared", lambda *a, **k: planned.append(1) or original(*a, **k))
    shapes = [(7,), (3, 5), (300,), (2, 3, 4)]
    arrays = [[random_array(rng, s, np.float32, 0.01 if k == 3 else 1.0, positive=k == 3) for k in range(4)]
              for s in shapes]
    expected = [[a.copy() for a in arrays_of_one] for arrays_of_one in arrays]
    counts = []
    for step in range(1, 6):
        planned.clear()
        for k, (param, grad, exp_avg, exp_avg_sq) in enumerate(arrays):
            lr = 10.0 ** -(k + 1) * (2 if step == 4 and k == 1 else 1)  # array 1: another lr at step 4 only
            grad[...] = random_array(rng, grad.shape, np.float32)
            numadam.adam_step(param, grad, exp_avg, exp_avg_sq, step=step, lr=lr, betas=(0.9, 0.999), eps=1e-8)
            p, m, v, _ = adam_exact(expected[k][0], grad, expected[k][2], expected[k][3], None, step=step, lr=lr,
                                    betas=(0.9, 0.999), eps=1e-8)
            expected[k] = [p, grad.copy(), m, v]
            assert_bitwise([param, exp_avg, exp_avg_sq], [p, m, v])
        counts.append(len(planned))
        if step == 2:  # array 2's gradient replaced by a new array: its plan is made again
            arrays[2][1] = arrays[2][1].copy()
    assert counts == [4, 0, 1, 1, 1], counts  # step 5: array 1 back to its first lr, planned again


def _counting_adam_step(monkeypatch):
    """A fresh Adam step function (no plans kept yet) and the list its planning appends to."""
    import numadam.functional as functional

    planned = []
    original = functional.prepared
    monkeypatch.setattr(functional, "prepared", lambda *a, **k: planned.append(1) or original(*a, **k))
    return functional.step_function(numadam.Adam, "adam_step", ""), planned


def test_a_full_set_of_plans_forgets_the_freed_arrays_plans_first(rng, monkeypatch):
    """With room for three plans: a fourth set of arrays takes the place of a set that was freed,
    and the live sets keep theirs; when every kept plan is live, they are all forgotten."""
    import numadam.functional as functional

    monkeypatch.setattr(functional, "MOST_PLANS", 3)
    step, planned = _counting_adam_step(monkeypatch)

    def new_set():
        return [random_array(rng, (5,), np.float32) for _ in range(2)] + [np.zeros(5, np.float32) for _ in range(2)]

    sets = {name: new_set() for name in "ABC"}
    for name in "ABC":
        step(*sets[name], step=1, **HYPER)
    assert len(planned) == 3
    del sets["C"]  # its arrays freed: its plan's references die
    sets["D"] = new_set()
    for name in "DAB":
        step(*sets[name], step=2, **HYPER)
    assert len(planned) == 4  # D took C's place; A and B kept theirs
    sets["E"] = new_set()
    step(*sets["E"], step=1, **HYPER)  # every kept plan live: all forgotten, E's made
    step(*sets["A"], step=3, **HYPER)
    assert len(planned) == 6


def test_a_freed_arrays_successor_at_the_same_id_is_planned_again(rng, monkeypatch):
    """A plan is kept under its arrays' ids, which a new array may take once one of them is freed:
    the plan's weak references tell, and the call is checked and planned again."""
    step, planned = _counting_adam_step(monkeypatch)
    param, exp_avg, exp_avg_sq = random_array(rng, (6,), np.float32), np.zeros(6, np.float32), np.zeros(6, np.float32)
    grad = random_array(rng, (6,), np.float32)
    expected = adam_exact(param, grad, exp_avg, exp_avg_sq, None, step=1, **HYPER)
    step(param, grad, exp_avg, exp_avg_sq, step=1, **HYPER)
    freed, values = id(grad), grad.copy()
    del grad
    for _ in range(100):  # CPython usually gives the freed object's memory to the next array
        successor = values * 2
        if id(successor) == freed:
            break
        del successor
    else:
        pytest.skip("no new array took the freed gradient's id")
    step(param, successor, exp_avg, exp_avg_sq, step=2, **HYPER)
    assert len(planned) == 2
    expected = adam_exact(*expected[:1], successor, *expected[1:3], None, step=2, **HYPER)
    assert_bitwise([param, exp_avg, exp_avg_sq], expected[:3])



def test_lambs_functional_step_keeps_both_passes_plan(rng, monkeypatch):
    """A family with a norms pass (LAMB) keeps its plan too: the norms pass and the update are
    planned once for the same arrays (the gradient refilled in place), and each call gives the
    bits of the call that checks and plans everything (``run_step``), run alongside on copies."""
    import numadam.functional as functional

    planned = []
    original = functional.prepared
    monkeypatch.setattr(functional, "prepared", lambda *a, **k: planned.append(1) or original(*a, **k))
    step = functional.step_function(numadam.LAMB, "lamb_step", "")
    algorithm = numadam.LAMB.algorithm
    given = {"lr": 0.01, "weight_decay": 0.1}
    merged = {**numadam.LAMB._class_defaults, **given, **numadam.LAMB.pinned}
    hyper = {h.name: h.check(h.name, merged[h.name]) for h in algorithm.hyperparameters}
    shape = (3, 700)
    param, grad = random_array(rng, shape, np.float32), np.zeros(shape, np.float32)
    state = [np.zeros(shape, np.float32), np.zeros(shape, np.float32)]
    expected = [param.copy(), *(array.copy() for array in state)]
    made = []
    for t in range(1, 5):
        grad[...] = random_array(rng, shape, np.float32)
        before = len(planned)
        step(param, grad, *state, step=t, **given)
        made.append(len(planned) - before)
        operands = {"param": expected[0], "grad": grad.copy(), "exp_avg": expected[1], "exp_avg_sq": expected[2]}
        functional.run_step(numadam.LAMB, operands, t, hyper, algorithm.initial_carry())
        assert_bitwise([param, *state], expected)
    assert made == [1, 0, 0, 0], "planned at the first call only (run_step checks each call)"


@pytest.mark.parametrize("shape", [(30, 70), (3, 20, 30), (50,)])
def test_adafactors_functional_step_keeps_its_three_passes_plan(rng, monkeypatch, shape):
    """A family with factored state (Adafactor) keeps its plan too: the factors' pass, the norms
    pass and the update are planned once for the same arrays (a vector's ``col_var`` given as
    ``None``), and each call gives the bits of the call that checks and plans everything
    (``run_step``), run alongside on copies."""
    import numadam.functional as functional

    made = []
    original = functional._factored_launch
    monkeypatch.setattr(functional, "_factored_launch",
                        lambda *a, weakly=False: made.append(weakly) or original(*a, weakly=weakly))
    step = functional.step_function(numadam.Adafactor, "adafactor_step", "")
    algorithm = numadam.Adafactor.algorithm
    given = {"lr": 0.02, "weight_decay": 0.1}
    merged = {**numadam.Adafactor._class_defaults, **given, **numadam.Adafactor.pinned}
    hyper = {h.name: h.check(h.name, merged[h.name]) for h in algorithm.hyperparameters}
    param, grad = random_array(rng, shape, np.float32), np.zeros(shape, np.float32)
    matrix = len(shape) >= 2
    row_var = np.zeros(shape[:-1] + (1,) if matrix else shape, np.float32)
    col_var = np.zeros(shape[:-2] + (1, shape[-1]), np.float32) if matrix else None
    expected = [param.copy(), row_var.copy(), None if col_var is None else col_var.copy()]
    for t in range(1, 5):
        grad[...] = random_array(rng, shape, np.float32)
        step(param, grad, row_var, col_var, step=t, **given)
        operands = {"param": expected[0], "grad": grad.copy(), "row_var": expected[1], "col_var": expected[2]}
        functional.run_step(numadam.Adafactor, operands, t, hyper, algorithm.initial_carry())
        assert_bitwise([param, row_var] + ([col_var] if matrix else []), expected[:3 if matrix else 2])
    assert made == [True] + [False] * 4, "planned once, then the plan's launch; run_step checks each call"


def test_a_kept_factored_plan_holds_the_callers_arrays_weakly(rng):
    """The plan of an Adafactor step keeps none of the caller's arrays alive: freed, they go."""
    import gc
    import weakref

    param = random_array(rng, (20, 30), np.float32)
    arrays = [param, random_array(rng, (20, 30), np.float32), np.zeros((20, 1), np.float32),
              np.zeros((1, 30), np.float32)]
    numadam.adafactor_step(*arrays, step=1, lr=0.01)
    refs = [weakref.ref(array) for array in arrays]
    del param, arrays
    gc.collect()
    assert [ref() is None for ref in refs] == [True] * 4
