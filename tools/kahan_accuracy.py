"""Issue 57's accuracy test of Kahan-compensated bfloat16 parameters, numadam beside torch-optimi.

Runs tests/test_kahan.py's :func:`accuracy` (bfloat16 parameters uniform in [-1, 1], lr 1e-3,
gradients N(0.5, 1) in bfloat16, 1000 steps, against a float64 run of the same updates) for SGD,
AdamW and Lion, and prints one row per run: the share of parameters equal to the float64 run
rounded to bfloat16, and the largest distance from it in bfloat16 ulps at max(|x|, 2^-6).

The runs:

- numadam with plain bfloat16 parameters and with ``compensation="kahan"``;
- torch-optimi's ``SGD``/``AdamW``/``Lion`` with ``kahan_sum=False`` and ``True``, with the same
  hyperparameters as numadam's (its AdamW keeps bfloat16 moments and has its own order of
  operations, so its float64 reference is numadam's: a comparison, not a parity), where torch
  and torch-optimi are installed.

    python tools/kahan_accuracy.py [--seed 0]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_kahan  # noqa: E402  (the test's experiment, in one place)

from test_families import hyperparameters  # noqa: E402


def optimi_run(method, kahan):
    """A run of torch-optimi's ``method`` with numadam's hyperparameters, for ``test_kahan.accuracy``."""
    import torch
    import optimi

    h = hyperparameters(method, {"lr": test_kahan.ACCURACY_LR})

    def make(param):
        if method == "sgd":
            return optimi.SGD([param], lr=h["lr"], kahan_sum=kahan)
        if method == "adamw":
            return optimi.AdamW([param], lr=h["lr"], betas=h["betas"], eps=h["eps"],
                                weight_decay=h["weight_decay"], kahan_sum=kahan)
        return optimi.Lion([param], lr=h["lr"], betas=h["betas"], weight_decay=h["weight_decay"], kahan_sum=kahan)

    def run(params, grads):
        param = torch.nn.Parameter(torch.from_numpy(params.view(np.uint16).astype(np.int16)).view(torch.bfloat16))
        opt = make(param)
        for g in grads:
            param.grad = torch.from_numpy(g.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
            opt.step()
        return param.detach().view(torch.int16).numpy().astype(np.uint16).view(params.dtype)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import optimi  # noqa: F401
        import torch  # noqa: F401
        contenders = True
    except ImportError as missing:
        print(f"# torch-optimi not timed: {missing}")
        contenders = False
    print(f"# {test_kahan.STEPS} steps of {test_kahan.SIZE} bfloat16 parameters, lr {test_kahan.ACCURACY_LR}, "
          f"seed {args.seed}")
    print(f"{'method':<8}{'run':<30}{'equal':>10}{'worst (ulp)':>14}")
    for method, (options, _, _) in test_kahan.ACCURACY_CASES.items():
        runs = {"numadam, plain bfloat16": test_kahan.numadam_run(method, options),
                "numadam, compensation='kahan'": test_kahan.numadam_run(method, options, compensation="kahan")}
        if contenders:
            runs["torch-optimi, plain bfloat16"] = optimi_run(method, kahan=False)
            runs["torch-optimi, kahan_sum=True"] = optimi_run(method, kahan=True)
        for name, (equal, worst) in test_kahan.accuracy(method, options, runs, seed=args.seed).items():
            print(f"{method:<8}{name:<30}{equal:>10.2%}{worst:>14.2f}")


if __name__ == "__main__":
    main()
