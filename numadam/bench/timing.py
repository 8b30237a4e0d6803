"""Interleaved timing: every contender sampled once per round, medians over rounds.

Machine noise (other processes, frequency changes) drifts over seconds; taking
one sample of every contender per round, in a fresh random order each round,
spreads it over all of them alike, so their ratios hold even when the absolute
times wander. Each sample times a batch of steps long enough for the clock
(``min_batch_seconds``), with the garbage collector off, and divides.

Examples
--------
>>> class Sleeper:
...     def step(self):
...         pass
>>> medians = interleaved_medians([Sleeper(), Sleeper()], rounds=3, min_batch_seconds=1e-4)
>>> len(medians), all(t > 0 for t in medians)
(2, True)
"""

import gc
import random
import statistics
import time


def _time_batch(contender, number):
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            contender.step()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def steps_per_batch(contender, min_batch_seconds):
    """How many steps make a batch of at least ``min_batch_seconds`` (at least 1)."""
    number = 1
    while True:
        elapsed = _time_batch(contender, number)
        if elapsed >= min_batch_seconds:
            return number
        number = max(2 * number, int(1.2 * number * min_batch_seconds / max(elapsed, 1e-9)))


def interleaved_medians(contenders, rounds, min_batch_seconds, seed=0):
    """The median seconds per step of each contender, in the order given (a contender whose
    ``step`` takes ``steps_per_call`` steps is timed per step)."""
    numbers = [steps_per_batch(contender, min_batch_seconds) for contender in contenders]

    def sampler(contender, number):
        steps = number * getattr(contender, "steps_per_call", 1)
        return lambda: _time_batch(contender, number) / steps

    return interleaved_rounds([sampler(c, n) for c, n in zip(contenders, numbers)], rounds, seed)


def interleaved_rounds(samplers, rounds, seed=0, progress=None):
    """The median of each of ``samplers`` (functions that take one sample), in the order given, over
    ``rounds`` rounds, each taking one sample of every sampler in a fresh random order;
    ``progress(text)`` after each round."""
    samples = [[] for _ in samplers]
    order = list(range(len(samplers)))
    shuffle = random.Random(seed).shuffle
    for round_ in range(rounds):
        shuffle(order)
        for k in order:
            samples[k].append(samplers[k]())
        if progress is not None:
            progress(f"round {round_ + 1} of {rounds}")
    return [statistics.median(times) for times in samples]
