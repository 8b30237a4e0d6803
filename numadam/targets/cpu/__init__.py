"""The CPU target: Numba prange kernels over segment tables, and the backend that launches them."""
