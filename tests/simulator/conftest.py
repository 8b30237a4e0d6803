"""These tests run only inside numba-cuda's simulator, in their own pytest process.

``tests/test_cuda_simulator.py`` starts that process with ``NUMBA_ENABLE_CUDASIM=1``
(which must be set before Numba is imported); the main test process leaves this
folder alone so that the simulator never replaces the real ``numba.cuda`` there.
"""

import os

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["test_*.py"]
