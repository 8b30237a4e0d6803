"""The solver behind :func:`numadam.minimize`: its Python loop (:mod:`.minimize`), its stop rules
(:mod:`.rules`), and the whole solve compiled into one Numba function for Numba objectives
(:mod:`.compiled`)."""
