"""numadam.Muon against the NumPy reference (tests/reference_muon.py): options, shapes, stacks, the
auxiliary AdamW, the state, bad input and minimize."""

import numpy as np
import pytest

import numadam
from numadam.muon import newton_schulz
from reference_muon import bfloat16, muon_step

SHAPES = {"tall": (24, 8), "wide": (8, 24), "square": (16, 16)}
OPTIONS = [
    {},
    {"nesterov": False},
    {"momentum": 0.3},  # torch's other lerp form (weights below 0.5)
    {"adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0},
    {"ns_steps": 2, "ns_coefficients": (2.0, -1.5, 0.5), "eps": 1e-3},
    {"lr": 0.05, "weight_decay": 0.5},
]


def _gradients(rng, shape, steps, dtype=np.float32):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


def _worst_over_movement(result, expected, start):
    """The largest element difference over the largest element movement from the start."""
    return float(np.abs(result - expected).max() / np.abs(expected - start).max())


def _run_both(shape, options, ns_dtype, steps=30, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(shape).astype(dtype)
    grads = _gradients(rng, shape, steps, dtype)
    ours, theirs, buffer = start.copy(), start.copy(), np.zeros(shape, dtype)
    opt = numadam.Muon(ours, ns_dtype=ns_dtype, **options)
    for g in grads:
        opt.step(g)
        muon_step(theirs, g, buffer, ns_dtype=ns_dtype, **options)
    return ours, theirs, start, opt, buffer


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_float32_iteration_matches_the_reference_within_1e_4_of_the_movement(shape, options):
    ours, theirs, start, opt, buffer = _run_both(shape, options, "float32")
    assert _worst_over_movement(ours, theirs, start) <= 1e-4
    np.testing.assert_allclose(opt.state_dict()["momentum_buffer"], buffer, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", OPTIONS[:4], ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_bfloat16_iteration_matches_the_reference_within_2_percent_of_the_movement(shape, options):
    ours, theirs, start, _, _ = _run_both(shape, options, "bfloat16")
    assert _worst_over_movement(ours, theirs, start) <= 0.02


def test_float64_parameters_step_in_float64_with_a_float32_iteration():
    ours, theirs, start, opt, _ = _run_both((12, 6), {}, "float32", steps=10, dtype=np.float64)
    assert ours.dtype == np.float64 and opt.state_dict()["momentum_buffer"].dtype == np.float64
    assert _worst_over_movement(ours, theirs, start) <= 1e-4


def test_the_bfloat16_rounding_is_nearest_even_with_nan_kept():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(10000) * 10.0 ** rng.integers(-30, 30, 10000)).astype(np.float32)
    x[:4] = [np.inf, -np.inf, 0.0, -0.0]
    expected = bfloat16(x)
    got = newton_schulz.round_to_bfloat16(x.copy())
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    nan = np.array([np.nan, np.float32(np.frombuffer(np.uint32(0x7F800001).tobytes(), np.float32)[0])],
                   dtype=np.float32)
    assert np.isnan(newton_schulz.round_to_bfloat16(nan)).all()


@pytest.mark.gpu
def test_the_bfloat16_rounding_on_cupy_arrays_is_the_hosts():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(100000) * 10.0 ** rng.integers(-40, 39, 100000)).astype(np.float32)
    x[:6] = [np.inf, -np.inf, 0.0, -0.0, np.nan, np.float32(np.finfo(np.float32).max)]
    x[6:8] = np.array([0x7F800001, 0xFFFFFFFF], dtype=np.uint32).view(np.float32)  # signalling, all-ones NaNs
    on_gpu = cupy.asarray(x)
    assert newton_schulz.round_to_bfloat16(on_gpu) is on_gpu
    np.testing.assert_array_equal(cupy.asnumpy(on_gpu).view(np.uint32),
                                  newton_schulz.round_to_bfloat16(x.copy()).view(np.uint32))


def test_a_higher_dimensional_parameter_is_its_first_axis_by_the_rest():
    rng = np.random.default_rng(2)
    shape = (6, 3, 2, 2)  # a convolution's (out, in, h, w): a 6 x 12 matrix
    start = rng.standard_normal(shape).astype(np.float32)
    grads = _gradients(rng, shape, 20)
    ours, theirs, buffer = start.copy(), start.copy(), np.zeros(shape, np.float32)
    opt = numadam.Muon(ours, ns_dtype="float32", adjust_lr_fn="match_rms_adamw")
    for g in grads:
        opt.step(g)
        muon_step(theirs, g, buffer, ns_dtype="float32", adjust_lr_fn="match_rms_adamw")
    assert _worst_over_movement(ours, theirs, start) <= 1e-4
    assert opt.state_dict()["momentum_buffer"].shape == shape


def test_a_higher_dimensional_parameter_must_be_c_contiguous():
    weight = np.zeros((4, 3, 2), np.float32, order="F")
    with pytest.raises(ValueError, match="C-contiguous"):
        numadam.Muon(weight)


def test_matrices_of_one_shape_step_as_one_stack_with_each_matrix_as_if_alone():
    rng = np.random.default_rng(3)
    shapes = [(8, 12), (8, 12), (12, 8), (8, 12), (5, 5)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [_gradients(rng, s, 10) for s in shapes]
    together = [s.copy() for s in starts]
    opt = numadam.Muon(together, ns_dtype="float32")
    assert [len(stack.indices) for stack in opt._stacks] == [3, 1, 1]
    alone = [s.copy() for s in starts]
    singles = [numadam.Muon(a, ns_dtype="float32") for a in alone]
    for k in range(10):
        opt.step([g[k] for g in grads])
        for single, g in zip(singles, grads):
            single.step(g[k])
    for a, b, s in zip(together, alone, starts):
        assert _worst_over_movement(a, b, s) <= 1e-5


def test_other_leaves_go_to_an_auxiliary_adamw_in_the_same_step():
    rng = np.random.default_rng(4)
    params = {"W": rng.standard_normal((10, 6)).astype(np.float32), "b": rng.standard_normal(6).astype(np.float32),
              "embed": rng.standard_normal((20, 4)).astype(np.float32)}
    start = {k: v.copy() for k, v in params.items()}
    aux = {"lr": 0.01, "weight_decay": 0.05, "betas": (0.8, 0.99)}
    opt = numadam.Muon(params, ns_dtype="float32", aux=aux, aux_filter=lambda path, a: "embed" in path)
    assert opt.aux_paths == ["params['b']", "params['embed']"]
    adamw_leaves = [start["b"].copy(), start["embed"].copy()]
    adamw = numadam.AdamW(adamw_leaves, **aux)
    muon_w, buffer = start["W"].copy(), np.zeros((10, 6), np.float32)
    for _ in range(15):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
        opt.step(grads)
        adamw.step([grads["b"], grads["embed"]])
        muon_step(muon_w, grads["W"], buffer, ns_dtype="float32")
    np.testing.assert_array_equal(params["b"], adamw_leaves[0])
    np.testing.assert_array_equal(params["embed"], adamw_leaves[1])
    assert _worst_over_movement(params["W"], muon_w, start["W"]) <= 1e-4
    state = opt.state_dict()
    assert state["momentum_buffer"]["b"] is None and state["momentum_buffer"]["embed"] is None
    assert state["aux"]["step"] == 15


def test_the_state_round_trips_through_state_dict_and_a_file(tmp_path):
    rng = np.random.default_rng(5)
    params = [rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    opt = numadam.Muon(params, aux={})
    for _ in range(4):
        opt.step([rng.standard_normal(p.shape).astype(np.float32) for p in params])
    assert set(opt.state_dict()) == {"optimizer", "family", "step", "hyperparameters", "momentum_buffer", "aux"}
    opt.save(tmp_path / "muon.npz")
    copies = [p.copy() for p in params]
    restored = numadam.Muon(copies, aux={})
    restored.load(tmp_path / "muon.npz")
    assert restored.step_count == 4
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    opt.step(grads)
    restored.step(grads)
    for a, b in zip(params, copies):
        np.testing.assert_array_equal(a, b)


def test_without_auxiliary_leaves_the_state_is_torchs_momentum_buffer_alone():
    opt = numadam.Muon({"W": np.zeros((3, 4))})
    state = opt.state_dict()
    assert "aux" not in state and set(state["momentum_buffer"]) == {"W"}


def test_a_state_that_does_not_fit_is_refused_and_changes_nothing():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((4, 4)).astype(np.float32)
    opt = numadam.Muon(w)
    opt.step(rng.standard_normal((4, 4)).astype(np.float32))
    before = opt.state_dict()
    bad = {**before, "momentum_buffer": np.zeros((3, 4), np.float32), "step": 9}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["step"] == 1
    np.testing.assert_array_equal(after["momentum_buffer"], before["momentum_buffer"])
    with pytest.raises(ValueError, match="not Muon"):
        opt.load_state_dict({**before, "family": "adam"})


def _refused_and_unchanged(opt, params, grads, error, match):
    before = [np.array(p, copy=True) for p in params]
    state = opt.state_dict()
    with pytest.raises(error, match=match):
        opt.step(grads)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p, b)
    assert opt.step_count == state["step"]


def test_bad_gradients_are_refused_before_anything_is_written():
    rng = np.random.default_rng(7)
    params = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32),
              rng.standard_normal(4).astype(np.float32)]
    opt = numadam.Muon(params, aux={})
    good = [np.ones((5, 4), np.float32), np.ones((5, 4), np.float32), np.ones(4, np.float32)]
    _refused_and_unchanged(opt, params, [good[0], np.ones((4, 5), np.float32), good[2]], ValueError, "shape")
    _refused_and_unchanged(opt, params, [good[0], good[1].astype(np.float64), good[2]], TypeError, "dtype")
    _refused_and_unchanged(opt, params, [good[0], good[1].astype(np.complex64), good[2]], TypeError, "complex")
    _refused_and_unchanged(opt, params, [good[0], params[0], good[2]], ValueError, "shares memory")
    _refused_and_unchanged(opt, params, [good[0], good[1], np.ones(5, np.float32)], ValueError, "shape")
    _refused_and_unchanged(opt, params, good[:2], ValueError, "3 items")


def test_bad_parameters_and_hyperparameters_are_refused_with_the_rule():
    with pytest.raises(ValueError, match=r"params\['b'\].*aux="):
        numadam.Muon({"W": np.zeros((3, 3)), "b": np.zeros(3)})
    with pytest.raises(TypeError, match="complex"):
        numadam.Muon(np.zeros((3, 3), np.complex64))
    with pytest.raises(TypeError, match="real floating point"):
        numadam.Muon(np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="no matrix"):
        numadam.Muon(np.zeros(3), aux={})
    for options, match in [({"ns_steps": 100}, "below 100"), ({"adjust_lr_fn": "sqrt"}, "adjust_lr_fn"),
                           ({"ns_dtype": "float16"}, "ns_dtype"), ({"ns_coefficients": (1.0, 2.0)}, "three"),
                           ({"lr": -1.0}, "lr"), ({"momentum": -0.1}, "momentum"), ({"eps": -1.0}, "eps")]:
        with pytest.raises(ValueError, match=match):
            numadam.Muon(np.zeros((3, 3)), **options)
    with pytest.raises(TypeError, match="aux must be"):
        numadam.Muon(np.zeros((3, 3)), aux=0.1)
    with pytest.raises(TypeError, match="Group"):
        numadam.Muon(numadam.Group(np.zeros((3, 3)), lr=0.1))


def test_dask_arrays_are_refused_with_the_reason():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="whole matrices"):
        numadam.Muon(da.zeros((4, 4), chunks=2))


def test_a_schedule_sets_the_matrices_lr_before_each_step():
    rng = np.random.default_rng(8)
    start = rng.standard_normal((6, 6)).astype(np.float32)
    grads = _gradients(rng, (6, 6), 5)
    ours, theirs, buffer = start.copy(), start.copy(), np.zeros((6, 6), np.float32)
    opt = numadam.Muon(ours, ns_dtype="float32", schedule=lambda k: 0.01 / (1 + k))
    for k, g in enumerate(grads):
        opt.step(g)
        muon_step(theirs, g, buffer, ns_dtype="float32", lr=0.01 / (1 + k))
    assert _worst_over_movement(ours, theirs, start) <= 1e-4


def test_minimize_takes_muon_for_a_matrix_and_refuses_other_shapes():
    rng = np.random.default_rng(9)
    a, target = rng.standard_normal((30, 8)), rng.standard_normal((8, 4))
    b = a @ target

    def fun(x):
        r = a @ x - b
        return 0.5 * float(np.sum(r * r)), a.T @ r

    x0 = np.zeros((8, 4))
    first = fun(x0)[0]
    res = numadam.minimize(fun, x0, jac=True, method="muon", lr=0.02, weight_decay=0.0, maxiter=400)
    assert res.x.shape == (8, 4) and res.fun < 1e-3 * first and not res.compiled
    with pytest.raises(ValueError, match="2-D"):
        numadam.minimize(lambda x: (float(x @ x), 2 * x), np.zeros(3), jac=True, method="muon")
    from scipy.optimize import Bounds

    with pytest.raises(TypeError, match="bounds"):
        numadam.minimize(fun, x0, jac=True, method="muon", bounds=Bounds(0, 1))
    with pytest.raises(ValueError, match="functional step"):
        numadam.registry.functional_step("muon")


def test_muon_is_found_by_name_but_is_not_an_elementwise_family():
    assert numadam.registry.optimizer_class("Muon") is numadam.Muon
    assert "muon" not in numadam.families()


@pytest.mark.gpu
@pytest.mark.parametrize("ns_dtype, bound", [("float32", 3e-4), ("bfloat16", 0.02)])
def test_muon_on_cupy_arrays_steps_as_the_reference(ns_dtype, bound):
    """Against the NumPy reference: bfloat16 (products on TF32 tensor cores where the GPU has them)
    within 2% of the movement, as on the host. float32 within 3e-4, where the host is held to 1e-4:
    the device's passes fuse multiply-adds (one rounding where NumPy rounds twice: up to 8 ulps of
    a parameter after one step) and cuBLAS sums in its own order, and 20 steps of five Newton–Schulz
    iterations amplify those float32 differences to 1.7e-4 of the movement (H200, 2026-11-30:
    docs/bench/cuda-h200-2026-11-30-muon.txt), against 3e-5 for the host."""
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(10)
    shapes = [(24, 8), (24, 8), (8, 40), (6, 2, 3, 3)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    on_reference = [s.copy() for s in starts]
    buffers = [np.zeros_like(s) for s in starts]
    on_gpu = [cupy.asarray(s) for s in starts]
    gpu = numadam.Muon(on_gpu, ns_dtype=ns_dtype)
    for _ in range(20):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        gpu.step([cupy.asarray(g) for g in grads])
        for param, grad, buffer in zip(on_reference, grads, buffers):
            muon_step(param, grad, buffer, ns_dtype=ns_dtype)
    for g, expected, s in zip(on_gpu, on_reference, starts):
        assert isinstance(g, cupy.ndarray)
        assert _worst_over_movement(cupy.asnumpy(g), expected, s) <= bound


@pytest.mark.gpu
@pytest.mark.parametrize("second_transposed", [False, True])
def test_tf32_products_of_bfloat16_values_equal_float32_products_up_to_their_order(second_transposed):
    """TF32 holds every bfloat16 value exactly, so the tensor cores' products differ from float32
    ones only in the order of the float32 sums: within k float32 ulps of the sums of |terms|."""
    cupy = pytest.importorskip("cupy")
    if not newton_schulz._has_tf32_tensor_cores():
        pytest.skip("this GPU has no TF32 tensor cores")
    rng = np.random.default_rng(12)
    count, rows, inner, columns = 5, 96, 200, 72
    first = bfloat16(rng.standard_normal((count, rows, inner)).astype(np.float32))
    second = bfloat16(rng.standard_normal((count, columns, inner) if second_transposed
                                          else (count, inner, columns)).astype(np.float32))
    out = cupy.empty((count, rows, columns), dtype=np.float32)
    newton_schulz._tf32_products(cupy.asarray(first), cupy.asarray(second), out, second_transposed)
    right = np.swapaxes(second, -1, -2) if second_transposed else second
    exact = first.astype(np.float64) @ right.astype(np.float64)
    scale = np.abs(first).astype(np.float64) @ np.abs(right).astype(np.float64)
    assert (np.abs(cupy.asnumpy(out) - exact) <= inner * np.finfo(np.float32).eps * scale).all()


def test_the_cublas_arguments_multiply_row_major_stacks():
    """The column-major call that ``_tf32_products`` makes, played out in NumPy, gives first @ second."""
    rng = np.random.default_rng(13)

    def column_major(flat, start, ld, rows, columns):
        return flat[start:start + ld * columns].reshape(columns, ld)[:, :rows].T

    for count, rows, inner, columns in [(3, 4, 5, 6), (2, 5, 5, 5), (1, 7, 3, 2)]:
        first = rng.standard_normal((count, rows, inner))
        for transposed in (False, True):
            second = rng.standard_normal((count, columns, inner) if transposed else (count, inner, columns))
            transa, transb, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c = newton_schulz.gemm_arguments(
                first.shape, second.shape, transposed)
            out = np.zeros(count * stride_c)
            for i in range(count):
                a = column_major(second.ravel(), i * stride_a, lda, *((k, m) if transa else (m, k)))
                b = column_major(first.ravel(), i * stride_b, ldb, *((n, k) if transb else (k, n)))
                product = (a.T if transa else a) @ (b.T if transb else b)
                for column in range(n):
                    out[i * stride_c + column * ldc:i * stride_c + column * ldc + m] = product[:, column]
            expected = first @ (np.swapaxes(second, -1, -2) if transposed else second)
            np.testing.assert_allclose(out.reshape(expected.shape), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="do not multiply"):
        newton_schulz.gemm_arguments((2, 3, 4), (2, 5, 6), False)


def test_a_deep_copy_owns_its_arrays_and_steps_as_the_original():
    import copy

    rng = np.random.default_rng(11)
    params = {"W": rng.standard_normal((6, 4)).astype(np.float32), "b": np.zeros(4, np.float32)}
    opt = numadam.Muon(params, aux={"lr": 0.01})
    opt.step({"W": np.ones((6, 4), np.float32), "b": np.ones(4, np.float32)})
    twin = copy.deepcopy(opt)
    assert twin.params["W"] is not params["W"] and twin.step_count == 1
    grads = {"W": rng.standard_normal((6, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    opt.step(grads)
    twin.step(grads)
    for name in params:
        np.testing.assert_array_equal(twin.params[name], params[name])
    with pytest.raises(TypeError, match="deepcopy"):
        copy.copy(opt)


def test_lr_and_weight_decay_are_settable_between_steps_and_checked():
    w = np.ones((4, 4), np.float32)
    opt = numadam.Muon(w, ns_dtype="float32")
    opt.lr, opt.weight_decay = 0.5, 0.0
    assert opt.hyperparameters()["lr"] == 0.5 and opt.weight_decay == 0.0
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0
    assert opt.lr == 0.5


def test_minimize_batch_solves_matrix_problems_one_by_one_and_refuses_vectorized():
    rng = np.random.default_rng(12)
    targets = rng.standard_normal((3, 4, 2))

    def fun(x, t):
        r = x - t
        return float((r * r).sum()), 2 * r

    res = numadam.minimize_batch(fun, np.zeros((3, 4, 2)), batched_args=(targets,), jac=True, method="muon",
                                 lr=0.05, weight_decay=0.0, maxiter=300)
    alone = numadam.minimize(fun, np.zeros((4, 2)), args=(targets[1],), jac=True, method="muon", lr=0.05,
                             weight_decay=0.0, maxiter=300)
    np.testing.assert_array_equal(res.x[1], alone.x)
    with pytest.raises(ValueError, match="orthogonalizes each matrix whole"):
        numadam.minimize_batch(lambda X, t: (((X - t) ** 2).sum((1, 2)), 2 * (X - t)), np.zeros((3, 4, 2)),
                               batched_args=(targets,), jac=True, method="muon", vectorized=True)


def test_parameters_the_step_could_not_write_are_refused_when_muon_is_made():
    w = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="share memory"):
        numadam.Muon([w, w])
    with pytest.raises(ValueError, match="share memory"):
        numadam.Muon([w, w[0]], aux={})
    read_only = np.zeros((4, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        numadam.Muon([np.zeros((3, 3), np.float32), read_only])
    with pytest.raises(TypeError, match="byte order"):
        numadam.Muon(np.zeros((3, 3), ">f4"))
    with pytest.raises(ValueError, match="length 0"):
        numadam.Muon(np.zeros((5, 0), np.float32))


def test_gradients_the_engine_would_refuse_are_refused_before_the_auxiliary_adamw_steps():
    rng = np.random.default_rng(13)
    params = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32),
              rng.standard_normal(4).astype(np.float32)]
    opt = numadam.Muon(params, aux={})
    good = [np.ones((5, 4), np.float32), np.ones((3, 3), np.float32), np.ones(4, np.float32)]
    misaligned = np.frombuffer(np.zeros(9 * 4 + 1, np.uint8).tobytes(), np.float32, 9, 1).reshape(3, 3)
    _refused_and_unchanged(opt, params, [good[0], misaligned, good[2]], ValueError, "aligned")
    _refused_and_unchanged(opt, params, [good[0], good[1].astype(">f4"), good[2]], TypeError, "byte order")
    _refused_and_unchanged(opt, params, [good[0], good[1], np.ones(4, np.float64)], TypeError, r"grads\[2\]")
    assert opt.aux.step_count == 0


def test_a_gradient_of_more_than_two_dimensions_may_be_in_any_layout():
    rng = np.random.default_rng(14)
    start = rng.standard_normal((6, 3, 2)).astype(np.float32)
    ours, theirs, buffer = start.copy(), start.copy(), np.zeros((6, 3, 2), np.float32)
    opt = numadam.Muon(ours, ns_dtype="float32")
    for _ in range(5):
        g = rng.standard_normal((6, 3, 2)).astype(np.float32)
        opt.step(np.asfortranarray(g))
        muon_step(theirs, g, buffer, ns_dtype="float32")
    assert _worst_over_movement(ours, theirs, start) <= 1e-4


def test_a_load_whose_arrays_do_not_convert_changes_nothing():
    rng = np.random.default_rng(15)
    params = [rng.standard_normal((4, 4)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32),
              np.zeros(2, np.float32)]
    opt = numadam.Muon(params, aux={})
    opt.step([np.ones((4, 4), np.float32), np.ones((3, 3), np.float32), np.ones(2, np.float32)])
    before = opt.state_dict()
    fresh = numadam.Muon([p.copy() for p in params], aux={})
    for bad, error in [(np.zeros((3, 3), np.complex64), TypeError), (np.array([["a"] * 3] * 3), TypeError)]:
        state = {**before, "momentum_buffer": [before["momentum_buffer"][0], bad, None]}
        with pytest.raises(error, match="real floating point"):
            fresh.load_state_dict(state)
        assert fresh.step_count == 0 and fresh.aux.step_count == 0
        np.testing.assert_array_equal(fresh.state_dict()["momentum_buffer"][0], 0.0)


def test_minimize_refuses_a_dask_x0_for_muon_with_the_reason():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="whole matrices"):
        numadam.minimize(lambda x: ((x * x).sum(), 2 * x), da.zeros((4, 4), chunks=2), jac=True, method="muon")


def test_a_schedule_s_rate_is_the_lr_muon_reports():
    opt = numadam.Muon(np.ones((3, 3), np.float32), schedule=lambda k: 0.1 / (k + 1))
    opt.step(np.ones((3, 3), np.float32))
    opt.step(np.ones((3, 3), np.float32))
    assert opt.lr == 0.05 and opt.state_dict()["hyperparameters"]["lr"] == 0.05
