"""The reference methods the generators label with, by the name their frames carry in ``info["method"]``.

:func:`reference_calculator` gives a fresh ASE calculator for one, so the method can be evaluated
again where a model went (the end points of its relaxations, the points of a bond scan).
"""

from __future__ import annotations

from ase.calculators.emt import EMT

from mlff.data.generate.common import lookup
from mlff.data.generate.md17 import METHOD as XTB_METHOD
from mlff.data.generate.md17 import xtb_calculator
from mlff.data.generate.oc20 import METHOD as EMT_METHOD

METHODS = {XTB_METHOD: xtb_calculator, EMT_METHOD: EMT}
ALIASES = {"xtb": XTB_METHOD, "emt": EMT_METHOD}


def reference_calculator(method: str):
    """A new calculator of ``method`` (``"GFN2-xTB"`` or ``"EMT"``, any case; ``"xtb"`` and ``"emt"`` too);
    a DataError names an unknown one."""
    name = ALIASES.get(str(method).strip().lower(), method)
    return METHODS[lookup("reference method", name, METHODS)]()
