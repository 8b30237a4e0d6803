"""Loading a saved state needs at most one state's worth of extra memory."""

import tracemalloc

import numpy as np

import numadam

SIZE = 10**7


def test_load_needs_no_more_than_the_state_it_reads(tmp_path):
    """The state is read once from the file and copied into the optimizer's own arrays.

    tracemalloc sees NumPy's allocations; the loaded arrays (exp_avg and
    exp_avg_sq: 8 bytes per float32 element) are the only large ones.
    """
    params = np.zeros(SIZE, np.float32)
    opt = numadam.Adam(params, lr=1e-3)
    opt.step(np.ones(SIZE, np.float32))
    opt.save(tmp_path / "state.npz")
    state_bytes = 2 * params.nbytes
    tracemalloc.start()
    try:
        opt.load(tmp_path / "state.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.05 * state_bytes, f"load allocated {peak / 1e6:.1f} MB for a state of {state_bytes / 1e6:.1f} MB"
    assert opt.step_count == 1 and opt.state_dict()["exp_avg"].max() > 0
