"""Numba kernels: the update rule (``rules``), the segment table (``segments``), and
the CPU (``cpu``) and CUDA (``cuda``) loops that apply the rule over a table."""
