"""Triton real spherical harmonics of unit vectors, and their first derivatives, for any lmax.

The recurrences of :mod:`mlff.so3.spherical_harmonics` are unrolled when the kernel is generated
(one straight-line kernel per lmax, written out as source and compiled once), in forward mode: every
polynomial carries its derivative, so the same pass gives ``Y`` and ``dY/du``. Three ops:

* ``mlff::spherical_harmonics(u, lmax) -> Y [E, (lmax+1)^2]``
* ``mlff::spherical_harmonics_vjp(u, g, lmax) -> sum_k g_k dY_k/du  [E, 3]`` (the backward)
* ``mlff::spherical_harmonics_jvp(u, v, lmax) -> sum_i dY/du_i v_i  [E, K]`` (the backward's
  derivative in ``g``)

The backward's derivative in ``u`` (a Hessian-vector product, needed only for second derivatives
with respect to positions, as in force training) is taken through the PyTorch reference.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import sys
import tempfile
from pathlib import Path

import torch
import triton

from mlff.kernels.triton.common import count_launch
from mlff.so3.spherical_harmonics import normalization
from mlff.so3.spherical_harmonics import spherical_harmonics as reference_harmonics


_HEADER = '''import triton
import triton.language as tl


@triton.jit
def kernel(u_ptr, in_ptr, out_ptr, n, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """MODE 0: Y; 1: vjp (in = g [n, K], out [n, 3]); 2: jvp (in = v [n, 3], out [n, K])."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    i64 = i.to(tl.int64)
    b = tl.load(u_ptr + i64 * 3, mask=mask, other=0.0)
    p = tl.load(u_ptr + i64 * 3 + 1, mask=mask, other=0.0)
    a = tl.load(u_ptr + i64 * 3 + 2, mask=mask, other=1.0)
    one = tl.full((BLOCK,), 1.0, dtype=b.dtype)
    zero = tl.zeros((BLOCK,), dtype=b.dtype)
    if MODE == 2:
        vx = tl.load(in_ptr + i64 * 3, mask=mask, other=0.0)
        vy = tl.load(in_ptr + i64 * 3 + 1, mask=mask, other=0.0)
        vz = tl.load(in_ptr + i64 * 3 + 2, mask=mask, other=0.0)
    ax = zero
    ay = zero
    az = zero
'''

_FOOTER = '''    if MODE == 1:
        tl.store(out_ptr + i64 * 3, ax, mask=mask)
        tl.store(out_ptr + i64 * 3 + 1, ay, mask=mask)
        tl.store(out_ptr + i64 * 3 + 2, az, mask=mask)
'''


def _source(lmax: int) -> str:
    """Kernel source: per lane, Y_lm and its gradient in (x, y, z) = (b, p, a) by unrolled recurrences."""
    lines = []
    emit = lines.append
    # azimuthal factors C_m + i S_m = (a + i b)^m; d/da = m (a+ib)^(m-1), d/db = i m (a+ib)^(m-1)
    emit("c0 = one; s0 = zero")
    for m in range(1, lmax + 1):
        emit(f"c{m} = a * c{m-1} - b * s{m-1}; s{m} = a * s{m-1} + b * c{m-1}")
    # Q[l][m](p) and dQ/dp by the Legendre recurrences of mlff.so3.spherical_harmonics
    for m in range(lmax + 1):
        emit(f"q{m}_{m} = one * {float(math.prod(range(1, 2 * m, 2)))}; dq{m}_{m} = zero")
        if m + 1 <= lmax:
            emit(f"q{m+1}_{m} = {2 * m + 1}.0 * p * q{m}_{m}; dq{m+1}_{m} = {2 * m + 1}.0 * q{m}_{m}")
        for l in range(m + 2, lmax + 1):
            emit(f"q{l}_{m} = ({2 * l - 1}.0 * p * q{l-1}_{m} - {l + m - 1}.0 * q{l-2}_{m}) / {l - m}.0")
            emit(f"dq{l}_{m} = ({2 * l - 1}.0 * (q{l-1}_{m} + p * dq{l-1}_{m}) - {l + m - 1}.0 * dq{l-2}_{m}) / {l - m}.0")
    size = (lmax + 1) ** 2
    for k, (l, m) in enumerate((l, m) for l in range(lmax + 1) for m in range(-l, l + 1)):
        n, f = abs(m), normalization(l, abs(m))
        # the azimuthal factor and its derivatives in a and b: C_n -> (n C_{n-1}, -n S_{n-1}), S_n -> (n S_{n-1}, n C_{n-1})
        if n == 0:
            factor, da, db = "one", "zero", "zero"
        elif m > 0:
            factor, da, db = f"c{n}", f"{n}.0 * c{n-1}", f"-{n}.0 * s{n-1}"
        else:
            factor, da, db = f"s{n}", f"{n}.0 * s{n-1}", f"{n}.0 * c{n-1}"
        emit(f"y = {f!r} * q{l}_{n} * {factor}")
        emit(f"gx = {f!r} * q{l}_{n} * ({db}); gy = {f!r} * dq{l}_{n} * {factor}; gz = {f!r} * q{l}_{n} * ({da})")
        emit("if MODE == 0:")
        emit(f"    tl.store(out_ptr + i64 * {size} + {k}, y, mask=mask)")
        emit("if MODE == 1:")
        emit(f"    g = tl.load(in_ptr + i64 * {size} + {k}, mask=mask, other=0.0)")
        emit("    ax += g * gx; ay += g * gy; az += g * gz")
        emit("if MODE == 2:")
        emit(f"    tl.store(out_ptr + i64 * {size} + {k}, gx * vx + gy * vy + gz * vz, mask=mask)")
    return _HEADER + "".join(f"    {line}\n" for line in lines) + _FOOTER


@functools.lru_cache(maxsize=None)
def _kernel(lmax: int):
    """Write the generated source to a file (Triton compiles from source files) and import it.

    The file is named by a hash of its source, so processes running different versions never read
    each other's kernel; it is written whole under a private name and then renamed into place.
    """
    directory = Path(tempfile.gettempdir()) / "mlff-triton"
    directory.mkdir(exist_ok=True)
    source = _source(lmax)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = directory / f"spherical_harmonics_l{lmax}_{digest}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        tmp.replace(path)
    name = f"mlff_triton_spherical_harmonics_l{lmax}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.kernel


BLOCK = 128


def _launch(u, other, out, lmax: int, mode: int, name: str):
    if u.shape[0]:
        count_launch(name)
        _kernel(lmax)[(triton.cdiv(u.shape[0], BLOCK),)](u, other, out, u.shape[0], MODE=mode, BLOCK=BLOCK)
    return out


@torch.library.custom_op("mlff::spherical_harmonics", mutates_args=())
def spherical_harmonics(u: torch.Tensor, lmax: int) -> torch.Tensor:
    u = u.contiguous()
    return _launch(u, u, u.new_empty(u.shape[0], (lmax + 1) ** 2), lmax, 0, "spherical_harmonics")


@spherical_harmonics.register_fake
def _(u, lmax):
    return u.new_empty(u.shape[0], (lmax + 1) ** 2)


@torch.library.custom_op("mlff::spherical_harmonics_vjp", mutates_args=())
def spherical_harmonics_vjp(u: torch.Tensor, g: torch.Tensor, lmax: int) -> torch.Tensor:
    u, g = u.contiguous(), g.contiguous()
    return _launch(u, g, torch.empty_like(u), lmax, 1, "spherical_harmonics_vjp")


@spherical_harmonics_vjp.register_fake
def _(u, g, lmax):
    return torch.empty_like(u)


@torch.library.custom_op("mlff::spherical_harmonics_jvp", mutates_args=())
def spherical_harmonics_jvp(u: torch.Tensor, v: torch.Tensor, lmax: int) -> torch.Tensor:
    u, v = u.contiguous(), v.contiguous()
    return _launch(u, v, u.new_empty(u.shape[0], (lmax + 1) ** 2), lmax, 2, "spherical_harmonics_jvp")


@spherical_harmonics_jvp.register_fake
def _(u, v, lmax):
    return u.new_empty(u.shape[0], (lmax + 1) ** 2)


def _save(ctx, inputs, output):
    ctx.save_for_backward(*[t for t in inputs if isinstance(t, torch.Tensor)])
    ctx.lmax = inputs[-1]


def _sh_backward(ctx, grad):
    (u,) = ctx.saved_tensors
    return spherical_harmonics_vjp(u, grad, ctx.lmax), None


def _hessian_product(u, g, vector, lmax: int):
    """``d/du <vector, sum_k g_k dY_k/du>`` (the partial derivative, ``g`` held fixed) through the PyTorch
    reference. ``torch.func`` takes it without walking the histories of ``u`` and ``g``, and the result
    stays differentiable in ``u``, ``g`` and ``vector`` for one more order."""
    if lmax == 0:  # constant harmonics
        return torch.zeros_like(u)

    def potential(x):
        return (reference_harmonics(lmax, x, normalize=False) * g).sum()

    return torch.func.jvp(torch.func.grad(potential), (u,), (vector,))[1]


def _vjp_backward(ctx, grad):
    u, g = ctx.saved_tensors
    grad_g = spherical_harmonics_jvp(u, grad, ctx.lmax) if ctx.needs_input_grad[1] else None
    grad_u = _hessian_product(u, g, grad, ctx.lmax) if ctx.needs_input_grad[0] else None
    return grad_u, grad_g, None


def _jvp_backward(ctx, grad):
    # <grad, J(u) v> = <J(u)^T grad, v>: its u-derivative is the Hessian of <grad, Y> applied to v
    u, v = ctx.saved_tensors
    grad_v = spherical_harmonics_vjp(u, grad, ctx.lmax) if ctx.needs_input_grad[1] else None
    grad_u = _hessian_product(u, grad, v, ctx.lmax) if ctx.needs_input_grad[0] else None
    return grad_u, grad_v, None


spherical_harmonics.register_autograd(_sh_backward, setup_context=_save)
spherical_harmonics_vjp.register_autograd(_vjp_backward, setup_context=_save)
spherical_harmonics_jvp.register_autograd(_jvp_backward, setup_context=_save)
