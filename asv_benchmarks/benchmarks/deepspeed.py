"""numadam's Adam and AdamW beside DeepSpeed's ``DeepSpeedCPUAdam`` (the AVX C++ step of
ZeRO-Offload), one float32 array of 1e4 to 1e7 elements.

DeepSpeed (with torch) is optional and never a dependency: without it its rows
are skipped. Its first use builds its C++ op (about 100 s, in torch's extension
cache, for one CPU model); ``setup_cache`` pays that once, untimed.
``numadam bench`` times the same contenders interleaved, in one process.
numadam's Adam in DeepSpeed's arithmetic (``convention="deepspeed"``, one division
fewer than torch's) has its own rows; a commit before it skips them.
"""

import numpy as np

import numadam

from .common import LR

SIZES = [10_000, 100_000, 1_000_000, 10_000_000]
BETAS, EPS, WEIGHT_DECAY = (0.9, 0.999), 1e-8, 0.01
DEEPSPEED_ARITHMETIC = "numadam, convention='deepspeed'"


def _deepspeed_adam():
    try:
        import torch
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except ImportError:
        raise NotImplementedError("deepspeed (with torch) is not installed") from None
    return torch, DeepSpeedCPUAdam


class AdamBesideDeepSpeed:
    params = (["numadam", DEEPSPEED_ARITHMETIC, "DeepSpeedCPUAdam"], ["adam", "adamw"], SIZES)
    param_names = ("implementation", "variant", "size")
    timeout = 600

    def setup_cache(self):
        """Whether DeepSpeed is here, its op built once before any timing (asv passes a cache that is
        not ``None`` to ``setup`` and the benchmarks as their first argument)."""
        try:
            torch, adam = _deepspeed_adam()
        except NotImplementedError:
            return False
        param = torch.nn.Parameter(torch.ones(8))
        param.grad = torch.ones(8)
        adam([param], lr=LR).step()
        return True

    def setup(self, available, implementation, variant, size):
        if implementation == "DeepSpeedCPUAdam" and not available:
            raise NotImplementedError("deepspeed (with torch) is not installed")
        rng = np.random.default_rng(3)
        self.param = rng.standard_normal(size, dtype=np.float32)
        self.grad = rng.standard_normal(size, dtype=np.float32)
        decay = WEIGHT_DECAY if variant == "adamw" else 0.0
        if implementation != "DeepSpeedCPUAdam":
            make = numadam.AdamW if variant == "adamw" else numadam.Adam
            options = {"convention": "deepspeed"} if implementation == DEEPSPEED_ARITHMETIC else {}
            try:
                optimizer = make(self.param, lr=LR, betas=BETAS, eps=EPS, weight_decay=decay, **options)
            except ValueError as error:  # a commit before the option
                raise NotImplementedError(str(error)) from None
            self.step = lambda: optimizer.step(self.grad)
        else:
            torch, adam = _deepspeed_adam()
            tensor = torch.nn.Parameter(torch.from_numpy(self.param))
            tensor.grad = torch.from_numpy(self.grad)
            optimizer = adam([tensor], lr=LR, betas=BETAS, eps=EPS, weight_decay=decay,
                             adamw_mode=variant == "adamw", fp32_optimizer_states=True)
            self.step = optimizer.step
        self.step()

    def time_step(self, available, implementation, variant, size):
        self.step()
