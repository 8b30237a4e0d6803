r"""A slow, obviously correct NumPy Prodigy (Mishchenko & Defazio 2023), as prodigyopt 1.1.2 computes it.

Prodigy is Adam whose step size :math:`d` is estimated from the run itself.
With :math:`\eta` the largest group's ``lr``, :math:`d_0` a group's ``d0``,
:math:`\hat\beta = \sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})` with
``use_bias_correction`` (else 1) and :math:`\delta = d\,\eta\,\hat\beta`, one
step over every parameter :math:`p` of every group (gradient :math:`g`, plus
:math:`\lambda p` with coupled decay; :math:`\tilde x` is ``x`` flattened in C
order and sliced every ``slice_p``-th element):

.. math::

    N &\leftarrow \beta_3 N + \sum_p \frac{d}{d_0}\,\delta\,
        \langle \tilde g, \tilde p_0 - \tilde p \rangle \\
    m &\leftarrow \beta_1 m + d (1-\beta_1) g, \qquad
    v \leftarrow \beta_2 v + d^2 (1-\beta_2) g^2 \\
    s &\leftarrow \beta_3 s + \frac{d}{d_0}\,\delta\,\tilde g
        \quad (\tfrac{d}{d_0}\,d\,\tilde g \text{ with safeguard\_warmup}), \qquad
    D = \sum_p \|s\|_1

then, unless :math:`D = 0` (the step ends there: the moments and
:math:`s` changed, :math:`N`, :math:`d` and :math:`k` did not),

.. math::

    \hat d = c\,N / D, \quad d \leftarrow \max(d, \hat d) \text{ if } d = d_0, \quad
    d_{max} \leftarrow \max(d_{max}, \hat d), \quad d \leftarrow \min(d_{max}, d \cdot r)

and every parameter moves with the new :math:`d` in the denominator and the
old :math:`\delta`: :math:`p \leftarrow p - \lambda\delta p` (decoupled decay),
:math:`p \leftarrow p - \delta\, m / (\sqrt v + d\,\epsilon)`, or with
:math:`\beta_1 = 0` (no :math:`m`) :math:`p \leftarrow p - \delta\, d\, g /
(\sqrt v + d\,\epsilon)`.

The two sums add the arrays' products in float64 (prodigyopt's ``torch.dot``
and ``sum`` add in the arrays' dtype: the same in float64). prodigyopt's
quirks, kept: :math:`d`, :math:`d_{max}`, :math:`N`, :math:`k`,
the betas, ``d_coef``, ``growth_rate``, ``decouple`` and
``use_bias_correction`` are read from the first group and written to every
group; ``d0``, ``eps``, ``weight_decay``, ``safeguard_warmup`` and ``slice_p``
are each group's; the test :math:`d = d_0` takes the last group's
:math:`d_0`; a group whose ``lr`` is 0 adds nothing to the sums and keeps
its moments, but still takes the decay and the step; any other ``lr`` than
the largest is refused; :math:`d` starts at the constructor's :math:`d_0`, not
a group's. :math:`p_0` is the 0-d zero for a parameter that is
all zeros at its first step.
"""

import math

import numpy as np

#: prodigyopt's defaults (its ``fsdp_in_use`` has no meaning outside torch.distributed).
DEFAULTS = {"lr": 1.0, "betas": (0.9, 0.999), "beta3": None, "eps": 1e-8, "weight_decay": 0.0, "decouple": True,
            "use_bias_correction": False, "safeguard_warmup": False, "d0": 1e-6, "d_coef": 1.0,
            "growth_rate": math.inf, "slice_p": 1}


def sliced(x, slice_p):
    """``x`` flattened in C order, every ``slice_p``-th element."""
    return np.ravel(x)[::slice_p]


class ProdigyReference:
    """Prodigy over ``groups``: a list of ``(params, options)``, each ``params`` a list of arrays
    (stepped in place) and ``options`` overriding, for that group, ``defaults`` (the constructor's
    keywords), which override :data:`DEFAULTS`. As in prodigyopt, :math:`d` and :math:`d_{max}`
    start at the constructor's ``d0``, whatever a group's own ``d0``."""

    def __init__(self, groups, defaults=None):
        defaults = {**DEFAULTS, **(defaults or {})}
        self.groups = []
        for params, options in groups:
            h = {**defaults, **options}
            self.groups.append({"params": params, "h": h, "d": defaults["d0"], "d_max": defaults["d0"],
                                "d_numerator": 0.0, "d_denom": 0.0, "d_hat": None, "k": 0})
        self.state = [[None] * len(group["params"]) for group in self.groups]

    def _start(self, param, h):
        beta1 = h["betas"][0]
        state = {"s": np.zeros_like(sliced(param, h["slice_p"])),
                 "p0": sliced(param, h["slice_p"]).copy() if np.any(param) else np.zeros((), param.dtype),
                 "exp_avg_sq": np.zeros_like(param)}
        if beta1 > 0:
            state["exp_avg"] = np.zeros_like(param)
        return state

    def step(self, grads):
        """One step; ``grads`` is a list (per group) of lists of gradient arrays (not written)."""
        first = self.groups[0]
        h0 = first["h"]
        beta1, beta2 = h0["betas"]
        beta3 = h0["beta3"] if h0["beta3"] is not None else math.sqrt(beta2)
        k, d, d_max = first["k"], first["d"], first["d_max"]
        lr = max(group["h"]["lr"] for group in self.groups)
        bias_correction = (math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1))
                           if h0["use_bias_correction"] else 1.0)
        dlr = d * lr * bias_correction
        numerator = first["d_numerator"] * beta3
        delta_numerator, d_denom = 0.0, 0.0
        used = []  # per group, per parameter: the gradient the step reads (coupled decay added)
        for group, states, group_grads in zip(self.groups, self.state, grads):
            h = group["h"]
            if h["lr"] not in (lr, 0.0):
                raise ValueError("every group's lr is the largest one or 0")
            used.append([])
            for i, (p, g) in enumerate(zip(group["params"], group_grads)):
                if h["weight_decay"] != 0 and not h0["decouple"]:
                    g = g + h["weight_decay"] * p
                used[-1].append(g)
                if states[i] is None:
                    states[i] = self._start(p, h)
                state = states[i]
                if h["lr"] > 0.0:
                    g_sliced = sliced(g, h["slice_p"])
                    products = g_sliced * (state["p0"] - sliced(p, h["slice_p"]))  # in the arrays' dtype
                    delta_numerator += (d / h["d0"]) * dlr * float(np.sum(products, dtype=np.float64))
                    if beta1 > 0:
                        state["exp_avg"] = beta1 * state["exp_avg"] + d * (1 - beta1) * g
                    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + d * d * (1 - beta2) * (g * g)
                    weight = (d / h["d0"]) * (d if h["safeguard_warmup"] else dlr)
                    state["s"] = beta3 * state["s"] + weight * g_sliced
                    d_denom += float(np.sum(np.abs(state["s"]), dtype=np.float64))
        first["dlr"], first["moved"] = dlr, 0.0
        if d_denom == 0:
            return
        first["moved"] = 1.0
        numerator = numerator + delta_numerator
        d_hat = h0["d_coef"] * numerator / d_denom
        if d == self.groups[-1]["h"]["d0"]:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * h0["growth_rate"])
        for group, states, group_grads in zip(self.groups, self.state, used):
            group.update(d_numerator=numerator, d_denom=d_denom, d=d, d_max=d_max, d_hat=d_hat)
            h = group["h"]
            for p, g, state in zip(group["params"], group_grads, states):
                denominator = np.sqrt(state["exp_avg_sq"]) + d * h["eps"]
                if h["weight_decay"] != 0 and h0["decouple"]:
                    p += (-h["weight_decay"] * dlr) * p
                if beta1 > 0:
                    p += -dlr * (state["exp_avg"] / denominator)
                else:
                    p += (-dlr * d) * (g / denominator)
            group["k"] += 1


#: numadam's carry of Prodigy (numadam.families.prodigy.PRODIGY_CARRY) before the first step.
START_CARRY = (-1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def tree_step(params, grads, states, carry, h):
    """One step of one group (hyperparameters ``h``, a dict) over the real arrays ``params`` (not
    written), with numadam's layout of the state (``states``: per parameter a dict of arrays shaped
    like it, ``p0`` a full copy) and of the carry: returns the new parameters, states and carry."""
    options = {name: h[name] for name in DEFAULTS if name in h}
    params = [np.array(p, copy=True) for p in params]
    reference = ProdigyReference([(params, {})], options)
    group = reference.groups[0]
    d0 = group["h"]["d0"]
    group.update(d=d0 if carry[0] < 0 else carry[0], d_max=d0 if carry[1] < 0 else carry[1],
                 d_numerator=carry[2], d_denom=carry[3], k=int(carry[4]))
    reference.state[0] = [{name: (np.ravel(value).copy() if name in ("s", "p0") else value.copy())
                           for name, value in state.items()} for state in states]
    reference.step([grads])
    states = [{name: value.reshape(p.shape) if name in ("s", "p0") else value for name, value in state.items()}
              for state, p in zip(reference.state[0], params)]
    return params, states, (group["d"] if group["k"] or group["moved"] else carry[0],
                            group["d_max"] if group["k"] or group["moved"] else carry[1],
                            group["d_numerator"], group["d_denom"], float(group["k"]), group["dlr"], group["moved"])
