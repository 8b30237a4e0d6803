"""``numadam bench --suite``: time the studies of :mod:`numadam.bench.catalog` and tabulate them.

Every study of a suite, its same-traffic kernel, and another library's step
of the same study where one is installed (torch's ``foreach`` step for the
families torch has, its ``SparseAdam`` for row-sparse gradients,
bitsandbytes' ``Adam8bit`` for 8-bit state) are timed together in one interleaved run
(:func:`~numadam.bench.timing.interleaved_medians`), so the ratios hold on a
noisy machine. The table gives the time per step, the effective bandwidth
(the study's bytes per element times the elements, over the time), the ratio to
the same-traffic kernel, the ratio to the suite's baseline, and the target the
issues set.
"""

import importlib
from typing import NamedTuple

import numpy as np

from . import catalog
from .roofline import SERIAL_BELOW, traffic_kernel
from .timing import interleaved_medians

#: numadam families that torch.optim has, and torch's class names.
TORCH_FAMILIES = {"adam": "Adam", "adamw": "AdamW", "nadam": "NAdam", "radam": "RAdam", "adamax": "Adamax",
                  "sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adafactor": "Adafactor",
                  "adadelta": "Adadelta", "rprop": "Rprop", "asgd": "ASGD"}


#: The library each suite is compared with, where it is installed (none is a dependency).
OTHER_LIBRARY = {"families": "torch", "many": "torch", "rows": "torch", "precision": "bitsandbytes",
                 "adafactor": "torch"}


class Timed(NamedTuple):
    study: catalog.Study
    seconds: float
    traffic_seconds: float
    other_seconds: float | None = None  # OTHER_LIBRARY[suite]'s step of the same study


class OptimizerStep:
    """A contender that steps ``optimizer`` with the same ``grads`` each time."""

    def __init__(self, optimizer, grads):
        self.optimizer, self.grads = optimizer, grads

    def step(self):
        self.optimizer.step(self.grads)

    def warm(self):
        """Compile before timing."""
        self.step()


class MinibatchSteps:
    """A contender that steps ``optimizer`` with the next of ``batches`` each time, in turn: other
    rows in new arrays at every step, as a minibatch gives them."""

    def __init__(self, optimizer, batches):
        self.optimizer, self.batches, self.next = optimizer, batches, 0

    def step(self):
        self.optimizer.step(self.batches[self.next])
        self.next = (self.next + 1) % len(self.batches)

    def warm(self):
        """Compile, and step through every batch once before timing: the state's pages (``np.zeros``
        maps them at their first touch) fill as rows are first listed, and a 1% minibatch's first
        steps over a 2e7 table took 28, 10, 1.9, 1.1, 0.8 ms against 0.33 from its tenth on (a Zen 4),
        which made the suite's first study of rows an outlier (0.09x the dense step against 0.04x)."""
        for _ in self.batches:
            self.step()


#: How many draws of rows a study of row-sparse gradients steps through in turn: enough that the
#: rows one round lists (16% of a table at 1%) do not fit a 32 MiB L3 at the suites' sizes.
MINIBATCHES = 16


class SameTraffic:
    """The study's same-traffic kernel over ``size`` elements (serial below :data:`SERIAL_BELOW`)."""

    def __init__(self, study, size):
        # ones, not zeros: np.zeros leaves untouched pages mapped to the kernel's one zero page, and
        # reading those costs no memory traffic at all.
        size = max(1, int(size * study.moved))
        self.arrays = [np.ones(size, dtype) for dtype in study.written + study.read]
        self.kernel = traffic_kernel(study.written, study.read, size >= SERIAL_BELOW)
        self.kernel(*self.arrays)

    def step(self):
        self.kernel(*self.arrays)


class _TorchForeach:
    """torch.optim's multi-tensor (``foreach``) step of the same family, options and arrays."""

    def __init__(self, torch, study, size):
        name = TORCH_FAMILIES[study.method]
        per_array = size // study.n_arrays
        shape = (per_array // study.width, study.width) if study.width > 1 else (per_array,)
        self.params = [torch.zeros(shape) for _ in range(study.n_arrays)]
        for p in self.params:
            p.grad = torch.ones(shape)
        options = {k: v for k, v in study.options.items() if k in ("lr", "weight_decay")}
        self.optimizer = getattr(torch.optim, name)(self.params, foreach=True, **options)

    def step(self):
        self.optimizer.step()


class _TorchSparseAdam:
    """``torch.optim.SparseAdam`` over the study's table, its ``.grad`` a coalesced sparse COO tensor
    listing as many rows as the study's :class:`numadam.Rows` (drawn the same way, :data:`MINIBATCHES`
    draws in turn; coalescing sums the repeats)."""

    def __init__(self, torch, study, size):
        rows = size // study.width
        count = max(1, int(rows * study.listed))
        rng = np.random.default_rng(1)
        self.param = torch.nn.Parameter(torch.zeros(rows, study.width))
        self.grads = [torch.sparse_coo_tensor(torch.from_numpy(rng.choice(rows, count, replace=study.repeats))[None],
                                              torch.ones(count, study.width), (rows, study.width),
                                              check_invariants=True).coalesce() for _ in range(MINIBATCHES)]
        self.next = 0
        self.optimizer = torch.optim.SparseAdam([self.param], lr=study.options["lr"])

    def step(self):  # (other rows every step, in turn, as numadam's MinibatchSteps)
        self.param.grad = self.grads[self.next]
        self.next = (self.next + 1) % len(self.grads)
        self.optimizer.step()

    def warm(self):
        """Step through every draw once before timing, as :meth:`MinibatchSteps.warm` does: torch's
        state is made at the first step and its pages fill as rows are first listed."""
        for _ in self.grads:
            self.step()


class _Bitsandbytes8bit:
    """bitsandbytes' ``Adam8bit`` (block-wise 8-bit moments) over CPU tensors of the study's arrays."""

    def __init__(self, torch, bitsandbytes, study, size):
        per_array = size // study.n_arrays
        self.params = [torch.nn.Parameter(torch.zeros(per_array)) for _ in range(study.n_arrays)]
        for p in self.params:
            p.grad = torch.ones(per_array)
        # numadam's defaults are bitsandbytes' (betas (0.9, 0.999), eps 1e-8)
        self.optimizer = bitsandbytes.optim.Adam8bit(self.params, lr=study.options["lr"])

    def step(self):
        self.optimizer.step()


def _other_step(name, study):
    """The class of :data:`OTHER_LIBRARY`'s step of ``study`` in suite ``name``, or ``None`` where
    that library has none: torch's ``foreach`` step of the families it has, its SparseAdam for
    row-sparse gradients, bitsandbytes' Adam8bit for int8 state (float32 parameters only)."""
    if name not in OTHER_LIBRARY or study.param_dtype != catalog.F32:
        return None
    if name == "rows":
        return _TorchSparseAdam if study.method == "sparse_adam" and study.listed < 1 else None
    if name == "precision":
        return _Bitsandbytes8bit if study.options.get("state_dtype") == "int8" else None
    return _TorchForeach if study.method in TORCH_FAMILIES else None


def _other_contender(name, study, size):
    """:data:`OTHER_LIBRARY`'s step of the same study, or ``None`` (no such step, or not installed)."""
    step = _other_step(name, study)
    torch = None if step is None else _optional("torch")
    if torch is None:
        return None
    if step is _Bitsandbytes8bit:
        bitsandbytes = _optional("bitsandbytes")
        return None if bitsandbytes is None else step(torch, bitsandbytes, study, size)
    return step(torch, study, size)


def _optional(module_name):
    """The module, or ``None`` where it is not installed."""
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def run_suite(name, size, rounds, min_batch_seconds, progress=print):
    """Time every study of suite ``name`` at ``size`` elements; return :class:`Timed` rows."""
    studies = list(catalog.SUITES[name]().values())
    contenders, slots = [], []
    for study in studies:
        progress(f"{name}: preparing {study.name}")
        if study.listed < 1:
            optimizer, batches = catalog.build(study, size, draws=MINIBATCHES)
            ours = MinibatchSteps(optimizer, batches)
        else:
            optimizer, grads = catalog.build(study, size)
            ours = OptimizerStep(optimizer, grads)
        ours.warm()
        slot = [len(contenders), len(contenders) + 1, None]
        contenders += [ours, SameTraffic(study, size)]
        theirs = _other_contender(name, study, size)
        if theirs is not None:
            if hasattr(theirs, "warm"):
                theirs.warm()
            slot[2] = len(contenders)
            contenders.append(theirs)
        slots.append(slot)
    progress(f"{name}: timing {len(contenders)} contenders, {rounds} rounds")
    medians = interleaved_medians(contenders, rounds, min_batch_seconds)
    return [Timed(study, medians[a], medians[b], None if c is None else medians[c])
            for study, (a, b, c) in zip(studies, slots)]


def held_bytes(name):
    """The bytes per element of ``size`` a run of suite ``name`` holds at once: every study's
    arrays, its same-traffic kernel's and (where :data:`OTHER_LIBRARY` has a step of it) the other
    library's."""
    held = 0
    for study in catalog.SUITES[name]().values():
        held += study.footprint * (1 + study.moved + (_other_step(name, study) is not None))
    return held


def _verdict(ratio, target):
    return "yes" if ratio <= target else "**no**"


def markdown(name, size, rows):
    """The table of one suite's rows."""
    by_name = {row.study.name: row for row in rows}
    other = OTHER_LIBRARY.get(name)
    other_column = any(row.other_seconds is not None for row in rows)
    header = ["study", "ms per step", "GB/s", "× same-traffic", "× baseline"]
    header += [f"{other} ms", f"{other} / numadam"] if other_column else []
    header += ["target", "met"]
    lines = [f"Suite `{name}`, {size:.0e} float32 elements in all.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        study = row.study
        gbps = study.bytes_per_element * size * study.moved / row.seconds / 1e9
        traffic_ratio = row.seconds / row.traffic_seconds
        baseline = by_name.get(study.baseline)
        baseline_ratio = row.seconds / baseline.seconds if baseline else None
        cells = [study.name, f"{row.seconds * 1e3:.2f}", f"{gbps:.1f} ({study.bytes_per_element} B)",
                 f"{traffic_ratio:.2f}", "" if baseline_ratio is None else f"{baseline_ratio:.2f} × {study.baseline}"]
        if other_column:
            cells += ["", ""] if row.other_seconds is None else [
                f"{row.other_seconds * 1e3:.2f}", f"{row.other_seconds / row.seconds:.1f}"]
        if study.target:
            against, limit = study.target
            ratio = traffic_ratio if against == "same-traffic" else baseline_ratio
            cells += [f"≤ {limit:.2f} × {against}", _verdict(ratio, limit)]
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
