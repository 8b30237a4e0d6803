"""``adam_step``: one validated, fused, in-place Adam update of single arrays."""

from . import _validate
from ._dispatch import backend_for
from ._hyper import adam_scalars, uses_l2_decay
from ._layout import contiguous_rows, real_layout, segment_rows
from ._layout import real_dtype as real_dtype_of

_OPERAND_NAMES = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_WRITTEN = (True, False, True, True, True)


def adam_step(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    *,
    step,
    lr,
    betas,
    eps,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    amsgrad=False,
    max_exp_avg_sq=None,
    maximize=False,
):
    r"""Take Adam step number ``step``, updating ``param`` and its state in place.

    For every element (complex arrays as pairs of reals), with :math:`t` = ``step``,
    :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\lambda` = ``weight_decay``:

    .. math::

        g &\leftarrow -g \text{ if maximize} \\
        g &\leftarrow g + \lambda p \;\text{(L2; or, decoupled: } p \leftarrow p(1-\eta\lambda)) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \hat v &\leftarrow \max(\hat v, v) \text{ (AMSGrad; else } \hat v = v) \\
        p &\leftarrow p - \frac{\eta}{1-\beta_1^t}\, m \Big/ \Bigl(\frac{\sqrt{\hat v}}{\sqrt{1-\beta_2^t}} + \epsilon\Bigr)

    This is the update of ``torch.optim.Adam``/``AdamW``: ``eps`` is added after the
    bias-corrected square root (Keras adds its "epsilon hat" before the bias
    correction), and AMSGrad keeps the maximum of the raw ``v`` (Reddi et al. 2018
    as torch implements it). Arithmetic runs in the array's real dtype; the
    scalars are derived in float64 and rounded once.

    NumPy arrays run on the CPU kernel; CuPy arrays and any array with
    ``__cuda_array_interface__`` run on the CUDA kernel. Every check runs before
    anything is written: on error, no array has changed.

    Parameters
    ----------
    param, grad, exp_avg, exp_avg_sq : arrays of one dtype and shape
        float32, float64, complex64 or complex128; ``grad`` is only read.
    step : int
        The number of this step, starting at 1.
    max_exp_avg_sq : array, required when ``amsgrad`` is true

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p = np.array([1.0, -2.0]); g = np.array([0.5, 0.5])
    >>> m, v = np.zeros(2), np.zeros(2)
    >>> numadam.adam_step(p, g, m, v, step=1, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    >>> p                     # the first step moves each element by about lr
    array([ 0.9, -2.1])

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    step = _validate.check_step(step)
    lr = _validate.check_lr(lr)
    beta1, beta2 = _validate.check_betas(betas)
    eps = _validate.check_eps(eps)
    weight_decay = _validate.check_weight_decay(weight_decay)
    decoupled = _validate.check_flag("decoupled_weight_decay", decoupled_weight_decay)
    amsgrad = _validate.check_flag("amsgrad", amsgrad)
    maximize = _validate.check_flag("maximize", maximize)
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("amsgrad=True needs max_exp_avg_sq, the running maximum of exp_avg_sq")
    if not amsgrad and max_exp_avg_sq is not None:
        raise ValueError("max_exp_avg_sq is only used with amsgrad=True; pass amsgrad=True or drop it")

    arrays = [param, grad, exp_avg, exp_avg_sq] + ([max_exp_avg_sq] if amsgrad else [])
    names = _OPERAND_NAMES[: len(arrays)]
    written = _WRITTEN[: len(arrays)]
    backend = backend_for(arrays, names)
    addresses = None
    if backend.name == "numpy":
        addresses = _validate.contiguous_operands(arrays, written, backend.address)
    if addresses is None:
        real_dtype, rows = _checked_rows(backend, arrays, names, written)
    else:
        real_dtype = real_dtype_of(param.dtype)
        rows = contiguous_rows(addresses, param.size * (param.dtype.itemsize // real_dtype.itemsize))
    hyper = adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize)
    backend.run(backend.plan(rows), real_dtype, hyper, amsgrad, uses_l2_decay(weight_decay, decoupled))


def _checked_rows(backend, arrays, names, written):
    """Every check on the operands, then their segment rows: ``(real_dtype, rows)``."""
    infos = [backend.describe(array) for array in arrays]
    _validate.check_parameter_dtype(infos[0], "param")
    for info, name, writes in zip(infos, names, written):
        _validate.check_matches(info, name, infos[0], "param")
        _validate.check_layout(info, name, writes)
    _validate.check_disjoint(infos, names, arrays, written)

    dtype = infos[0].dtype
    real_dtype = real_dtype_of(dtype)
    shape = real_layout(infos[0].shape, infos[0].strides, dtype)[0]
    strides = [real_layout(info.shape, info.strides, dtype)[1] for info in infos]
    strides += [None] * (len(_OPERAND_NAMES) - len(strides))
    addresses = [info.address for info in infos] + [0] * (len(_OPERAND_NAMES) - len(infos))
    return real_dtype, segment_rows(shape, addresses, strides, real_dtype.itemsize)
