"""Step numbers counted on the GPU, so that ``nonfinite="skip"`` never makes the host wait.

Whether a step is skipped is known only once the pre-pass has run on the
GPU; a host that waited for it would stall the stream every step. Instead,
as torch's capturable optimizers and apex's ``noop_flag`` do, the decision
stays on the device:

1. the pre-pass kernel sums the gradients and counts non-finite numbers;
2. a one-block kernel sets a *flag* in a device *control block* (and writes
   the global-norm clipping scale into the scalar rows);
3. the update kernel returns at once where the flag is set; otherwise it reads
   the scalars of the step number the control block holds;
4. a one-thread kernel counts the step as applied or skipped.

The host does not know the device's step number, only a range: the updates
known applied (from the last copy of the control block it has received) plus
at most one per call since. It uploads the scalars of every step number in
that range (a *window*), and copies the control block back without waiting,
after each call; when a copy arrives, the range shrinks again. Only if more
than :data:`WINDOW` calls pass before a copy arrives does the host wait for
one. Reading ``step_count``, ``skipped_steps`` or the state waits for the
exact counts.
"""

from ..targets.control import APPLIED, SKIPPED

#: The most step numbers the host uploads scalars for in one call.
WINDOW = 8


class DeviceSteps:
    """The host's view of a device control block: what it knows, and what it may be."""

    def __init__(self, backend, applied, skipped):
        self.backend = backend
        self.control = backend.control_block(applied, skipped)
        self.known_applied, self.known_skipped = applied, skipped
        self.calls = 0        # calls made since the control block was created
        self.known_calls = 0  # calls the known counts include
        self._copy = None     # (calls, done, values) of the copy under way

    def absorb(self, wait):
        if self._copy is None:
            return
        calls, done, values = self._copy
        if wait or done():
            counts = values()
            self.known_applied, self.known_skipped = int(counts[APPLIED]), int(counts[SKIPPED])
            self.known_calls = calls
            self._copy = None

    def candidates(self):
        """The step numbers the next call may take: each step since the last known count may have been skipped."""
        self.absorb(wait=False)
        if self.calls - self.known_calls + 1 > WINDOW:
            self.synchronize()
        first = self.known_applied + 1
        return range(first, first + self.calls - self.known_calls + 1)

    def after_call(self):
        """Count a call and start copying the control block back, if no copy is under way."""
        self.calls += 1
        if self._copy is None:
            self._copy = (self.calls, *self.backend.read_control(self.control))

    def synchronize(self):
        """Wait for the exact counts; return ``(applied, skipped)``."""
        self.absorb(wait=True)
        if self.known_calls != self.calls:
            self._copy = (self.calls, *self.backend.read_control(self.control))
            self.absorb(wait=True)
        return self.known_applied, self.known_skipped
