"""numadam.Group: per-group hyperparameters in one kernel pass per dtype."""

import pickle

import numpy as np
import pytest

import numadam
from arrays import random_array


def model(rng, dtype=np.float32):
    return {"W": random_array(rng, (6, 4), dtype), "b": random_array(rng, (4,), dtype),
            "H": random_array(rng, (4, 3), dtype), "c": random_array(rng, (3,), dtype)}


def grads_of(rng, arrays):
    return {name: random_array(rng, a.shape, a.dtype) for name, a in arrays.items()}


def test_a_group_gets_its_own_hyperparameters_and_matches_separate_optimizers(rng):
    """No decay on the body's biases, a larger lr for the head: the same as three optimizers."""
    p = model(rng)
    twins = {name: a.copy() for name, a in p.items()}
    params = {"body": numadam.Group([p["W"], p["b"]], weight_decay=0.0), "head": {"H": p["H"]},
              "bias": numadam.Group(p["c"], lr=0.05, betas=(0.8, 0.99))}
    opt = numadam.AdamW(params, lr=1e-2, weight_decay=0.1)
    separate = [numadam.AdamW([twins["W"], twins["b"]], lr=1e-2, weight_decay=0.0),
                numadam.AdamW({"H": twins["H"]}, lr=1e-2, weight_decay=0.1),
                numadam.AdamW(twins["c"], lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)]
    for _ in range(5):
        g = grads_of(rng, p)
        opt.step({"body": [g["W"], g["b"]], "head": {"H": g["H"]}, "bias": g["c"]})
        separate[0].step([g["W"], g["b"]])
        separate[1].step({"H": g["H"]})
        separate[2].step(g["c"])
    for name in p:
        np.testing.assert_array_equal(p[name], twins[name], strict=True)


def test_groups_share_one_kernel_pass_per_dtype(rng, monkeypatch):
    p = model(rng)
    opt = numadam.Adam({"a": numadam.Group([p["W"], p["b"]], lr=0.1), "rest": [p["H"], p["c"]]}, lr=1e-3)
    backend = opt._engine.backend
    runs = []
    original = type(backend).launcher

    def counted(self, plan, spec, blocks=None):
        launch = original(self, plan, spec, blocks)
        return lambda scalars: (runs.append(spec), launch(scalars))

    monkeypatch.setattr(type(backend), "launcher", counted)
    g = grads_of(rng, p)
    opt.step({"a": [g["W"], g["b"]], "rest": [g["H"], g["c"]]})
    assert len(runs) == 1


def test_group_hyperparameters_change_between_steps_and_fall_back_to_the_optimizers(rng):
    p = model(rng)
    group = numadam.Group([p["W"]], weight_decay=0.0)
    opt = numadam.AdamW({"g": group, "b": p["b"]}, lr=1e-2, weight_decay=0.1)
    assert opt.groups == [group]
    assert group.lr == 1e-2 and group.weight_decay == 0.0
    opt.lr = 2e-2
    assert group.lr == 2e-2  # not set in the group: the optimizer's
    group.lr = 5e-3
    assert group.lr == 5e-3 and opt.lr == 2e-2
    twin = p["W"].copy()
    reference = numadam.AdamW([twin], lr=5e-3, weight_decay=0.0)
    g = random_array(rng, p["W"].shape, np.float32)
    opt.step({"g": [g], "b": np.zeros_like(p["b"])})
    reference.step([g])
    np.testing.assert_array_equal(p["W"], twin, strict=True)


def test_a_schedule_drives_its_group(rng):
    p = model(rng)
    group = numadam.Group([p["W"]], schedule=numadam.schedules.StepDecay(0.1, step_size=2, gamma=0.5))
    opt = numadam.Adam({"g": group, "b": p["b"]}, lr=1e-3)
    seen = []
    for _ in range(5):
        opt.step({"g": [np.ones_like(p["W"])], "b": np.ones_like(p["b"])})
        seen.append(group.lr)
    assert seen == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert opt.lr == 1e-3


def test_groups_are_saved_and_loaded(rng, tmp_path):
    p = model(rng)
    opt = numadam.AdamW({"g": numadam.Group([p["W"]], weight_decay=0.0, lr=0.05), "b": p["b"]}, lr=1e-2)
    opt.step({"g": [np.ones_like(p["W"])], "b": np.ones_like(p["b"])})
    opt.groups[0].lr = 0.02
    opt.save(tmp_path / "state.npz")
    q = {"W": p["W"].copy(), "b": p["b"].copy()}
    other = numadam.AdamW({"g": numadam.Group([q["W"]], weight_decay=0.3), "b": q["b"]}, lr=1e-2)
    other.load(tmp_path / "state.npz")
    assert other.groups[0].overrides == {"weight_decay": 0.0, "lr": 0.02}
    for optimizer, params in ((opt, p), (other, q)):
        optimizer.step({"g": [np.ones_like(params["W"])], "b": np.ones_like(params["b"])})
    np.testing.assert_array_equal(p["W"], q["W"], strict=True)


@pytest.mark.parametrize("make, error, message", [
    (lambda w, b: numadam.Adam({"g": numadam.Group([w], momentum=0.9), "b": b}), TypeError,
     "sets 'momentum', which Adam does not have"),
    (lambda w, b: numadam.Adam({"g": numadam.Group([w], amsgrad=True), "b": b}), ValueError,
     "amsgrad is set per optimizer, not per Group"),
    (lambda w, b: numadam.AdamW({"g": numadam.Group([w], decoupled_weight_decay=False), "b": b}), ValueError,
     "decoupled_weight_decay is set per optimizer, not per Group"),
    (lambda w, b: numadam.Adam({"g": numadam.Group([w], lr=-1.0), "b": b}), ValueError,
     "lr must be finite and >= 0; got -1.0"),
    (lambda w, b: numadam.Adam({"g": numadam.Group([numadam.Group([w])]), "b": b}), ValueError,
     "numadam.Group cannot hold another Group"),
])
def test_bad_groups_are_refused(rng, make, error, message):
    p = model(rng)
    with pytest.raises(error, match=message):
        make(p["W"], p["b"])


def test_a_group_belongs_to_one_optimizer_and_refuses_bad_values_later(rng):
    p = model(rng)
    group = numadam.Group([p["W"]], lr=0.1)
    opt = numadam.Adam({"g": group, "b": p["b"]})
    with pytest.raises(ValueError, match="already belongs to another optimizer"):
        numadam.Adam({"g": group})
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        group.lr = float("inf")
    assert group.lr == 0.1
    with pytest.raises(TypeError, match="grads\\['g'\\]\\[0\\] must be an array like its parameter; got a Group"):
        opt.step({"g": [numadam.Group([np.ones_like(p["W"])])], "b": np.ones_like(p["b"])})


def test_pickling_keeps_the_groups(rng):
    p = model(rng)
    opt = numadam.Adam({"g": numadam.Group([p["W"]], lr=0.1), "b": p["b"]}, lr=1e-3)
    copy = pickle.loads(pickle.dumps(opt))
    assert copy.groups[0].lr == 0.1 and copy.groups[0] is not opt.groups[0]
    assert copy.params["g"][0] is not p["W"]
    np.testing.assert_array_equal(copy.params["g"][0], p["W"])
