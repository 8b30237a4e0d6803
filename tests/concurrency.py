"""Test code run on several threads at once, interleaved as finely as the interpreter allows."""

import contextlib
import sys
import threading


@contextlib.contextmanager
def frequent_thread_switches():
    """Switch threads every microsecond inside the block (Python's default is every 5 ms), so that a
    thread is interrupted between any two steps of another's."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def run_together(targets, timeout=120):
    """Call each of ``targets`` (callables) on a thread of its own, all at once with
    :func:`frequent_thread_switches`, and wait for them; the errors they raised (a test asserts
    there are none)."""
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as error:  # reported to the caller
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    with frequent_thread_switches():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), f"a thread did not finish within {timeout} s"
    return errors
