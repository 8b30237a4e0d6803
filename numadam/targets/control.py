"""The control block of device-counted steps (``nonfinite="skip"`` on CUDA): int64 slots.

``APPLIED`` counts the updates taken, ``SKIPPED`` the steps skipped, and the
pre-pass sets ``FLAG`` when the current step must be skipped. See
:mod:`numadam.engine.device_steps`.
"""

APPLIED, SKIPPED, FLAG = 0, 1, 2
CONTROL_SIZE = 4
