"""The studies of ``numadam bench --suite`` (numadam.bench.catalog): every family, policy,
storage format, groups and row-sparse gradients, each with its same-traffic kernel, at 1e6 float32
elements.

``track_ratio`` is the study's time over its same-traffic kernel's, measured
side by side, so its history is less noisy than the times themselves.
"""

from .common import median_step_seconds

SIZE = 1_000_000


def _studies():
    try:
        from numadam.bench import catalog
    except ImportError:  # a commit from before the catalog
        return {}
    return {f"{suite}: {name}": study for suite, make in catalog.SUITES.items() if suite != "many"
            for name, study in make().items()}


STUDIES = _studies()


class Suites:
    params = (list(STUDIES) or ["none"],)
    param_names = ("study",)
    timeout = 300

    def setup(self, name):
        if name not in STUDIES:
            raise NotImplementedError("this commit has no numadam.bench.catalog")
        from numadam.bench import catalog
        try:
            from numadam.bench.suites import OptimizerStep, SameTraffic
        except ImportError:  # commits before 2026-11-27 named them privately
            from numadam.bench.suites import _Step as OptimizerStep, _Traffic as SameTraffic

        study = STUDIES[name]
        self.study = study
        self.optimizer = OptimizerStep(*catalog.build(study, SIZE))
        self.traffic = SameTraffic(study, SIZE)
        self.optimizer.step()  # compiles the kernels

    def time_step(self, name):
        self.optimizer.step()

    def track_bandwidth(self, name):
        moved = getattr(self.study, "moved", 1.0)  # the share of elements a step moves (Rows: the listed rows)
        return self.study.bytes_per_element * SIZE * moved / median_step_seconds(self.optimizer.step) / 1e9

    track_bandwidth.unit = "GB/s"

    def track_ratio_to_same_traffic(self, name):
        return median_step_seconds(self.optimizer.step) / median_step_seconds(self.traffic.step)

    track_ratio_to_same_traffic.unit = "x"
