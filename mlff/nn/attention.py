"""EquiformerV2's equivariant graph attention built on SO(2) convolutions.

For each edge j -> i: concatenate the features of j and i, rotate them into the edge frame,
apply an SO(2) convolution modulated by the radial features (which also yields the invariant
attention features), a nonlinearity, a second SO(2) convolution for the values, weight by the
attention, rotate back and sum over the neighbours of i. The attention logits use
re-normalisation (LayerNorm + smooth leaky ReLU before the dot product with a learned vector).

Smoothness: the softmax is weighted by the cutoff envelope and every message is multiplied by
it, so an edge crossing the cutoff changes nothing discontinuously (see
:func:`mlff.kernels.enveloped_softmax`).
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.config import choose
from mlff.kernels import enveloped_softmax
from mlff.nn.activation import GateActivation, SeparableS2Activation, SmoothLeakyReLU
from mlff.nn.chunking import EdgeChunk, over_edge_chunks
from mlff.nn.edge_features import EdgeFeatures
from mlff.nn.edge_frame import Frame
from mlff.nn.so2_conv import SO2Convolution
from mlff.nn.so3_linear import SO3Linear
from mlff.so3.grid import SphereGrid
from mlff.so3.layout import degrees, m_major_index


def edge_gate(lmax: int, mmax: int, channels: int, grid_resolution: int) -> tuple[nn.Module, int]:
    """Gate activation on m-major edge-frame coefficients; needs ``lmax * channels`` gates."""
    return GateActivation(degrees(lmax)[m_major_index(lmax, mmax)], channels), lmax * channels


def edge_s2(lmax: int, mmax: int, channels: int, grid_resolution: int) -> tuple[nn.Module, int]:
    """Separable S2 activation on an edge-frame grid; needs ``channels`` scalars."""
    grid = SphereGrid(lmax, grid_resolution, grid_resolution, index=m_major_index(lmax, mmax))
    return SeparableS2Activation(grid), channels


#: edge-frame nonlinearities by name: (lmax, mmax, channels, grid_resolution) -> (module, scalars it needs)
EDGE_ACTIVATIONS = {"gate": edge_gate, "s2": edge_s2}

#: what the invariant attention features pass through before the smooth leaky ReLU and the logit dot
#: product: EquiformerV2's re-normalisation (a LayerNorm per head), the same with eps = 1 (close to
#: linear while the features' spread is well below 1, normalising well above it), or nothing
ALPHA_NORMS = {"layer_norm": nn.LayerNorm, "soft_layer_norm": lambda channels: nn.LayerNorm(channels, eps=1.0),
               "none": lambda channels: nn.Identity()}


class SO2GraphAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        lmax: int,
        mmax: int,
        num_species: int,
        heads: int = 8,
        hidden_channels: int = 64,
        alpha_channels: int = 64,
        value_channels: int = 16,
        edge_channels: int = 128,
        num_basis: int = 128,
        activation: str = "gate",
        grid_resolution: int = 18,
        alpha_norm: str = "layer_norm",
    ):
        super().__init__()
        self.heads, self.alpha_channels, self.value_channels = heads, alpha_channels, value_channels
        self.edge_features = EdgeFeatures(num_species, edge_channels, num_basis)
        radial = [self.edge_features.num_features, edge_channels, edge_channels]
        make_act = choose(EDGE_ACTIVATIONS, activation, "edge_activation")
        self.act, gate_channels = make_act(lmax, mmax, hidden_channels, grid_resolution)
        self.conv1 = SO2Convolution(
            2 * channels, hidden_channels, lmax, mmax, radial, extra_channels=heads * alpha_channels + gate_channels
        )
        self.conv2 = SO2Convolution(hidden_channels, heads * value_channels, lmax, mmax)
        self.alpha_norm = choose(ALPHA_NORMS, alpha_norm, "attn_alpha_norm")(alpha_channels)
        self.alpha_act = SmoothLeakyReLU(0.2)
        self.alpha_dot = nn.Parameter(torch.randn(heads, alpha_channels) / alpha_channels**0.5)
        self.proj = SO3Linear(heads * value_channels, channels, lmax)

    def forward(
        self,
        x: torch.Tensor,
        species: torch.Tensor,
        frame: Frame,
        basis: torch.Tensor,
        envelope: torch.Tensor,
        edge_index: torch.Tensor,
        count: int | None = None,
    ) -> torch.Tensor:
        """The messages into the first ``count`` atoms (default all; every receiver must be among them)."""
        count = x.shape[0] if count is None else count
        total = over_edge_chunks(self.messages, frame, edge_index[1], count, x, species, basis, envelope, edge_index)
        return self.proj(total)

    def messages(self, frame: Frame, chunk: EdgeChunk, x, species, basis, envelope, edge_index) -> torch.Tensor:
        """The attention-weighted values summed into the chunk's atoms, ``[count, (lmax+1)^2, heads *
        value_channels]``, over its edges (all the incoming edges of those atoms; :mod:`mlff.nn.chunking`)."""
        receiver, envelope = chunk.receivers(edge_index[1]), envelope[chunk.edges]
        value, logits = self.values_and_logits(frame, chunk.edges, x, species, basis, edge_index)
        weight = enveloped_softmax(logits, envelope, receiver, chunk.count) * envelope[:, None]  # [e, heads]
        return frame.rotate_back(value, receiver, chunk.count, weight=weight)

    def values_and_logits(self, frame: Frame, edges, x, species, basis, edge_index):
        """The values ``[e, K_mmax, heads * value_channels]`` and attention logits ``[e, heads]`` of the
        ``edges`` (a slice or an index tensor), whose frames are ``frame``."""
        edge_index = edge_index[:, edges]
        e = edge_index.shape[1]
        edge_features = self.edge_features(basis[edges], species, edge_index)
        # [x_sender, x_receiver] in the edge frame, scaled by the radial features
        message = frame.rotate(x, edge_index, scale=self.conv1.radial_scales(edge_features))
        message, extra = self.conv1(message)
        alpha, gates = extra.split([self.heads * self.alpha_channels, extra.shape[1] - self.heads * self.alpha_channels], 1)
        message = self.act(gates, message)
        value, _ = self.conv2(message)
        logits = self.alpha_act(self.alpha_norm(alpha.view(e, self.heads, self.alpha_channels)))
        return value, torch.einsum("ehc,hc->eh", logits, self.alpha_dot)
