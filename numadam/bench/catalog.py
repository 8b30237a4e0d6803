"""The studies of ``numadam bench --suite`` and of the asv suite: one definition, both use it.

A :class:`Study` is one optimizer configuration on float32 parameters: its
family and options, the storage of its parameters, and the bytes a step must
move (the arrays its same-traffic kernel reads and writes, from
:mod:`numadam.bench.roofline`). Each suite compares its studies with a
reference measured in the same run:

- ``families``: every family at ``size`` elements, against its own
  same-traffic kernel (Adam moves 28 bytes per element, Lion 20, AdEMAMix 36);
- ``policies``: Adam with each policy, against plain Adam and against a
  same-traffic kernel moving the policy's extra bytes; LAMB against Adam;
- ``precision``: 16-bit parameters and bfloat16 and 8-bit state, against
  float32 Adam and against the same-traffic kernel of their bytes;
- ``many``: every family over 1000 arrays of ``size / 1000`` elements, against
  the same family over one flat array of as many elements; the gradients come
  as the same tuple every step (a loop reusing its buffers), and for Adam and
  Lion also as the same list, whose arrays the step must look at each time;
- ``groups``: Adam with its parameters in two :class:`numadam.Group` s, against
  no groups;
- ``rows``: Adam and SparseAdam stepping a table of 16-wide rows with
  :class:`numadam.Rows` gradients that list 1% of its rows, against the dense
  step of the same table.

Examples
--------
>>> study = SUITES["families"]()["lion"]
>>> study.bytes_per_element
20
>>> SUITES["precision"]()["int8 state"].bytes_per_element
16
"""

import functools
import math
from typing import NamedTuple

import numpy as np

import numadam

from .roofline import traffic_bytes

F32 = "float32"


class Study(NamedTuple):
    """One configuration to time, and the traffic of its same-traffic kernel."""

    name: str
    method: str             # a name of numadam.families()
    options: dict           # keyword arguments of the class (lr included)
    written: tuple          # dtypes of the arrays a step reads and writes, per element
    read: tuple             # dtypes of the arrays it only reads
    param_dtype: str = F32  # "float32", "float16" or "bfloat16"
    n_arrays: int = 1
    groups: int = 0         # how many Groups the arrays are split into (0: none)
    baseline: str = ""      # the study of the same suite its time is compared with
    grads_in: type = tuple  # the container of many parameters and gradients (the same object each step)
    target: tuple = ()      # ("same-traffic" or "baseline", the largest ratio the issues ask for)
    width: int = 1          # elements per row: the parameters are (size / width, width) matrices
    listed: float = 1.0     # the share of rows a step's gradient lists (numadam.Rows below 1)
    repeats: bool = False   # the listed rows drawn with replacement (a minibatch's), in a random order

    @property
    def moved(self):
        """The share of the elements a step reads and writes."""
        return self.listed

    @property
    def bytes_per_element(self):
        return traffic_bytes(self.written, self.read)

    @property
    def footprint(self):
        """The bytes per element of the arrays a step reads or writes, each counted once."""
        return sum(np.dtype(dtype).itemsize for dtype in self.written + self.read)


def _state_count(method, options):
    cls = numadam.families()[method]
    h = cls.algorithm.Hyper(**{**cls._class_defaults, **cls.pinned, **options})
    return len(cls.algorithm.state_kinds(h))


def _plain(name, method, options=None, n_arrays=1, baseline=""):
    """A family on float32 parameters and state: the parameters, its state written; the gradient read."""
    options = {"lr": 1e-3, **(options or {})}
    state = _state_count(method, options)
    return Study(name, method, options, (F32,) * (1 + state), (F32,), n_arrays=n_arrays, baseline=baseline)


#: Options that make a family's defaults a fair comparison (Lion without its default decay is not
#: Lion; these keep each family's own defaults and only pin what varies between libraries).
FAMILY_OPTIONS = {"adamw": {"weight_decay": 1e-2}}


def families():
    studies = {method: _plain(method, method, FAMILY_OPTIONS.get(method))._replace(target=("same-traffic", 1.10))
               for method in numadam.families() if method not in ("lamb", "adafactor", "prodigy")}  # see policies()
    studies["adafactor"] = adafactor()
    for method in ("adam", "adamw"):  # one division fewer than torch's: where the divider shows
        name = f"{method}, convention='deepspeed'"
        studies[name] = studies[method]._replace(name=name, options={**studies[method].options,
                                                                      "convention": "deepspeed"})
    return dict(sorted(studies.items()))


def adafactor():
    """Adafactor over matrices 1000 wide: its factors' pass reads g and p (and sums the norms: see
    numadam.core.factors); its update reads p and g and writes p. 20 bytes per element, as if p were
    read and written once and three arrays read once (its factors, R + C numbers, weigh nothing)."""
    return Study("adafactor", "adafactor", {"lr": 1e-3}, (F32,), (F32,) * 3, width=1000,
                 target=("same-traffic", 1.30))


def adafactor_widths():
    """Adafactor's study at 100, 1000 and 10000 wide: a factored matrix pays a fixed cost per row
    (docs/performance.md, "What a matrix row costs"); the target is the 1000-wide study's."""
    study = adafactor()
    return {f"adafactor, {width} wide": study._replace(name=f"adafactor, {width} wide", width=width,
                                                      target=study.target if width == 1000 else ())
            for width in (100, 1000, 10000)}


def many_arrays():
    studies = {}
    for method in numadam.families():
        if method == "adafactor":  # its factors' pass runs per array on the host: see families()
            continue
        options = FAMILY_OPTIONS.get(method)
        studies[f"{method}, one array"] = _plain(f"{method}, one array", method, options)
        studies[f"{method}, 1000 arrays"] = _plain(f"{method}, 1000 arrays", method, options, n_arrays=1000,
                                                   baseline=f"{method}, one array")._replace(
                                                       target=("baseline", 1.30))
    for method in ("adam", "lion"):
        many = studies[f"{method}, 1000 arrays"]
        studies[f"{method}, 1000 arrays in a list"] = many._replace(name=f"{method}, 1000 arrays in a list",
                                                                   grads_in=list, target=())
    return studies


def policies():
    adam = _plain("adam", "adam")
    lamb = _plain("lamb", "lamb", baseline="adam")
    # LAMB's first pass reads p, g, m, v and writes m, v; its second reads p, m, v and writes p:
    # 40 bytes per element, as if p, m, v were read and written once and p, g, m, v read once more.
    lamb = lamb._replace(written=(F32,) * 3, read=(F32,) * 4, target=("baseline", 1.60))
    # Prodigy's first pass must read p, g, m, v, s, p0 and write m, v, s; its second read p, m, v and
    # write p: 56 bytes per element, as if p, m, v, s were read and written once and g, p0 and p, m, v
    # read once more: twice Adam's 28, so its target is 2.2x Adam's step.
    prodigy = _plain("prodigy", "prodigy", baseline="adam")._replace(written=(F32,) * 4, read=(F32,) * 6,
                                                                        target=("baseline", 2.20))
    return {
        "adam": adam,
        "nonfinite='skip'": adam._replace(name="nonfinite='skip'", options={**adam.options, "nonfinite": "skip"},
                                          read=(F32, F32), baseline="adam", target=("baseline", 1.20)),
        "clip_global_norm=1": adam._replace(name="clip_global_norm=1", read=(F32, F32), baseline="adam",
                                            target=("baseline", 1.20),
                                            options={**adam.options, "clip_global_norm": 1.0}),
        "bounds (arrays)": adam._replace(name="bounds (arrays)", read=(F32, F32, F32), baseline="adam",
                                         target=("same-traffic", 1.10),
                                         options={**adam.options, "bounds": "arrays"}),
        "ema=0.999": adam._replace(name="ema=0.999", written=(F32,) * 4, baseline="adam", target=("same-traffic", 1.10),
                                   options={**adam.options, "ema": 0.999}),
        "lamb": lamb,
        "prodigy": prodigy,
    }


def precision():
    adam = _plain("float32", "adam")
    B16, U8, I8 = "uint16", "uint8", "int8"
    return {
        "float32": adam,
        "bfloat16 state": adam._replace(name="bfloat16 state", written=(F32, B16, B16), baseline="float32",
                                        target=("baseline", 0.80),
                                        options={**adam.options, "state_dtype": "bfloat16"}),
        "int8 state": adam._replace(name="int8 state", written=(F32, I8, U8), baseline="float32",
                                    target=("baseline", 1.30),
                                    options={**adam.options, "state_dtype": "int8"}),
        "bfloat16 parameters": adam._replace(name="bfloat16 parameters", written=(B16, F32, F32), read=(B16,),
                                             target=("same-traffic", 1.10),
                                             param_dtype="bfloat16", baseline="float32"),
        "float16 parameters": adam._replace(name="float16 parameters", written=(B16, F32, F32), read=(B16,),
                                             target=("same-traffic", 1.10),
                                            param_dtype="float16", baseline="float32"),
        "bfloat16 parameters, master weights": adam._replace(
            name="bfloat16 parameters, master weights", written=(B16, F32, F32, F32), read=(B16,),
            param_dtype="bfloat16", baseline="float32", options={**adam.options, "master_weights": True},
            target=("same-traffic", 1.10)),
        "bfloat16 parameters, stochastic rounding": adam._replace(
            name="bfloat16 parameters, stochastic rounding", written=(B16, F32, F32), read=(B16,),
            param_dtype="bfloat16", baseline="float32", options={**adam.options, "stochastic_rounding": True},
            target=("same-traffic", 1.15)),
        "bfloat16 parameters, Kahan compensation": adam._replace(
            name="bfloat16 parameters, Kahan compensation", written=(B16, F32, F32, B16), read=(B16,),
            param_dtype="bfloat16", baseline="float32", options={**adam.options, "compensation": "kahan"},
            target=("same-traffic", 1.10)),
    }


def groups():
    """AdamW over two arrays: in two Groups (each its own lr), or with the optimizer's hyperparameters."""
    adam = _plain("no groups", "adam", {"weight_decay": 1e-2, "decoupled_weight_decay": True}, n_arrays=2)
    return {"no groups": adam, "two groups": adam._replace(name="two groups", groups=2, baseline="no groups",
                                                           target=("baseline", 1.05))}


def rows():
    """Row-sparse gradients (numadam.Rows) listing 1% of the rows of a table of 16-wide rows, each
    once or drawn with replacement (a minibatch's: repeats summed), against the dense step of the
    same table; the same-traffic kernel moves the listed rows' bytes."""
    studies = {}
    for method in ("adam", "sparse_adam"):
        dense = _plain(f"{method}, dense", method)._replace(width=16)
        studies[dense.name] = dense
        studies[f"{method}, 1% of rows"] = dense._replace(name=f"{method}, 1% of rows", listed=0.01,
                                                         baseline=dense.name, target=("baseline", 0.05))
        studies[f"{method}, 1% of rows with repeats"] = dense._replace(
            name=f"{method}, 1% of rows with repeats", listed=0.01, repeats=True, baseline=dense.name,
            target=("baseline", 0.05))
    return studies


SUITES = {"families": families, "many": many_arrays, "policies": policies, "precision": precision,
          "groups": groups, "rows": rows, "adafactor": adafactor_widths}


@functools.cache
def _bfloat16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def storage_dtype(name):
    """The NumPy dtype of a study's parameters (``bfloat16`` from ml_dtypes)."""
    return _bfloat16() if name == "bfloat16" else np.dtype(name)


def build(study, size, seed=0, place=None, draws=1):
    """``(optimizer, grads)``: the study's optimizer over fresh parameters of ``size`` elements in all.

    ``place`` (default: keep them) takes each NumPy array made here to where the step runs, such
    as ``cupy.asarray`` for the GPU. With ``draws`` > 1, a study of row-sparse gradients gives a
    list of that many gradient trees instead, each listing rows drawn anew in new arrays (a
    minibatch's: a step over them all in turn finds few of its rows in the caches).
    """
    place = place or (lambda array: array)
    rng = np.random.default_rng(seed)
    dtype = storage_dtype(study.param_dtype)
    per_array = max(1, size // study.n_arrays)
    shape = (per_array // study.width, study.width) if study.width > 1 else (per_array,)
    params = [place(rng.standard_normal(shape).astype(np.float32).astype(dtype)) for _ in range(study.n_arrays)]
    grads = [rng.standard_normal(shape).astype(np.float32).astype(dtype) for _ in range(study.n_arrays)]
    if study.listed < 1:  # rows in a random order, each once unless it repeats
        count = max(1, int(shape[0] * study.listed))
        draw = lambda grad: numadam.Rows(place(rng.choice(shape[0], count, replace=study.repeats)),  # noqa: E731
                                         place(grad[:count].copy()))
        batches = [[draw(grad) for grad in grads]]
        batches += [[draw(rng.standard_normal((count,) + shape[1:]).astype(np.float32).astype(dtype))
                     for _ in grads] for _ in range(draws - 1)]
        grads = batches[0]
    else:
        grads, batches = [place(grad) for grad in grads], None
    options = dict(study.options)
    if options.get("bounds") == "arrays":  # shaped like the tree (built below)
        low, high = ([place(np.full(per_array, value, dtype)) for _ in params] for value in (-10.0, 10.0))
        options["bounds"] = (low[0], high[0]) if study.n_arrays == 1 else (low, high)
    tree = params
    if study.groups:
        cut = math.ceil(len(params) / study.groups)
        tree = [numadam.Group(params[k:k + cut], lr=options["lr"] * (1 + k)) for k in range(0, len(params), cut)]
        shaped = lambda grads: [grads[k:k + cut] for k in range(0, len(grads), cut)]  # noqa: E731
    elif study.n_arrays == 1:
        tree, shaped = params[0], lambda grads: grads[0]
    else:  # the parameters in the same container as the gradients: the tree contract
        tree, shaped = study.grads_in(params), study.grads_in
    optimizer = numadam.families()[study.method](tree, **options)
    if batches is not None and draws > 1:
        return optimizer, [shaped(batch) for batch in batches]
    return optimizer, shaped(grads)
