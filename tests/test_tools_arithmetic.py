"""tools/arithmetic_in_cache.py: its bare loops compute what they name, and its report runs."""

import numpy as np

from repo_scripts import script


def test_the_divider_loops_keep_torch_s_bits_where_they_name_the_same_arithmetic():
    """The loop of torch's arithmetic gives NumPy's float32 Adam update bit for bit, and the loop
    with its quotient by ``c`` as a float64 product (``divided``) the same bits; the loops that
    leave a part out give other numbers (so the comparison can fail)."""
    tool = script("tools/arithmetic_in_cache.py")
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(999).astype(np.float32) for _ in range(3)] + [
        np.abs(rng.standard_normal(999)).astype(np.float32)]
    b1, omb1, b2, omb2, c, size, eps = (np.float32(x) for x in (0.9, 0.1, 0.999, 0.001, 0.7, 1e-3, 1e-8))
    param, grad, exp_avg, exp_avg_sq = (a.copy() for a in start)
    exp_avg = b1 * exp_avg + omb1 * grad
    exp_avg_sq = b2 * exp_avg_sq + omb2 * (grad * grad)
    expected = param - (size * exp_avg) / (np.sqrt(exp_avg_sq) / c + eps)
    found = {}
    for name, update in tool.UPDATES.items():
        arrays = [a.copy() for a in start]
        tool._update_loop(update)(*arrays, b1, omb1, b2, omb2, c, size, eps)
        np.testing.assert_array_equal(arrays[2], exp_avg)
        np.testing.assert_array_equal(arrays[3], exp_avg_sq)
        found[name] = arrays[0]
    torch_s, by_product, *others = found.values()
    assert torch_s.tobytes() == expected.tobytes()
    assert by_product.tobytes() == expected.tobytes()
    assert all(other.tobytes() != expected.tobytes() for other in others)


def test_the_families_report_names_each_family_with_its_three_columns(capsys):
    tool = script("tools/arithmetic_in_cache.py")
    tool.main(["256", "1", "adam,sgd"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.rsplit(maxsplit=3)[0]: [float(x) for x in line.rsplit(maxsplit=3)[1:]] for line in lines[2:-1]}
    assert set(rows) == {"adam", "adam, convention='deepspeed'", "sgd"}
    for step, traffic, arithmetic in rows.values():
        assert step > 0 and traffic > 0 and abs(step - traffic - arithmetic) < 2e-3
