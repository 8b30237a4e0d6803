"""numadam: fused Adam and AdamW for NumPy and CuPy arrays."""

from ._state import load_state, save_state
from .functional import adam_step
from .optimizers import Adam, AdamW

__all__ = ["Adam", "AdamW", "adam_step", "load_state", "save_state"]
