"""These tests run only inside numba-cuda's simulator, in a pytest process of their own:
``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator`` (the variable must be set before
Numba is imported). Any other test process leaves this folder alone, so that the simulator never
replaces the real ``numba.cuda`` there.
"""

import os

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["test_*.py"]
