"""Adafactor's factored state: its shapes, the factors' pass, the options it takes and refuses.

The trajectories against the NumPy reference (every dtype, layout and shape)
are in tests/test_families.py and tests/test_functional.py; against torch in
tests/test_parity_torch_adafactor.py.
"""

import numpy as np
import pytest

import numadam
from arrays import LAYOUTS, in_layout, random_array, tiered
from numadam.core import factors
from numadam.targets.cpu import factor_sums
from test_families import Reference, assert_bitwise

LR = 1e-2


def steps(opt, grads):
    for grad in grads:
        opt.step(grad)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4), (1, 7), (7, 1), (6,), ()])
def test_the_state_has_the_factors_shapes(shape):
    param = np.ones(shape, np.float32)
    opt = numadam.Adafactor(param)
    state = opt.state_dict()
    assert not {"row_mean", "row_scale", "col_scale"} & set(state)  # derived: recomputed every step, not saved
    assert state["row_var"].shape == factors.factor_shape("rows", shape)
    assert state["col_var"].shape == factors.factor_shape("columns", shape)
    if len(shape) < 2:
        assert state["row_var"].shape == shape and state["col_var"] == 1.0


@pytest.mark.parametrize("layout", tiered(LAYOUTS, lambda layout: layout in ("C", "F")))
@pytest.mark.parametrize("shape", tiered([(40, 3), (3, 130), (2, 70, 5)], lambda shape: shape == (40, 3)))
def test_every_layout_of_matrices_and_batches_matches_the_reference(layout, shape):
    """Rows past one block of the compiled pass (64), tall and wide matrices, a batch."""
    rng = np.random.default_rng(1)
    param = in_layout(random_array(rng, shape, np.float32), layout)
    reference = Reference("adafactor", {}, [param])
    opt = numadam.Adafactor(param, lr=LR)
    for _ in range(5):
        grad = in_layout(random_array(rng, shape, np.float32), layout)
        opt.step(grad)
        reference.step([grad])
    assert_bitwise([param], reference.params, "adafactor")
    assert_bitwise([opt.state_dict()["row_var"], opt.state_dict()["col_var"]],
                   [reference.state[0]["row_var"], reference.state[0]["col_var"]], "adafactor")


@pytest.mark.parametrize("eps1", [None, 1e-12, 0.0])
def test_zero_rows_and_columns_take_the_capped_scale_as_the_reference(eps1):
    """A row and a column of zeros: their factors are 0 and their scales infinite, so the direction
    takes the cap 1/eps1 there, as the reference's (and torch's 1/sqrt(eps1^2)). With eps1 = 0 the
    cap is infinite and the zero gradient times it NaN, in torch too: NaN in the same places."""
    rng = np.random.default_rng(4)
    param = random_array(rng, (6, 5), np.float32)
    hyper = {"eps": (eps1, 1e-3)}
    reference = Reference("adafactor", hyper, [param])
    opt = numadam.Adafactor(param, lr=LR, **hyper)
    with np.errstate(invalid="ignore"):
        for _ in range(3):
            grad = random_array(rng, (6, 5), np.float32)
            grad[2], grad[:, 3] = 0, 0
            opt.step(grad)
            reference.step([grad])
    if eps1 == 0.0:
        np.testing.assert_array_equal(np.isnan(param), np.isnan(reference.params[0]))
        assert np.isnan(param[2]).all() and np.isnan(param[:, 3]).all()
    else:
        assert np.all(np.isfinite(param))
        assert_bitwise([param], reference.params, "adafactor")


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_the_compiled_sums_are_the_float64_sums_of_the_effective_gradient(layout):
    rng = np.random.default_rng(2)
    grad = in_layout(random_array(rng, (3, 150, 9), np.float32), layout)
    for scale, clip in [(1.0, None), (0.5, 0.3)]:
        rows, columns = factor_sums.row_and_column_squares(grad, scale, clip)
        effective = np.clip(grad * np.float32(scale), -np.inf if clip is None else -np.float32(clip),
                            np.inf if clip is None else np.float32(clip)).astype(np.float64) ** 2
        np.testing.assert_allclose(rows, effective.sum(axis=-1), rtol=1e-14)
        np.testing.assert_allclose(columns, effective.sum(axis=-2), rtol=1e-14)


def elementwise_norms(param, grad, state, estimate_floor, scale, clip):
    """``(‖p‖², ‖u‖²)`` of one parameter as the norms pass sums them: u formed element by element as
    the rule forms it from the moved factors' scales (a matrix) or second moment (a vector)."""
    real = state["row_var"].dtype.type
    g = np.clip(grad * real(scale), -real(clip), real(clip))
    if grad.ndim >= 2:
        cap = real(1) / np.sqrt(real(estimate_floor))
        with np.errstate(over="ignore"):
            products = state["row_scale"] * state["col_scale"]
        u = np.where(products > cap, cap, products) * g
    else:
        u = (real(1) / np.sqrt(np.maximum(state["row_var"], real(estimate_floor)))) * g
    return float(np.sum(param.astype(np.float64) ** 2)), float(np.sum(u.astype(np.float64) ** 2))


@pytest.mark.parametrize("shape, layout, dtype", tiered(
    [(shape, layout, dtype)
     for shape in [(70, 9), (600, 130), (3, 50, 20), (9, 700), (150, 700), (700, 150), (3, 50, 600), (1000,),
                   (100000,)]
     for layout in ["C", "F", "strided"] for dtype in [np.float32, np.float64]],
    lambda case: (case[0], case[1], case[2]) in (((70, 9), "F", np.float32), ((600, 130), "strided", np.float32),
                                                 ((100000,), "C", np.float32)),
    unpack=True))
def test_the_factors_pass_sums_the_norms_the_norms_pass_would(shape, layout, dtype):
    """‖u‖² from the row and column sums (:mod:`numadam.core.factors`: the mean row factor times
    each column's sum of g^2 / r over its factor) and ‖p‖² in the same read: the norms pass's sums
    to a few units in the last place of the dtype, in serial and parallel sizes (a vector's in
    chunks), walked by rows or transposed, with a gradient scale and a clip."""
    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(5)
    real = np.dtype(dtype)
    param = in_layout(random_array(rng, shape, dtype), layout)
    state = {name: np.zeros(factors.factor_shape(factor, shape), dtype) for name, factor in
             [("row_var", "rows"), ("col_var", "columns"), ("row_mean", "means"), ("row_scale", "row_scales"),
              ("col_scale", "column_scales")]}
    if len(shape) < 2:
        state["col_var"][...] = state["row_mean"][...] = 1
    estimate_floor = real.type(np.finfo(dtype).eps) ** 2
    for step, (scale, clip) in enumerate([(1.0, None), (0.5, 0.7), (2.0, None)], start=1):
        grad = in_layout(random_array(rng, shape, dtype), layout)
        found = CpuBackend.update_factors(grad, *state.values(), real.type(step ** -0.8), real.type(np.finfo(dtype).eps),
                                          scale, clip, {}, param=param, estimate_floor=estimate_floor)
        expected = elementwise_norms(param, grad, state, estimate_floor, scale, np.inf if clip is None else clip)
        assert found is not None
        np.testing.assert_allclose(found, expected, rtol=16 * np.finfo(dtype).eps)


def test_the_factors_pass_leaves_the_norms_to_the_norms_pass_where_its_formula_does_not_hold(monkeypatch):
    """A row of zeros (an infinite scale, capped), a gradient too small for its squares' estimate
    (scales past the cap 1/eps1), a NaN, rows wider than the pass keeps in its cache: the pass
    returns None, and the optimizer's step runs the norms pass (and matches the reference)."""
    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(6)
    state = {name: np.zeros(factors.factor_shape(factor, (40, 30)), np.float32) for name, factor in
             [("row_var", "rows"), ("col_var", "columns"), ("row_mean", "means"), ("row_scale", "row_scales"),
              ("col_scale", "column_scales")]}
    param = random_array(rng, (40, 30), np.float32)
    floor = np.float32(np.finfo(np.float32).eps) ** 2

    def passed(grad):
        fresh = {name: array.copy() for name, array in state.items()}
        return CpuBackend.update_factors(grad, *fresh.values(), np.float32(1), np.finfo(np.float32).eps, 1.0, None,
                                         {}, param=param, estimate_floor=floor)

    zero_row, tiny, poisoned = (random_array(rng, (40, 30), np.float32) for _ in range(3))
    zero_row[7] = 0
    tiny *= np.float32(1e-9)
    poisoned[3, 4] = np.nan
    assert passed(random_array(rng, (40, 30), np.float32)) is not None
    for grad in (zero_row, tiny, poisoned):
        with np.errstate(invalid="ignore", divide="ignore"):
            assert passed(grad) is None
    monkeypatch.setattr(factor_sums, "WIDEST_ROW_WITH_NORMS", 29)
    assert passed(random_array(rng, (40, 30), np.float32)) is None
    monkeypatch.undo()

    reductions = []
    engine_type = type(numadam.Adafactor(np.ones((2, 2), np.float32))._engine)
    original = engine_type._reduce
    monkeypatch.setattr(engine_type, "_reduce", lambda self, *a: reductions.append(1) or original(self, *a))
    start = random_array(rng, (40, 30), np.float32)
    reference = Reference("adafactor", {}, [start.copy()])
    opt = numadam.Adafactor(start, lr=LR)
    with np.errstate(invalid="ignore", divide="ignore"):
        for grad, runs in [(zero_row, 1), (random_array(rng, (40, 30), np.float32), 1), (poisoned, 2)]:
            opt.step(grad)  # a row of zeros on the first step: its factor 0, its scale infinite
            reference.step([grad])
            assert len(reductions) == runs
            np.testing.assert_array_equal(np.isnan(start), np.isnan(reference.params[0]))
    assert np.isnan(start).all()  # the NaN's row and column factors poison every row's mean


#: Shapes of the pass's kinds of block: serial and parallel sizes, one block and several, rows summed
#: one at a time (up to ONE_ROW_WIDEST columns) and eight at a time, blocks of more than 64 rows; and,
#: for the pass with the norms, weighted sums sixteen rows at a time (SIXTEEN_ROWS_NARROWEST to
#: SIXTEEN_ROWS_WIDEST columns), with blocks ending in sixteen, in eight and some, and in fewer than
#: eight rows.
SUM_SHAPES = [(13, 9), (1000, 70), (20, factor_sums.ONE_ROW_WIDEST + 76), (136, factor_sums.ONE_ROW_WIDEST + 76),
              (4200, 20), (44, factor_sums.SIXTEEN_ROWS_NARROWEST), (150, factor_sums.SIXTEEN_ROWS_WIDEST)]


@pytest.mark.parametrize("shape", SUM_SHAPES)
def test_a_gradient_neither_scaled_nor_clipped_is_summed_as_the_effective_one(shape):
    """The pass without the scale and the clip (grad_scale 1, no clip_value) gives the bits of the
    pass with them at 1 and infinity, NaN and infinities included, in parallel and serial sizes:
    its sums, and with the norms (whose weighted sums have a loop of their own for a gradient as
    given) its factors and ``(‖p‖², ‖u‖²)``."""
    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(4)
    grad = random_array(rng, shape, np.float32)
    param = random_array(rng, shape, np.float32)
    grad[1, 2], grad[3, 4], grad[5, 6] = np.nan, np.inf, -np.inf
    grad[7] *= 1e30  # squares past float32's range: float64 sums hold them
    plain = factor_sums.row_and_column_squares(grad, 1.0, None)
    effective = factor_sums.row_and_column_squares(grad, 1.0, np.inf)
    for ours, theirs in zip(plain, effective):
        np.testing.assert_array_equal(ours.view(np.int64), theirs.view(np.int64))
    assert np.isnan(plain[0][1]) and plain[0][3] == np.inf and np.isfinite(plain[0][0])
    finite = random_array(rng, shape, np.float32)
    moved = []
    for clip in (None, np.inf):
        state = [np.full(factors.factor_shape(factor, shape), 0.5, np.float32)
                 for factor in ("rows", "columns", "means", "row_scales", "column_scales")]
        found = CpuBackend.update_factors(finite, *state, np.float32(0.2), np.float32(1e-30), 1.0, clip, {},
                                          param=param, estimate_floor=np.float32(1e-30))
        assert found is not None
        moved.append((state, found))
    (state, found), (state_inf, found_inf) = moved
    for ours, theirs in zip(state, state_inf):
        np.testing.assert_array_equal(ours.view(np.int32), theirs.view(np.int32))
    assert np.array(found).tobytes() == np.array(found_inf).tobytes()


@pytest.mark.parametrize("shape", SUM_SHAPES)
def test_the_factors_are_the_same_bits_with_the_norms_or_without(shape):
    """The pass that sums the norms too sums each block's rows in the same groups of eight as the pass
    without them: the same factors and scales, bit for bit."""
    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(6)
    grad, param = random_array(rng, shape, np.float32), random_array(rng, shape, np.float32)
    moved = []
    for norms in (False, True):
        state = [np.full(factors.factor_shape(factor, shape), 0.5, np.float32) for factor in factors.FACTORS]
        found = CpuBackend.update_factors(grad, *state, np.float32(0.2), np.float32(1e-30), 1.0, None, {},
                                          param=param if norms else None,
                                          estimate_floor=np.float32(1e-30) if norms else None)
        assert (found is not None) == norms
        moved.append(state)
    for ours, theirs in zip(*moved):
        np.testing.assert_array_equal(ours.view(np.int32), theirs.view(np.int32))


def test_the_blocks_of_rows_depend_on_the_rows_alone():
    """At least 64 rows a block, a multiple of 8, at most 64 blocks a matrix; 64 up to 4096 rows."""
    for n_rows in [0, 1, 7, 64, 65, 4096, 4097, 4200, 30000, 10**6, 10**6 + 3]:
        per_block = factor_sums.rows_per_block(n_rows)
        blocks = factor_sums.block_count(n_rows, per_block)
        assert per_block >= factor_sums.FEWEST_ROWS_PER_BLOCK and per_block % 8 == 0
        assert 1 <= blocks <= factor_sums.MOST_BLOCKS_PER_MATRIX and (blocks - 1) * per_block < max(n_rows, 1)
        assert per_block == 64 or n_rows > 4096
    assert factor_sums.rows_per_block(30000) == 472


def test_the_weighted_sums_take_sixteen_rows_from_512_to_1024_columns():
    """The weighted sums' groups (a function of the walked rows' width alone): sixteen rows from 512 to
    1024 columns, else eight."""
    groups = {width: factor_sums.weighted_group_rows(width) for width in [1, 100, 511, 512, 1000, 1024, 1025, 10**5]}
    assert groups == {1: 8, 100: 8, 511: 8, 512: 16, 1000: 16, 1024: 16, 1025: 8, 10**5: 8}


@pytest.mark.parametrize("shape", [shape for shape in SUM_SHAPES if np.prod(shape) >= factor_sums.SERIAL_BELOW])
def test_the_sums_do_not_depend_on_the_number_of_threads(shape):
    """Rows in fixed blocks, the blocks' column sums added in block order: the threads change nothing,
    and :mod:`numadam.jit`'s pass (on the calling thread, :func:`factor_sums.matrix_squares`) gives
    the same bits. (Large enough for the parallel loops: smaller gradients are summed on the calling
    thread.)"""
    import numba

    grad = random_array(np.random.default_rng(3), shape, np.float32)
    assert grad.size >= factor_sums.SERIAL_BELOW
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = factor_sums.row_and_column_squares(grad, 1.0, None)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        every = factor_sums.row_and_column_squares(grad, 1.0, None)
    finally:
        numba.set_num_threads(previous)
    compiled = factor_sums.matrix_squares(grad, np.float32(1), np.float32(np.inf))
    squares = grad.astype(np.float64) ** 2
    for a, b, c, expected in zip(one, every, compiled, (squares.sum(axis=-1), squares.sum(axis=-2))):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c.reshape(-1), b)
        np.testing.assert_allclose(b, expected, rtol=1e-14)


def test_the_norms_of_the_factors_pass_do_not_depend_on_the_number_of_threads():
    """The blocks' and chunks' sums added in their order: one thread and every thread give the
    same bits, for a matrix and for a vector (parallel sizes)."""
    import numba

    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(8)
    floor = np.float32(np.finfo(np.float32).eps) ** 2
    previous = numba.get_num_threads()
    for shape in [(1000, 70), (150, 700), (100000,)]:
        param, grad = random_array(rng, shape, np.float32), random_array(rng, shape, np.float32)
        found = []
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            state = [np.zeros(factors.factor_shape(factor, shape), np.float32) for factor in factors.FACTORS]
            if len(shape) < 2:
                state[1][...] = state[2][...] = 1
            try:
                numba.set_num_threads(threads)
                found.append(CpuBackend.update_factors(grad, *state, np.float32(1), np.finfo(np.float32).eps, 1.0,
                                                       None, {}, param=param, estimate_floor=floor))
            finally:
                numba.set_num_threads(previous)
        assert found[0] is not None and found[0] == found[1]


def problem(seed):
    rng = np.random.default_rng(seed)
    shapes = {"W": (6, 4), "b": (4,), "T": (2, 3, 5)}
    params = {name: random_array(rng, shape, np.float32) for name, shape in shapes.items()}
    grads = [{name: random_array(rng, shape, np.float32) for name, shape in shapes.items()} for _ in range(5)]
    return params, grads


def copies(tree):
    return {name: np.array(value, copy=True) for name, value in tree.items()}


@pytest.mark.slow
def test_clip_value_clips_the_gradient_of_every_pass():
    """The factors, the norms and the update all see the clipped gradient: as clipping it by hand."""
    params, grads = problem(4)
    fused, by_hand = copies(params), copies(params)
    opt, plain = numadam.Adafactor(fused, lr=LR, clip_value=0.3), numadam.Adafactor(by_hand, lr=LR)
    for g in grads:
        opt.step(g)
        plain.step(numadam.clip_by_value(copies(g), 0.3))
    for name in params:
        np.testing.assert_array_equal(fused[name], by_hand[name])
    np.testing.assert_array_equal(opt.state_dict()["col_var"]["W"], plain.state_dict()["col_var"]["W"])


@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
def test_a_nonfinite_gradient_leaves_the_factors_alone(nonfinite):
    """The non-finite check runs before the factors' pass: a skipped or refused step changes nothing
    (the poisoned gradient is the last parameter's: a check made parameter by parameter with the
    factors' pass would have moved the others' factors)."""
    params, grads = problem(5)
    opt = numadam.Adafactor(params, lr=LR, nonfinite=nonfinite)
    opt.step(grads[0])
    before = (copies(params), opt.state_dict())
    poisoned = copies(grads[1])
    poisoned["T"][1, 2, 3] = np.nan
    if nonfinite == "raise":
        with pytest.raises(FloatingPointError, match=r"grads\['T'\] holds NaN"):
            opt.step(poisoned)
    else:
        opt.step(poisoned)
        assert opt.skipped_steps == 1
    assert opt.step_count == 1
    for name in params:
        np.testing.assert_array_equal(params[name], before[0][name])
        for factor in ("row_var", "col_var"):
            np.testing.assert_array_equal(opt.state_dict()[factor][name], before[1][factor][name])


@pytest.mark.slow
def test_groups_step_with_their_own_hyperparameters():
    """A group's lr and decay are its own: as two optimizers, one per group."""
    params, grads = problem(6)
    together, apart = copies(params), copies(params)
    opt = numadam.Adafactor({"W": numadam.Group(together["W"], lr=0.1, weight_decay=0.5),
                             "rest": {"b": together["b"], "T": together["T"]}}, lr=LR)
    first, second = numadam.Adafactor(apart["W"], lr=0.1, weight_decay=0.5), \
        numadam.Adafactor({"b": apart["b"], "T": apart["T"]}, lr=LR)
    for g in grads:
        opt.step({"W": g["W"], "rest": {"b": g["b"], "T": g["T"]}})
        first.step(g["W"])
        second.step({"b": g["b"], "T": g["T"]})
    for name in params:
        np.testing.assert_array_equal(together[name], apart[name])


@pytest.mark.slow  # full tier: 8 s cold (the quick tier took 366 s in CI)
def test_state_dict_round_trip_continues_exactly(tmp_path):
    params, grads = problem(7)
    straight, twin = copies(params), copies(params)
    opt = numadam.Adafactor(straight, lr=LR, weight_decay=0.1)
    steps(opt, grads)
    first = numadam.Adafactor(twin, lr=LR, weight_decay=0.1)
    steps(first, grads[:2])
    first.save(tmp_path / "state")
    resumed = numadam.Adafactor(twin, lr=LR, weight_decay=0.1)
    resumed.load(tmp_path / "state")
    steps(resumed, grads[2:])
    for name in params:
        np.testing.assert_array_equal(twin[name], straight[name])


def test_a_state_of_the_wrong_shape_is_refused_and_changes_nothing():
    params, grads = problem(8)
    opt = numadam.Adafactor(params, lr=LR)
    opt.step(grads[0])
    state = opt.state_dict()
    before = opt.state_dict()
    state["row_var"]["W"] = np.zeros((6, 4), np.float32)  # a full-size second moment is not a row factor
    with pytest.raises(ValueError, match=r"state\['row_var'\]\['W'\] has shape \(6, 4\); row_var of a parameter "
                                         r"of shape \(6, 4\) has shape \(6, 1\)"):
        opt.load_state_dict(state)
    np.testing.assert_array_equal(opt.state_dict()["row_var"]["W"], before["row_var"]["W"])


@pytest.mark.parametrize("options, error, match", [
    ({"state_dtype": "bfloat16"}, ValueError, "state_dtype='bfloat16' is not available for Adafactor"),
    ({"state_dtype": "int8"}, ValueError, "not available for Adafactor"),
    ({"accumulate": 2}, ValueError, "accumulate=2 is not available for Adafactor"),
])
def test_options_it_refuses_say_why(options, error, match):
    with pytest.raises(error, match=match):
        numadam.Adafactor(np.zeros((3, 4), np.float32), **options)


@pytest.mark.parametrize("hyper, match", [
    ({"beta2_decay": 0.5}, "beta2_decay must be <= 0"),
    ({"d": 0.5}, r"d \(the update's RMS clipping threshold\) must be >= 1"),
    ({"eps": 1e-3}, r"eps must be a pair \(eps1, eps2\)"),
    ({"eps": (-1.0, 1e-3)}, r"eps\[0\]"),
    ({"eps": (None, -1.0)}, r"eps\[1\]"),
])
def test_bad_hyperparameters_are_refused(hyper, match):
    with pytest.raises((TypeError, ValueError), match=match):
        numadam.Adafactor(np.zeros((3, 4)), **hyper)


def test_rows_gradients_are_refused_before_anything_is_written():
    param = np.ones((10, 4), np.float32)
    opt = numadam.Adafactor(param)
    with pytest.raises(ValueError, match="Rows gradient; Adafactor's update needs the norms"):
        opt.step(numadam.Rows(np.array([1, 3]), np.ones((2, 4), np.float32)))
    np.testing.assert_array_equal(param, 1.0)
    assert opt.step_count == 0


def test_the_functional_step_refuses_factors_of_the_wrong_shape_before_writing():
    p, g = np.ones((3, 4)), np.ones((3, 4))
    row_var, col_var = np.zeros((3, 1)), np.zeros((4, 1))
    with pytest.raises(ValueError, match=r"col_var .* must be float64 of shape \(1, 4\); got float64 of shape \(4, 1\)"):
        numadam.adafactor_step(p, g, row_var, col_var, step=1)
    np.testing.assert_array_equal(p, 1.0)
    np.testing.assert_array_equal(row_var, 0.0)


def test_the_functional_step_refuses_factors_whose_batch_does_not_merge_before_writing():
    """A 4-D parameter's factors are written as one batch of matrices: a row_var whose two batch
    dimensions are transposed (a reshape would copy it, and the pass would write the copy) is
    refused; the same factor in C order steps."""
    p, g = np.ones((3, 2, 5, 4)), np.ones((3, 2, 5, 4))
    row_var, col_var = np.zeros((2, 3, 5, 1)).transpose(1, 0, 2, 3), np.zeros((3, 2, 1, 4))
    with pytest.raises(ValueError, match=r"row_var of shape \(3, 2, 5, 1\) must have batch dimensions .* merge"):
        numadam.adafactor_step(p, g, row_var, col_var, step=1)
    np.testing.assert_array_equal(p, 1.0)
    np.testing.assert_array_equal(row_var, 0.0)
    row_var = np.ascontiguousarray(row_var)
    numadam.adafactor_step(p, g, row_var, col_var, step=1)
    assert (row_var > 0).all() and (col_var > 0).all() and (p < 1).all()


def test_the_functional_step_refuses_factors_that_share_memory_before_writing():
    """The factors' pass writes row_var and col_var before the norms and the update read the gradient:
    a factor over the gradient's memory (or the other factor's) would change what they read."""
    p, g = np.ones((3, 4)), np.arange(12.0).reshape(3, 4)
    cases = [(g[:, :1], np.zeros((1, 4)), r"grad and row_var share memory"),
             (np.zeros((3, 1)), g[:1, :], r"grad and col_var share memory")]
    for row_var, col_var, match in cases:
        with pytest.raises(ValueError, match=match):
            numadam.adafactor_step(p, g, row_var, col_var, step=1)
        np.testing.assert_array_equal(p, 1.0)
        np.testing.assert_array_equal(g, np.arange(12.0).reshape(3, 4))
    shared = np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"row_var and col_var share memory"):
        numadam.adafactor_step(np.ones((1, 1)), np.ones((1, 1)), shared, shared, step=1)
    np.testing.assert_array_equal(shared, 0.0)


@pytest.mark.slow  # compiles the functional vector step: 11 s of the quick tier
def test_the_functional_step_of_a_vector_takes_col_var_as_one_or_none():
    """A vector's col_var stands for a 1 (as a loaded state's must be): another value is refused."""
    v, g, variance = np.ones(5), np.linspace(-1.0, 1.0, 5), np.zeros(5)
    with pytest.raises(ValueError, match=r"col_var must be 1: a parameter of fewer than two dimensions"):
        numadam.adafactor_step(v, g, variance, np.zeros(()), step=1)
    np.testing.assert_array_equal(v, 1.0)
    np.testing.assert_array_equal(variance, 0.0)
    given, alone = v.copy(), v.copy()
    numadam.adafactor_step(given, g, np.zeros(5), np.ones(()), step=1)
    numadam.adafactor_step(alone, g, np.zeros(5), None, step=1)
    np.testing.assert_array_equal(given, alone)


@pytest.mark.slow
def test_sixteen_bit_parameters_step_in_float32_with_master_weights():
    """bfloat16 parameters: float32 factors; with master weights, the float32 copy steps as float32 would."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(9)
    wide = random_array(rng, (8, 5), np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    narrow = wide.astype(ml_dtypes.bfloat16)
    opt32, opt16 = numadam.Adafactor(wide, lr=LR), numadam.Adafactor(narrow, lr=LR, master_weights=True)
    for _ in range(4):
        grad = random_array(rng, (8, 5), np.float32).astype(ml_dtypes.bfloat16)
        opt32.step(grad.astype(np.float32))
        opt16.step(grad)
    np.testing.assert_array_equal(opt16.state_dict()["master"], wide)
    np.testing.assert_array_equal(narrow, wide.astype(ml_dtypes.bfloat16))


@pytest.mark.slow
def test_minimize_takes_adafactor():
    result = numadam.minimize(lambda x: (float(np.sum((x - 3.0) ** 2)), 2 * (x - 3.0)), np.zeros((4, 3)),
                              jac=True, method="adafactor", lr=0.1, maxiter=2000, gtol=1e-6)
    np.testing.assert_allclose(result.x, 3.0, atol=1e-3)


def test_the_factored_functional_step_takes_no_master_copy():
    """Its norms would read the 16-bit parameter and its update the master copy: refused, nothing written."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from numadam.functional import run_step

    hyper = {h.name: h.check(h.name, numadam.Adafactor._class_defaults[h.name])
             for h in numadam.Adafactor.algorithm.hyperparameters}
    param, master = np.ones((3, 4), ml_dtypes.bfloat16), np.full((3, 4), 1.001, np.float32)
    operands = {"param": param, "grad": np.ones((3, 4), ml_dtypes.bfloat16), "row_var": np.zeros((3, 1), np.float32),
                "col_var": np.zeros((1, 4), np.float32), "master": master}
    with pytest.raises(ValueError, match="adafactor's functional step takes no master copy"):
        run_step(numadam.Adafactor, operands, 1, hyper, (), master=True)
    np.testing.assert_array_equal(master, np.float32(1.001))
    np.testing.assert_array_equal(operands["row_var"], 0.0)


def test_state_is_rows_plus_columns():
    """The issue's example: a 1000 x 2000 float32 matrix keeps 3000 numbers of state (saved), and
    holds 6001 (the factors, their scales and the row mean, derived every step)."""
    w = np.zeros((1000, 2000), np.float32)
    opt = numadam.Adafactor(w)
    opt.step(np.ones_like(w))
    state = opt.state_dict()
    assert state["row_var"].size + state["col_var"].size == 3000
    assert sum(buffer.size for bucket in opt._engine.buckets for buffer in bucket.buffers.values()) == 2 * 3000 + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_norms_of_the_factors_pass_are_valid_below_the_cap_and_without_nan(dtype):
    """The factors' pass's norms hold where no product of a row's and a column's scale passes the cap
    (the largest of each, multiplied in the scales' dtype as the update caps them) and the sum is
    finite; a NaN scale anywhere makes them not valid (the norms pass then takes them)."""
    rng = np.random.default_rng(3)
    batch, n_rows, n_columns = 2, 300, 5
    weighted, param_blocks = rng.random((batch, n_columns)), rng.random((batch, 3))
    walk_columns = (rng.random((batch, n_columns)) + 0.5).astype(dtype)
    row_mean = (rng.random(batch) + 0.5).astype(dtype)
    row_scales = (rng.random(batch * n_rows) + 0.5).astype(dtype)
    column_scales = (rng.random(batch * n_columns) + 0.5).astype(dtype)

    def norms(cap):
        return factor_sums._norms_from_sums(weighted, walk_columns, row_mean, row_scales, column_scales, param_blocks,
                                            dtype(cap))

    product = row_scales.max() * column_scales.max()  # (NumPy's product of two scalars of the dtype, in it)
    assert product.dtype == dtype
    valid, param_squares, direction_squares = norms(product)
    assert valid and not norms(np.nextafter(product, dtype(0)))[0]
    expected_param = 0.0
    for b in range(batch):
        for block in range(param_blocks.shape[1]):
            expected_param += param_blocks[b, block]
    expected_direction = 0.0
    for b in range(batch):
        matrix = 0.0
        for j in range(n_columns):
            matrix += weighted[b, j] / np.float64(walk_columns[b, j])
        expected_direction += np.float64(row_mean[b]) * matrix
    assert (param_squares, direction_squares) == (expected_param, expected_direction)
    row_scales[137] = np.nan  # (in the middle: a maximum that forgets a NaN once a later value passes it)
    assert not norms(np.inf)[0]
