"""numadam bench --kernels (numadam/bench/kernel_report.py): reading ptxas, PTX and SASS right, and
what holds of every family's CUDA update kernel without a GPU (issue 55's offline report)."""

import shutil
from collections import Counter

import numpy as np
import pytest

import numadam
from numadam.bench import kernel_report

# A hand-written SASS excerpt in cuobjdump's layout: a table loop, then an element loop of two
# elements (two operands of 32 bits each) whose four loads are all issued before the first use.
SASS = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;                        /* 0x00000a00ff017b82 */
        /*0010*/                   LDG.E.64 R4, desc[UR4][R2.64] ;               /* 0x0000000402047981 */
        /*0020*/                   IADD3 R2, P0, R2, 0x8, RZ ;                   /* 0x0000000802027810 */
        /*0030*/               @P0 BRA 0x10 ;                                    /* 0x0000000000e01947 */
        /*0040*/                   LDG.E R8, desc[UR4][R6.64] ;                  /* 0x0000000406087981 */
        /*0050*/                   LDG.E R9, desc[UR4][R6.64+0x4] ;              /* 0x0000000406097981 */
        /*0060*/                   LDG.E R10, desc[UR4][R12.64] ;                /* 0x000000040c0a7981 */
        /*0070*/                   LDG.E R11, desc[UR4][R12.64+0x4] ;            /* 0x000000040c0b7981 */
        /*0080*/                   FADD R8, R8, R10 ;                            /* 0x0000000a08087221 */
        /*0090*/                   FADD R9, R9, R11 ;                            /* 0x0000000b09097221 */
        /*00a0*/                   STG.E desc[UR4][R6.64], R8 ;                  /* 0x0000000806007986 */
        /*00b0*/                   STG.E desc[UR4][R6.64+0x4], R9 ;              /* 0x0000000906007986 */
        /*00c0*/              @!P1 BRA 0x40 ;                                    /* 0xfffffffc008c9947 */
        /*00d0*/                   EXIT ;                                        /* 0x000000000000794d */
"""


def test_sass_is_read_instruction_by_instruction_with_widths():
    instructions = kernel_report.sass_instructions(SASS)
    assert [opcode for _, opcode, _ in instructions][:4] == ["LDC", "LDG.E.64", "IADD3", "BRA"]
    assert instructions[3] == (0x30, "BRA", "0x10")
    loads, stores = kernel_report.sass_accesses(instructions)
    assert loads == Counter({32: 4, 64: 1}) and stores == Counter({32: 2})
    assert [kernel_report._access_bits(op) for op in ("LDG.E", "LDG.E.64", "LDG.E.128", "LDG.E.U8.CONSTANT")] \
        == [32, 64, 128, 8]


def test_the_element_loop_is_the_innermost_loop_loading_the_most_bits():
    instructions = kernel_report.sass_instructions(SASS)
    assert kernel_report.innermost_loops(instructions) == [(1, 3), (4, 12)]
    loop = kernel_report.element_loop(instructions)
    assert [opcode for _, opcode, _ in loop][0] == "LDG.E" and len(loop) == 9
    assert kernel_report.loaded_bits(loop) == 128
    without_element_loads = kernel_report.sass_instructions(SASS.replace("LDG.E R", "MOV R"))
    assert kernel_report.loaded_bits(kernel_report.element_loop(without_element_loads)) == 64  # the table's loop
    assert kernel_report.element_loop(kernel_report.sass_instructions(SASS.replace("LDG", "MOV"))) is None


def test_loads_in_flight_count_the_loads_issued_before_a_use():
    loop = kernel_report.element_loop(kernel_report.sass_instructions(SASS))
    assert kernel_report.loads_in_flight(loop) == 4
    one_at_a_time = SASS.replace("LDG.E R9,", "FADD R8, R8, R8 ;\n /*0051*/ LDG.E R9,")
    serial = [(a, op, ops) for a, op, ops in kernel_report.sass_instructions(one_at_a_time)]
    assert kernel_report.loads_in_flight(serial[4:]) == 3  # R8 used before R9 is loaded


def test_ptxas_output_and_ptx_accesses_are_read():
    output = ("ptxas info    : Function properties for k\n    0 bytes stack frame, 8 bytes spill stores, "
              "12 bytes spill loads\nptxas info    : Used 72 registers, used 0 barriers\n")
    assert kernel_report.ptxas_usage(output) == (72, 20)
    with pytest.raises(ValueError, match="no register count"):
        kernel_report.ptxas_usage("ptxas info: nothing")
    ptx = "ld.global.f32 %f1, [%rd1];\nld.global.v4.f32 {%f2, %f3, %f4, %f5}, [%rd2];\nld.global.u64 %rd3, [%rd4];\n" \
          "st.global.v2.f32 [%rd5], {%f1, %f2};\nst.global.f64 [%rd6], %fd1;"
    assert kernel_report.ptx_accesses(ptx) == (Counter({32: 1, 128: 1, 64: 1}), Counter({64: 2}))


def test_an_element_reads_the_bits_of_every_operand():
    assert kernel_report.element_bits(kernel_report.family_spec("adam")) == 4 * 32  # p, g, m, v
    assert kernel_report.element_bits(kernel_report.family_spec("adam", np.float64)) == 4 * 64
    assert kernel_report.element_bits(kernel_report.family_spec("sgd")) == 2 * 32  # no momentum: p, g


needs_ptxas = pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA's toolkit) is not on the PATH")


@needs_ptxas
@pytest.mark.slow
@pytest.mark.parametrize("name", list(numadam.families()))
def test_every_family_s_float32_kernel_assembles_for_hopper_without_spills(name, monkeypatch):
    """With room for its registers (no cap), no kernel spills; under the launch's cap of 96, a few
    values of the largest rules do (Adafactor, AdEMAMix: docs/gpu.md), never more than 128 bytes,
    and Adam's none."""
    from numadam.targets.cuda import kernels as cuda_kernels

    capped = kernel_report.report(name, kernel_report.family_spec(name))
    assert capped.registers <= cuda_kernels.MAX_REGISTERS == 96 and capped.spill_bytes <= 128, (name, capped)
    if name in ("adam", "adamw", "sgd", "lion", "rmsprop", "nadam", "radam", "yogi", "schedule_free_adamw"):
        assert capped.spill_bytes == 0, (name, capped)
    monkeypatch.setattr(cuda_kernels, "MAX_REGISTERS", 0)
    found = kernel_report.report(name, kernel_report.family_spec(name))
    assert found.spill_bytes == 0, f"{name}: {found.spill_bytes} bytes spilled to local memory"
    assert 0 < found.registers <= 255
    assert set(found.loads) <= {8, 16, 32, 64, 128} and sum(found.loads.values()) > 0
    if found.instructions_per_element is not None:  # with the SASS tools: a whole number of elements a loop
        spec = kernel_report.family_spec(name)
        loop_elements = found.loop_instructions * kernel_report.element_bits(spec) / found.instructions_per_element
        assert loop_elements / kernel_report.element_bits(spec) == pytest.approx(
            round(loop_elements / kernel_report.element_bits(spec)))


@needs_ptxas
@pytest.mark.slow
def test_numadam_bench_kernels_prints_one_row_per_family(capsys):
    from numadam.cli import main

    assert main(["bench", "--kernels", "adam,sgd"]) == 0
    table = capsys.readouterr().out
    assert "| adam |" in table and "| sgd |" in table and "| lion |" not in table
    assert main(["bench", "--kernels", "adam,nosuch"]) == 2
