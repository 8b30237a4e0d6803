#!/usr/bin/env bash
# Everything numadam checks on an NVIDIA GPU, with the results written to one folder.
#
#   bash tools/gpu-check.sh STEP [RESULTS_DIR]        (run from the repository root)
#
# STEP is one of
#   env          GPU, driver and package versions                              -> env.txt
#   gpu-tests    every test marked gpu; a missing GPU fails them (no skips)   -> tests-gpu.log
#   suite        the rest of the test suite                                   -> tests-rest.log
#   bench-quick  numadam bench --device cuda --quick (a smoke test)           -> bench-quick.{txt,png}
#   bench-small  the 1e3, 1000 x 1e3 and CNN cases                            -> bench-small.{txt,png}
#   bench-large  the 1e8 float32, float64 and complex64 cases                 -> bench-large.{txt,png}
#   bench        every case in one run                                        -> bench-cuda.{txt,png}
#   asv          the asv suite's CuPy cases (asv_benchmarks/run_without_asv.py) -> asv-cupy.{md,json}
#   families     SGD, RMSprop, Adagrad, Adafactor, SparseAdam against same-traffic kernels -> families.md
#   steps        SparseAdam, Adafactor and LAMB per step, CUDA events and host time -> steps.txt
#   launch       register caps with vector accesses, every elementwise family at 1e8 (tools/gpu_launch.py) -> launch.md
#   muon         Muon's gpu tests (CuPy against the reference), numadam bench --suite muon --device cuda,
#                then tools/gpu_muon.py (accuracy, TF32 products, a step's parts) -> muon.{log,txt}, muon-probe.md
#   smoke        env, gpu-tests and bench-quick
#   all          env, gpu-tests, suite, bench, asv, families and steps
# RESULTS_DIR defaults to gpu-results. PYTHON picks the interpreter (default python3).
# The exit status is that of the first step that failed, or 0.
set -uo pipefail
cd "$(dirname "$0")/.."
step=${1:-smoke}
out=${2:-gpu-results}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0

record() {  # record NAME STATUS: remember the first failure
    echo "gpu-check: $1 exited with status $2"
    if [ "$2" -ne 0 ] && [ "$status" -eq 0 ]; then status=$2; fi
}

run_env() {
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
        "$python" - <<'PY'
import platform
from importlib import metadata
print("python", platform.python_version(), platform.machine())
for name in ("numpy", "numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "torch", "pytest", "matplotlib"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "not installed")
import cupy
print("cupy sees", cupy.cuda.runtime.getDeviceCount(), "device(s):",
      cupy.cuda.runtime.getDeviceProperties(0)["name"])
from numba import cuda
print("numba-cuda sees", cuda.get_current_device().name)
PY
    } 2>&1 | tee "$out/env.txt"
    record env "${PIPESTATUS[0]}"
}

run_gpu_tests() {
    NUMADAM_REQUIRE_GPU=1 "$python" -m pytest -m gpu -p no:cacheprovider -v -rfEs 2>&1 | tee "$out/tests-gpu.log"
    record gpu-tests "${PIPESTATUS[0]}"
}

run_suite() {
    "$python" -m pytest -m "not gpu" -p no:cacheprovider -q 2>&1 | tee "$out/tests-rest.log"
    record suite "${PIPESTATUS[0]}"
}

run_bench() {  # run_bench NAME [bench options]
    local name=$1
    shift
    "$python" -m numadam bench --device cuda --output "$out/$name.png" "$@"
    record "$name" $?
}

run_asv() {
    "$python" asv_benchmarks/run_without_asv.py --backend cupy --require --output "$out/asv-cupy.json" \
        | tee "$out/asv-cupy.md"
    record asv "${PIPESTATUS[0]}"
}

run_families() {
    "$python" tools/gpu_families.py "$out"
    record families $?
}

run_launch() {
    "$python" tools/gpu_launch.py "$out"
    record launch $?
}

run_steps() {
    "$python" tools/gpu_steps.py this-checkout | tee "$out/steps.txt"
    record steps "${PIPESTATUS[0]}"
}

run_muon() {
    NUMADAM_REQUIRE_GPU=1 "$python" -m pytest -m gpu -p no:cacheprovider -q tests/test_muon.py 2>&1 | tee "$out/muon.log"
    record muon-tests "${PIPESTATUS[0]}"
    "$python" -m numadam bench --suite muon --device cuda --repeat 9 --output "$out/muon.txt"
    record muon-bench $?
    "$python" tools/gpu_muon.py | tee "$out/muon-probe.md"
    record muon-probe "${PIPESTATUS[0]}"
}

case "$step" in
    env) run_env ;;
    gpu-tests) run_gpu_tests ;;
    suite) run_suite ;;
    bench-quick) run_bench bench-quick --quick ;;
    bench-small) run_bench bench-small --cases small,many,cnn ;;
    bench-large) run_bench bench-large --cases large,large-f64,large-c64 ;;
    bench) run_bench bench-cuda ;;
    asv) run_asv ;;
    families) run_families ;;
    steps) run_steps ;;
    launch) run_launch ;;
    muon) run_muon ;;
    smoke) run_env; run_gpu_tests; run_bench bench-quick --quick ;;
    all) run_env; run_gpu_tests; run_suite; run_bench bench-cuda; run_asv; run_families; run_steps ;;
    *) echo "gpu-check: unknown step '$step' (see the top of $0)" >&2; exit 2 ;;
esac
echo "gpu-check: results in $out"
exit "$status"
