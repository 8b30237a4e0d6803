"""Muon (see ``numadam bench --suite muon``): one step of ``numadam.Muon`` on NumPy float32 matrices,
beside its Newton–Schulz iteration alone on the same stack, for one large matrix and for 64 of one
shape (one batched iteration). New gradient arrays each step, as users call it."""

from numadam.bench.muon import CASES, contenders


class MuonStep:
    params = ([label for label, *_ in CASES], ["numadam.Muon, NumPy", "the iteration alone, NumPy"])
    param_names = ("case", "contender")
    timeout = 600

    def setup(self, case, contender):
        count, rows, columns = next(shape for label, *shape in CASES if label == case)
        found, _ = contenders(count, rows, columns)
        self.step = next(c.step for c in found if c.label == contender)
        self.step()  # compiled and warm

    def time_step(self, case, contender):
        self.step()
