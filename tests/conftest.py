"""Run the Triton kernels through Triton's interpreter where there is no GPU.

``TRITON_INTERPRET`` is read when a kernel is defined, so it is set here, before any test module
imports Triton; with it set, :func:`mlff.kernels.available_backends` lists ``triton`` on the CPU and
the model test-suite runs every model on both backends.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
