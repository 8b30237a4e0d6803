"""Every family, against its NumPy reference (tests/reference.py), bit for bit.

One table of cases (family, options) runs through the optimizer objects (every
dtype, every layout, many arrays in one tree) and the functional steps, and
through :func:`numadam.minimize`.
"""

from pathlib import Path

import numpy as np
import pytest

import numadam
from arrays import DTYPES, LAYOUTS, in_layout, random_array, tiered
from reference import REFERENCES, step_tree

#: (method, options): every registered family with its defaults, then in each convention, with decay, maximize
#: and its own options.
CASES = [(name, {}) for name in numadam.families()] + [
    ("adam", {"weight_decay": 0.1}),
    ("adam", {"amsgrad": True}),
    ("adam", {"maximize": True}),
    ("adam", {"weight_decay": 0.05, "decoupled_weight_decay": True, "amsgrad": True, "maximize": True}),
    ("adam", {"convention": "keras", "amsgrad": True}),
    ("adam", {"convention": "keras", "weight_decay": 0.05, "decoupled_weight_decay": True}),
    ("adam", {"convention": "sklearn", "weight_decay": 0.05}),
    ("adam", {"convention": "deepspeed", "weight_decay": 0.05, "amsgrad": True, "maximize": True}),
    ("adamw", {"convention": "deepspeed"}),
    ("adam", {"convention": "optax", "eps_root": 1e-8, "amsgrad": True, "weight_decay": 0.1,
              "decoupled_weight_decay": True}),
    ("adamw", {"amsgrad": True, "maximize": True}),
    ("nadam", {"weight_decay": 0.1, "maximize": True}),
    ("nadam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "momentum_decay": 0.01}),
    ("nadam", {"convention": "keras", "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("nadam", {"convention": "optax", "eps_root": 1e-10, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("radam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("radam", {"convention": "optax", "threshold": 5.5, "weight_decay": 0.1}),
    ("adamax", {"convention": "keras", "weight_decay": 0.1}),
    ("adamax", {"convention": "optax", "maximize": True}),
    ("adabelief", {"weight_decay": 0.1}),
    ("adabelief", {"convention": "pytorch", "eps_root": 0.0, "rectify": True, "weight_decay": 0.1}),
    ("adabelief", {"convention": "pytorch", "eps_root": 0.0, "weight_decay": 0.1, "decoupled_weight_decay": False}),
    ("yogi", {"weight_decay": 0.1, "maximize": True}),
    ("lion", {"weight_decay": 0.0, "maximize": True}),
    ("ademamix", {"alpha_warmup": 4, "beta3_warmup": 4, "weight_decay": 0.1}),
    ("adopt", {"weight_decay": 0.1, "maximize": True}),
    ("adopt", {"convention": "optax", "clip_lambda": None, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("schedule_free_adamw", {"warmup_steps": 3, "weight_decay": 0.1, "r": 0.5}),
    ("lamb", {"weight_decay": 0.1, "eps_root": 1e-10}),
    ("lamb", {"convention": "apex"}),
    ("adafactor", {"weight_decay": 0.1, "maximize": True}),
    ("adafactor", {"eps": (1e-30, 1e-3), "d": 1.5, "beta2_decay": -0.5}),
    ("adagrad", {"lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.2, "maximize": True}),
    ("rmsprop", {"momentum": 0.9, "weight_decay": 0.1}),
    ("rmsprop", {"centered": True, "alpha": 0.9, "maximize": True}),
    ("rmsprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.05}),
    ("sgd", {"momentum": 0.9, "weight_decay": 0.1}),
    ("sgd", {"momentum": 0.8, "dampening": 0.3, "maximize": True}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
]

#: The first of :data:`CASES`' Adam cases taken every third one: the quick tier's layouts case.
FIRST_ADAM = next(case for case in CASES[::3] if case[0] == "adam")
STEPS = 8  # past RAdam's and AdaBelief's switch to the rectified step (step 6)
LR = 1e-2


def case_id(case):
    method, options = case
    return method + "".join(f"-{k}={v}" for k, v in options.items())


def hyperparameters(method, options):
    cls = numadam.families()[method]
    return {**cls._class_defaults, **cls.pinned, "lr": LR, **options}


def initial_state(method, param, h):
    """Each family's state before the first step, as its paper (and library) starts it."""
    return REFERENCES[method].start(param, h)


def initial_carry(method):
    return REFERENCES[method].carry


class Reference:
    """The reference applied leaf by leaf, keeping its own copies."""

    def __init__(self, method, options, params):
        self.method, self.h = method, hyperparameters(method, options)
        self.params = [np.array(p, copy=True) for p in params]
        self.state = [initial_state(method, p, self.h) for p in self.params]
        self.carry = initial_carry(method)
        self.t = 0

    def step(self, grads):
        self.t += 1
        self.params, self.state, self.carry = step_tree(self.method, self.params, grads, self.state, self.t,
                                                        self.carry, self.h)


def takes_complex(method):
    """Whether family ``method`` takes complex parameters (those with factored state refuse them)."""
    return not numadam.families()[method].algorithm.factored


def assert_bitwise(actual, expected, method=None):
    """Equal to the bit; for LAMB, Adafactor and Prodigy, to a few ulps: their per-array norms
    (Adafactor's row and column sums, Prodigy's sums over the whole tree) are float64 sums whose
    order differs between numadam's passes and NumPy."""
    for a, e in zip(actual, expected):
        if method in ("lamb", "adafactor", "prodigy"):
            tolerance = 8 * np.finfo(np.asarray(e).dtype).eps
            np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)
        else:
            np.testing.assert_array_equal(a, e, strict=True)


@pytest.mark.parametrize("dtype", tiered(DTYPES, lambda dtype: dtype in (np.float32, np.complex64)))
@pytest.mark.parametrize("case", tiered(CASES, lambda case: not case[1]), ids=case_id)
def test_objects_match_the_reference(case, dtype):
    method, options = case
    rng = np.random.default_rng(5)
    params = [random_array(rng, (4, 3), dtype), random_array(rng, (5,), dtype)]
    if np.dtype(dtype).kind == "c" and not takes_complex(method):
        with pytest.raises(TypeError, match="takes real parameters"):
            numadam.families()[method](params, lr=LR, **options)
        return
    reference = Reference(method, options, params)
    opt = numadam.families()[method](params, lr=LR, **options)
    for _ in range(STEPS):
        grads = [random_array(rng, p.shape, dtype) for p in params]
        opt.step(grads)
        reference.step(grads)
    assert_bitwise(params, reference.params, method)
    state = opt.state_dict()
    for name in reference.state[0]:
        assert_bitwise(state[name], [s[name] for s in reference.state], method)
    assert opt.step_count == STEPS


@pytest.mark.parametrize("layout", tiered(LAYOUTS, lambda layout: layout == "F"))
@pytest.mark.parametrize("case", tiered(CASES[::3], lambda case: case == FIRST_ADAM), ids=case_id)
def test_layouts_and_many_arrays_in_one_tree(case, layout):
    """Several layouts and both real dtypes in one tree: one pass per dtype, still bit for bit."""
    method, options = case
    rng = np.random.default_rng(6)
    odd = np.complex64 if takes_complex(method) else np.float32
    params = [in_layout(random_array(rng, shape, dtype), layout)
              for shape, dtype in [((3, 4), np.float32), ((2, 3, 2), np.float64), ((7,), odd),
                                   ((), np.float32), ((0, 2), np.float64), ((6, 5), np.float32)]]
    reference = Reference(method, options, params)
    opt = numadam.families()[method]({"a": params[:3], "b": tuple(params[3:])}, lr=LR, **options)
    for _ in range(4):
        grads = [in_layout(random_array(rng, p.shape, p.dtype), layout) for p in params]
        opt.step({"a": grads[:3], "b": tuple(grads[3:])})
        reference.step(grads)
    assert_bitwise(params, reference.params, method)


def test_families_lists_every_module_s_algorithm_with_its_class_and_functional_step():
    """Each module of numadam/families declares one algorithm; the registry lists them all (and the
    variants, such as AdamW), sorted, each class exported with its functional step."""
    import importlib
    import pkgutil

    from numadam.core.algorithm import Algorithm
    from numadam.registry import functional_step

    declared = []
    for found in pkgutil.iter_modules(importlib.import_module("numadam.families").__path__):
        if not found.name.startswith("_"):
            module = importlib.import_module(f"numadam.families.{found.name}")
            (algorithm,) = [value for value in vars(module).values() if isinstance(value, Algorithm)]
            declared.append(algorithm)
    names = list(numadam.families())
    assert names == sorted(names)
    assert {a.name for a in declared} | {v.title.lower() for a in declared for v in a.variants} == set(names)
    for name, cls in numadam.families().items():
        assert getattr(numadam, cls.__name__) is cls and cls.__name__ in numadam.__all__
        assert functional_step(name).__name__ == f"{cls.algorithm.name}_step"
        assert getattr(numadam, f"{cls.algorithm.name}_step") is functional_step(name)


def test_every_family_s_scalars_are_its_named_tuple_with_every_field():
    """Each family's ``scalars`` of its default hyperparameters is its ``Scalars`` named tuple, every
    field a float, in Python and in njit (``numadam.jit`` compiles it). Each is made as a tuple is
    (:func:`numadam.core.element_math.scalar_fields`), which checks no length: a value too few
    would pass unnoticed there."""
    from numadam.core.element_math import scalar_fields
    from numba import njit

    for name, cls in numadam.families().items():
        algorithm = cls.algorithm
        h = algorithm.Hyper(**{**cls._class_defaults, **cls.pinned})
        scalars, _ = algorithm.step_scalars(3, h, algorithm.initial_carry())
        assert type(scalars) is algorithm.Scalars, name
        assert len(scalars) == len(algorithm.Scalars._fields), name
        assert all(isinstance(value, float) for value in scalars), (name, scalars)
    from numadam.families.adam import AdamScalars

    values = tuple(float(k) for k in range(len(AdamScalars._fields)))
    made = njit(lambda values: scalar_fields(AdamScalars, values))(values)
    assert type(made) is AdamScalars and made == values


def test_each_algorithm_pickles_as_a_reference_to_its_module_and_another_by_value():
    """A Dask task carries its algorithm to a worker every step: numadam's own go as a reference
    (the same object comes back, in a few bytes), and name their module in Dask's tokens; an algorithm
    declared elsewhere pickles by value, without being declared again."""
    import dataclasses
    import pickle

    from numadam.core.algorithm import ALGORITHMS

    tokenize = pytest.importorskip("dask.base").tokenize
    algorithms = [cls.algorithm for cls in numadam.families().values()]
    for algorithm in algorithms:
        pickled = pickle.dumps(algorithm)
        assert pickle.loads(pickled) is algorithm and len(pickled) < 200, (algorithm.name, len(pickled))
        assert tokenize(algorithm) == tokenize(pickle.loads(pickled))
    assert len({tokenize(algorithm) for algorithm in algorithms}) == len(set(map(id, algorithms)))

    adam = numadam.Adam.algorithm
    declared = dict(ALGORITHMS)
    try:
        mine = dataclasses.replace(adam, name="adam_of_a_user")
    finally:
        ALGORITHMS.clear()
        ALGORITHMS.update(declared)
    cloudpickle = pytest.importorskip("cloudpickle")
    copied = cloudpickle.loads(cloudpickle.dumps(mine))
    assert copied is not mine and copied.name == "adam_of_a_user" and copied.rule is adam.rule
    assert copied.Hyper._fields == adam.Hyper._fields and ALGORITHMS == declared
    assert tokenize(mine) != tokenize(adam)


def test_every_registered_algorithm_has_its_numpy_reference_and_its_docs_page():
    docs = Path(__file__).resolve().parent.parent / "docs" / "families"
    for name, cls in numadam.families().items():
        assert name in REFERENCES, f"{name} has no NumPy reference in tests/reference.py"
        page = docs / f"{cls.algorithm.name}.md"
        assert page.exists(), f"{name} has no docs page {page}"
        assert f"numadam.{cls.__name__}" in page.read_text() or cls.__name__ in page.read_text()


def test_schedule_free_eval_params_is_the_average_and_leaves_training_alone():
    rng = np.random.default_rng(8)
    y = random_array(rng, (6,), np.float64)
    opt = numadam.ScheduleFreeAdamW(y, lr=0.1, betas=(0.8, 0.999))
    for _ in range(5):
        opt.step(random_array(rng, (6,), np.float64))
    before = (y.copy(), opt.state_dict())
    x = opt.eval_params()
    z = opt.state_dict()["z"]
    np.testing.assert_allclose(x, y + (1 - 1 / 0.8) * (z - y), rtol=1e-15)
    np.testing.assert_array_equal(y, before[0])
    np.testing.assert_array_equal(opt.state_dict()["z"], before[1]["z"])
    assert x is not y


@pytest.mark.parametrize("method", ["nadam", "schedule_free_adamw"])
def test_the_carry_round_trips_through_state_dict(method):
    """Families with running host values continue exactly after save and load."""
    rng = np.random.default_rng(9)
    params = random_array(rng, (5,), np.float32)
    grads = [random_array(rng, (5,), np.float32) for _ in range(6)]
    cls = numadam.families()[method]
    straight = cls(params.copy(), lr=LR)
    for g in grads:
        straight.step(g)
    first = cls(twin := params.copy(), lr=LR)
    for g in grads[:3]:
        first.step(g)
    resumed = cls(twin, lr=LR)
    resumed.load_state_dict(first.state_dict())
    for g in grads[3:]:
        resumed.step(g)
    np.testing.assert_array_equal(twin, straight.params)
    assert resumed.state_dict()["carry"] == straight.state_dict()["carry"]
