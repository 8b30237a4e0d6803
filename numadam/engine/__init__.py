"""The engines behind the optimizer objects: the local engine (NumPy, CuPy, torch, DLPack) and the Dask engine."""
