"""Adam and AdamW objects: trees, many arrays in one pass, changing hyperparameters, state."""

import os

import numba
import numpy as np
import pytest

import numadam
from arrays import DTYPES, LAYOUTS, in_layout, random_array
from reference import adam_exact


def tree_of_arrays(rng):
    """A nested tree with every dtype, 0-d and empty arrays, and several layouts."""
    return {
        "dense": {"W": random_array(rng, (6, 5), np.float32), "b": random_array(rng, (5,), np.float32)},
        "layers": [
            in_layout(random_array(rng, (4, 3, 2), np.float64), "F"),
            in_layout(random_array(rng, (3, 4), np.complex64), "strided"),
            (random_array(rng, (), np.float64), random_array(rng, (0, 3), np.float32)),
        ],
        "z": in_layout(random_array(rng, (7,), np.complex128), "reversed"),
    }


def leaves_of(tree):
    from numadam.adapters.tree import flatten
    return flatten(tree)[0]


def grads_like(rng, params, scale=1.0):
    from numadam.adapters.tree import flatten
    leaves, treedef = flatten(params)
    return treedef.unflatten([random_array(rng, leaf.shape, leaf.dtype, scale) for leaf in leaves])


class ReferenceOptimizer:
    """adam_exact applied leaf by leaf: what the optimizer must reproduce bit for bit."""

    def __init__(self, params, **options):
        self.params = [np.array(p, copy=True) for p in leaves_of(params)]
        self.exp_avg = [np.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [np.zeros_like(p) for p in self.params]
        self.peak = [np.zeros_like(p) for p in self.params]
        self.options = options
        self.t = 0

    def step(self, grads, **changes):
        self.options.update(changes)
        self.t += 1
        options = dict(self.options)
        amsgrad = options.pop("amsgrad", False)
        for k, g in enumerate(leaves_of(grads)):
            p, m, v, peak = adam_exact(self.params[k], g, self.exp_avg[k], self.exp_avg_sq[k],
                                       self.peak[k] if amsgrad else None, step=self.t, amsgrad=amsgrad, **options)
            self.params[k], self.exp_avg[k], self.exp_avg_sq[k] = p, m, v
            if amsgrad:
                self.peak[k] = peak


OPTIONS = {
    "adam": {},
    "l2": {"weight_decay": 0.05},
    "adamw": {"weight_decay": 0.05, "decoupled_weight_decay": True},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True, "amsgrad": True, "weight_decay": 0.01},
}


def tree_trajectory(rng, options, steps):
    """Take ``steps`` steps on a mixed tree with numadam and the reference; assert equal params."""
    params = tree_of_arrays(rng)
    opt = numadam.Adam(params, **options)
    reference = ReferenceOptimizer(params, **options)
    for _ in range(steps):
        grads = grads_like(rng, params)
        opt.step(grads)
        reference.step(grads)
    for actual, expected in zip(leaves_of(params), reference.params):
        np.testing.assert_array_equal(actual, expected, strict=True)
    return opt, reference


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_tree_trajectory_matches_the_reference(rng, option):
    options = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, **OPTIONS[option]}
    opt, reference = tree_trajectory(rng, options, steps=8)
    state = opt.state_dict()
    for actual, expected in zip(leaves_of(state["exp_avg_sq"]), reference.exp_avg_sq):
        np.testing.assert_array_equal(actual, expected, strict=True)


def test_hyperparameters_change_between_steps(rng):
    params = tree_of_arrays(rng)
    opt = numadam.Adam(params, lr=1e-2, amsgrad=True)
    reference = ReferenceOptimizer(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, amsgrad=True)
    schedule = [
        {"lr": 5e-3},
        {"betas": (0.8, 0.99)},
        {"eps": 1e-6, "weight_decay": 0.1},
        {"decoupled_weight_decay": True},
        {"maximize": True},
        {"lr": 0.0},
    ]
    for changes in schedule:
        for name, value in changes.items():
            setattr(opt, name, value)
        grads = grads_like(rng, params)
        opt.step(grads)
        reference.step(grads, **changes)
    for actual, expected in zip(leaves_of(params), reference.params):
        np.testing.assert_array_equal(actual, expected, strict=True)
    assert opt.step_count == len(schedule)


@pytest.mark.parametrize("dtype", DTYPES)
def test_many_arrays_in_one_pass_with_reused_gradient_buffers(rng, dtype):
    """Gradients filled in place into the same arrays every step (the cached table)."""
    shapes = [tuple(rng.integers(0, 9, size=rng.integers(0, 3))) for _ in range(60)]
    params = [in_layout(random_array(rng, s, dtype), LAYOUTS[k % len(LAYOUTS)]) for k, s in enumerate(shapes)]
    grads = [in_layout(np.zeros(s, dtype), LAYOUTS[(k + 2) % len(LAYOUTS)]) for k, s in enumerate(shapes)]
    opt = numadam.Adam(params, lr=3e-3, amsgrad=True, weight_decay=0.01)
    reference = ReferenceOptimizer(params, lr=3e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=True, weight_decay=0.01)
    for _ in range(4):
        for g in grads:
            g[...] = random_array(rng, g.shape, dtype)
        opt.step(grads)
        reference.step(grads)
    for actual, expected in zip(params, reference.params):
        np.testing.assert_array_equal(actual, expected, strict=True)


def test_gradient_arrays_may_change_between_steps(rng):
    params = [random_array(rng, (50,), np.float32) for _ in range(5)]
    opt = numadam.Adam(params, lr=1e-2)
    reference = ReferenceOptimizer(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    persistent = [np.zeros(50, np.float32) for _ in range(5)]
    for step in range(6):
        if step % 2:
            grads = [random_array(rng, (50,), np.float32) for _ in range(5)]
        else:
            for g in persistent:
                g[...] = random_array(rng, (50,), np.float32)
            grads = persistent
        opt.step(grads)
        reference.step(grads)
    for actual, expected in zip(params, reference.params):
        np.testing.assert_array_equal(actual, expected, strict=True)


def test_contiguous_neighbours_coalesce_into_one_segment():
    """Views of one buffer, with gradients from one buffer, are a single segment."""
    buffer = np.zeros(1000, np.float32)
    grad_buffer = np.ones(1000, np.float32)
    params = [buffer[k * 100:(k + 1) * 100] for k in range(10)]
    opt = numadam.Adam(params, lr=1e-2)
    opt.step([grad_buffer[k * 100:(k + 1) * 100] for k in range(10)])
    assert len(opt._engine.buckets[0]._plan.rows) == 1
    np.testing.assert_array_equal(buffer, np.float32(-1e-2) * np.ones(1000, np.float32) / (np.float32(1) + np.float32(1e-8)))


def test_params_tree_and_single_array(rng):
    w = random_array(rng, (3, 3), np.float64)
    opt = numadam.Adam(w, lr=0.1)
    assert opt.params is w
    reference = ReferenceOptimizer(w, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    g = random_array(rng, (3, 3), np.float64)
    opt.step(g)
    reference.step(g)
    np.testing.assert_array_equal(w, reference.params[0])
    tree = {"a": [w, (random_array(rng, (2,), np.float32),)]}
    opt = numadam.Adam(tree)
    assert opt.params["a"][0] is w and isinstance(opt.params["a"][1], tuple)


def test_adamw_is_adam_with_decoupled_decay(rng):
    p1 = random_array(rng, (20,), np.float32)
    p2 = p1.copy()
    adamw = numadam.AdamW([p1], lr=0.05)
    adam = numadam.Adam([p2], lr=0.05, weight_decay=1e-2, decoupled_weight_decay=True)
    assert adamw.weight_decay == 1e-2 and adamw.decoupled_weight_decay
    for _ in range(5):
        g = random_array(rng, (20,), np.float32)
        adamw.step([g])
        adam.step([g])
    np.testing.assert_array_equal(p1, p2)


# -- state ----------------------------------------------------------------------------

def test_state_dict_round_trip_continues_exactly(rng, tmp_path):
    params = tree_of_arrays(rng)
    opt = numadam.Adam(params, lr=1e-2, amsgrad=True, weight_decay=0.1)
    grads = [grads_like(rng, params) for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
    state = opt.state_dict()
    opt.save(tmp_path / "state.npz")

    restored_params = [np.array(p, copy=True) for p in leaves_of(params)]
    from numadam.adapters.tree import flatten
    treedef = flatten(params)[1]
    fresh = numadam.Adam(treedef.unflatten(restored_params), lr=0.5)
    fresh.load(tmp_path / "state.npz")
    assert fresh.step_count == 3 and fresh.lr == 1e-2 and fresh.amsgrad
    assert_state_equal_trees(fresh.state_dict(), state)
    for g in grads[3:]:
        opt.step(g)
        fresh.step(g)
    for a, b in zip(leaves_of(params), restored_params):
        np.testing.assert_array_equal(a, b, strict=True)


def assert_state_equal_trees(actual, expected):
    assert actual["step"] == expected["step"]
    assert actual["hyperparameters"] == expected["hyperparameters"]
    for kind in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert (kind in actual) == (kind in expected)
        if kind in expected:
            for a, b in zip(leaves_of(actual[kind]), leaves_of(expected[kind])):
                np.testing.assert_array_equal(a, b, strict=True)


def test_state_dict_is_plain_data_and_a_copy(rng):
    params = {"w": random_array(rng, (4,), np.float32)}
    opt = numadam.Adam(params)
    opt.step({"w": random_array(rng, (4,), np.float32)})
    state = opt.state_dict()
    assert state["optimizer"] == "Adam" and state["step"] == 1
    assert set(state) == {"optimizer", "family", "step", "hyperparameters", "exp_avg", "exp_avg_sq"}
    assert isinstance(state["exp_avg"]["w"], np.ndarray)
    state["exp_avg"]["w"][...] = 123.0
    assert not np.any(opt.state_dict()["exp_avg"]["w"] == 123.0)


def test_loading_amsgrad_state_switches_amsgrad_on(rng):
    params = [random_array(rng, (5,), np.float64)]
    source = numadam.Adam([params[0].copy()], amsgrad=True)
    source.step([random_array(rng, (5,), np.float64)])
    target = numadam.Adam(params)
    target.load_state_dict(source.state_dict())
    assert target.amsgrad
    np.testing.assert_array_equal(target.state_dict()["max_exp_avg_sq"][0], source.state_dict()["max_exp_avg_sq"][0])


def test_save_is_atomic(rng, tmp_path, monkeypatch):
    path = tmp_path / "opt.npz"
    opt = numadam.Adam({"w": random_array(rng, (3,), np.float32)})
    opt.save(path)
    original = path.read_bytes()
    opt.step({"w": random_array(rng, (3,), np.float32)})

    def failing_savez(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        opt.save(path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["opt.npz"]


def test_state_files_keep_structure_and_types(tmp_path):
    state = {"a": (1, 2.5, None), "b": {1: "x", "k": [np.arange(3)]}, "c": np.complex64(1 + 2j), "d": True}
    numadam.save_state(state, tmp_path / "s.npz")
    loaded = numadam.load_state(tmp_path / "s.npz")
    assert loaded["a"] == (1, 2.5, None) and loaded["b"][1] == "x" and loaded["d"] is True
    np.testing.assert_array_equal(loaded["b"]["k"][0], np.arange(3))
    assert loaded["c"] == 1 + 2j


def test_load_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="is not a numadam state file"):
        numadam.load_state(tmp_path / "other.npz")


# -- threads ---------------------------------------------------------------------------

@pytest.mark.slow  # full tier: 9 s cold
def test_results_do_not_depend_on_the_thread_count(rng):
    params = [random_array(rng, (200_003,), np.float32), random_array(rng, (70_001,), np.complex128)]
    grads = [grads_like(rng, p) for p in params]
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba runs with a single thread here (NUMBA_NUM_THREADS=1): nothing to compare")
    results = []
    threads = numba.get_num_threads()
    for count in (1, 2):
        copies = [p.copy() for p in params]
        opt = numadam.Adam(copies, lr=1e-3, amsgrad=True, weight_decay=0.1)
        numba.set_num_threads(count)
        try:
            for _ in range(3):
                opt.step(grads)
        finally:
            numba.set_num_threads(threads)
        results.append(copies)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
@pytest.mark.parametrize("path", ["serial", "parallel"])
def test_chunks_that_span_many_segments(rng, monkeypatch, chunk_size, path):
    """Chunks cut across segment boundaries (a chunk may hold the tail of one array,
    several small arrays and the head of the next) and every element is updated once."""
    from numadam.targets.cpu.backend import CpuBackend

    monkeypatch.setattr(CpuBackend, "chunk_size", chunk_size)
    monkeypatch.setattr(CpuBackend, "serial_below", 1 << 40 if path == "serial" else 0)
    options = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": True, "weight_decay": 0.01}
    tree_trajectory(rng, options, steps=3)


def test_saved_files_get_the_mode_of_any_new_file(rng, tmp_path):
    opt = numadam.Adam({"w": random_array(rng, (3,), np.float32)})
    opt.save(tmp_path / "opt.npz")
    (tmp_path / "plain").write_bytes(b"")
    assert os.stat(tmp_path / "opt.npz").st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777
