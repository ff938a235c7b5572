"""Comparing one output of OUT (in the target) with the same output of IN (in the reference).

Floats match within numpy's allclose rule, |got - want| <= atol + rtol * |want|,
with tolerances per dtype (two releases may pick different kernels: oneDNN in
TF 2.x, Eigen in 1.x, so bit equality is not expected); NaNs match NaNs.
Everything else (integers, bools, strings) must be equal.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

#: (rtol, atol) per float dtype.
TOLERANCES: Dict[str, Tuple[float, float]] = {
    "float16": (1e-2, 1e-3), "bfloat16": (2e-2, 1e-2), "float32": (1e-4, 1e-5), "float64": (1e-7, 1e-9),
    "complex64": (1e-4, 1e-5), "complex128": (1e-7, 1e-9)}


@dataclasses.dataclass
class OutputCheck:
    key: str
    dtype: str
    shape: list
    reference_shape: list
    ok: bool
    max_abs_error: Optional[float] = None
    max_rel_error: Optional[float] = None
    rtol: Optional[float] = None
    atol: Optional[float] = None
    #: Why it failed (None when ok).
    detail: Optional[str] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def tolerance(dtype: str, rtol: Optional[float] = None, atol: Optional[float] = None) -> Tuple[float, float]:
    """The (rtol, atol) a float output of `dtype` is held to; the user's values win."""
    default = TOLERANCES.get(dtype, TOLERANCES["float32"])
    return (default[0] if rtol is None else rtol, default[1] if atol is None else atol)


def compare(key: str, got, want, rtol: Optional[float] = None, atol: Optional[float] = None) -> OutputCheck:
    """OUT's value `got` against IN's `want` for output `key`."""
    import numpy as np

    g, w = np.asarray(got), np.asarray(want)
    check = OutputCheck(key, str(w.dtype), list(g.shape), list(w.shape), True)
    if g.shape != w.shape:
        check.ok, check.detail = False, "shape %s, reference %s" % (list(g.shape), list(w.shape))
        return check
    if w.dtype.kind in "fc" or g.dtype.kind in "fc":
        return _compare_floats(check, g, w, *tolerance(str(w.dtype), rtol, atol))
    if w.dtype.kind in "SUO" or g.dtype.kind in "SUO":
        g, w = _as_bytes(g), _as_bytes(w)
    elif g.dtype != w.dtype:
        check.ok, check.detail = False, "dtype %s, reference %s" % (g.dtype, w.dtype)
        return check
    mismatched = int(np.sum(g != w)) if g.size else 0
    if mismatched:
        first = np.argwhere(g != w)[0] if g.ndim else ()
        check.ok = False
        check.detail = "%d of %d values differ (first at %s: %r, reference %r)" % (
            mismatched, g.size, list(map(int, first)), _item(g[tuple(first)]), _item(w[tuple(first)]))
    return check


def _item(x):
    return x.item() if hasattr(x, "item") else x


def _as_bytes(a):
    import numpy as np

    flat = [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in a.ravel()]
    return np.array(flat, dtype=object).reshape(a.shape)


def _compare_floats(check: OutputCheck, g, w, rtol: float, atol: float) -> OutputCheck:
    import numpy as np

    check.rtol, check.atol = rtol, atol
    g64, w64 = g.astype(np.complex128 if g.dtype.kind == "c" else np.float64), w.astype(
        np.complex128 if w.dtype.kind == "c" else np.float64)
    same_nan = np.isnan(g64) == np.isnan(w64)
    both_finite = ~np.isnan(g64) & ~np.isnan(w64)
    diff = np.where(both_finite, np.abs(g64 - w64), 0.0)
    if g.size:
        check.max_abs_error = float(np.max(diff))
        check.max_rel_error = float(np.max(diff / np.maximum(np.abs(np.where(both_finite, w64, 1.0)), 1e-30)))
    close = np.isclose(g64, w64, rtol=rtol, atol=atol, equal_nan=True) & same_nan
    if not close.all():
        bad = np.argwhere(~close)
        first = tuple(bad[0]) if g.ndim else ()
        check.ok = False
        check.detail = "%d of %d values outside rtol %g / atol %g (max |diff| %.3g; first at %s: %r, reference %r)" % (
            len(bad) if g.ndim else 1, g.size, rtol, atol, check.max_abs_error or 0.0, list(map(int, first)),
            g64[first].item(), w64[first].item())
    return check
