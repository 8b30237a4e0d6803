"""Row-sparse gradients (numadam.Rows): lazy steps of the listed rows, against the NumPy references.

A Rows step must equal each family's reference applied to the listed rows alone
(with repeated rows summed first, in the order given), at the optimizer's global
step count; every other row of the parameter and of its state stays as it was.
"""

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array, tiered
from reference import REFERENCES
from test_families import CASES, LR, Reference, case_id

#: The cases of the families a Rows gradient may step: all but those with norms of whole parameters.
ROW_CASES = [case for case in CASES if numadam.families()[case[0]].algorithm.norms is None]


def random_rows(rng, param, count, dtype=None):
    """A Rows gradient of ``count`` random rows of ``param`` (some repeated)."""
    index = rng.integers(0, param.shape[0], size=count)
    return numadam.Rows(index, random_array(rng, (count,) + param.shape[1:], dtype or param.dtype))


def dense(rows, shape, dtype):
    """The dense gradient a Rows stands for (repeated rows added in the order given), and its rows."""
    full = np.zeros(shape, dtype)
    np.add.at(full, np.asarray(rows.index), rows.values)
    return full, np.unique(np.asarray(rows.index))


class LazyReference(Reference):
    """Each leaf's reference applied to the listed rows of the parameter and its state only."""

    def step(self, grads):
        self.t += 1
        carry = self.carry
        for k, grad in enumerate(grads):
            param, state = self.params[k], self.state[k]
            if isinstance(grad, numadam.Rows):
                full, listed = dense(grad, param.shape, param.dtype)
            else:
                full, listed = grad, np.arange(param.shape[0])
            new_param, new_state, carry = REFERENCES[self.method].step(
                param[listed], full[listed], {name: s[listed] for name, s in state.items()}, self.t, self.carry,
                self.h)
            param[listed] = new_param
            for name, values in new_state.items():
                state[name][listed] = values
        self.carry = carry


def assert_same(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e, strict=True)


@pytest.mark.parametrize("case", tiered(ROW_CASES, lambda case: not case[1] and case[0] in ("adam", "sparse_adam")),
                         ids=case_id)
def test_a_rows_step_is_the_reference_on_the_listed_rows_alone(case):
    method, options = case
    rng = np.random.default_rng(11)
    params = [random_array(rng, (9, 3), np.float32), random_array(rng, (7,), np.float64),
              random_array(rng, (6, 2, 2), np.complex64)]
    reference = LazyReference(method, options, params)
    opt = numadam.families()[method](params, lr=LR, **options)
    for t in range(6):
        grads = [random_rows(rng, params[0], 5), random_rows(rng, params[1], 3),
                 random_rows(rng, params[2], 4) if t % 3 else random_array(rng, params[2].shape, np.complex64)]
        opt.step(grads)
        reference.step(grads)
    assert_same(params, reference.params)
    state = opt.state_dict()
    for name in reference.state[0]:
        assert_same(state[name], [s[name] for s in reference.state])
    assert opt.step_count == 6


@pytest.mark.parametrize("layout", tiered(["C", "F", "strided", "reversed", "transposed"], lambda l: l == "C"))
def test_rows_of_parameters_and_values_in_any_layout(layout):
    rng = np.random.default_rng(12)
    params = [in_layout(random_array(rng, (8, 5), np.float32), layout),
              in_layout(random_array(rng, (6, 3, 2), np.float64), layout)]
    reference = LazyReference("adam", {"amsgrad": True}, params)
    opt = numadam.Adam(params, lr=LR, amsgrad=True)
    for _ in range(4):
        grads = []
        for param in params:
            rows = random_rows(rng, param, 4)
            grads.append(numadam.Rows(rows.index, in_layout(rows.values, layout)))
        opt.step(grads)
        reference.step(grads)
    assert_same(params, reference.params)


def test_the_functional_step_takes_rows():
    rng = np.random.default_rng(13)
    param = random_array(rng, (10, 4), np.float32)
    m, v = np.zeros_like(param), np.zeros_like(param)
    reference = LazyReference("sparse_adam", {}, [param])
    for step in range(1, 5):
        rows = random_rows(rng, param, 6)
        numadam.sparse_adam_step(param, rows, m, v, step=step, lr=LR)
        reference.step([rows])
    assert_same([param, m, v], [reference.params[0], reference.state[0]["exp_avg"],
                                reference.state[0]["exp_avg_sq"]])


def test_repeated_rows_are_summed_in_the_order_given():
    param = np.zeros((3, 1), np.float32)
    values = np.array([[1.0], [1e8], [-1e8]], np.float32)  # (1 + 1e8) - 1e8 = 0 in float32; the reverse order: 1
    opt = numadam.SGD(param, lr=1.0)
    opt.step(numadam.Rows(np.array([2, 2, 2]), values))
    assert param[2, 0] == 0.0
    assert not param[:2].any()
    opt.step(numadam.Rows(np.array([0, 1, 0, 0]), np.array([[-1e8], [1.0], [1e8], [1.0]], np.float32)))
    np.testing.assert_array_equal(param[:, 0], [-1.0, -1.0, 0.0])  # row 0: (-1e8 + 1e8) + 1


def test_rows_listing_nothing_change_nothing_and_count_the_step():
    param = np.ones((4, 2))
    opt = numadam.Adam(param, lr=0.1)
    opt.step(numadam.Rows(np.zeros(0, np.int64), np.zeros((0, 2))))
    assert opt.step_count == 1 and (param == 1).all() and not opt.state_dict()["exp_avg"].any()


def test_a_one_dimensional_parameter_lists_its_elements():
    param = np.zeros(6)
    opt = numadam.SGD(param, lr=1.0)
    opt.step(numadam.Rows(np.array([4, 1, 2]), np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(param, [0.0, -2.0, -3.0, 0.0, -1.0, 0.0])


def test_rows_gradients_with_a_global_norm_clip_take_the_norm_of_the_gradient_they_stand_for():
    """Plain SGD leaves rows with zero gradient alone, so its lazy step equals the dense step; the
    clip's norm is then the dense gradient's."""
    rng = np.random.default_rng(14)
    shapes = [(20, 3), (9,)]
    lazy = [random_array(rng, shape, np.float64) for shape in shapes]
    dense_params = [p.copy() for p in lazy]
    opt = numadam.SGD(lazy, lr=0.1, clip_global_norm=0.5)
    dense_opt = numadam.SGD(dense_params, lr=0.1, clip_global_norm=0.5)
    for _ in range(3):
        grads = [random_rows(rng, p, 4) for p in lazy]
        opt.step(grads)
        dense_opt.step([dense(g, p.shape, p.dtype)[0] for g, p in zip(grads, lazy)])
    for a, e in zip(lazy, dense_params):
        np.testing.assert_allclose(a, e, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("nonfinite", ["raise", "skip"])
def test_a_nonfinite_value_in_rows_is_found_in_the_right_parameter(nonfinite):
    rng = np.random.default_rng(15)
    params = {"a": random_array(rng, (40000, 2), np.float32), "b": random_array(rng, (30, 4), np.float32)}
    before = {k: v.copy() for k, v in params.items()}
    opt = numadam.Adam(params, lr=0.1, nonfinite=nonfinite)
    values = np.ones((3, 4), np.float32)
    values[2, 1] = np.nan
    grads = {"a": random_rows(rng, params["a"], 5000), "b": numadam.Rows(np.array([0, 5, 9]), values)}
    if nonfinite == "raise":
        with pytest.raises(FloatingPointError, match=r"grads\['b'\]"):
            opt.step(grads)
    else:
        opt.step(grads)
        assert opt.skipped_steps == 1
    assert opt.step_count == 0
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    grads["b"].values[2, 1] = 1.0  # the same rows, clean now: they step
    opt.step(grads)
    assert opt.step_count == 1 and (params["b"][[0, 5, 9]] != before["b"][[0, 5, 9]]).all()


BAD_ROWS = [
    (lambda: numadam.Rows(np.array([0.0, 1.0]), np.ones((2, 3), np.float32)), TypeError, "must hold integers"),
    (lambda: numadam.Rows(np.array([[0, 1]]), np.ones((2, 3), np.float32)), ValueError, "must be 1-D"),
    (lambda: numadam.Rows(np.array([0, 1]), np.ones((2, 4), np.float32)), ValueError, r"must have shape \(2, 3\)"),
    (lambda: numadam.Rows(np.array([0, 1]), np.ones((3, 3), np.float32)), ValueError, r"must have shape \(2, 3\)"),
    (lambda: numadam.Rows(np.array([0, 1]), np.ones((2, 3), np.float64)), TypeError, "dtype float32"),
    (lambda: numadam.Rows(np.array([0, 5]), np.ones((2, 3), np.float32)), ValueError, r"in \[0, 5\).*got 5"),
    (lambda: numadam.Rows(np.array([-1, 2]), np.ones((2, 3), np.float32)), ValueError, r"in \[0, 5\).*got -1"),
]


@pytest.mark.parametrize("make, error, message", BAD_ROWS)
def test_bad_rows_are_refused_naming_the_leaf_and_nothing_is_written(make, error, message):
    params = {"w": np.ones((5, 3), np.float32), "b": np.ones(3, np.float32)}
    opt = numadam.Adam(params, lr=0.1)
    opt.step({"w": np.ones((5, 3), np.float32), "b": np.ones(3, np.float32)})
    before = opt.state_dict()
    kept = {k: v.copy() for k, v in params.items()}
    with pytest.raises(error, match=message) as raised:
        opt.step({"w": make(), "b": np.ones(3, np.float32)})
    assert "grads['w']" in str(raised.value)
    for k in params:
        np.testing.assert_array_equal(params[k], kept[k])
    after = opt.state_dict()
    assert after["step"] == before["step"] == 1
    for name in ("exp_avg", "exp_avg_sq"):
        for a, b in zip(after[name].values(), before[name].values()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(error, match=message):  # the functional step refuses the same
        numadam.adam_step(params["w"], make(), np.zeros((5, 3), np.float32), np.zeros((5, 3), np.float32), step=1)
    np.testing.assert_array_equal(params["w"], kept["w"])


def test_an_empty_rows_leaf_does_not_shift_the_sums_of_the_others():
    """Parallel pre-pass (65536 elements and more) over a plan whose second to fourth parameters
    list no row: the non-finite value is found in the first."""
    params = [np.ones((16384, 4), np.float32)] + [np.ones((3, 4), np.float32) for _ in range(3)]
    opt = numadam.Adam(params, lr=0.1, nonfinite="raise")
    values = np.ones((16384, 4), np.float32)
    values[5000, 0] = np.nan
    empty = [numadam.Rows(np.zeros(0, np.int64), np.zeros((0, 4), np.float32)) for _ in range(3)]
    with pytest.raises(FloatingPointError, match=r"grads\[0\] holds"):
        opt.step([numadam.Rows(np.arange(16384), values)] + empty)


def test_groups_take_rows_with_their_own_hyperparameters():
    rng = np.random.default_rng(20)
    params = [random_array(rng, (8, 2), np.float64) for _ in range(2)]
    opt = numadam.SGD([numadam.Group([params[0]], lr=0.1), numadam.Group([params[1]], lr=0.2)], lr=1.0)
    before = [p.copy() for p in params]
    values = np.ones((1, 2))
    opt.step([[numadam.Rows(np.array([3]), values)], [numadam.Rows(np.array([5]), values)]])
    np.testing.assert_array_equal(params[0][3], before[0][3] - 0.1)
    np.testing.assert_array_equal(params[1][5], before[1][5] - 0.2)
    assert (params[0][np.arange(8) != 3] == before[0][np.arange(8) != 3]).all()


def test_values_that_share_memory_with_the_state_are_refused():
    param = np.ones((6, 2))
    opt = numadam.Adam(param, lr=0.1, ema=0.9)
    opt.step(np.ones((6, 2)))
    for shared in (opt._engine.state_leaves("exp_avg")[0][1:3], opt._engine.state_leaves("ema")[0][:2]):
        with pytest.raises(ValueError, match="shares memory"):
            opt.step(numadam.Rows(np.array([0, 1]), shared))
    assert opt.step_count == 1


def test_the_functional_step_of_a_family_with_norms_refuses_rows():
    p = np.ones((4, 2))
    m, v = np.zeros_like(p), np.zeros_like(p)
    with pytest.raises(ValueError, match="LAMB's update needs the norms of the whole parameter"):
        numadam.lamb_step(p, numadam.Rows([1], np.ones((1, 2))), m, v, step=1, lr=0.1)
    assert (p == 1).all() and not m.any()


@pytest.mark.parametrize("method, options, message", [
    ("lamb", {}, "norms of every parameter"),
    ("adam", {"accumulate": 2}, "accumulate=2"),
    ("adam", {"state_dtype": "int8"}, "8-bit state"),
])
def test_what_needs_every_element_refuses_rows(method, options, message):
    param = np.ones((5000, 2), np.float32)
    opt = numadam.families()[method](param, lr=0.1, **options)
    with pytest.raises(ValueError, match=message) as raised:
        opt.step(numadam.Rows(np.array([1, 2]), np.ones((2, 2), np.float32)))
    assert "grads" in str(raised.value)
    assert (param == 1).all() and opt.step_count == 0


def test_a_zero_dimensional_parameter_takes_no_rows():
    param = np.ones((), np.float64)
    with pytest.raises(ValueError, match="0-d parameter"):
        numadam.Adam(param).step(numadam.Rows(np.array([0]), np.ones(1)))


def test_values_that_share_memory_with_the_parameter_are_refused():
    param = np.ones((6, 2))
    opt = numadam.Adam(param, lr=0.1)
    with pytest.raises(ValueError, match="shares memory"):
        opt.step(numadam.Rows(np.array([0, 1]), param[2:4]))
    assert (param == 1).all()


def test_dask_steps_refuse_rows_with_the_reason():
    da = pytest.importorskip("dask.array")
    param = da.ones((6, 2), chunks=3)
    with pytest.raises(TypeError, match="Rows gradient; a step over Dask arrays takes dense"):
        numadam.adam_step(param, numadam.Rows(np.array([1]), np.ones((1, 2))), da.zeros((6, 2), chunks=3),
                          da.zeros((6, 2), chunks=3), step=1)


def test_a_rows_step_is_cheap_in_what_it_builds():
    """The plan of a Rows step lists one segment per listed row of a C-ordered table (merged where
    rows follow each other in an ascending index), never the table's other rows."""
    param = np.zeros((100000, 16), np.float32)
    opt = numadam.Adam(param, lr=0.1)
    for index, segments in (([5, 6, 7, 42, 900], 3), ([5, 6, 7, 900, 42], 5)):  # 5-7 merged, 42, 900
        opt.step(numadam.Rows(np.array(index), np.ones((5, 16), np.float32)))
        plan = opt._engine.buckets[0].last_plan
        assert plan.n_elements == 5 * 16 and len(plan.rows) == segments


@pytest.mark.parametrize("options", tiered([{"master_weights": True}, {"compensation": "kahan"}, {"ema": 0.9},
                                             {"clip_value": 0.5, "nonneg": True}], lambda options: "ema" in options),
                         ids=lambda options: ",".join(options))
def test_policies_act_on_the_listed_rows_as_a_dense_step_does(options):
    """Plain SGD moves no row whose gradient is zero, so on the listed rows a Rows step equals the
    dense step; the other rows (and their moving average) stay exactly as they were."""
    sixteen_bits = "master_weights" in options or "compensation" in options
    ml_dtypes = pytest.importorskip("ml_dtypes") if sixteen_bits else None
    dtype = ml_dtypes.bfloat16 if ml_dtypes else np.float32
    rng = np.random.default_rng(16)
    start = np.abs(rng.standard_normal((12, 3))).astype(dtype)
    lazy, dense_param = start.copy(), start.copy()
    opt, dense_opt = numadam.SGD(lazy, lr=0.1, **options), numadam.SGD(dense_param, lr=0.1, **options)
    listed_ever = np.zeros(12, bool)
    for _ in range(3):
        grad = random_rows(rng, lazy, 4, np.float32)
        grad = numadam.Rows(grad.index, grad.values.astype(dtype))
        full, listed = dense(grad, lazy.shape, dtype)
        opt.step(grad)
        dense_opt.step(full)
        listed_ever[listed] = True
        np.testing.assert_array_equal(lazy[listed], dense_param[listed])
    np.testing.assert_array_equal(lazy[~listed_ever], start[~listed_ever])
    if "ema" in options:
        average = opt.ema_params()
        np.testing.assert_array_equal(average[~listed_ever], start[~listed_ever])
        assert (average[listed_ever] != start[listed_ever]).any()


@pytest.mark.parametrize("repeats", [False, True], ids=["each once", "repeats"])
@pytest.mark.parametrize("options", tiered([{"stochastic_rounding": True, "seed": 5}, {"master_weights": True},
                                             {"clip_global_norm": 0.5}, {}], lambda options: not options),
                         ids=lambda options: ",".join(options) or "plain")
def test_rows_laid_out_as_they_are_updated_take_the_table_s_bits(options, repeats, monkeypatch):
    """A minibatch's rows (random order) go through a ListedPlan on the CPU: its kernel lays out
    each row as it updates it, and a step with a policy asks for the table of every row. Both
    give the bits of the table path (the plan the backend made before ListedPlan), stochastic
    rounding's positions included, on one core and on every core (3000 rows of 24 elements; with
    repeats, the rows summed and ascending)."""
    from numadam.targets.arrays import ListedPlan
    from numadam.targets.cpu.backend import CpuBackend

    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = ml_dtypes.bfloat16 if set(options) & {"stochastic_rounding", "master_weights"} else np.float32
    rng = np.random.default_rng(23)
    start = rng.standard_normal((50000, 24)).astype(dtype)  # (few neighbours: no segments to merge)
    steps = [(rng.choice(50000, count, replace=repeats), rng.standard_normal((count, 24)).astype(dtype))
             for count in (3000, 3000, 40)]

    def run():
        param = start.copy()
        opt = numadam.Adam(param, lr=1e-2, **options)
        plans = []
        for index, values in steps:
            opt.step(numadam.Rows(index, values))
            plans.append(type(opt._engine.buckets[0].last_plan))
        return param, opt.state_dict(), plans

    listed, listed_state, plans = run()
    assert plans == [ListedPlan] * 3
    monkeypatch.setattr(CpuBackend, "listed_plan", None)
    table, table_state, plans = run()
    assert ListedPlan not in plans
    assert listed.tobytes() == table.tobytes()
    for name in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(listed_state[name], table_state[name])
    assert not np.array_equal(listed, start)


def test_a_minibatch_whose_values_change_layout_is_laid_out_as_they_are():
    """Steps of as many unique rows reuse their plan, moved onto each step's index and values: a
    step whose values are laid out otherwise (a strided view, then contiguous again) gets a plan
    of its own layout, never the last one's (which would read the values with the wrong row
    length, past their end)."""
    rng = np.random.default_rng(29)
    start = rng.standard_normal((1000, 24)).astype(np.float32)
    steps = []
    for contiguous in (True, True, False, False, True, False):
        index = rng.choice(1000, 50, replace=False)
        wide = rng.standard_normal((50, 48)).astype(np.float32)
        steps.append((index, np.ascontiguousarray(wide[:, :24]) if contiguous else wide[:, ::2]))
    ours, theirs = start.copy(), start.copy()
    opt, copied = numadam.Adam(ours, lr=0.1), numadam.Adam(theirs, lr=0.1)
    for index, values in steps:
        assert values.flags.c_contiguous or values.strides[1] == 8
        opt.step(numadam.Rows(index, values))
        copied.step(numadam.Rows(index, np.ascontiguousarray(values)))
        assert ours.tobytes() == theirs.tobytes()
    assert not np.array_equal(ours, start)


@pytest.mark.parametrize("shape", [(10, 0), (10, 3, 0)])
@pytest.mark.parametrize("order", ["random", "repeats"])
def test_rows_of_no_elements_step_nothing(shape, order):
    param = np.zeros(shape, np.float32)
    index = np.array([7, 2, 5]) if order == "random" else np.array([4, 4, 1])
    opt = numadam.Adam(param)
    for _ in range(2):
        opt.step(numadam.Rows(index, np.zeros((3,) + shape[1:], np.float32)))
    assert opt.state_dict()["step"] == 2 and param.shape == shape


@pytest.mark.slow
def test_stochastic_rounding_rounds_the_listed_rows_only():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(17)
    start = rng.standard_normal((64, 8)).astype(ml_dtypes.bfloat16)
    param = start.copy()
    opt = numadam.SGD(param, lr=1e-3, stochastic_rounding=True, seed=3)
    index = np.array([3, 40])
    values = rng.standard_normal((2, 8)).astype(ml_dtypes.bfloat16)
    opt.step(numadam.Rows(index, values))
    exact = start[index].astype(np.float32) - np.float32(1e-3) * values.astype(np.float32)
    spacing = np.abs(start[index].astype(np.float32)) * 2.0**-7
    assert (np.abs(param[index].astype(np.float32) - exact) <= spacing).all()
    others = np.setdiff1d(np.arange(64), index)
    np.testing.assert_array_equal(param[others], start[others])


def _embedding_losses(torch, rng, weight, steps, unique):
    """Per step: the looked-up rows and the coefficients whose weighted sum is the loss."""
    for _ in range(steps):
        count = 8
        idx = (rng.choice(weight.shape[0], count, replace=False) if unique
               else rng.integers(0, weight.shape[0] // 4, count))
        yield idx, rng.standard_normal((count, weight.shape[1])).astype(np.float32)


@pytest.mark.parametrize("unique", [True, False], ids=["rows-once", "rows-repeated"])
def test_sparse_adam_matches_torch_sparse_adam(unique):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    weight = rng.standard_normal((40, 5)).astype(np.float32)
    embedding = torch.nn.Embedding(40, 5, sparse=True)
    embedding.weight.data.copy_(torch.from_numpy(weight))
    theirs = torch.optim.SparseAdam(embedding.parameters(), lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    ours = weight.copy()
    opt = numadam.SparseAdam(ours, lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    tensor = torch.nn.Parameter(torch.from_numpy(weight.copy()))
    opt_tensor = numadam.SparseAdam([tensor], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    for idx, coefficients in _embedding_losses(torch, rng, weight, 6, unique):
        theirs.zero_grad()
        (embedding(torch.from_numpy(idx)) * torch.from_numpy(coefficients)).sum().backward()
        tensor.grad = embedding.weight.grad.clone()   # sparse COO, uncoalesced where rows repeat
        theirs.step()
        opt.step(numadam.Rows(idx, coefficients))
        opt_tensor.step()
    # To an ulp or two: torch's vectorized float32 square root is not always correctly rounded (numadam's
    # is IEEE's), and its coalesce may add three or more repeats of a row in another order.
    tolerance = 4 * np.finfo(np.float32).eps
    np.testing.assert_allclose(ours, embedding.weight.detach().numpy(), rtol=tolerance, atol=tolerance)
    for name in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_allclose(opt.state_dict()[name], theirs.state[embedding.weight][name].numpy(),
                                   rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(tensor.detach().numpy(), ours)


@pytest.mark.parametrize("method, options", [("adam", {"weight_decay": 0.1}), ("rmsprop", {"momentum": 0.9}),
                                             ("adagrad", {}), ("lion", {})])
def test_torch_parameters_with_sparse_gradients_step_lazily(method, options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    weight = rng.standard_normal((30, 4)).astype(np.float32)
    tensor = torch.nn.Parameter(torch.from_numpy(weight.copy()))
    ours = weight.copy()
    cls = numadam.families()[method]
    opt_tensor, opt = cls([tensor], lr=0.1, **options), cls(ours, lr=0.1, **options)
    for _ in range(3):
        idx = rng.integers(0, 30, 6)
        values = rng.standard_normal((6, 4)).astype(np.float32)
        tensor.grad = torch.sparse_coo_tensor(torch.from_numpy(idx)[None], torch.from_numpy(values), (30, 4),
                                              check_invariants=True)
        opt_tensor.step()
        opt.step(numadam.Rows(idx, values))
    np.testing.assert_array_equal(tensor.detach().numpy(), ours)
    assert tensor._version > 0
    with pytest.raises(ValueError, match="2 sparse dimensions"):
        tensor.grad = torch.sparse_coo_tensor(torch.tensor([[0], [1]]), torch.tensor([1.0]), (30, 4))
        opt_tensor.step()


def test_rows_of_torch_tensors_and_one_dimensional_and_empty_sparse_gradients():
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.zeros(4, 2))
    b = torch.nn.Parameter(torch.zeros(5))
    opt = numadam.SGD([w, b], lr=1.0)
    opt.step([numadam.Rows(torch.tensor([1]), torch.ones(1, 2)), numadam.Rows(torch.tensor([4, 0]), torch.ones(2))])
    np.testing.assert_array_equal(w.detach().numpy(), [[0, 0], [-1, -1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(b.detach().numpy(), [-1, 0, 0, 0, -1])
    w.grad = torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.int64), torch.zeros(0, 2), (4, 2),
                                     check_invariants=True)
    b.grad = torch.sparse_coo_tensor(torch.tensor([[2]]), torch.tensor([3.0]), (5,), check_invariants=True)
    opt.step()
    np.testing.assert_array_equal(w.detach().numpy(), [[0, 0], [-1, -1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(b.detach().numpy(), [-1, 0, -3, 0, -1])
    assert opt.step_count == 2


@pytest.mark.dask
def test_the_dask_engine_refuses_rows_naming_the_leaf():
    da = pytest.importorskip("dask.array")
    param = da.ones((6, 2), chunks=3)
    opt = numadam.Adam({"w": param}, lr=0.1)
    with pytest.raises(TypeError, match=r"grads\['w'\] is a Rows gradient"):
        opt.step({"w": numadam.Rows(np.array([1]), np.ones((1, 2)))})
    assert opt.step_count == 0


@pytest.mark.parametrize("rows", [50, 10**6], ids=["bits", "sorted"])
def test_repeats_are_found_in_small_and_large_parameters(rows):
    """Repeats are looked for with a bit per row, or by sorting a few rows of a large parameter."""
    param = np.zeros((rows, 1), np.float32)
    opt = numadam.SGD(param, lr=1.0)
    opt.step(numadam.Rows(np.array([7, 3, 9, 3]), np.ones((4, 1), np.float32)))
    assert param[3, 0] == -2.0 and param[7, 0] == param[9, 0] == -1.0
    opt.step(numadam.Rows(np.array([9, 3, 7]), np.ones((3, 1), np.float32)))  # no repeat, not ascending
    assert param[3, 0] == -3.0 and param[7, 0] == param[9, 0] == -2.0


def _sums_added_repeat_by_repeat(index, values):
    """The sums of repeated rows one NumPy add per repeat, in the order given: what the compiled
    sums must equal bit for bit."""
    order = np.argsort(index, kind="stable")
    rows, firsts = np.unique(index[order], return_index=True)
    sums, first = values[order[firsts]].copy(), set(firsts.tolist())
    for position, row in enumerate(index[order]):
        if position not in first:
            sums[np.searchsorted(rows, row)] += values[order[position]]
    return sums, rows


@pytest.mark.parametrize("n_rows, count, shape, dtype", [
    (2_187_500, 3000, (16,), np.float32),   # two radix passes, few repeats
    (1 << 23, 2000, (3,), np.float64),      # three passes
    (50, 400, (3, 2), np.float64),          # many repeats of each row
    (7, 30, (), np.complex64),
    (1, 5, (4,), np.float32),                # one row: no pass at all
    (40, 300, (2,), np.float16),             # NumPy's adds (no 16-bit arithmetic in Numba)
])
def test_repeated_rows_are_summed_in_the_order_given_bit_for_bit(n_rows, count, shape, dtype):
    from numadam.adapters.rows import _summed_in_order

    rng = np.random.default_rng(n_rows)
    index = rng.integers(0, n_rows, count)
    values = (rng.standard_normal((count,) + shape) * 10.0 ** rng.integers(-3, 4, (count,) + shape)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal((count,) + shape).astype(dtype)
    sums, rows = _summed_in_order(index, values)
    expected_sums, expected_rows = _sums_added_repeat_by_repeat(index, values)
    np.testing.assert_array_equal(rows, expected_rows)
    assert sums.dtype == values.dtype and sums.shape == expected_sums.shape
    np.testing.assert_array_equal(sums.view(np.uint8), expected_sums.view(np.uint8))


# -- a minibatch's rows, new arrays every step, on one array (Bucket.listed_plan) ---------------


def _minibatches(rng, param):
    """``(rows, fast)``: a run of Rows gradients as a training loop makes them, each with whether
    it is the kind the one-array path takes without ``bind`` (a C-contiguous int64 index of rows
    each listed once, not ascending, values laid out as the last Rows bound)."""
    n, row_shape, dtype = param.shape[0], param.shape[1:], param.dtype

    def values(count, layout="C"):
        return in_layout(random_array(rng, (count,) + row_shape, dtype), layout)

    def unique(count):
        index = rng.permutation(n)[:count]
        if count > 1 and (np.diff(index) > 0).all():
            index = index[::-1].copy()
        return index

    repeated = unique(5)
    repeated[3] = repeated[0]
    strided_index = np.repeat(unique(4), 2)[::2]
    return [
        (numadam.Rows(unique(6), values(6)), False),  # the first: bound, and its layout kept
        (numadam.Rows(unique(6), values(6)), True),
        (numadam.Rows(unique(6), values(6)), True),  # as many rows: the same plan, rewritten
        (numadam.Rows(repeated, values(5)), True),  # a repeated row: summed, each row listed once
        (numadam.Rows(unique(3), values(3)), True),  # another count of rows
        (numadam.Rows(np.sort(unique(4)), values(4)), False),  # ascending: bind merges neighbours
        (numadam.Rows(unique(1), values(1)), True),
        (numadam.Rows(unique(4).astype(np.int32), values(4)), False),
        (numadam.Rows(strided_index, values(4)), False),
        (numadam.Rows(unique(4), values(4, "F")), None),  # another layout of the values (a 1-D row: the same)
        (numadam.Rows(unique(4), values(4, "F")), True),  # bound above, or the same layout
        (numadam.Rows(list(unique(2)), values(2)), False),
        (numadam.Rows(unique(6), values(6)), None),  # back to C order
        (numadam.Rows(unique(6), values(6)), True),
    ]


@pytest.mark.parametrize("case", tiered(ROW_CASES, lambda case: not case[1] and case[0] in ("adam", "sparse_adam")),
                         ids=case_id)
@pytest.mark.parametrize("shape, layout", tiered([((30, 4), "C"), ((30,), "C"), ((20, 3, 2), "F"), ((25, 3), "strided")],
                                                 lambda shape_layout: shape_layout[1] == "C", unpack=True), ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_new_rows_every_step_on_one_array_are_the_reference(case, shape, layout, dtype):
    """Each step of a run of minibatches (new index and values arrays every step, of every kind)
    equals the reference on the listed rows, whichever path it takes; the steps that can take
    the one-array path do, and the others do not."""
    method, options = case
    rng = np.random.default_rng(31)
    param = in_layout(random_array(rng, shape, dtype), layout)
    reference = LazyReference(method, options, [param])
    opt = numadam.families()[method](param, lr=LR, **options)
    bucket = opt._engine.buckets[0]
    for rows, fast in _minibatches(rng, param):
        opt.step(rows)
        reference.step([rows])
        took = bucket.last_plan is bucket._direct_plan
        if fast is not None:
            assert took == fast, (rows.index, fast)
        assert_same([param], reference.params)
    state = opt.state_dict()
    for name in reference.state[0]:
        assert_same([state[name]], [reference.state[0][name]])


def _repeating_minibatches(rng, n_rows, count, row_shape, dtype, layout, steps):
    """Minibatches of ``count`` listings in random order of rows of ``[0, n_rows)``, many listed
    three times or more, values of magnitudes from 1e-3 to 1e3 (their sums then depend on the
    order of adding) laid out as ``layout`` ("apart": C-contiguous rows, every other one of a
    larger array)."""
    batches = []
    for _ in range(steps):
        index = rng.integers(0, n_rows, count)
        values = rng.standard_normal((count,) + row_shape) * 10.0 ** rng.integers(-3, 4, (count,) + row_shape)
        if layout == "apart":
            laid_out = np.zeros((2 * count,) + row_shape, dtype)[::2]
            laid_out[...] = values
        else:
            laid_out = in_layout(values.astype(dtype), layout)
        batches.append(numadam.Rows(index, laid_out))
    return batches


@pytest.mark.parametrize("n_rows, count, row_shape, layout", [
    (300, 2000, (5,), "C"),         # each row about 7 times
    (40, 300, (), "C"),             # a 1-D parameter: its elements
    (200, 900, (3, 2), "apart"),    # rows of values further apart than their length
    (200, 900, (3, 2), "F"),        # rows of values not contiguous, as the sums' are: bind sums them
    (20000, 25000, (4,), "C"),      # on every core: fixes in many blocks of listings
], ids=["many repeats", "1-D", "rows apart", "F-order values", "parallel"])
@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64], lambda d: d is np.float32),
                         ids=lambda d: np.dtype(d).name)
def test_a_minibatch_with_repeats_takes_the_one_array_path_and_the_table_s_bits(n_rows, count, row_shape, layout,
                                                                               dtype, monkeypatch):
    """Repeated rows of a minibatch on one array: the first listing of each takes the sum of its
    values (added in the order given) and the others are skipped, without sorting the index.
    Every step after the first takes that path (a ListedPlan with fixes), but where the values'
    rows are not C-contiguous; each step equals the table path's, which sums the sorted repeats,
    bit for bit, parameter and state."""
    from numadam.targets.arrays import ListedPlan
    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(n_rows)
    start = random_array(rng, (n_rows,) + row_shape, dtype)
    batches = _repeating_minibatches(rng, n_rows, count, row_shape, dtype, layout, 4)

    def run():
        param = start.copy()
        opt = numadam.Adam(param, lr=1e-2, weight_decay=0.1)
        bucket, taken, states = opt._engine.buckets[0], [], []
        for rows in batches:
            opt.step(rows)
            plan = bucket.last_plan
            taken.append(type(plan) is ListedPlan and plan is bucket._direct_plan and plan.fixes.shape[1] > 1)
            states.append((param.copy(), opt.state_dict()))
        return states, taken

    direct, taken = run()
    assert taken == [False] + [layout != "F"] * 3
    monkeypatch.setattr(CpuBackend, "listed_plan", None)
    table, taken = run()
    assert not any(taken)
    for (param, state), (expected_param, expected_state) in zip(direct, table):
        assert param.tobytes() == expected_param.tobytes()
        for name in ("exp_avg", "exp_avg_sq"):
            assert state[name].tobytes() == expected_state[name].tobytes()


def test_repeats_on_the_one_array_path_are_summed_in_the_order_given():
    """Row 5 listed three times, values 1e8, 1, -1e8 in float32: added in the order given, the
    sum is 0 (1e8 + 1 rounds to 1e8); in another order it would be 1 or -1e8 + 1e8 + 1."""
    param = np.zeros(10, np.float32)
    opt = numadam.SGD(param, lr=1.0)
    opt.step(numadam.Rows(np.array([3, 1]), np.ones(2, np.float32)))  # (bound: the layout kept)
    opt.step(numadam.Rows(np.array([5, 2, 5, 7, 5]), np.array([1e8, 3, 1, 4, -1e8], np.float32)))
    bucket = opt._engine.buckets[0]
    assert bucket.last_plan is bucket._direct_plan
    np.testing.assert_array_equal(param, [0, -1, -3, -1, 0, 0, 0, -4, 0, 0])


@pytest.mark.parametrize("index", [[1, 1, 2, 5, 5], [4, 4, 4], [0, 2, 2, 9]], ids=str)
def test_repeats_in_ascending_order_leave_the_one_array_path_for_bind(index):
    """An index whose rows never descend goes to bind, which may merge neighbouring rows."""
    param = np.zeros((10, 2))
    opt = numadam.SGD(param, lr=1.0)
    opt.step(numadam.Rows(np.array([3, 1]), np.ones((2, 2))))
    opt.step(numadam.Rows(np.array(index), np.ones((len(index), 2))))
    bucket = opt._engine.buckets[0]
    assert bucket.last_plan is not bucket._direct_plan
    expected = np.zeros(10)
    np.add.at(expected, index, -1.0)
    expected[[3, 1]] -= 1.0
    np.testing.assert_array_equal(param[:, 0], expected)


def test_repeated_rows_far_apart_are_told_from_each_other():
    """Rows that differ in their high bits only (multiples of 2**14 of a 2**20-element parameter)
    each keep their own sum: the table of repeated rows hashes every bit of the row. A few
    listings of so large a parameter are sorted, not marked a bit per row: repeats found, and
    none where there are none."""
    param = np.zeros(1 << 20, np.float32)
    opt = numadam.SGD(param, lr=1.0)
    bucket = opt._engine.buckets[0]
    opt.step(numadam.Rows(np.array([3, 1]), np.ones(2, np.float32)))
    rng = np.random.default_rng(9)
    index = rng.permutation(np.repeat(np.arange(64) << 14, 3))
    values = rng.integers(1, 100, len(index)).astype(np.float32)
    opt.step(numadam.Rows(index, values))
    assert bucket.last_plan is bucket._direct_plan
    assert bucket.last_plan.fixes.shape[1] == 3 * 64 + 1  # (each listing fixed, and the last)
    opt.step(numadam.Rows(np.array([9 << 14, 5, 2 << 14]), np.ones(3, np.float32)))
    assert bucket.last_plan is bucket._direct_plan and bucket.last_plan.fixes.shape[1] == 1
    expected = np.zeros(1 << 20, np.float32)
    np.add.at(expected, index, -values)
    expected[[3, 1, 9 << 14, 5, 2 << 14]] -= 1.0
    np.testing.assert_array_equal(param, expected)


def test_the_table_of_a_plan_with_fixes_lists_each_row_once_in_the_order_of_its_first_listing():
    """A policy's pre-pass reads a plan's table of every row (``ListedPlan.rows``): for a plan with
    fixes, one segment per row listed, in the order of its first listing, whose gradient is its
    values where listed once and the sums where repeated, and no segment for a skipped listing."""
    from numadam.targets.body import GRAD, PARAM
    from numadam.targets.segments import ADDRESS, LENGTH

    param = np.zeros((50, 4), np.float32)
    opt = numadam.Adam(param, lr=0.1)
    opt.step(numadam.Rows(np.array([3, 1]), np.ones((2, 4), np.float32)))
    index = np.array([7, 2, 7, 9, 40, 2, 7, 11])
    values = np.arange(32, dtype=np.float32).reshape(8, 4)
    opt.step(numadam.Rows(index, values))
    bucket = opt._engine.buckets[0]
    plan = bucket.last_plan
    rows = plan.rows
    firsts = [7, 2, 9, 40, 11]
    assert rows[:, LENGTH].sum() == plan.n_elements == 4 * len(firsts)
    np.testing.assert_array_equal(rows[:, ADDRESS + PARAM] - param.ctypes.data, np.array(firsts) * 16)
    sums = bucket._spare.sums
    own = values.ctypes.data + np.array([3, 4, 7]) * 16  # (rows 9, 40 and 11, each listed once)
    np.testing.assert_array_equal(rows[[2, 3, 4], ADDRESS + GRAD], own)
    np.testing.assert_array_equal(rows[[0, 1], ADDRESS + GRAD], sums.ctypes.data + np.array([0, 1]) * sums.strides[0])
    np.testing.assert_array_equal(sums[:2], [values[0] + values[2] + values[6], values[1] + values[5]])


@pytest.mark.parametrize("make, error, message", BAD_ROWS + [
    (lambda: numadam.Rows(np.array([4, 1, 9]), np.ones((3, 3), np.float32)), ValueError, r"in \[0, 5\).*got 9"),
    (lambda: numadam.Rows(np.array([3, 1]), np.ones((2, 4), np.float32)), ValueError, r"shape \(2, 3\)"),
])
def test_bad_rows_after_fast_steps_are_refused_and_nothing_is_written(make, error, message):
    rng = np.random.default_rng(32)
    param = random_array(rng, (5, 3), np.float32)
    opt = numadam.Adam(param, lr=0.1)
    for index in ([3, 1], [4, 0], [2, 1]):  # bound, then the one-array path
        opt.step(numadam.Rows(np.array(index), random_array(rng, (2, 3), np.float32)))
    bucket = opt._engine.buckets[0]
    assert bucket.last_plan is bucket._direct_plan
    before, kept = opt.state_dict(), param.copy()
    with pytest.raises(error, match=message):
        opt.step(make())
    np.testing.assert_array_equal(param, kept)
    after = opt.state_dict()
    assert after["step"] == before["step"] == 3
    for name in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(after[name], before[name])


def test_values_in_the_written_memory_are_refused_after_fast_steps():
    param = np.ones((6, 2))
    opt = numadam.Adam(param, lr=0.1)
    for index in ([3, 1], [4, 0]):
        opt.step(numadam.Rows(np.array(index), np.ones((2, 2))))
    for shared in (param[2:4], opt._engine.state_leaves("exp_avg")[0][1:3], param[::-1][:2]):
        with pytest.raises(ValueError, match="shares memory"):
            opt.step(numadam.Rows(np.array([5, 0]), shared))
    assert opt.step_count == 2


def test_neighbouring_rows_merge_into_one_segment_and_scattered_ones_are_not_looked_at_twice():
    """Ascending rows merge where enough follow their predecessor (a range: one segment); a
    minibatch's scattered rows keep a segment each, as they would after merging."""
    param = np.zeros(1000, np.float32)
    opt = numadam.SGD(param, lr=1.0)
    bucket = opt._engine.buckets[0]
    opt.step(numadam.Rows(np.arange(100, 400), np.ones(300, np.float32)))
    assert len(bucket.last_plan.rows) == 1
    scattered = np.arange(0, 1000, 7)
    opt.step(numadam.Rows(scattered, np.ones(len(scattered), np.float32)))
    assert len(bucket.last_plan.rows) == len(scattered)
    expected = np.zeros(1000, np.float32)
    expected[100:400] -= 1
    expected[scattered] -= 1
    np.testing.assert_array_equal(param, expected)


def _repeats_by_numpy(index, n_rows):
    """What :func:`numadam.adapters.listing._repeats` must find, from the definitions: whether a row
    lies outside ``[0, n_rows)``, whether the rows never descend, and the positions of the listings
    of a row listed before, in order."""
    if len(index) and (index.min() < 0 or index.max() >= n_rows):
        return True, False, []
    ascending = bool(np.all(np.diff(index) >= 0))
    seen, later = set(), []
    for position, row in enumerate(index.tolist()):
        if row in seen:
            later.append(position)
        seen.add(row)
    return False, ascending, later


@pytest.mark.parametrize("n_rows", [1, 9, 1000, 10**6], ids=["one", "few", "bits", "sorted"])
@pytest.mark.parametrize("shape", ["random", "ascending", "descending", "equal", "outside_first", "outside_middle",
                                   "outside_last", "negative", "single", "empty"])
def test_the_index_check_finds_range_order_and_repeats_as_numpy_does(n_rows, shape):
    """The compiled check of a minibatch's index against its definition, for every order and every
    place a row outside may stand (it takes the least and greatest row over the whole index)."""
    from numadam.adapters.listing import _repeats

    rng = np.random.default_rng(n_rows)
    index = rng.integers(0, n_rows, 300)
    if shape == "ascending":
        index = np.sort(index)
    elif shape == "descending":
        index = np.sort(index)[::-1].copy()
    elif shape == "equal":
        index[:] = n_rows - 1
    elif shape.startswith("outside"):
        index[{"outside_first": 0, "outside_middle": 150, "outside_last": -1}[shape]] = n_rows
    elif shape == "negative":
        index[77] = -1
    elif shape == "single":
        index = index[:1]
    elif shape == "empty":
        index = index[:0]
    later = np.full(len(index), -7, np.int64)
    outside, ascending, n_later = _repeats(index.astype(np.int64), n_rows, later)
    expected_outside, expected_ascending, expected_later = _repeats_by_numpy(index, n_rows)
    assert (outside, ascending) == (expected_outside, expected_ascending)
    if not expected_outside:
        assert later[:n_later].tolist() == expected_later
