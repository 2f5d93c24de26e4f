"""`mlff bench kernels` runs end to end on the CPU and reports every op it times (tiny sizes)."""

import re

from mlff.cli import main


def test_kernel_benchmark_reports_each_op_and_the_model(capsys):
    assert main(["bench", "kernels", "--preset", "small", "--op-atoms", "4", "--atoms", "4", "--no-compile",
                 "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for op in ("rotate (+radial scale)", "rotate_back (weighted)", "dense rows from blocks", "enveloped_softmax",
               "segment_sum", "grid_silu (edge grid)", "grid_mlp (node grid)"):
        assert re.search(rf"{re.escape(op)}\s+reference\s+\d+\.\d+\s+\d+\.\d+", out), op  # fwd and fwd+bwd ms
    assert "forward speed-up over dense (before): reference" in out
    assert "small Cu      4 atoms" in out and "train step" in out
