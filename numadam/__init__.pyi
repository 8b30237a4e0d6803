"""The public API of numadam for type checkers and IDEs: written by tools/make_stub.py, not by hand."""

from typing import Any

from .optimizers import Optimizer as Optimizer
from . import schedules as schedules
from .adapters.group import Group as Group
from .adapters.rows import Rows as Rows
from .clipping import clip_by_global_norm as clip_by_global_norm
from .clipping import clip_by_norm as clip_by_norm
from .clipping import clip_by_value as clip_by_value
from .families import families as families
from .plotting import plot_convergence as plot_convergence
from .solve import adam_minimizer as adam_minimizer
from .solve import minimize as minimize
from .state_files import load_state as load_state
from .state_files import save_state as save_state
from . import jit as jit

__all__ = ['ADOPT', 'AdEMAMix', 'AdaBelief', 'Adafactor', 'Adagrad', 'Adam', 'AdamW', 'Adamax', 'Group', 'LAMB', 'Lion', 'NAdam', 'RAdam', 'RMSprop', 'Rows', 'SGD', 'ScheduleFreeAdamW', 'SparseAdam', 'Yogi', 'adabelief_step', 'adafactor_step', 'adagrad_step', 'adam_minimizer', 'adam_step', 'adamax_step', 'ademamix_step', 'adopt_step', 'clip_by_global_norm', 'clip_by_norm', 'clip_by_value', 'families', 'lamb_step', 'lion_step', 'load_state', 'minimize', 'nadam_step', 'plot_convergence', 'radam_step', 'rmsprop_step', 'save_state', 'schedule_free_adamw_step', 'schedules', 'sgd_step', 'sparse_adam_step', 'yogi_step']


class ADOPT(Optimizer):
    r"""ADOPT (Taniguchi et al. 2024) over a tree of arrays, updated in place.

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1)\, \operatorname{clip}\Bigl(\frac{g}{\max(\sqrt{v}, \epsilon)},
        \pm c_t\Bigr), \qquad p \leftarrow p - \eta m, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2

    where :math:`v` is the second moment *before* this step; the first step
    only sets :math:`v = g^2`. ``clip_lambda=0.25`` is the official
    ``lambda step: step**0.25``; a callable may be given too (it is then not
    saved by :meth:`save`). ``convention="optax"`` gives optax.contrib's
    arithmetic. See :doc:`/families/adopt`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.ADOPT(w, lr=0.05)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.1))
    True

    References
    ----------
    Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta_2 with the Optimal Rate", NeurIPS 2024.
    """
    lr: Any
    betas: Any
    eps: Any
    clip_lambda: Any
    weight_decay: Any
    decoupled_weight_decay: Any
    maximize: Any
    convention: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.9999), eps=1e-06, clip_lambda=0.25, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='official', *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class AdEMAMix(Optimizer):
    r"""AdEMAMix (Pagliardini et al. 2024) over a tree of arrays, updated in place.

    .. math::

        p \leftarrow p - \eta\left(\frac{m_1/(1-\beta_1^t) + \alpha\, m_2}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
        + \lambda p\right)

    with a fast EMA :math:`m_1` (:math:`\beta_1`), a slow one :math:`m_2`
    (:math:`\beta_3`), and :math:`\alpha`, :math:`\beta_3` warmed up as in the
    paper (``alpha_warmup``, ``beta3_warmup``): apple/ml-ademamix's update. Its
    state is three arrays per parameter (36 bytes of traffic per float32
    element). See :doc:`/families/ademamix`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.AdEMAMix(w, lr=0.02, alpha=1.0, beta3_warmup=50, alpha_warmup=50)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.1))
    True

    References
    ----------
    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older", 2024.
    """
    lr: Any
    betas: Any
    alpha: Any
    beta3_warmup: Any
    alpha_warmup: Any
    eps: Any
    weight_decay: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999, 0.9999), alpha=2.0, beta3_warmup=None, alpha_warmup=None, eps=1e-08, weight_decay=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class AdaBelief(Optimizer):
    r"""AdaBelief (Zhuang et al. 2020) over a tree of arrays, updated in place.

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        s \leftarrow \beta_2 s + (1-\beta_2)(g - m)^2 + \epsilon_{root} \\
        p &\leftarrow p - \eta\, \frac{m/(1-\beta_1^t)}{\sqrt{s/(1-\beta_2^t)} + \epsilon}

    optax's ``adabelief`` (the default, with decoupled ``weight_decay`` added to
    the update as ``optax.add_decayed_weights`` does); ``convention="pytorch"``
    gives adabelief-pytorch 0.2's update (``eps`` added into :math:`s`, decay
    :math:`p \leftarrow p(1-\eta\lambda)`, and ``rectify=True`` for its default
    rectification, with ``eps_root=0``). See :doc:`/families/adabelief`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.AdaBelief(w, lr=0.05)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients", NeurIPS 2020.
    """
    lr: Any
    betas: Any
    eps: Any
    eps_root: Any
    weight_decay: Any
    decoupled_weight_decay: Any
    maximize: Any
    convention: Any
    rectify: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, weight_decay=0.0, decoupled_weight_decay=True, maximize=False, convention='optax', rectify=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class Adafactor(Optimizer):
    r"""Adafactor (Shazeer & Stern 2018) over a tree of arrays, updated in place: ``torch.optim.Adafactor``.

    .. math::

        \hat v_{rc} = \frac{r_r k_c}{\max(\bar r, \epsilon_1)}, \qquad
        u = \frac{g}{\sqrt{\max(\hat v, \epsilon_1^2)}}, \qquad
        p \leftarrow p(1 - \eta\lambda) - \frac{\min(\eta, t^{-1/2}) \max(\epsilon_2, \operatorname{RMS}(p))}
        {\max(1, \operatorname{RMS}(u)/d)}\, u

    per parameter array, with row and column factors :math:`r, k` of the last two
    dimensions, moving averages of the mean squares with weight :math:`t^{c}`
    (``beta2_decay`` :math:`c`). A 1000 x 2000 matrix keeps 3000 numbers of state.
    Arrays of fewer than two dimensions keep a full second moment. See
    :doc:`/families/adafactor`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([[1.0, -1.0], [0.5, 2.0]])
    >>> opt = numadam.Adafactor(w, lr=0.05)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.
    """
    lr: Any
    beta2_decay: Any
    eps: Any
    d: Any
    weight_decay: Any
    maximize: Any
    def __init__(self, params, lr=0.01, beta2_decay=-0.8, eps=(None, 0.001), d=1.0, weight_decay=0.0, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer 2011) over a tree of arrays, updated in place.

    .. math::

        s \leftarrow s + g^2, \qquad
        p \leftarrow p - \frac{\eta}{1 + (t-1)\delta}\, \frac{g}{\sqrt{s} + \epsilon}

    with :math:`g` the gradient plus :math:`\lambda p`: ``torch.optim.Adagrad``'s
    update. See :doc:`/families/adagrad`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.Adagrad(w, lr=0.5)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization", JMLR 12, 2011.
    """
    lr: Any
    lr_decay: Any
    weight_decay: Any
    initial_accumulator_value: Any
    eps: Any
    maximize: Any
    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015) over a tree of NumPy or CuPy arrays, updated in place.

    Each call ``opt.step(grads)`` takes step :math:`t` (counting from 1) for every
    element of every parameter, complex numbers as pairs of reals:

    .. math::

        g &\leftarrow -g \text{ if maximize}, \qquad
        g \leftarrow g + \lambda p \text{ (L2) or } p \leftarrow p(1-\eta\lambda) \text{ (decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        \hat v \leftarrow \max(\hat v, v) \text{ (AMSGrad)} \\
        p &\leftarrow p - \frac{\eta}{1-\beta_1^t}\, m \Big/
              \Bigl(\frac{\sqrt{\hat v}}{\sqrt{1-\beta_2^t}} + \epsilon\Bigr)

    with :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps`` and :math:`\lambda` = ``weight_decay``. This is
    ``torch.optim.Adam``'s update for the same options: ``eps`` comes after the
    bias-corrected square root, AMSGrad keeps the maximum of the raw ``v``, and
    ``decoupled_weight_decay=True`` gives AdamW (Loshchilov & Hutter 2019).
    ``convention="keras"`` (or ``"sklearn"``) computes Keras 3's (scikit-learn's
    MLP's) update, with :math:`\hat\epsilon` added to :math:`\sqrt{v}` and the
    bias corrections folded into the step size; ``convention="optax"`` computes
    optax's, with ``eps_root`` and AMSGrad on the bias-corrected :math:`v`
    (see :doc:`/algorithm`).

    Parameters
    ----------
    params : array or dict/list/tuple tree of arrays
        float32, float64, complex64 or complex128 NumPy or CuPy arrays, all on one
        backend, writable and not sharing memory; subtrees may be wrapped in
        :class:`numadam.Group` to give them their own hyperparameters. They are
        updated in place; their layout and writability are checked here, once,
        so an array made read-only later is still updated.
    lr, betas, eps, weight_decay, maximize, decoupled_weight_decay, eps_root
        May be changed between steps, e.g. ``opt.lr = 1e-4``, and per group.
    amsgrad : bool
        Keep ``max_exp_avg_sq`` (Reddi et al. 2018). Set at construction, and by
        :meth:`load_state_dict` to the loaded state's value.
    convention : {"torch", "keras", "optax", "sklearn"}
        Whose arithmetic the update follows; set at construction.
    schedule : callable or None
        A learning-rate schedule (see :mod:`numadam.schedules`, or any callable
        ``step_count -> lr``): before each step ``lr`` is set to
        ``schedule(step_count)``, so the ``lr`` argument only matters while no
        step has been taken. A schedule's ``state_dict()`` is saved with the
        optimizer's; for :class:`~numadam.schedules.ReduceOnPlateau` report
        losses with ``opt.schedule.observe(loss)``.

    Every array of a real dtype is updated by one kernel pass per step. Passing
    the same gradient arrays every step (filled in place) also skips re-reading
    their layout.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, 2.0])
    >>> opt = numadam.Adam({"w": w}, lr=0.1)
    >>> for _ in range(100):
    ...     opt.step({"w": 2 * w})          # gradient of sum(w**2)
    >>> bool(np.all(np.abs(w) < 0.1))
    True

    Keras's ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False)``:

    >>> opt = numadam.Adam(w, lr=0.001, betas=(0.9, 0.999), eps=1e-07, amsgrad=False, convention="keras")

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
    """
    lr: Any
    betas: Any
    eps: Any
    weight_decay: Any
    amsgrad: Any
    maximize: Any
    decoupled_weight_decay: Any
    convention: Any
    eps_root: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False, convention='torch', eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class AdamW(Optimizer):
    r"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.

    Before the moment updates, every parameter is multiplied by
    :math:`1 - \eta\lambda`; the gradient itself gets no decay term. This is
    ``torch.optim.AdamW``'s update, and ``Adam(..., decoupled_weight_decay=True)``;
    its default ``weight_decay`` is torch's, 1e-2.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.ones(3, np.float32)
    >>> opt = numadam.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> opt.step([np.zeros(3, np.float32)])   # zero gradient: only the decay acts
    >>> w
    array([0.95, 0.95, 0.95], dtype=float32)
    """
    lr: Any
    betas: Any
    eps: Any
    weight_decay: Any
    amsgrad: Any
    maximize: Any
    decoupled_weight_decay: Any
    convention: Any
    eps_root: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False, maximize=False, convention='torch', eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba 2015) over a tree of arrays, updated in place.

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        u \leftarrow \max(\beta_2 u, |g| + \epsilon), \qquad
        p \leftarrow p - \frac{\eta}{1-\beta_1^t}\,\frac{m}{u}

    ``torch.optim.Adamax``'s update (L2 ``weight_decay``); ``convention="keras"``
    gives Keras 3's (:math:`\epsilon` added to :math:`u`), ``convention="optax"``
    optax's. The maximum propagates NaN. See :doc:`/families/adamax`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.Adamax(w, lr=0.05)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """
    lr: Any
    betas: Any
    eps: Any
    weight_decay: Any
    maximize: Any
    convention: Any
    def __init__(self, params, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, maximize=False, convention='torch', *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class LAMB(Optimizer):
    r"""LAMB (You et al. 2020) over a tree of arrays, updated in place.

    .. math::

        r = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t) + \epsilon_{root}} + \epsilon} + \lambda p, \qquad
        p \leftarrow p - \eta\, \frac{\|p\|}{\|r\|}\, r

    per parameter array, the ratio 1 where either norm is 0: optax's
    ``lamb``. ``convention="apex"`` gives apex's ``FusedLAMB`` (no trust ratio
    where ``weight_decay`` is 0; its gradient pre-clip is ``clip_global_norm``).
    Give biases and norm layers their own :class:`numadam.Group` with
    ``weight_decay=0.0``. See :doc:`/families/lamb`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0, 0.5])
    >>> opt = numadam.LAMB(w, lr=0.02)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.1))
    True

    References
    ----------
    You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.
    """
    lr: Any
    betas: Any
    eps: Any
    eps_root: Any
    weight_decay: Any
    convention: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-06, eps_root=0.0, weight_decay=0.0, convention='optax', *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class Lion(Optimizer):
    r"""Lion (Chen et al. 2023) over a tree of arrays, updated in place.

    .. math::

        p \leftarrow p - \eta\,\bigl(\operatorname{sign}(\beta_1 m + (1-\beta_1) g) + \lambda p\bigr),
        \qquad m \leftarrow \beta_2 m + (1-\beta_2) g

    The paper's Algorithm 2 and optax's ``lion`` (its defaults too:
    ``betas=(0.9, 0.99)``, ``weight_decay=1e-3``). See :doc:`/families/lion`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.Lion(w, lr=0.01, weight_decay=0.0)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    lr: Any
    betas: Any
    weight_decay: Any
    maximize: Any
    def __init__(self, params, lr=0.0001, betas=(0.9, 0.99), weight_decay=0.001, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class NAdam(Optimizer):
    r"""NAdam (Dozat 2016): Adam with Nesterov momentum, over a tree of arrays, in place.

    .. math::

        \mu_t &= \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \qquad
        m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        p &\leftarrow p - \eta\,\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i}\,\frac{g}{d}
               - \eta\,\frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\,\frac{m}{d},
        \qquad d = \sqrt{v/(1-\beta_2^t)} + \epsilon

    with :math:`\psi` = ``momentum_decay``: ``torch.optim.NAdam``'s update, L2 or
    (``decoupled_weight_decay``) decoupled decay included. ``convention="keras"``
    gives Keras 3's (:math:`0.96^t`, no :math:`\psi`), ``convention="optax"``
    optax's ``nadam`` (constant :math:`\beta_1`, ``eps_root``). The running
    product of the :math:`\mu_i` is kept on the host and saved in ``state_dict``
    (``"carry"``). Options as :class:`numadam.Adam`'s; see :doc:`/families/nadam`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.NAdam(w, lr=0.1)
    >>> for _ in range(200):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """
    lr: Any
    betas: Any
    eps: Any
    weight_decay: Any
    momentum_decay: Any
    decoupled_weight_decay: Any
    maximize: Any
    convention: Any
    eps_root: Any
    def __init__(self, params, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, momentum_decay=0.004, decoupled_weight_decay=False, maximize=False, convention='torch', eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class RAdam(Optimizer):
    r"""RAdam (Liu et al. 2020) over a tree of arrays, updated in place.

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
        \qquad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t} \\
        p &\leftarrow p - \eta\,\frac{m}{1-\beta_1^t}\,\frac{\sqrt{1-\beta_2^t}}{\sqrt v + \epsilon}\, r_t
        \quad (\rho_t > 5), \qquad p \leftarrow p - \eta\,\frac{m}{1-\beta_1^t} \quad \text{(otherwise)}

    ``torch.optim.RAdam``'s update, L2 or decoupled decay included;
    ``convention="optax"`` gives optax's ``radam`` (:math:`\rho_t \ge`
    ``threshold``, ``eps_root``). See :doc:`/families/radam`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.RAdam(w, lr=0.1)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """
    lr: Any
    betas: Any
    eps: Any
    weight_decay: Any
    decoupled_weight_decay: Any
    maximize: Any
    convention: Any
    threshold: Any
    eps_root: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='torch', threshold=5.0, eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class RMSprop(Optimizer):
    r"""RMSprop (Tieleman & Hinton 2012) over a tree of arrays, updated in place.

    .. math::

        v \leftarrow \alpha v + (1 - \alpha) g^2, \qquad p \leftarrow p - \eta\, \frac{g}{\sqrt{v} + \epsilon}

    with :math:`g` the gradient plus :math:`\lambda p`, ``centered`` dividing by
    the root of the running variance and ``momentum`` accumulating the divided
    gradient: ``torch.optim.RMSprop``'s update. See :doc:`/families/rmsprop`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.RMSprop(w, lr=0.01)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning, 2012.
    Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013 (centered).
    """
    lr: Any
    alpha: Any
    eps: Any
    weight_decay: Any
    momentum: Any
    centered: Any
    maximize: Any
    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0.0, momentum=0.0, centered=False, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class SGD(Optimizer):
    r"""Stochastic gradient descent, with momentum, over a tree of arrays, updated in place.

    .. math::

        b \leftarrow \mu b + (1 - \tau)(g + \lambda p), \qquad
        p \leftarrow p - \eta\, b \quad \text{(Nesterov: } p \leftarrow p - \eta\,(g + \lambda p + \mu b)\text{)}

    the momentum buffer :math:`b` starting as the first gradient: ``torch.optim.SGD``'s
    update. Without momentum no state is kept. See :doc:`/families/sgd`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.SGD(w, lr=0.1, momentum=0.9)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Statist. 22, 1951.
    Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput. Math. Math. Phys. 4, 1964.
    Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
    """
    lr: Any
    momentum: Any
    dampening: Any
    weight_decay: Any
    nesterov: Any
    maximize: Any
    def __init__(self, params, lr=0.001, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class ScheduleFreeAdamW(Optimizer):
    r"""Schedule-free AdamW (Defazio et al. 2024) over a tree of arrays, updated in place.

    No learning-rate schedule is needed: the parameters hold the point
    :math:`y` where gradients are taken, the state holds :math:`z`, and
    :meth:`eval_params` returns the averaged iterate :math:`x` to evaluate or
    deploy, without disturbing training (no train/eval mode switching).

    .. math::

        \hat g = \frac{g}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda y, \qquad
        y \leftarrow (1-c_t) y + c_t z + \eta_t(\beta_1(1-c_t) - 1)\,\hat g, \qquad
        z \leftarrow z - \eta_t \hat g

    facebookresearch/schedule_free's ``AdamWScheduleFree`` (its defaults too,
    ``lr=0.0025``); the running learning-rate maximum and weight sum that give
    :math:`c_t` are kept on the host and saved in ``state_dict``. See
    :doc:`/families/schedule_free_adamw`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.ScheduleFreeAdamW(w, lr=0.05, warmup_steps=10)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> x = opt.eval_params()          # the averaged iterate; w itself is y
    >>> bool(np.all(np.abs(x) < 0.1))
    True

    References
    ----------
    Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS 2024.
    """
    def eval_params(self): ...
    lr: Any
    betas: Any
    eps: Any
    weight_decay: Any
    warmup_steps: Any
    r: Any
    weight_lr_power: Any
    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class SparseAdam(Optimizer):
    r"""SparseAdam over a tree of arrays, updated in place: Adam's moments and step on the
    rows a :class:`numadam.Rows` gradient lists, and nothing else.

    .. math::

        m \leftarrow m + (1-\beta_1)(g - m), \quad v \leftarrow v + (1-\beta_2)(g^2 - v), \quad
        p \leftarrow p - \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m}{\sqrt{v} + \epsilon}

    on the listed rows, with :math:`t` the optimizer's step count:
    ``torch.optim.SparseAdam``'s update. Gradients may be :class:`numadam.Rows`
    (torch parameters: sparse COO ``.grad``, as ``nn.Embedding(sparse=True)``
    gives) or dense arrays (every row listed). See :doc:`/families/sparse_adam`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> table = np.ones((1000, 4), np.float32)       # an embedding table
    >>> opt = numadam.SparseAdam(table, lr=0.1)
    >>> opt.step(numadam.Rows(np.array([3, 7]), np.ones((2, 4), np.float32)))
    >>> np.flatnonzero((table != 1).any(axis=1))      # only rows 3 and 7 moved, each by about lr
    array([3, 7])
    >>> bool(np.allclose(table[[3, 7]], 0.9))
    True

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    lr: Any
    betas: Any
    eps: Any
    maximize: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

class Yogi(Optimizer):
    r"""Yogi (Zaheer et al. 2018) over a tree of arrays, updated in place.

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        v \leftarrow v - (1-\beta_2)\,\operatorname{sign}(v - g^2)\, g^2 \\
        p &\leftarrow p - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}

    optax's ``yogi``: both moments start at ``initial_accumulator_value``.
    See :doc:`/families/yogi`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, -1.0])
    >>> opt = numadam.Yogi(w, lr=0.05)
    >>> for _ in range(300):
    ...     opt.step(2 * w)
    >>> bool(np.all(np.abs(w) < 0.05))
    True

    References
    ----------
    Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    lr: Any
    betas: Any
    eps: Any
    eps_root: Any
    initial_accumulator_value: Any
    weight_decay: Any
    maximize: Any
    def __init__(self, params, lr=0.01, betas=(0.9, 0.999), eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06, weight_decay=0.0, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, complex_mode='pairs') -> None: ...

def adabelief_step(param, grad, exp_avg, exp_avg_var, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, weight_decay=0.0, decoupled_weight_decay=True, maximize=False, convention='optax', rectify=False) -> Any:
    r"""Take AdaBelief step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.AdaBelief`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> m, s = np.zeros(2), np.zeros(2)
    >>> numadam.adabelief_step(p, g, m, s, step=1, lr=0.1)
    >>> bool(p[0] < 1.0 and p[1] > -2.0)
    True

    References
    ----------
    Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients", NeurIPS 2020.
    """

def adafactor_step(param, grad, row_var, col_var, *, step, lr=0.01, beta2_decay=-0.8, eps=(None, 0.001), d=1.0, weight_decay=0.0, maximize=False) -> Any:
    r"""Take Adafactor step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Adafactor`, on single arrays.

    Take Adafactor step ``step`` on ``param`` and its factors, in place.

    The update of :class:`numadam.Adafactor` on one array: ``row_var`` and ``col_var``
    have the shapes of ``numadam.Adafactor(param).state_dict()``'s (for an array of
    two or more dimensions, its last two reduced to 1 in turn; otherwise ``row_var``
    has the array's shape and ``col_var`` is one 1).

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p = np.array([[3.0, 4.0], [1.0, 2.0]]); g = np.array([[1.0, -1.0], [0.5, 0.5]])
    >>> row_var, col_var = np.zeros((2, 1)), np.zeros((1, 2))
    >>> numadam.adafactor_step(p, g, row_var, col_var, step=1, lr=0.1)
    >>> row_var.ravel()     # each row's mean square
    array([1.  , 0.25])

    References
    ----------
    Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.
    """

def adagrad_step(param, grad, sum, *, step, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False) -> Any:
    r"""Take Adagrad step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Adagrad`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g, s = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
    >>> numadam.adagrad_step(p, g, s, step=1, lr=0.1)
    >>> np.round(p, 6)            # the first step moves each element by lr (g / |g|)
    array([ 0.9, -1.9])

    References
    ----------
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization", JMLR 12, 2011.
    """

def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False, convention='torch', eps_root=0.0, max_exp_avg_sq=None) -> Any:
    r"""Take Adam step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Adam`, on single arrays.

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
    correction: ``convention="keras"``), and AMSGrad keeps the maximum of the raw
    ``v`` (Reddi et al. 2018 as torch implements it). Arithmetic runs in the array's
    real dtype; the scalars are derived in float64 and rounded once. The options
    are :class:`numadam.Adam`'s.

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

def adamax_step(param, grad, exp_avg, exp_inf, *, step, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, maximize=False, convention='torch') -> Any:
    r"""Take Adamax step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Adamax`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> m, u = np.zeros(2), np.zeros(2)
    >>> numadam.adamax_step(p, g, m, u, step=1, lr=0.1)
    >>> np.round(p, 6)
    array([ 0.9, -1.9])

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """

def ademamix_step(param, grad, exp_avg_fast, exp_avg_slow, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999, 0.9999), alpha=2.0, beta3_warmup=None, alpha_warmup=None, eps=1e-08, weight_decay=0.0) -> Any:
    r"""Take AdEMAMix step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.AdEMAMix`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> fast, slow, v = np.zeros(2), np.zeros(2), np.zeros(2)
    >>> numadam.ademamix_step(p, g, fast, slow, v, step=1, lr=0.1)
    >>> bool(p[0] < 1.0 and p[1] > -2.0)
    True

    References
    ----------
    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older", 2024.
    """

def adopt_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.9999), eps=1e-06, clip_lambda=0.25, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='official') -> Any:
    r"""Take ADOPT step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.ADOPT`, on single arrays.

    Take ADOPT step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.ADOPT`, on single arrays; step 1 only sets the second moment.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> m, v = np.zeros(2), np.zeros(2)
    >>> numadam.adopt_step(p, g, m, v, step=1, lr=0.1)
    >>> p, v
    (array([ 1., -2.]), array([0.25, 0.25]))

    References
    ----------
    Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta_2 with the Optimal Rate", NeurIPS 2024.
    """

def lamb_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-06, eps_root=0.0, weight_decay=0.0, convention='optax') -> Any:
    r"""Take LAMB step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.LAMB`, on single arrays.

    Take LAMB step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.LAMB` on one array (one trust ratio: its own),
    in its two passes.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([3.0, 4.0]), np.array([1.0, -1.0])
    >>> m, v = np.zeros(2), np.zeros(2)
    >>> numadam.lamb_step(p, g, m, v, step=1, lr=0.1)
    >>> np.round(p, 6)     # |p| = 5 and |r| = sqrt(2): each element moves by 0.1 * 5 / sqrt(2)
    array([2.646447, 4.353553])

    References
    ----------
    You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.
    """

def lion_step(param, grad, exp_avg, *, step, lr=0.0001, betas=(0.9, 0.99), weight_decay=0.001, maximize=False) -> Any:
    r"""Take Lion step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Lion`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g, m = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
    >>> numadam.lion_step(p, g, m, step=1, lr=0.1, weight_decay=0.0)
    >>> p
    array([ 0.9, -1.9])

    References
    ----------
    Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """

def nadam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, momentum_decay=0.004, decoupled_weight_decay=False, maximize=False, convention='torch', eps_root=0.0, carry=None) -> Any:
    r"""Take NAdam step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.NAdam`, on single arrays.

    ``carry`` holds the
    running product of the momentum schedule, ``(momentum_product,)``: pass
    ``None`` on the first step and what the previous call returned after it.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    >>> m, v = np.zeros(2), np.zeros(2)
    >>> carry = numadam.nadam_step(p, g, m, v, step=1, lr=0.1)
    >>> carry = numadam.nadam_step(p, g, m, v, step=2, lr=0.1, carry=carry)
    >>> bool(p[0] < 1.0 and p[1] < -2.0)
    True

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """

def radam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='torch', threshold=5.0, eps_root=0.0) -> Any:
    r"""Take RAdam step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.RAdam`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    >>> m, v = np.zeros(2), np.zeros(2)
    >>> numadam.radam_step(p, g, m, v, step=1, lr=0.1)   # early steps: momentum only
    >>> p
    array([ 0.95, -2.05])

    References
    ----------
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """

def rmsprop_step(param, grad, square_avg, *, step, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0.0, momentum=0.0, centered=False, maximize=False, grad_avg=None, momentum_buffer=None) -> Any:
    r"""Take RMSprop step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.RMSprop`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g, v = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
    >>> numadam.rmsprop_step(p, g, v, step=1, lr=0.01)
    >>> np.round(p, 4)            # the first step divides by sqrt(1 - alpha) |g|: 10 lr
    array([ 0.9, -1.9])

    References
    ----------
    Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning, 2012.
    Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013 (centered).
    """

def schedule_free_adamw_step(param, grad, z, exp_avg_sq, *, step, lr=0.0025, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0, carry=None) -> Any:
    r"""Take ScheduleFreeAdamW step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.ScheduleFreeAdamW`, on single arrays.

    ``param`` is :math:`y`; start ``z`` as a copy of it. ``carry`` holds
    ``(lr_max, weight_sum)``: pass ``None`` on the first step and what the
    previous call returned after it.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> y, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> z, v = y.copy(), np.zeros(2)
    >>> carry = numadam.schedule_free_adamw_step(y, g, z, v, step=1, lr=0.1)
    >>> carry
    (0.1, 0.010000000000000002)

    References
    ----------
    Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS 2024.
    """

def sgd_step(param, grad, *, step, lr=0.001, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, momentum_buffer=None) -> Any:
    r"""Take SGD step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.SGD`, on single arrays.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> numadam.sgd_step(p, g, step=1, lr=0.1)
    >>> p
    array([ 0.95, -1.95])

    References
    ----------
    Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Statist. 22, 1951.
    Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput. Math. Math. Phys. 4, 1964.
    Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
    """

def sparse_adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, maximize=False) -> Any:
    r"""Take SparseAdam step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.SparseAdam`, on single arrays.

    ``grad`` may be a :class:`numadam.Rows`: only its rows of ``param`` and of the state
    change.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p = np.zeros((3, 2))
    >>> m, v = np.zeros((3, 2)), np.zeros((3, 2))
    >>> numadam.sparse_adam_step(p, numadam.Rows(np.array([1]), np.array([[1.0, -1.0]])), m, v, step=1, lr=0.1)
    >>> np.round(p, 6)        # the first step moves each listed element by lr against its gradient's sign
    array([[ 0. ,  0. ],
           [-0.1,  0.1],
           [ 0. ,  0. ]])

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

def yogi_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.01, betas=(0.9, 0.999), eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06, weight_decay=0.0, maximize=False) -> Any:
    r"""Take Yogi step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Yogi`, on single arrays.

    Take Yogi step ``step`` on ``param`` and its state, in place.

    The update of :class:`numadam.Yogi`, on single arrays; start the state at
    ``initial_accumulator_value`` (1e-6).

    Examples
    --------
    >>> import numpy as np, numadam
    >>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
    >>> m, v = np.full(2, 1e-6), np.full(2, 1e-6)
    >>> numadam.yogi_step(p, g, m, v, step=1, lr=0.1)
    >>> bool(p[0] < 1.0 and p[1] > -2.0)
    True

    References
    ----------
    Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
