"""A network run through ``torch.compile`` for inference, with atom and edge counts dynamic.

In MD the edge count changes at almost every step (the Verlet list keeps only the pairs inside the
cutoff), and the atom count changes from structure to structure. The network is compiled once with
symbolic sizes, so neither change recompiles; :attr:`CompiledNetwork.compilations` counts the graphs
compiled (a recompilation adds one), so a run can prove it. Forces and stress still come from
autograd: the compiled forward has a compiled backward (AOTAutograd), and ``torch.autograd.grad``
runs it. Training (``create_graph``, a double backward) stays eager.

Graphs with fewer than two atoms or two edges run eagerly: ``torch.compile`` specialises sizes 0 and
1, and compiling them would add a graph per corner case. So do graphs large enough to run in chunks
(:mod:`mlff.nn.chunking`): the chunk boundaries depend on the data, and there the work per launch is
large anyway.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from mlff import kernels
from mlff.nn import chunking

# The layout helpers (mlff.so3.layout.wigner_rows and the kernels' index tables) are memoised with
# functools.lru_cache; dynamo traces through the cache and warns that it might hide a changed result.
# Theirs depend on their integer arguments only, so the warning says nothing here.
warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`", category=UserWarning)


class CompiledNetwork:
    """``network(species, vectors, edge_index)`` through ``torch.compile`` (inductor, dynamic sizes)."""

    def __init__(self, network: nn.Module):
        self.network = network
        self.compilations = 0
        self._compiled = torch.compile(network, backend=self._backend, dynamic=True)

    def _backend(self, graph_module, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        compiled = compile_fx(graph_module, example_inputs)
        first = True

        def run(*args):
            # counted when first run: dynamo may restart an analysis and drop what it compiled
            nonlocal first
            if first:
                first = False
                self.compilations += 1
            return compiled(*args)

        run._boxed_call = getattr(compiled, "_boxed_call", False)
        return run

    def __call__(self, species: torch.Tensor, vectors: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        size = chunking.chunk_size()
        if species.shape[0] < 2 or edge_index.shape[1] < 2 or (size is not None and edge_index.shape[1] > size):
            return self.network(species, vectors, edge_index)
        # the compiled graph guards on the kernel choice: name the backend that runs ('torch' or
        # 'triton'), not how it was asked for ('auto', unset), so equal choices share one graph
        with kernels.use_backend(kernels.active_backend(vectors.device)):
            return self._compiled(species, vectors, edge_index)
