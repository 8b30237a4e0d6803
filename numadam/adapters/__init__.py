"""What numadam adapts to its kernels: trees of arrays and their groups, torch and DLPack arrays, Dask chunks."""
