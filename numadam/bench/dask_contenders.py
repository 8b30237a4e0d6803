"""``numadam bench --cases dask``: numadam over Dask arrays on a local cluster, beside the same step in
one process.

The cluster is a ``distributed.LocalCluster`` of :data:`WORKERS` worker
processes with one thread each, started at the first Dask contender and
closed when the process exits; each parameter is cut into :data:`CHUNKS`
chunks, spread evenly over the workers (chunk ``i`` on worker ``i % WORKERS``:
each chunk's step runs where the chunk lives, so a worker holding more chunks
than the others sets the step's time), with Dask's work stealing off, as
docs/frameworks.md advises for a cluster that only runs such steps: stealing
hands a queued task to an idle worker with its chunks, and over 40 steps moved
this bench's chunks from 8 and 8 per worker to 11 and 5. The gradients are
scattered to the workers once (as gradients that a model computes there would
be), beside their parameters' chunks, so a step times what numadam adds: the
step's tasks, their kernels, and waiting for the new parameters and state to
be persisted.
"""

import atexit
import functools

import numpy as np

import numadam

from .contenders import Contender, _options
from .frameworks import _require

#: Worker processes of the local cluster, and chunks per parameter.
WORKERS, CHUNKS = 2, 16


@functools.cache
def local_client():
    """The run's ``distributed.Client`` on a local cluster (closed at exit)."""
    distributed = _require("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.work-stealing": False}):  # see the module docstring
        cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    client = distributed.Client(cluster)
    atexit.register(cluster.close)
    atexit.register(client.close)
    return client


class NumadamOnDask(Contender):
    """``numadam.Adam`` / ``AdamW`` over Dask arrays of :data:`CHUNKS` chunks each, on :func:`local_client`.

    A call of ``step`` takes ``in_flight`` steps and then waits for the last: with 1, each step's
    latency (the client builds the next graph only once the last step is done); with more, the
    steps of a loop that does not wait for each (a model whose next gradients are tasks too),
    whose graphs reach the scheduler while the workers still run the step before.
    """

    def __init__(self, problem, variant, in_flight=1):
        self.steps_per_call = in_flight
        self._da = _require("dask.array")
        self._distributed = _require("distributed")
        local_client()
        self._host_grads = problem.grads
        params = [self._scattered(p.copy()) for p in problem.params]
        optimizer = numadam.AdamW if variant.decoupled else numadam.Adam
        self._optimizer = optimizer(params, **_options(variant))
        self.reload_grads()

    def _scattered(self, array):
        """``array`` as a 1-D Dask array of :data:`CHUNKS` chunks, chunk ``i`` on worker ``i % WORKERS``
        (left to itself, the scheduler put 6 chunks on one worker and 10 on the other)."""
        workers = sorted(local_client().scheduler_info()["workers"])
        chunk = -(-array.size // CHUNKS)
        return self._placed(array, chunk, [[workers[i % len(workers)]] for i in range(-(-array.size // chunk))])

    def reload_grads(self):
        """Each gradient chunk on the worker that holds its parameter's chunk, as a model computing
        its gradients there would leave it: in memory of its own (a scattered chunk lies in the
        network buffer it arrived in, possibly unaligned, which the step would copy)."""
        self._grads = [self._beside(g, param) for g, param in zip(self._host_grads, self._optimizer.params)]
        self._distributed.wait(self._grads)

    def _beside(self, host, param):
        client = local_client()
        held = self._distributed.futures_of(param)  # the chunks' data, wherever the parameter's view reads it
        self._distributed.wait(held)
        holders = client.who_has(held)
        where = {future.key[1:]: list(holders[future.key]) for future in held}
        return self._placed(host, param.chunks[0][0], [where[(i,)] for i in range(len(param.chunks[0]))])

    def _placed(self, host, chunk, workers):
        """``host`` flattened into a Dask array of chunks of ``chunk`` elements, the ``i``-th on
        ``workers[i]``, each in memory of its own."""
        client = local_client()
        flat = host.reshape(-1)
        pieces = [flat[i * chunk:(i + 1) * chunk] for i in range(len(workers))]
        futures = [client.scatter(piece, workers=where) for piece, where in zip(pieces, workers)]
        blocks = [self._da.from_delayed(future, shape=piece.shape, dtype=host.dtype)
                  for future, piece in zip(futures, pieces)]
        return self._da.concatenate(blocks).map_blocks(np.copy).persist()

    def step(self):
        for _ in range(self.steps_per_call):
            self._optimizer.step(self._grads)
        self._wait()

    def check_step(self):
        self._optimizer.step(self._grads)
        self._wait()

    def _wait(self):
        state = self._optimizer.state_dict(lazy=True)
        self._distributed.wait(self._optimizer.params + [a for value in state.values() if isinstance(value, list)
                                                         for a in value])

    def parameters(self):
        return [p.compute().reshape(host.shape) for p, host in zip(self._optimizer.params, self._host_grads)]
