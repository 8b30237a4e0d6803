"""The Dask engine: numadam's own kernels on every chunk; parameters and state replaced, not written.

Each parameter and its state are held together, one persisted Dask array of
tuples per parameter (:mod:`numadam.adapters.dask`): ``(param, *state,
*held)``, the family's state kinds and then the policy operands the optimizer
keeps (:func:`~numadam.core.pipeline.held_operands`: the accumulator, the
moving average, the float32 copy). A step is one task per chunk that runs the
*same generated kernel* as the local engine, every stage of the policy
pipeline included (:func:`~numadam.engine.operands.run_on_arrays`), out of
place: it reads the chunk's tuple and writes the new values into new arrays,
returned as the next tuple. New arrays rather than in-place writes: a task
that Dask runs again (after a lost worker) starts from its own inputs, never
from half-updated ones, so a recovered step is the step.

The order of the stages is :class:`~numadam.engine.stepping.Engine`'s, shared
with the local engine; what differs is where the sums of a pre-pass come
from: one task per chunk runs the pre-pass kernel over its chunk, and the
host adds the chunks' sums in chunk order. LAMB's first pass is such a round
of tasks (its state written into new chunks); its update follows with each
parameter's norms.

Two storage options need to know where a chunk lies. Stochastic rounding
draws each element's random bits from its position in the whole parameter
(in its bucket's sequence, as the local engine lays the parameters out:
:func:`~numadam.engine.bucket.sequence_starts`): each chunk's task finds its
place from Dask's ``block_info``, and its kernel's table gives every
contiguous run of the chunk its own position (:class:`~numadam.engine.operands.Place`).
8-bit state (``state_dtype="int8"``) is blocked chunk by chunk: each chunk's
codes are blocked over the chunk's own C order, and its tuple ends with the
float32 scales of its blocks, one row per state kind of the family
(:mod:`numadam.engine.chunk_blocks` says how a state dict holds them).

Nothing here imports Dask before a Dask array shows up.
"""

import functools

import numpy as np

from ..adapters import dask as held
from ..adapters.rows import is_rows
from ..core import dtypes, factors
from ..core.pipeline import NO_POLICY, QUANTIZED_STATE, STAGES, held_operands
from ..targets import quantization
from ..targets.layout import c_strides
from . import chunk_blocks
from .bounds import checked_bounds
from .bucket import Quantized, sequence_starts, state_dtype_of
from .operands import Place, expected_state_dtype, policy_operand_dtype, run_on_arrays
from .state_dict import checked_factors, checked_held_arrays
from .stepping import Engine


class DaskEngine(Engine):
    """The engine of parameters that are Dask arrays (see the module docstring)."""

    name = "dask"
    lazy_state = True

    def norms_kernel(self, grads):
        """``None``: a Dask step is tasks, with no compiled kernel for other compiled code to call
        (see :meth:`numadam.engine.local.LocalEngine.norms_kernel`)."""
        return None

    def __init__(self, algorithm, settings, policies, treedef, leaves, paths, bounds, check_options):
        super().__init__(algorithm, settings, policies, paths)
        self.treedef = treedef
        check_options([leaf.dtype for leaf in leaves])
        for leaf, path in zip(leaves, paths):
            if not held.is_dask_array(leaf):
                raise TypeError(f"{path} is a {type(leaf).__name__} but other parameters are Dask arrays: "
                                "all parameters of a Dask optimizer must be Dask arrays")
            _check_dtype(leaf.dtype, path)
        h = settings.hyper(settings.own)
        if algorithm.sample_step(h) > 1:  # (a chunk's elements are not every k-th of the whole parameter's C order)
            raise ValueError(f"slice_p={algorithm.sample_step(h)} is not available for Dask arrays: {algorithm.title}'s "
                             f"statistics on one element in every {algorithm.sample_step(h)} are kept over NumPy and "
                             "CuPy arrays; take slice_p=1")
        self.kinds = algorithm.state_kinds(h)
        self._kind_of = {kind.name: kind for kind in algorithm.state}
        #: Whether each leaf's state is 8-bit, blocked chunk by chunk (``state_dtype="int8"``, from
        #: :data:`~numadam.core.pipeline.QUANTIZE_FROM` elements on, as over NumPy arrays).
        self._quantized = [state_dtype_of(leaf, policies) == QUANTIZED_STATE for leaf in leaves]
        #: Where each leaf starts in its bucket's sequence (stochastic rounding), or ``None``.
        self._starts = sequence_starts(leaves, policies) if policies.stochastic_rounding else None
        self.held = held_operands(policies)
        #: The names of the items after the parameter in each tuple: the state kinds, then the held operands.
        #: Factored state is not among them: each parameter's factors (R + C numbers of a matrix) are
        #: NumPy arrays of this process, made from the chunks' row and column sums (:meth:`_factor_pass`).
        self.names = ([kind.name for kind in self.kinds if not kind.factor]
                      + [operand.name for operand in self.held])
        self.factors = [{kind.name: np.full(factors.factor_shape(kind.factor, leaf.shape),
                                            factors.initial_value(kind.factor, leaf.shape),
                                            expected_state_dtype(leaf.dtype))
                         for kind in self.kinds if kind.factor} for leaf in leaves]
        self._magnitude = {kind.name for kind in self.kinds if kind.magnitude} \
            if policies.complex_mode == "magnitude" else set()
        self._metas = [leaf._meta for leaf in leaves]
        self._bounds = None if bounds is None else self._bound_arrays(bounds, leaves)
        state = {kind.name: [self._initial(kind.name, kind.initial_for(h), leaf) for leaf in leaves]
                 for kind in self.kinds if not kind.factor}
        for operand in self.held:
            state[operand.name] = [self._initial(operand.name, operand.initial, leaf) for leaf in leaves]
        self._first_pass = None
        self._hold(list(leaves), state)

    # -- what is held ------------------------------------------------------------------------------

    def _bound_arrays(self, given, leaves):
        """Each leaf's ``(low, high)``: a number (``None`` where infinite) or a persisted Dask array of
        its dtype, chunked like it; arrays checked for NaN and ``low <= high`` in one computation."""
        import dask

        da = held.dask_array_module()

        def chunked(value, leaf, side, path):
            if not (held.is_dask_array(value) or isinstance(value, np.ndarray)
                    or hasattr(value, "__cuda_array_interface__")):
                raise TypeError(f"the {side} bound of {path} must be a number, None or an array; got "
                                f"{type(value).__name__}")
            if not held.is_dask_array(value):
                value = da.from_array(value, chunks=leaf.chunks)
            return value.astype(leaf.dtype).rechunk(leaf.chunks)

        checked = checked_bounds(given, leaves, self.paths, chunked, lambda checks: dask.compute(*checks))
        arrays = [side for pair in checked for side in pair if held.is_dask_array(side)]
        persisted = iter(dask.persist(*arrays))
        return [tuple(next(persisted) if held.is_dask_array(side) else None if np.isinf(side) else side
                      for side in pair) for pair in checked]

    def _hold(self, params, state):
        """Hold ``params`` and ``state`` (Dask arrays chunked alike), persisted as tuples (one task per
        chunk). A leaf's 8-bit state comes as numbers, quantized in each chunk's task over its own C
        order, or as :class:`~numadam.engine.bucket.Quantized` codes chunked like it with their
        scales (one chunk of them per chunk: :func:`_held_blocks`)."""
        names = list(state)
        holdings = []
        for k, param in enumerate(params):
            items = [state[name][k] for name in names]
            if not self._quantized[k]:
                holdings.append(held.held_array(held.together, [param, *items], "numadam-held"))
                continue
            rows = tuple(self._scale_row(name) for name in names)
            coded = tuple(isinstance(item, Quantized) for item in items)
            signed = tuple(row >= 0 and not self.algorithm.state[row].nonnegative for row in rows)
            together = functools.partial(_held_blocks, len(self.algorithm.state), rows, signed, coded)
            arrays = [param, *(item.codes if isinstance(item, Quantized) else item for item in items)]
            pieces = [item.scales for item in items if isinstance(item, Quantized)]
            holdings.append(held.held_array_with_pieces(together, arrays, pieces, "numadam-held"))
        self._held(holdings)

    def _scale_row(self, name):
        """The row of item ``name``'s block scales among a chunk's (its place in the family's state),
        or -1 for a held operand (never 8-bit)."""
        kinds = [kind.name for kind in self.algorithm.state]
        return kinds.index(name) if name in kinds else -1

    def _held(self, holdings):
        """Persist ``holdings`` and make the views of them."""
        import dask

        self.holdings = list(dask.persist(*holdings))
        self._views = None

    @property
    def params(self):
        """The parameters: views of the holdings (made at the first call after a step)."""
        return self._made_views()[0]

    @property
    def arrays(self):
        """The parameters as Dask arrays (the same as :attr:`params`)."""
        return self.params

    def state_leaves(self, name):
        """Each leaf's item ``name`` (a state kind or a held operand): views of the holdings."""
        return self._made_views()[1][name]

    def state_names(self):
        return list(self.names)

    def _made_views(self):
        if self._views is None:
            def views(index, metas):
                return [held.view(holding, index, meta) for holding, meta in zip(self.holdings, metas)]

            params = views(0, self._metas)
            self._views = params, {name: views(i + 1, [held.empty_like(meta, self.item_dtype(name, meta.dtype, q))
                                                       for meta, q in zip(self._metas, self._quantized)])
                                   for i, name in enumerate(self.names)}
        return self._views

    def item_dtype(self, name, dtype, quantized=False):
        """The dtype of the item ``name`` (a state kind or a held operand) beside a parameter of
        ``dtype``: the policy operand's, one real number per complex element for magnitude state,
        8-bit codes for a ``quantized`` leaf's state (signed or not as the kind), else the state
        dtype (bfloat16 when asked)."""
        if name in (operand.name for operand in self.held):
            return policy_operand_dtype(name, dtype)
        if name in self._magnitude and dtype.kind == "c":
            return dtypes.storage_dtype(dtype)
        if quantized:
            return quantization.code_dtype(signed=not self._kind_of[name].nonnegative)
        state = expected_state_dtype(dtype)
        wanted = self.policies.state_dtype
        if wanted is None or wanted == QUANTIZED_STATE or dtype.kind == "c" or state.itemsize != 4:
            return state
        return wanted

    def _scales_view(self, k, name):
        """Leaf ``k``'s scales of its 8-bit state ``name``: each chunk's, chunk after chunk in the C order
        of the chunk grid, as a 1-D Dask array of one chunk per chunk (empty where its state is not 8-bit)."""
        if not self._quantized[k]:
            return np.zeros(0, np.float32)
        holding = self.holdings[k]
        counts = chunk_blocks.block_counts(held.chunk_order(holding))
        row = functools.partial(_scales_row, len(self.names) + 1, self._scale_row(name))
        return held.pieces_of(holding, row, counts, held.empty_like(self._metas[k].reshape(-1), np.float32))

    def _block_layouts(self):
        """Each leaf's locations of the chunks its 8-bit blocks follow (none where its state is not 8-bit)."""
        return [held.chunk_order(holding) if quantized else chunk_blocks.none_blocked(holding.ndim)
                for holding, quantized in zip(self.holdings, self._quantized)]

    def _initial(self, name, initial, param):
        dtype = self.item_dtype(name, param.dtype)
        if isinstance(initial, str):  # "param": the state starts at the parameters
            return param.astype(dtype, copy=True)
        # A task per chunk that reads the parameter's chunk: Dask puts it where that chunk lives.
        return param.map_blocks(held.filled_like, initial, dtype, dtype=dtype, meta=held.meta_of(param, dtype))

    # -- the step ----------------------------------------------------------------------------------

    def step(self, grads):
        """Replace the parameters and state by their values after one call of ``step``; the new
        parameters (persisted)."""
        held.check_alive(self.holdings)
        leaves = self.checked_grads(self.treedef.flatten_like(grads, "grads", exact_sequences=True))
        self.policy_step(leaves)
        return self.params

    def checked_grads(self, grads):
        """The gradients as Dask arrays chunked like their parameters (rechunked if needed)."""
        da = held.dask_array_module()
        checked = []
        for grad, holding, meta, path in zip(grads, self.holdings, self._metas, self.grad_paths):
            if not held.is_dask_array(grad):
                if is_rows(grad):
                    raise TypeError(f"{path} is a Rows gradient; over Dask arrays every chunk takes a dense "
                                    "gradient (scatter the rows into a zero array chunked like its parameter)")
                if isinstance(grad, np.ndarray) or hasattr(grad, "__cuda_array_interface__"):
                    grad = da.from_array(grad, chunks=holding.chunks)
                else:
                    raise TypeError(f"{path} must be a Dask array (or a NumPy array, scattered like its "
                                    f"parameter); got {type(grad).__name__}")
            if grad.shape != holding.shape:
                raise ValueError(f"{path} must have its parameter's shape {holding.shape}; got {grad.shape}")
            if grad.dtype != meta.dtype:
                raise TypeError(f"{path} is {grad.dtype} but its parameter is {meta.dtype}")
            if grad.chunks != holding.chunks:
                grad = grad.rechunk(holding.chunks)
            checked.append(grad)
        return checked

    def _row(self, scalars, k):
        """Leaf ``k``'s scalar row: its own (families with norms: one row per parameter, a list before
        their norms set their field, an array after) or its group's."""
        if self.algorithm.norms is None:
            return scalars[self.settings.leaf_groups[k]]
        return tuple(scalars[k].tolist()) if isinstance(scalars, np.ndarray) else scalars[k]

    def _task(self, function, flags, policy, scalars, k, *extra):
        """Leaf ``k``'s chunk function: ``function`` with what every chunk of it shares (its factors, its
        start in its bucket's sequence, whether its tuples end with block scales, too)."""
        sides = None if self._bounds is None else tuple(side if not held.is_dask_array(side) else "array"
                                                        for side in self._bounds[k])
        return functools.partial(function, self.algorithm, tuple(self.names), flags, policy,
                                 self._row(scalars, k), sides, *extra, factors=self.factors[k],
                                 blocked=self._quantized[k], start=None if self._starts is None else self._starts[k])

    def _factor_pass(self, grads, scalars, grad_scale):
        """Each chunk's row and column sums of squares (one task per chunk), added here in chunk order
        into each parameter's sums; then its factors moved (:func:`numadam.core.factors.update_factors`)."""
        import dask

        clip = self.policies.clip_value
        tasks = [grad.map_blocks(_chunk_squares, grad_scale, clip, dtype=object,
                                 meta=np.empty((0,) * grad.ndim, object),
                                 token=f"numadam-factors-{self.step_count + 1}") for grad in grads]
        blocks = [list(task.to_delayed().ravel()) for task in tasks]
        computed = iter(dask.compute(*(block for per_leaf in blocks for block in per_leaf)))
        names = [kind.name for kind in self.kinds if kind.factor]
        for k, (grad, per_leaf) in enumerate(zip(grads, blocks)):
            found = [next(computed) for _ in per_leaf]  # (location, sums) of each chunk, in chunk order
            real = self.factors[k][names[0]].dtype
            weight, floor = factors.weights(self.algorithm, self._row(scalars, k), real)
            if grad.size:
                factors.update_factors(np, grad.shape, *(self.factors[k][name] for name in names), weight, floor,
                                       _added_sums(grad.shape, found, real))

    def _shapes(self):
        return [holding.shape for holding in self.holdings]

    def _element_counts(self):
        return [dtypes.real_size(holding.shape, meta.dtype) for holding, meta in zip(self.holdings, self._metas)]

    def _bound_chunks(self, k):
        return [] if self._bounds is None else [side for side in self._bounds[k] if held.is_dask_array(side)]

    def _reduce(self, grads, flags, policy, scalars):
        import dask

        token = f"numadam-{self.algorithm.name}-{policy.reduction}-{self.step_count + 1}"
        if policy.reduction == "norms":  # LAMB's first pass: new state, and each chunk's sums
            self._first_pass = [held.held_array(self._task(_first_pass_chunk, flags, policy, scalars, k),
                                                [holding, grad], token)
                                for k, (holding, grad) in enumerate(zip(self.holdings, grads))]
            self._first_pass = list(dask.persist(*self._first_pass))
            sums = [[dask.delayed(held.item)(block, -1) for block in first.to_delayed().ravel()]
                    for first in self._first_pass]
        else:
            tasks = [held.held_array(self._task(_reduced_chunk, flags, policy, scalars, k), [holding, grad], token)
                     for k, (holding, grad) in enumerate(zip(self.holdings, grads))]
            sums = [list(task.to_delayed().ravel()) for task in tasks]
        computed = iter(dask.compute(*(chunk for per_leaf in sums for chunk in per_leaf)))
        first, second = np.zeros(len(sums)), np.zeros(len(sums))
        for k, per_leaf in enumerate(sums):
            for _ in per_leaf:  # in chunk order
                chunk_first, chunk_second = next(computed)
                first[k] += chunk_first
                second[k] += chunk_second
        return first, second

    def _update(self, grads, flags, policy, scalars):
        token = f"numadam-{self.algorithm.name}-step-{self.step_count + 1}"
        holdings = []
        for k, (holding, grad) in enumerate(zip(self.holdings, grads)):
            if self._first_pass is not None:
                run = self._task(_update_after_first_pass, flags, policy, scalars, k)
                inputs = [self._first_pass[k], holding, grad]
            else:
                run = self._task(_update_chunk, flags, policy, scalars, k)
                inputs = [holding, grad]
            holdings.append(held.held_array(run, inputs + self._bound_chunks(k), token))
        self._first_pass = None
        self._held(holdings)

    def zero_grad(self, set_to_none):
        raise TypeError(f"{self.algorithm.title}.zero_grad() clears torch parameters' .grad; Dask parameters "
                        "carry no gradient (pass gradients to step instead)")

    # -- state -------------------------------------------------------------------------------------

    def state_arrays(self, lazy=False):
        """Each state array, by name: computed to NumPy (or CuPy), or if ``lazy`` the Dask arrays that
        view the persisted holdings. 8-bit state adds ``<name>_scales`` and the chunks its blocks
        follow (:mod:`numadam.engine.chunk_blocks`)."""
        views = {name: list(self.state_leaves(name)) for name in self.names}
        layouts = {}
        if any(self._quantized):
            for kind in self.kinds:
                views[f"{kind.name}_scales"] = [self._scales_view(k, kind.name) for k in range(len(self.holdings))]
            layouts = {chunk_blocks.LAYOUT_KEY: self._block_layouts()}
        own = {kind.name: [leaf[kind.name].copy() for leaf in self.factors] for kind in self.kinds
               if kind.factor and not kind.derived}
        if lazy:
            return {**own, **views, **layouts}
        import dask

        names = list(views)
        computed = dask.compute(*(array for name in names for array in views[name]))
        n = len(self.holdings)
        return {**own, **{name: list(computed[n * i:n * (i + 1)]) for i, name in enumerate(names)}, **layouts}

    def ema_params(self, correction):
        return [average / average.dtype.type(correction) for average in self.state_leaves("ema")]

    def checked_state(self, name, leaves, paths, coded=None):
        """``leaves`` (NumPy, CuPy or Dask) as Dask arrays chunked like the parameters, checked: numbers
        (quantized where a leaf keeps 8-bit state), or 8-bit codes blocked as ``coded[k]`` says (a
        :class:`~numadam.engine.chunk_blocks.Blocks`, ``None`` for numbers): kept as
        :class:`~numadam.engine.bucket.Quantized` codes and scales where their blocks are the leaf's,
        decoded otherwise."""
        checked = []
        for k, (leaf, param, path) in enumerate(zip(leaves, self.params, paths)):
            dtype = self.item_dtype(name, param.dtype)
            leaf = _as_dask(leaf, param, path)
            blocks = None if coded is None else coded[k]
            if blocks is not None:
                leaf = self._checked_codes(name, k, leaf, blocks, path)
                if isinstance(leaf, Quantized):
                    checked.append(leaf)
                    continue
            if not np.can_cast(leaf.dtype, dtype, "same_kind"):
                raise TypeError(f"{path} has dtype {leaf.dtype}, which does not cast to the state's {dtype}")
            checked.append(leaf.astype(dtype).rechunk(param.chunks))
        return checked

    def _checked_codes(self, name, k, codes, blocks, path):
        """Leaf ``k``'s 8-bit codes of state ``name`` (a Dask array of its parameter's shape) and their
        :class:`~numadam.engine.chunk_blocks.Blocks`, checked: as :class:`~numadam.engine.bucket.Quantized`
        codes and scales chunked like the leaf where their blocks are the leaf's, else decoded (float32)
        chunk by chunk of the blocks' own chunks (those of a whole parameter's blocks: in one task)."""
        da = held.dask_array_module()
        param, kind = self.params[k], self._kind_of[name]
        expected = quantization.code_dtype(signed=not kind.nonnegative)
        if codes.dtype != expected:
            raise TypeError(f"{path} holds 8-bit codes of dtype {codes.dtype}; {name} is coded as {expected}")
        if param.dtype.kind == "c":
            raise TypeError(f"{path} holds 8-bit codes, which hold real numbers; its parameter is complex")
        shape = param.shape
        saved = chunk_blocks.whole(shape) if blocks.locations is None else chunk_blocks.checked_locations(
            held.on_host(blocks.locations), shape, blocks.locations_path)
        counts = chunk_blocks.block_counts(saved)
        scales, expected = blocks.scales, (int(counts.sum()),)
        if tuple(getattr(scales, "shape", ())) != expected or getattr(scales, "dtype", None) != np.float32:
            found = getattr(scales, "dtype", type(scales).__name__), getattr(scales, "shape", None)
            raise ValueError(f"{blocks.scales_path} must be float32 of shape {expected}, one scale per block of "
                             f"{quantization.BLOCK} of each chunk its blocks follow; got {found[0]} of shape "
                             f"{found[1]}")
        if not held.is_dask_array(scales):
            scales = da.from_array(held.on_host(scales), chunks=-1)
        target = held.chunk_order(param)
        if self._quantized[k] and chunk_blocks.same_blocks(saved, target, shape):
            return Quantized(codes.rechunk(param.chunks),
                             scales.rechunk((tuple(int(c) for c in chunk_blocks.block_counts(target)),)))
        decode = functools.partial(_decoded_chunk, not kind.nonnegative)
        in_saved_chunks = codes.rechunk(chunk_blocks.grid_chunks(saved))
        pieces = scales.rechunk((tuple(int(c) for c in counts),))
        return held.map_chunks_with_pieces(decode, [in_saved_chunks], [pieces], "numadam-decoded",
                                           held.meta_of(param, np.float32))

    def checked_arrays(self, state, kinds, treedef):
        """The state's arrays, checked, as Dask arrays, and the factors as NumPy arrays (see
        :mod:`numadam.engine.state_dict`)."""
        arrays = checked_held_arrays(self, state, kinds, treedef)
        for kind in kinds:
            if kind.factor and not kind.derived:
                arrays[kind.name] = checked_factors(state, kind, treedef, self.holdings)
        return arrays

    def load_state(self, arrays, kinds, h):
        """Replace the state by ``arrays`` (a dict of checked Dask arrays by name; the factors NumPy
        arrays of this process), persisted."""
        for kind in kinds:
            if kind.factor and not kind.derived:
                for own, given in zip(self.factors, arrays[kind.name]):
                    own[kind.name][...] = given
        self._hold(self.params, {name: arrays[name] for name in self.names})


# -- the tasks: one chunk each ------------------------------------------------------------------------


def _as_dask(leaf, param, path):
    """A state leaf (NumPy, CuPy or Dask) of ``param``'s shape as a Dask array (chunked like ``param``
    if it was not one)."""
    dask_array = held.is_dask_array(leaf)
    if not (dask_array or isinstance(leaf, np.ndarray) or hasattr(leaf, "__cuda_array_interface__")):
        raise TypeError(f"{path} must be an array; got {type(leaf).__name__}")
    if tuple(leaf.shape) != param.shape:
        raise ValueError(f"{path} must have shape {param.shape}; got {tuple(leaf.shape)}")
    return leaf if dask_array else held.dask_array_module().from_array(leaf, chunks=param.chunks)


def _held_blocks(n_kinds, rows, signed, coded, param, *given):
    """One chunk of a leaf's holdings with 8-bit state: ``(param, *items, scales)``, each state item
    (``rows[i]``: its row of scales; -1 for a held operand) either numbers quantized here over the
    chunk's own C order (``signed`` map or not) or codes (``coded[i]``) with their piece of scales,
    which come after the items; ``scales``: ``(n_kinds, blocks)`` float32."""
    items, pieces = given[:len(rows)], iter(given[len(rows):])
    scales = np.zeros((n_kinds, quantization.n_blocks(param.size)), np.float32)
    kept = []
    for item, row, is_signed, is_coded in zip(items, rows, signed, coded):
        if row < 0:
            kept.append(item)
        elif is_coded:
            kept.append(item if item.flags.c_contiguous else item.copy())
            scales[row] = held.on_host(next(pieces))
        else:
            codes, scales[row] = quantization.quantize(held.on_host(item), is_signed)
            kept.append(held.like_chunk(codes, param))
    return (param, *kept, held.like_chunk(scales, param))


def _scales_row(index, row, chunk):
    """Row ``row`` of the block scales that are item ``index`` of a chunk's tuple."""
    return chunk[index][row]


def _decoded_chunk(signed, codes, scales):
    """The float32 numbers of one chunk's 8-bit ``codes`` blocked over its C order with ``scales``."""
    return held.like_chunk(quantization.dequantize(held.on_host(codes), held.on_host(scales), signed), codes)


def _place(start, block_info):
    """Where the chunk Dask's ``block_info`` describes lies in its parameter, which starts at ``start``
    in its bucket's sequence (a :class:`~numadam.engine.operands.Place`)."""
    info = block_info[0]
    steps = c_strides(tuple(info["shape"]), 1)
    return Place(start + sum(low * step for (low, _), step in zip(info["array-location"], steps)), steps)


def _chunk_arrays(algorithm, names, policy, sides, chunks, grad, bound_chunks, factors=None, block_info=None):
    """The operands of a chunk's kernel, by slot: the held ``chunks`` (parameter, state, held
    operands) that ``policy`` uses, the gradient, the bounds (numbers repeated with stride 0), and
    the chunk's part of the parameter's ``factors`` (factored state, repeated with stride 0 along
    the dimensions each does not keep; ``block_info`` says where the chunk lies)."""
    used = set(policy.operands())
    arrays = {name: held.readable(array) for name, array in zip(("param", *names), chunks)
              if name == "param" or name in used or name not in _POLICY_HELD}
    arrays["grad"] = held.readable(grad)
    if factors:
        where = [slice(start, stop) for start, stop in block_info[0]["array-location"]]
        for name, factor in factors.items():  # pickled into the task: maybe unaligned off the network
            part = held.readable(factor)[tuple(slice(None) if kept == 1 else cut for kept, cut in
                                               zip(factor.shape, where[len(where) - factor.ndim:]))]
            arrays[name] = np.broadcast_to(part, arrays["param"].shape)
    if sides is not None and policy.bounds:
        found = iter(bound_chunks)
        param = arrays["param"]
        for slot, side, infinite in zip(("low", "high"), sides, (-np.inf, np.inf)):
            arrays[slot] = held.readable(next(found)) if side == "array" else held.broadcast_number(
                infinite if side is None else side, param)
    return arrays


#: The policy operands a Dask optimizer holds (chunk by chunk) from step to step.
_POLICY_HELD = tuple(operand.name for stage in STAGES for operand in stage.operands if operand.held)


def _written(arrays, policy):
    """The operands a chunk's update writes: the parameter (its float32 copy too) and state, or only
    the accumulator for a call that adds a micro-batch."""
    if policy.accumulate == "add":
        return {"accumulator"}
    return {name for name in arrays if name not in ("grad", "low", "high")}


def _out_of_place(algorithm, flags, policy, row, arrays, written, reduce=False, place=None, scales=None):
    """Run a chunk's kernel writing ``written`` into new arrays; ``(new arrays by name, sums, new
    scales)``. 8-bit codes and their block ``scales`` are updated in place in copies of their own."""
    new, sources = {}, {}
    for name in written:
        if np.dtype(arrays[name].dtype).kind in "iu":  # 8-bit codes: their blocks are read and written in place
            new[name] = held.fresh(arrays[name])
            continue
        new[name], source = held.new_chunk(arrays[name])
        if source is not None:
            sources[name] = source
    if scales is not None and policy.accumulate != "add":
        scales = held.fresh(scales)
    with held.task_threads():
        sums = run_on_arrays(algorithm, {**arrays, **new}, flags, policy, row, sources=sources, written=written,
                             reduce=reduce, place=place, scales=scales)
    return new, sums, scales


def _update_chunk(algorithm, names, flags, policy, row, sides, chunks, grad, *bound_chunks, factors=None,
                  blocked=False, start=None, block_info=None):
    """One chunk's update into new arrays: the next tuple of its holdings (with ``blocked``, its last
    item the block scales of its 8-bit state; with ``start``, its parameter's start in its bucket's
    sequence, its kernel takes its place there). State the update does not store
    (:attr:`~numadam.core.algorithm.Algorithm.state_written_by_update`) stays the chunk given."""
    arrays = _chunk_arrays(algorithm, names, policy, sides, chunks, grad, bound_chunks, factors, block_info)
    place = None if start is None else _place(start, block_info)
    scales = chunks[len(names) + 1] if blocked else None
    kept = set(algorithm.state_names) - set(algorithm.state_written_by_update)
    written = {name for name in _written(arrays, policy) if name not in kept}
    new, _, scales = _out_of_place(algorithm, flags, policy, row, arrays, written, place=place, scales=scales)
    updated = tuple(new.get(name, chunk) for name, chunk in zip(("param", *names), chunks))
    return updated + ((scales,) if blocked else ())


def _reduced_chunk(algorithm, names, flags, policy, row, sides, chunks, grad, factors=None, blocked=False,
                   start=None, block_info=None):
    """The gradient pre-pass over one chunk: its two float64 sums (nothing is written)."""
    arrays = _chunk_arrays(algorithm, names, policy, sides, chunks, grad, ())
    scales = chunks[len(names) + 1] if blocked else None  # (not read: it says the state is 8-bit codes)
    with held.task_threads():
        return run_on_arrays(algorithm, arrays, flags, policy, row, written=set(), reduce=True, scales=scales)


def _first_pass_chunk(algorithm, names, flags, policy, row, sides, chunks, grad, factors=None, blocked=False,
                      start=None, block_info=None):
    """A family's first pass over one chunk (LAMB's): the new state and accumulator (new arrays, in the
    order of ``names``, the others ``None``), then the two float64 sums (never 8-bit state: a family
    with norms refuses it)."""
    arrays = _chunk_arrays(algorithm, names, policy, sides, chunks, grad, (), factors, block_info)
    written = {name for name in arrays if name not in ("param", "grad", "master", "compensation")
               and name not in (factors or {})}
    new, sums, _ = _out_of_place(algorithm, flags, policy, row, arrays, written, reduce=True)
    return (*(new.get(name) for name in names), np.array(sums, np.float64))


def _update_after_first_pass(algorithm, names, flags, policy, row, sides, first, chunks, grad, *bound_chunks,
                             factors=None, blocked=False, start=None, block_info=None):
    """A family's update over one chunk after its first pass (LAMB's: the state that pass wrote)."""
    chunks = (chunks[0], *(after if after is not None else chunk for after, chunk in zip(first[:-1], chunks[1:])),
              *chunks[len(names) + 1:])
    return _update_chunk(algorithm, names, flags, policy, row, sides, chunks, grad, *bound_chunks, factors=factors,
                         blocked=blocked, start=start, block_info=None if block_info is None else {0: block_info[1]})


def _chunk_squares(grad, grad_scale, clip_value, block_info=None):
    """One chunk's part of the factors' pass: ``(where it lies, its row and column sums of squares)``
    (for fewer than two dimensions, its squares), as the local engine's CPU pass takes them."""
    from ..targets.cpu.factor_sums import row_and_column_squares

    where = tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])
    real = expected_state_dtype(grad.dtype)
    with held.task_threads():
        found = factors.squares(np, held.readable(grad), real, grad_scale, clip_value, row_and_column_squares)
    block = np.empty((1,) * grad.ndim, object)
    block[(0,) * grad.ndim] = (where, found)
    return block


def _added_sums(shape, found, real):
    """A parameter's row and column sums of squares from its chunks' ``(where, sums)``, added in chunk
    order (for fewer than two dimensions, its squares put in place)."""
    if not factors.factored(shape):
        squares = np.empty(shape, real)
        for block in found:
            where, part = block[(0,) * block.ndim]
            squares[where] = part
        return squares
    rows, columns = np.zeros(shape[:-1]), np.zeros(shape[:-2] + shape[-1:])
    for block in found:
        where, (row_sums, column_sums) = block[(0,) * block.ndim]
        rows[where[:-1]] += row_sums
        columns[where[:-2] + where[-1:]] += column_sums
    return rows, columns


# -- the functional steps over Dask arrays ------------------------------------------------------------


def step_dask_arrays(algorithm, operands, flags, scalars):
    """``(param, *state)`` after one step of Dask arrays ``operands`` (``param``, ``grad``, the
    state in the family's order) with the scalar row ``scalars``, persisted: the functional
    steps' answer for Dask arrays."""
    import dask

    names = [name for name in operands if name not in ("param", "grad")]
    param = operands["param"]
    _check_dtype(param.dtype, "param")
    expected_state = expected_state_dtype(param.dtype, operands[names[0]].dtype if names else None)
    magnitude = {kind.name for kind in algorithm.state if kind.magnitude} if param.dtype.kind == "c" else set()
    arrays = {}
    for name, array in operands.items():
        if is_rows(array):
            raise TypeError(f"{name} is a Rows gradient; a step over Dask arrays takes dense gradients")
        if not held.is_dask_array(array):
            raise TypeError(f"{name} is a {type(array).__name__} but param is a Dask array: every operand of a "
                            "step over Dask arrays must be one")
        if array.shape != param.shape:
            raise ValueError(f"{name} must have param's shape {param.shape}; got {array.shape}")
        expected = param.dtype if name in ("param", "grad") else expected_state
        if name in magnitude and array.dtype.kind != "c":  # complex_mode="magnitude": real numbers
            expected = dtypes.storage_dtype(param.dtype)
        if array.dtype != expected:
            raise TypeError(f"{name} is {array.dtype} but must be {expected} (param is {param.dtype})")
        arrays[name] = array if array.chunks == param.chunks else array.rechunk(param.chunks)
    run = functools.partial(_update_chunk, algorithm, tuple(names), flags, NO_POLICY, scalars, None)
    together = held.held_array(functools.partial(_chunks_then_grad, run),
                               [arrays["param"], arrays["grad"], *(arrays[name] for name in names)],
                               f"numadam-{algorithm.name}-functional")
    outputs = [arrays["param"], *(arrays[name] for name in names)]
    return dask.persist(*(held.view(together, i, held.meta_of(output, output.dtype))
                          for i, output in enumerate(outputs)))


def _chunks_then_grad(run, param, grad, *state):
    return run((param, *state), grad)


def _check_dtype(dtype, path):
    if not dtypes.is_supported(dtype):
        raise TypeError(f"{path} has dtype {dtype}; numadam updates {dtypes.supported_names()}")
