r"""``numadam bench --kernels``: what the CUDA toolchain makes of the GPU kernels, read without a GPU.

Each family's update kernel (its default storage, float32 unless asked) is
lowered by numba-cuda (``compile_ptx`` for sm_90, no device needed), assembled
by ``ptxas -v`` and, where ``cuobjdump`` and ``nvdisasm`` are on the PATH
(``pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm``), disassembled to
SASS. For each kernel the report gives:

- **registers and spills** (``ptxas -v``): a spill is local memory traffic in
  the element loop;
- **global loads and stores by width**: ``LDG.E`` moves 32 bits, ``LDG.E.64``
  64 and ``LDG.E.128`` 128 (the widths torch's fused Adam issues);
- **loads in flight**: scanning the element loop's SASS in order, the most
  global loads issued whose registers no instruction has read yet, i.e. how
  many memory requests a thread keeps outstanding before it waits;
- **instructions per element** of the element loop, the innermost loop (closed
  by a backward branch) loading the most bits: its instructions :math:`n_I`, its
  loaded bits :math:`b_L` and the bits one element reads, :math:`b_E` (the
  storage of every operand the kernel takes), so that one iteration handles
  :math:`b_L / b_E` elements and each element costs :math:`n_I\,b_E / b_L`
  instructions.

Without the SASS tools the widths are read from the PTX (``ld.global.f32``,
``.v4`` for 128 bits) and the last two columns are empty. ``ptxas`` 13.0
accepts PTX up to ISA 9.0; newer NVVM writes a later ``.version`` line, which
is lowered to 9.0 before assembling (the kernels use no newer instruction).
"""

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The ISA version ``ptxas`` 13.0 reads (see the module docstring).
PTX_ISA = "9.0"

#: The GPU the kernels are lowered for: Hopper (H100, H200).
COMPUTE_CAPABILITY = (9, 0)


@dataclass
class KernelReport:
    """One kernel's figures (see the module docstring); ``None`` where a tool was missing."""

    name: str
    registers: int
    spill_bytes: int
    loads: Counter
    stores: Counter
    loads_in_flight: int = None
    loop_instructions: int = None
    instructions_per_element: float = None


# -- the kernels ------------------------------------------------------------------------------------


def family_spec(name, dtype=np.float32):
    """The kernel spec of family ``name``'s default step (its class defaults, weight decay 0.1 where
    it has one, so the decay's code is in the kernel) over ``dtype`` parameters."""
    import numadam
    from numadam.engine.operands import kernel_spec

    cls = numadam.families()[name]
    family = cls.algorithm
    decay = {"weight_decay": 0.1} if "weight_decay" in family.names else {}
    h = family.Hyper(**{**cls._class_defaults, **cls.pinned, **decay})
    return kernel_spec(family, family.flags(h), np.dtype(dtype), {kind.name for kind in family.state_kinds(h)})


def kernel_ptx(spec):
    """The PTX of ``spec``'s update kernel for :data:`COMPUTE_CAPABILITY` (numba-cuda's
    ``compile_ptx``: no GPU needed; not under the simulator)."""
    import numba
    from numba import cuda

    from ..targets.cuda import kernels as cuda_kernels

    if cuda_kernels.SIMULATED:
        raise RuntimeError("kernel reports need numba-cuda's compiler: unset NUMBA_ENABLE_CUDASIM")
    real = getattr(numba.types, spec.real)
    signature = (numba.types.int64,) * 6 + (real,) + (numba.types.int64,) * 3
    ptx, _ = cuda.compile_ptx(cuda_kernels.kernel_for(spec).py_func, signature, cc=COMPUTE_CAPABILITY)
    return ptx


def element_bits(spec):
    """:math:`b_E`: the bits of every operand ``spec``'s kernel takes for one element."""
    return sum(8 * np.dtype(code).itemsize for code in spec.operands if code)


# -- the tools --------------------------------------------------------------------------------------


def assembled(ptx, folder, max_registers=None):
    """``(cubin path, ptxas -v output)`` of ``ptx`` assembled in ``folder``, with at most
    ``max_registers`` registers a thread if given (as the kernel is launched); raises if ``ptxas``
    is missing or refuses it."""
    if shutil.which("ptxas") is None:
        raise FileNotFoundError("ptxas is not on the PATH (CUDA's toolkit)")
    source, cubin = Path(folder, "kernel.ptx"), Path(folder, "kernel.cubin")
    source.write_text(re.sub(r"^\.version \d+\.\d+", f".version {PTX_ISA}", ptx, count=1, flags=re.MULTILINE))
    arch = f"sm_{COMPUTE_CAPABILITY[0]}{COMPUTE_CAPABILITY[1]}"
    cap = [f"-maxrregcount={max_registers}"] if max_registers else []
    done = subprocess.run(["ptxas", f"-arch={arch}", "-v", *cap, "-o", str(cubin), str(source)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ptxas refused the kernel: {done.stderr.strip()}")
    return cubin, done.stdout + done.stderr


def ptxas_usage(output):
    """``(registers, spilled bytes)`` from ``ptxas -v``'s ``output`` (spill stores plus loads)."""
    registers = re.search(r"Used (\d+) registers", output)
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", output)
    if registers is None:
        raise ValueError(f"no register count in ptxas's output: {output!r}")
    return int(registers.group(1)), sum(int(count) for count in spills)


def sass_tools():
    """Whether ``cuobjdump`` and ``nvdisasm`` are on the PATH."""
    return shutil.which("cuobjdump") is not None and shutil.which("nvdisasm") is not None


def disassembled(cubin):
    """The SASS of ``cubin`` (``cuobjdump -sass``)."""
    done = subprocess.run(["cuobjdump", "-sass", str(cubin)], capture_output=True, text=True, check=True)
    return done.stdout


# -- reading PTX and SASS ----------------------------------------------------------------------------


_PTX_ACCESS = re.compile(r"\b(ld|st)\.global(?:\.nc)?(?:\.v(\d))?\.[bfsu](\d+)\b")


def ptx_accesses(ptx):
    """``(loads, stores)``: Counters of the global accesses of ``ptx`` by width in bits."""
    found = {"ld": Counter(), "st": Counter()}
    for kind, lanes, bits in _PTX_ACCESS.findall(ptx):
        found[kind][int(lanes or 1) * int(bits)] += 1
    return found["ld"], found["st"]


#: One SASS instruction: its address, an optional predicate, the opcode and its operands.
_SASS = re.compile(r"/\*(?P<address>[0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?(?P<opcode>[A-Z][A-Z0-9_.]*)\s*(?P<operands>[^;]*);")
_REGISTER = re.compile(r"\bR(\d+)\b")


def sass_instructions(sass):
    """``[(address, opcode, operands)]`` of ``sass``, in order."""
    return [(int(m["address"], 16), m["opcode"], m["operands"].strip()) for m in _SASS.finditer(sass)]


def _access_bits(opcode):
    """The bits an ``LDG``/``STG`` opcode moves: 32, or its ``.64``/``.128`` suffix."""
    width = re.search(r"\.(64|128|U8|S8|U16|S16)\b", opcode)
    if width is None:
        return 32
    return {"U8": 8, "S8": 8, "U16": 16, "S16": 16}.get(width.group(1)) or int(width.group(1))


def sass_accesses(instructions):
    """``(loads, stores)``: Counters of the global accesses by width in bits."""
    loads, stores = Counter(), Counter()
    for _, opcode, _ in instructions:
        if opcode.startswith("LDG"):
            loads[_access_bits(opcode)] += 1
        elif opcode.startswith("STG"):
            stores[_access_bits(opcode)] += 1
    return loads, stores


def _loaded_registers(opcode, operands):
    """The registers a global load writes: its first operand and, for 64 or 128 bits, the next ones."""
    first = _REGISTER.search(operands.split(",")[0])
    if first is None:
        return set()
    count = _access_bits(opcode) // 32 or 1
    return {int(first.group(1)) + k for k in range(count)}


def loads_in_flight(instructions):
    """The most global loads outstanding at once: scanning in order, a load is outstanding from its
    issue until an instruction reads one of its registers (or writes them again)."""
    pending, most = [], 0
    for _, opcode, operands in instructions:
        written, *read = operands.split(",") if operands else ("",)
        read_registers = {int(r) for part in read for r in _REGISTER.findall(part)}
        if opcode.startswith("STG"):  # a store reads every operand
            read_registers |= {int(r) for r in _REGISTER.findall(written)}
        pending = [load for load in pending if not load & read_registers]
        if opcode.startswith("LDG"):
            pending.append(_loaded_registers(opcode, operands))
            most = max(most, len(pending))
        else:
            written_registers = {int(r) for r in _REGISTER.findall(written)}
            pending = [load for load in pending if not load & written_registers]
    return most


def innermost_loops(instructions):
    """``[(first, last)]`` index spans of ``instructions`` closed by a backward branch (from its target
    to itself) that hold no other such span."""
    spans = []
    for index, (address, opcode, operands) in enumerate(instructions):
        target = re.search(r"\b0x([0-9a-f]+)\b", operands) if opcode == "BRA" else None
        if target is not None and int(target.group(1), 16) <= address:
            first = next(i for i, (a, _, _) in enumerate(instructions) if a >= int(target.group(1), 16))
            spans.append((first, index))
    return [span for span in spans
            if not any(other != span and span[0] <= other[0] and other[1] <= span[1] for other in spans)]


def element_loop(instructions):
    """The instructions of the element loop: of the innermost loops, the one whose global loads move
    the most bits an iteration (the fewest instructions among equals); ``None`` where none loads."""
    bodies = [instructions[first:last + 1] for first, last in innermost_loops(instructions)]
    bodies = [body for body in bodies if loaded_bits(body)]
    return min(bodies, key=lambda body: (-loaded_bits(body), len(body))) if bodies else None


def loaded_bits(instructions):
    """The bits the global loads of ``instructions`` move."""
    return sum(_access_bits(opcode) for _, opcode, _ in instructions if opcode.startswith("LDG"))


# -- the report -------------------------------------------------------------------------------------


def report(name, spec):
    """The :class:`KernelReport` of ``spec``'s update kernel, named ``name``."""
    from ..targets.cuda.kernels import register_cap

    ptx = kernel_ptx(spec)
    with tempfile.TemporaryDirectory() as folder:
        cubin, output = assembled(ptx, folder, register_cap(spec).get("max_registers"))
        registers, spill_bytes = ptxas_usage(output)
        if not sass_tools():
            loads, stores = ptx_accesses(ptx)
            return KernelReport(name, registers, spill_bytes, loads, stores)
        instructions = sass_instructions(disassembled(cubin))
    loads, stores = sass_accesses(instructions)
    loop = element_loop(instructions)
    if loop is None:
        return KernelReport(name, registers, spill_bytes, loads, stores)
    return KernelReport(name, registers, spill_bytes, loads, stores, loads_in_flight(loop), len(loop),
                        len(loop) * element_bits(spec) / loaded_bits(loop))


def reports(names=None, dtype=np.float32):
    """Every family's report (or those in ``names``), in the registry's order."""
    import numadam

    return [report(name, family_spec(name, dtype)) for name in (names or list(numadam.families()))]


def _widths(counter):
    return ", ".join(f"{count} x {bits}" for bits, count in sorted(counter.items())) or "none"


def markdown(found, dtype=np.float32):
    """The table of ``found`` reports."""
    lines = [f"CUDA update kernels, {np.dtype(dtype).name} parameters, lowered for sm_"
             f"{COMPUTE_CAPABILITY[0]}{COMPUTE_CAPABILITY[1]} (global accesses by bits"
             f"{'' if found and found[0].loads_in_flight is not None else '; read from the PTX: no cuobjdump'}).",
             "",
             "| kernel | registers | spilled bytes | loads | stores | loads in flight | element loop "
             "instructions | instructions per element |",
             "|---|---|---|---|---|---|---|---|"]
    for r in found:
        optional = ["" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))
                    for value in (r.loads_in_flight, r.loop_instructions, r.instructions_per_element)]
        lines.append(f"| {r.name} | {r.registers} | {r.spill_bytes} | {_widths(r.loads)} | {_widths(r.stores)} | "
                     + " | ".join(optional) + " |")
    return "\n".join(lines) + "\n"


def toolchain():
    """A line naming the tools found: ptxas's and cuobjdump's versions, numba-cuda's."""
    def version(tool):
        if shutil.which(tool) is None:
            return f"{tool}: absent"
        done = subprocess.run([tool, "--version"], capture_output=True, text=True)
        release = re.search(r"release ([\d.]+)|V([\d.]+)", done.stdout)
        return f"{tool} {next(g for g in release.groups() if g) if release else '?'}"

    try:
        from importlib.metadata import version as package_version

        numba_cuda = f"numba-cuda {package_version('numba-cuda')}"
    except Exception:  # not installed under that name
        numba_cuda = "numba-cuda ?"
    return ", ".join([version("ptxas"), version("cuobjdump"), numba_cuda, f"PATH has nvdisasm: "
                      f"{'yes' if shutil.which('nvdisasm') else 'no'}", f"CPU count {os.cpu_count()}"])
