"""The CUDA target: numba-cuda kernels over segment tables, and the backend that launches them."""
