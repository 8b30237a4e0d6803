"""What the engine asks of a target: the :class:`Backend` protocol.

A backend holds one kind of array (NumPy's, CUDA's) and runs the generated
kernels over it. The engine (``numadam/engine``, and the functional steps) calls
only what :class:`Backend` lists, and :func:`numadam.targets.dispatch.backend_for`
picks the backend by array type. Every backend subclasses :class:`Backend`, so
that it inherits the defaults of the capabilities it lacks.

Required members, which every backend defines:

- **what it is:** ``name`` ("numpy", "cuda"), ``array_type`` (the arrays it
  makes), ``chunk_size`` (elements per chunk of a plan), ``tables_in_place``
  (whether a plan's launches read its rows in place; then a step with new
  gradient arrays may write their addresses into them, and ``address_function``
  is required too);
- **arrays:** ``describe(array)`` (an :class:`~numadam.targets.arrays.ArrayInfo`),
  ``address(array)``, ``zeros(size, dtype)``, ``view(buffer, offset, shape,
  strides, dtype)``, ``assign(target, source)``, ``broadcast(array, shape)``;
- **kernels:** ``plan(rows)`` (the segment table where its kernels read it),
  ``launcher(plan, spec, blocks=None)`` (the launch of one kernel spec, made
  once per plan), ``reducer(plan, spec, starts, stops)`` and ``reduce(plan,
  spec, scalars, starts, stops)`` (the pre-pass's sums per piece),
  ``update_factors(...)`` (factored state's moving averages and scales).

Optional capabilities, ``None`` (or ``False``) where a backend lacks them; the
engine then takes the general path:

- ``listed_plan(template, strides, reach, index, grad_address, grad_stride,
  grad, make_rows, fixes)``: a plan over a ``Rows`` gradient's rows that its
  launches lay out as they update them, and that moves onto the next step's
  (:class:`~numadam.targets.arrays.ListedPlan`);
- ``norms_step_launcher``, ``norms_launcher``, ``reducing_launcher``: a pre-pass
  or norms pass and the update in one call;
- ``factored_step_launcher``, ``factored_step_arguments``: factored state's whole
  step in one call (or its kernel and arguments, for compiled code), and
  ``norms_in_factored_step``, whether that call takes the norms pass too; with
  ``tables_in_place``, the launch's ``grad_addresses`` (its own copy of the
  gradients' addresses, rewritten with the table's; without it, a step with new
  gradient arrays makes a new plan);
- ``address_function(kind, dtype)``: the function ``address`` calls for arrays of
  one type and dtype;
- ``sampled_pass(algorithm, param, grad, accumulated, state, step, row, flags,
  policy, q)``: a compiled pass over state kept on a sample of the elements
  (:func:`numadam.engine.sampled.sample_pass`), or ``None`` for arrays it does
  not take;
- ``device_steps``, with ``control_block``, ``skip_or_step`` and ``read_control``:
  steps whose skipping and step number the device decides
  (:mod:`numadam.engine.device_steps`).

The methods' arguments are documented on the CPU backend
(:class:`numadam.targets.cpu.backend.CpuBackend`), the reference implementation.
"""

from typing import Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """A target's arrays and kernels, as the engine sees them (see the module docstring)."""

    name: str
    array_type: type
    chunk_size: int
    tables_in_place: bool

    def describe(self, array): ...

    def address(self, array): ...

    def zeros(self, size, dtype): ...

    def view(self, buffer, offset, shape, strides, dtype): ...

    def assign(self, target, source): ...

    def broadcast(self, array, shape): ...

    def plan(self, rows): ...

    def launcher(self, plan, spec, blocks=None): ...

    def reducer(self, plan, spec, starts, stops): ...

    def reduce(self, plan, spec, scalars, starts, stops): ...

    def update_factors(self, grad, row_var, col_var, row_mean, row_scale, col_scale, weight, floor, grad_scale,
                       clip_value, scratch=None, param=None, estimate_floor=None): ...

    # -- optional capabilities: None (or False) where the backend has none --------------------------

    listed_plan = None
    norms_step_launcher = None
    norms_launcher = None
    reducing_launcher = None
    factored_step_launcher = None
    factored_step_arguments = None
    norms_in_factored_step = False
    address_function = None
    sampled_pass = None
    device_steps = False
    control_block = None
    skip_or_step = None
    read_control = None


#: The members every backend defines itself, and the optional ones it may leave to the defaults.
REQUIRED = ("name", "array_type", "chunk_size", "tables_in_place", "describe", "address", "zeros", "view",
            "assign", "broadcast", "plan", "launcher", "reducer", "reduce", "update_factors")
OPTIONAL = ("listed_plan", "norms_step_launcher", "norms_launcher", "reducing_launcher", "factored_step_launcher",
            "factored_step_arguments", "norms_in_factored_step", "address_function", "sampled_pass", "device_steps",
            "control_block", "skip_or_step", "read_control")
