"""Muon: momentum orthogonalized by Newton–Schulz (:class:`numadam.Muon`).

- :mod:`.elementwise`: the momentum pass and the decay-and-update pass, rules the engine compiles;
- :mod:`.newton_schulz`: the iteration, on a stack of same-shape matrices, through the array library's BLAS;
- :mod:`.optimizer`: the class: matrices, their stacks, the auxiliary AdamW, the state.
"""

from .optimizer import Muon

__all__ = ["Muon"]
