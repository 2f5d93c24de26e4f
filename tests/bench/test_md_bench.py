"""`mlff bench md` runs end to end on the CPU (tiny sizes, eager) and reports what it measures."""

import re

from mlff.bench.md_speed import slope
from mlff.cli import main


def test_md_benchmark_reports_model_calculator_md_and_slope(capsys):
    assert main(["bench", "md", "--presets", "small", "--atoms", "4", "32", "--systems", "ethanol", "--modes", "eager",
                 "--peers", "--min-time", "0.05", "--threads", "1", "--replicas", "3"]) == 0
    out = capsys.readouterr().out
    assert "peers: none" in out
    assert re.search(r"ethanol small eager\s+9 atoms\s+\d+ edges \| model\s+\d+\.\d+ ms \| calculator\s+\d+\.\d+ ms "
                     r"\(nl\s+\d+%\) \| MD\s+\d+\.\d+ steps/s", out)
    assert re.search(r"Cu 32\s+32 atoms", out) and "log-log slope of the model time" in out
    assert re.search(r"ethanol x 3 small eager: batched\s+\d+ atom-steps/s \| one at a time\s+\d+ atom-steps/s \| "
                     r"batched / one at a time \d+\.\d+x", out)


def test_slope_is_the_power_law_exponent():
    points = [(n, 3e-6 * n**1.5) for n in (100, 1000, 10000)]
    assert abs(slope(points) - 1.5) < 1e-12
    assert abs(slope([(10, 1.0), (100, 10.0), (1000, 20.0), (10000, 200.0)]) - 1.0) < 1e-12  # only >= 1000 atoms
    assert slope([(10, 1.0)]) is None
