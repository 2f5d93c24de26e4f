"""Run the Triton kernels through Triton's interpreter where there is no GPU, and share the cores
between pytest-xdist's workers.

``TRITON_INTERPRET`` is read when a kernel is defined, so it is set here, before any test module
imports Triton; with it set, :func:`mlff.kernels.available_backends` lists ``triton`` on the CPU and
the model test-suite runs every model on both backends.

Under ``pytest -n N`` each worker gets ``cores // N`` threads (torch's and, through ``OMP_NUM_THREADS``,
tblite's and any subprocess's), so N workers do not fight over the cores.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    threads = max(1, (os.cpu_count() or 1) // WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
