"""Interleaved timing on a GPU: device time from CUDA events, host time from the wall clock.

A GPU step returns before the GPU has run it, so one step can be timed three
ways, and the bench reports all three:

- **device time per step**: CUDA events recorded before and after a batch of
  steps queued back to back, over the batch. This is the throughput of a
  training loop that never waits; when the host cannot launch steps as fast
  as the GPU runs them, the GPU idles between them and this is the host's
  launch rate instead.
- **wall, queued**: the host clock over the same batch, up to one
  synchronization at its end, per step.
- **wall, synchronized**: the host clock around one step followed by a
  synchronization of the device: the latency of a step the caller waits for
  (launch, run, and the round trip of the wait).

As on the CPU (:mod:`numadam.bench.timing`), every contender is sampled once
per round, in a fresh random order each round, and the medians over rounds
are reported. The device is synchronized as a whole, so work that torch queues
on its own stream is waited for too.
"""

import gc
import random
import statistics
import time


class CudaClock:
    """The CUDA calls the timer needs, through CuPy: events and a device-wide synchronization."""

    def __init__(self):
        import cupy

        self._cupy = cupy
        self._start = cupy.cuda.Event()
        self._end = cupy.cuda.Event()

    def synchronize(self):
        self._cupy.cuda.runtime.deviceSynchronize()

    def start(self):
        self._start.record()

    def stop(self):
        """Seconds on the GPU's clock since :meth:`start`, after waiting for the GPU to get there."""
        self._end.record()
        self._end.synchronize()
        return self._cupy.cuda.get_elapsed_time(self._start, self._end) * 1e-3


def _queued_batch(contender, number, clock):
    """``(device seconds, wall seconds)`` per step over ``number`` steps queued back to back."""
    clock.synchronize()
    begin = time.perf_counter()
    clock.start()
    for _ in range(number):
        contender.step()
    device = clock.stop()
    clock.synchronize()
    wall = time.perf_counter() - begin
    return device / number, wall / number


def _synchronized_steps(contender, number, clock):
    """The median wall seconds of ``number`` steps, each waited for."""
    samples = []
    for _ in range(number):
        begin = time.perf_counter()
        contender.step()
        clock.synchronize()
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


def _without_gc(function, *args):
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return function(*args)
    finally:
        if gc_was_enabled:
            gc.enable()


def queued_steps_per_batch(contender, min_batch_seconds, clock):
    """How many queued steps make a batch of at least ``min_batch_seconds`` of wall time (at least 1)."""
    number = 1
    while True:
        _, wall = _without_gc(_queued_batch, contender, number, clock)
        if wall * number >= min_batch_seconds:
            return number
        number = max(2 * number, int(1.2 * min_batch_seconds / max(wall, 1e-9)))


def cuda_interleaved_medians(contenders, rounds, min_batch_seconds, seed=0, clock=None):
    """``(device seconds, wall queued, wall synchronized)`` per step of each contender, medians over rounds."""
    clock = clock or CudaClock()
    numbers = [queued_steps_per_batch(contender, min_batch_seconds, clock) for contender in contenders]
    samples = [([], [], []) for _ in contenders]
    order = list(range(len(contenders)))
    shuffle = random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        for k in order:
            device, wall = _without_gc(_queued_batch, contenders[k], numbers[k], clock)
            synchronized = _without_gc(_synchronized_steps, contenders[k], numbers[k], clock)
            for series, value in zip(samples[k], (device, wall, synchronized)):
                series.append(value)
    return [tuple(statistics.median(series) for series in triple) for triple in samples]
