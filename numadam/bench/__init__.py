"""``numadam bench``: numadam side by side with the memory roofline, NumPy, torch and optax.

One run times every implementation of every case interleaved (one sample of
each per round, medians over rounds), after checking that each one's update
agrees with numadam's, and reports time per step, effective bandwidth, and
ratios to the same-traffic kernel and to numadam. Run it as
``python -m numadam bench --output bench.png``; see ``--help`` for the options.
"""

from .command import add_arguments, run

__all__ = ["add_arguments", "run"]
