"""Learning-rate schedules: closed forms, plateau rules, and their state inside the optimizers."""

import math
import re

import numpy as np
import pytest

import numadam
from numadam import schedules


# -- closed forms, each checked against a formula written differently ------------------------


def test_constant():
    schedule = schedules.Constant(0.03)
    assert [schedule(k) for k in (0, 1, 10**9)] == [0.03] * 3


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (7, 1.0)])
def test_step_decay_multiplies_by_gamma_at_every_multiple_of_step_size(step_size, gamma):
    schedule = schedules.StepDecay(0.2, step_size=step_size, gamma=gamma)
    expected = 0.2
    for k in range(40):
        if k > 0 and k % step_size == 0:
            expected *= gamma
        assert schedule(k) == pytest.approx(expected, rel=1e-13)


def test_exponential_decay_is_repeated_multiplication():
    schedule = schedules.ExponentialDecay(0.5, gamma=0.93)
    expected = 0.5
    for k in range(200):
        assert schedule(k) == pytest.approx(expected, rel=1e-12)
        expected *= 0.93


@pytest.mark.parametrize("min_lr", [0.0, 0.01])
def test_cosine_decay_is_a_squared_cosine_then_the_floor(min_lr):
    total = 25
    schedule = schedules.CosineDecay(0.1, total_steps=total, min_lr=min_lr)
    steps = np.arange(40)
    fraction = np.minimum(steps, total) / total
    expected = min_lr + (0.1 - min_lr) * np.cos(np.pi * fraction / 2) ** 2  # (1 + cos 2a)/2 = cos^2 a
    np.testing.assert_allclose([schedule(int(k)) for k in steps], expected, rtol=1e-12, atol=1e-17)
    assert schedule(0) == 0.1 and schedule(total) == pytest.approx(min_lr, abs=1e-17)


@pytest.mark.parametrize("inner", [schedules.Constant(0.4), schedules.StepDecay(0.4, 5, 0.5),
                                   schedules.ExponentialDecay(0.4, 0.9), schedules.CosineDecay(0.4, 30, 0.04)],
                         ids=repr)
@pytest.mark.parametrize("warmup_steps", [0, 1, 8])
def test_linear_warmup_ramps_to_the_first_rate_then_runs_the_schedule_shifted(inner, warmup_steps):
    schedule = schedules.LinearWarmup(inner, warmup_steps)
    first = inner(0)
    for k in range(50):
        if k < warmup_steps:
            expected = np.interp(k, [-1, warmup_steps], [0.0, first])
        else:
            expected = inner(k - warmup_steps)
        assert schedule(k) == pytest.approx(expected, rel=1e-13)
    ramp = [schedule(k) for k in range(warmup_steps + 1)]
    assert np.all(np.diff(ramp) > 0) and np.allclose(np.diff(ramp), first / (warmup_steps + 1))


def test_linear_warmup_takes_a_number_as_a_constant_rate():
    schedule = schedules.LinearWarmup(0.3, warmup_steps=2)
    assert [schedule(k) for k in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])


# -- reduce on plateau ---------------------------------------------------------------------------


def test_plateau_cuts_after_more_than_patience_misses_then_cools_down():
    schedule = schedules.ReduceOnPlateau(1.0, factor=0.5, patience=2, cooldown=1, threshold=0.0)
    rates = []
    for loss in [10, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8]:
        schedule.observe(loss)
        rates.append(schedule(len(rates)))
    # misses at 3rd, 4th, 5th observation -> cut at the 5th (3 > patience 2); the 6th is a cooldown
    # observation (never a miss); misses 7th, 8th; 8 improves on 9; then misses 10th, 11th, 12th -> cut.
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_plateau_threshold_modes_and_the_floor():
    relative = schedules.ReduceOnPlateau(1.0, factor=0.1, patience=0, threshold=0.1, min_lr=0.05)
    absolute = schedules.ReduceOnPlateau(1.0, factor=0.1, patience=0, threshold=0.1, threshold_mode="abs")
    for schedule in (relative, absolute):
        schedule.observe(-100.0)
    relative.observe(-105.0)   # needs < -110 to improve on -100 by 10 %: a miss -> cut to 0.1
    absolute.observe(-100.05)  # needs < -100.1: a miss -> cut to 0.1
    assert relative(2) == pytest.approx(0.1) and absolute(2) == pytest.approx(0.1)
    relative.observe(-200.0)   # improves: no cut
    absolute.observe(-100.2)   # improves: no cut
    assert relative(3) == pytest.approx(0.1) and absolute(3) == pytest.approx(0.1)
    relative.observe(-200.0)
    assert relative(4) == 0.05  # 0.01 would fall below min_lr


@pytest.mark.parametrize("bad_loss", [math.nan, math.inf, -math.inf])
def test_plateau_counts_non_finite_losses_as_misses(bad_loss):
    schedule = schedules.ReduceOnPlateau(1.0, factor=0.5, patience=1)
    schedule.observe(1.0)
    schedule.observe(bad_loss)
    schedule.observe(bad_loss)
    assert schedule.best == 1.0 and schedule(3) == 0.5


def test_plateau_needs_a_real_decrease_of_a_negative_loss():
    # f < f* - threshold * |f*|: a negative loss that creeps up is a miss (PyTorch's f < f* (1 - threshold)
    # would count -9.5 after -10 as an improvement).
    schedule = schedules.ReduceOnPlateau(1.0, factor=0.5, patience=1, threshold=0.1)
    for loss in [-10.0, -9.5, -9.2]:
        schedule.observe(loss)
    assert schedule.best == -10.0 and schedule(3) == 0.5
    schedule.observe(-11.5)
    assert schedule.best == -11.5 and schedule.bad_steps == 0


def test_plateau_matches_torch_on_a_noisy_loss_curve():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    losses = np.exp(-np.linspace(0, 3, 300)) + 0.02 * rng.standard_normal(300)
    options = {"factor": 0.3, "patience": 6, "threshold": 1e-3, "cooldown": 3, "min_lr": 1e-3}
    ours = schedules.ReduceOnPlateau(0.5, **options)
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.5)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", **options, eps=0.0)
    cuts = 0
    for k, loss in enumerate(losses):
        ours.observe(float(loss))
        theirs.step(float(loss))
        assert ours(k) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        cuts += ours(k) < 0.5
    assert cuts > 0


# -- bad arguments -----------------------------------------------------------------------------


BAD_SCHEDULES = [
    (lambda: schedules.Constant(-0.1), ValueError, "lr must be finite and >= 0; got -0.1"),
    (lambda: schedules.StepDecay(0.1, 0), ValueError, "step_size must be >= 1; got 0"),
    (lambda: schedules.StepDecay(0.1, 2.0), TypeError, "step_size must be an integer; got 2.0"),
    (lambda: schedules.StepDecay(0.1, 2, gamma=0.0), ValueError, "gamma must be in (0, 1]; got 0.0"),
    (lambda: schedules.ExponentialDecay(0.1, 1.5), ValueError, "gamma must be in (0, 1]; got 1.5"),
    (lambda: schedules.CosineDecay(0.1, 10, min_lr=0.2), ValueError, "min_lr must be <= lr (0.1); got 0.2"),
    (lambda: schedules.CosineDecay(0.1, True), TypeError, "total_steps must be an integer; got True"),
    (lambda: schedules.LinearWarmup(lambda k: 0.1, 5), TypeError, "schedule must be a numadam.schedules.Schedule"),
    (lambda: schedules.LinearWarmup(0.1, -1), ValueError, "warmup_steps must be >= 0; got -1"),
    (lambda: schedules.ReduceOnPlateau(0.1, factor=1.0), ValueError, "factor must be in (0, 1); got 1.0"),
    (lambda: schedules.ReduceOnPlateau(0.1, threshold_mode="max"), ValueError,
     "threshold_mode must be 'rel' or 'abs'; got 'max'"),
    (lambda: schedules.ReduceOnPlateau(0.1, patience=-1), ValueError, "patience must be >= 0; got -1"),
]


@pytest.mark.parametrize("make, error, message", BAD_SCHEDULES)
def test_bad_schedule_arguments_are_refused(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


@pytest.mark.parametrize("step, error", [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("3", TypeError)])
@pytest.mark.parametrize("schedule", [schedules.Constant(0.1), schedules.CosineDecay(0.1, 5),
                                      schedules.LinearWarmup(0.1, 2), schedules.ReduceOnPlateau(0.1)], ids=repr)
def test_steps_must_be_counts(schedule, step, error):
    with pytest.raises(error, match="step must be"):
        schedule(step)


def test_plateau_refuses_a_loss_that_is_not_a_real_number():
    schedule = schedules.ReduceOnPlateau(0.1)
    for loss in ("1.0", 1j, np.ones(2), None):
        with pytest.raises(TypeError, match="loss must be a real number"):
            schedule.observe(loss)
    assert schedule.best == math.inf and schedule.bad_steps == 0
    schedule.observe(np.float32(2.0))
    schedule.observe(np.array(1.0))
    assert schedule.best == 1.0


# -- state of the schedules themselves ---------------------------------------------------------------


def configured_pairs():
    """(schedule, a different one of the same kind) for every kind."""
    return [
        (schedules.Constant(0.1), schedules.Constant(0.5)),
        (schedules.StepDecay(0.1, 3, 0.5), schedules.StepDecay(0.9, 1)),
        (schedules.ExponentialDecay(0.1, 0.9), schedules.ExponentialDecay(0.2, 0.5)),
        (schedules.CosineDecay(0.1, 50, 0.01), schedules.CosineDecay(0.3, 5)),
        (schedules.LinearWarmup(schedules.CosineDecay(0.1, 20), 4),
         schedules.LinearWarmup(schedules.CosineDecay(1.0, 3, 0.5), 1)),
        (schedules.ReduceOnPlateau(0.1, factor=0.5, patience=1, cooldown=2),
         schedules.ReduceOnPlateau(0.7)),
    ]


@pytest.mark.parametrize("source, target", configured_pairs(), ids=lambda s: type(s).__name__)
def test_load_state_dict_makes_a_schedule_behave_exactly_like_another(source, target):
    for loss in [5.0, 4.0, 4.0, 4.0, 4.0]:
        source.observe(loss)
    target.load_state_dict(source.state_dict())
    assert target.state_dict() == source.state_dict()
    assert repr(target) == repr(source)
    for k in range(60):
        loss = 3.0 + math.sin(k)
        source.observe(loss)
        target.observe(loss)
        assert target(k) == source(k)


BAD_STATES = [
    (lambda s: {**s, "kind": "StepDecay"}, ValueError, "state is for a 'StepDecay' schedule, not 'CosineDecay'"),
    (lambda s: {"kind": s["kind"]}, ValueError, "a CosineDecay state must have keys ['kind', 'config']"),
    (lambda s: {**s, "config": {**s["config"], "min_lr": 5.0}}, ValueError, "min_lr must be <= lr"),
    (lambda s: {**s, "config": {"lr": 0.1}}, ValueError, "state['config'] must be a dict with keys"),
    (lambda s: [s], TypeError, "a schedule state must be a dict"),
]


@pytest.mark.parametrize("corrupt, error, message", BAD_STATES)
def test_bad_schedule_states_are_refused_and_nothing_changes(corrupt, error, message):
    schedule = schedules.CosineDecay(0.1, 10, 0.01)
    state = schedule.state_dict()
    with pytest.raises(error, match=re.escape(message)):
        schedule.load_state_dict(corrupt(state))
    assert schedule.state_dict() == state


def test_a_bad_plateau_or_warmup_state_changes_nothing():
    plateau = schedules.ReduceOnPlateau(0.1, patience=0)
    plateau.observe(1.0)
    plateau.observe(2.0)
    state = plateau.state_dict()
    broken = {**state, "state": {**state["state"], "best": math.nan}}
    with pytest.raises(ValueError, match="best'\\] must be finite or inf"):
        plateau.load_state_dict(broken)
    broken = {**state, "state": {**state["state"], "bad_steps": -1}}
    with pytest.raises(ValueError, match="bad_steps'\\] must be >= 0"):
        plateau.load_state_dict(broken)
    assert plateau.state_dict() == state

    warmup = schedules.LinearWarmup(schedules.ExponentialDecay(0.1, 0.9), 3)
    state = warmup.state_dict()
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        warmup.load_state_dict({**state, "config": {"warmup_steps": -2}})
    with pytest.raises(ValueError, match="not 'ExponentialDecay'"):
        warmup.load_state_dict({**state, "config": {"warmup_steps": 7},
                                "schedule": schedules.Constant(1.0).state_dict()})
    assert warmup.state_dict() == state


# -- schedules inside Adam/AdamW ----------------------------------------------------------------------


def weights_like(value):
    return np.arange(1, value.size + 1).reshape(value.shape)


def gradient_of_bowl(params):
    """Gradient of the bowl below, as arrays of the parameters' dtypes."""
    return {key: (2 * (value - 1) * weights_like(value)).astype(value.dtype) for key, value in params.items()}


def bowl_loss(params):
    """sum(|p - 1|^2 * [1, 2, 3, ...]) over every array."""
    return float(sum(np.sum(np.abs(value - 1) ** 2 * weights_like(value)) for value in params.values()))


@pytest.mark.parametrize("optimizer", [numadam.Adam, numadam.AdamW])
def test_the_optimizer_takes_each_step_at_the_scheduled_rate(optimizer):
    schedule = schedules.LinearWarmup(schedules.StepDecay(0.05, 4, 0.5), 3)
    scheduled = {"w": np.zeros(5), "b": np.zeros(2, np.float32)}
    manual = {key: value.copy() for key, value in scheduled.items()}
    with_schedule = optimizer(scheduled, lr=123.0, schedule=schedule)
    by_hand = optimizer(manual)
    for k in range(15):
        by_hand.lr = schedule(k)
        with_schedule.step(gradient_of_bowl(scheduled))
        by_hand.step(gradient_of_bowl(manual))
        assert with_schedule.lr == schedule(k)
        for key in scheduled:
            np.testing.assert_array_equal(scheduled[key], manual[key])


@pytest.mark.parametrize("name", sorted(numadam.families()))
def test_no_family_s_flags_read_lr(name):
    """A schedule moves only ``lr``, so its steps keep the kernels' flags and launches
    (``Settings._assign_lr``): that holds while no family's flags read ``lr``."""
    cls = numadam.families()[name]
    optimizer = cls(np.zeros(6, np.float32))
    h = cls.algorithm.Hyper(**{**optimizer.hyperparameters(), **optimizer.pinned})
    flags = tuple(cls.algorithm.flags(h))
    for lr in (0.0, 1e-8, 1e-3, 1.0, 1e6):
        assert tuple(cls.algorithm.flags(h._replace(lr=lr))) == flags


@pytest.mark.parametrize("scheduled_group", [False, True])
def test_a_scheduled_step_s_hyperparameters_are_those_made_anew(scheduled_group):
    """The named tuples a schedule's step moves (only ``lr``, and not in a group that sets its own)
    are those made from the hyperparameters, at every step, with groups of each kind."""
    tree = {"plain": np.zeros(3), "own-lr": numadam.Group([np.zeros(2)], lr=0.3),
            "decayed": numadam.Group([np.zeros(2)], weight_decay=0.1)}
    grads = {"plain": np.ones(3), "own-lr": [np.ones(2)], "decayed": [np.ones(2)]}
    if scheduled_group:
        tree["scheduled"] = numadam.Group([np.zeros(4)], schedule=schedules.ExponentialDecay(0.2, 0.9))
        grads["scheduled"] = [np.ones(4)]
    schedule = schedules.CosineDecay(0.1, 20, 1e-3)
    opt = numadam.Adam(tree, schedule=schedule)
    settings = opt._settings
    for k in range(8):
        opt.step(grads)
        moved, flags = settings.per_group()
        settings._cache = None
        made, made_flags = settings.per_group()
        assert moved == made and flags == made_flags
        expected = {"own-lr": 0.3, "decayed": schedule(k), "scheduled": schedules.ExponentialDecay(0.2, 0.9)(k)}
        assert [h.lr for h in made] == [schedule(k)] + [expected[name] for name in tree if name != "plain"]


def test_a_plain_callable_is_a_schedule_without_saved_state():
    w = np.zeros(3)
    opt = numadam.Adam(w, schedule=lambda steps_taken: 0.1 / (1 + steps_taken))
    for _ in range(4):
        opt.step(2 * (w - 1))
    assert opt.lr == 0.1 / 4
    assert "schedule" not in opt.state_dict()


def run(opt, params, steps, observe):
    for _ in range(steps):
        if observe:
            opt.schedule.observe(bowl_loss(params))
        opt.step(gradient_of_bowl(params))


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("source_schedule, fresh_schedule", [
    (schedules.LinearWarmup(schedules.CosineDecay(0.2, 30, 0.001), 5),
     schedules.LinearWarmup(schedules.CosineDecay(9.0, 2), 0)),
    (schedules.ReduceOnPlateau(0.3, factor=0.5, patience=2, threshold=0.05),
     schedules.ReduceOnPlateau(0.01)),
], ids=["warmup-cosine", "plateau"])
def test_schedule_state_round_trips_with_the_optimizer_and_continues_exactly(
        tmp_path, through_file, source_schedule, fresh_schedule):
    params = {"w": np.zeros(6), "z": np.zeros(3, np.complex64)}
    opt = numadam.Adam(params, schedule=source_schedule, amsgrad=True)
    run(opt, params, 12, observe=True)
    if through_file:
        opt.save(tmp_path / "state.npz")
    state = opt.state_dict()

    restored_params = {key: value.copy() for key, value in params.items()}
    restored = numadam.Adam(restored_params, schedule=fresh_schedule, amsgrad=True)
    if through_file:
        restored.load(tmp_path / "state.npz")
    else:
        restored.load_state_dict(state)
    assert restored.schedule.state_dict() == source_schedule.state_dict()

    run(opt, params, 25, observe=True)
    run(restored, restored_params, 25, observe=True)
    assert restored.lr == opt.lr and restored.step_count == opt.step_count == 37
    for key in params:
        np.testing.assert_array_equal(restored_params[key], params[key])
    if isinstance(source_schedule, schedules.ReduceOnPlateau):
        assert source_schedule(0) < 0.3  # the plateau rule did cut the rate on the way


def test_loading_a_scheduled_state_needs_a_schedule_and_changes_nothing_otherwise():
    params = {"w": np.zeros(4)}
    opt = numadam.Adam(params, schedule=schedules.ExponentialDecay(0.1, 0.9))
    run(opt, params, 3, observe=False)
    state = opt.state_dict()

    other_params = {"w": np.full(4, 0.5)}
    other = numadam.Adam(other_params, lr=0.02)
    other.step({"w": np.ones(4)})
    before = other.state_dict()
    with pytest.raises(ValueError, match="state holds a learning-rate schedule but this optimizer has none"):
        other.load_state_dict(state)
    wrong_kind = numadam.Adam(other_params, lr=0.02, schedule=schedules.Constant(0.3))
    with pytest.raises(ValueError, match="not 'Constant'"):
        wrong_kind.load_state_dict(state)
    assert wrong_kind.schedule.state_dict() == schedules.Constant(0.3).state_dict()
    after = other.state_dict()
    assert after["step"] == before["step"] == 1 and after["hyperparameters"] == before["hyperparameters"]
    np.testing.assert_array_equal(after["exp_avg"]["w"], before["exp_avg"]["w"])


def test_a_failed_array_load_rolls_the_schedule_back():
    params = {"w": np.zeros(4)}
    plateau = schedules.ReduceOnPlateau(0.1, patience=0)
    opt = numadam.Adam(params, schedule=plateau)
    plateau.observe(1.0)
    before = plateau.state_dict()
    source = numadam.Adam({"w": np.zeros(4)}, schedule=schedules.ReduceOnPlateau(0.5))
    state = source.state_dict()
    state["exp_avg"] = {"w": FailingCopy(np.zeros(4))}
    with pytest.raises(RuntimeError, match="copy failed"):
        opt.load_state_dict(state)
    assert plateau.state_dict() == before


class FailingCopy(np.ndarray):
    """A state array that passes every check but cannot be copied into the optimizer."""

    def __new__(cls, values):
        return np.asarray(values).view(cls)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.copyto:
            raise RuntimeError("copy failed")
        return super().__array_function__(func, types, args, kwargs)


def test_a_schedule_that_returns_a_bad_rate_stops_the_step_before_anything_changes():
    w = np.zeros(3)
    opt = numadam.Adam(w, lr=0.1, schedule=lambda steps_taken: 0.1 if steps_taken < 2 else -1.0)
    opt.step(np.ones(3))
    opt.step(np.ones(3))
    before = opt.state_dict()
    w_before = w.copy()
    with pytest.raises(ValueError, match="lr must be finite and >= 0; got -1.0"):
        opt.step(np.ones(3))
    np.testing.assert_array_equal(w, w_before)
    assert opt.step_count == 2 and opt.lr == before["hyperparameters"]["lr"]


def test_the_schedule_must_be_callable():
    with pytest.raises(TypeError, match="schedule must be callable"):
        numadam.Adam(np.zeros(2), schedule=0.1)
    opt = numadam.Adam(np.zeros(2), schedule=schedules.Constant(0.1))
    with pytest.raises(TypeError, match="schedule must be callable"):
        opt.schedule = "cosine"
    assert isinstance(opt.schedule, schedules.Constant)
    opt.schedule = None
    assert opt.schedule is None and "schedule" not in opt.state_dict()
