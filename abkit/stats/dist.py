"""The few distribution functions of the compare path, straight from ``scipy.special``.

``scipy.stats`` and ``scipy.optimize`` cost most of a second to import; the compare path needs
only normal, Student-t and chi-square tails and one root finder (the off-policy interval a beta
quantile). Each function here is the very ufunc that ``scipy.stats`` calls for it
(``norm.sf(x)`` is ``ndtr(-x)``, ``t.ppf(q, df)`` is ``stdtrit(df, q)``, ``chi2.sf(x, df)`` is
``chdtrc(df, x)``, ``beta.ppf(q, a, b)`` is ``betaincinv(a, b, q)``), so the numbers are the same
to the last bit (``tests/stats/test_dist.py`` checks it); :func:`brentq` is scipy's Brent
solver (``scipy/optimize/Zeros/brentq.c``) line by line. ``scipy.special`` itself is imported
on first use, so loading a command costs nothing until a number is computed; and the plain
numbers of a default A/B comparison (normal tails and quantiles, the chi-square tail of one or
two degrees of freedom) are computed with :mod:`math` instead, equal to scipy's to a few units
in the last place, so ``abkit compare`` never imports scipy (a fifth of a second).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

_RTOL = 4 * sys.float_info.epsilon  # scipy.optimize's smallest rtol


def _scalar(x: Any) -> bool:
    """A plain number (Python or numpy float/int): computed with :mod:`math`, no scipy."""
    return isinstance(x, float | int) and not isinstance(x, bool)


def _like(x: Any, value: float) -> Any:
    """``value`` as the type scipy's ufunc returns for ``x``: a numpy float64 for a numpy
    scalar (it has ``ndim`` and the other array attributes), a float for a Python number."""
    if type(x).__module__ == "numpy":
        import numpy as np

        return np.float64(value)
    return value


def _ndtr(x: float) -> float:
    """The standard normal cdf by ``math.erf``/``erfc``, split as cephes' ``ndtr`` splits it
    (erf near 0, erfc in the tails, so neither tail loses digits)."""
    t = x * _SQRT1_2
    z = abs(t)
    if math.isnan(x):
        return math.nan
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(t)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if t > 0 else y


def _ndtri(q: float) -> float:
    """The standard normal quantile by Halley steps to full precision: in the centre
    (``0.25 <= q <= 0.75``) on ``erf(x / sqrt 2) / 2 = q - 0.5`` (exact there), so small
    quantiles keep their relative precision; in the tails on the lower tail's cdf
    (:func:`_ndtr`, by ``erfc``), started from Abramowitz & Stegun 26.2.23 (error < 4.5e-4)."""
    if math.isnan(q) or q < 0 or q > 1:
        return math.nan
    if q == 0:
        return -math.inf
    if q == 1:
        return math.inf
    if 0.25 <= q <= 0.75:
        d = q - 0.5
        x = d * _SQRT2PI
        for _ in range(8):
            density = math.exp(-0.5 * x * x) / _SQRT2PI
            error = (0.5 * math.erf(x * _SQRT1_2) - d) / density
            step = error / (1.0 + 0.5 * x * error)
            x -= step
            if abs(step) <= 1e-17 * abs(x):
                break
        return x
    lower = q < 0.5
    p = q if lower else 1.0 - q
    t = math.sqrt(-2.0 * math.log(p))
    x = -(
        t
        - (2.515517 + 0.802853 * t + 0.010328 * t * t)
        / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
    )
    for _ in range(8):  # x < 0 here: the lower tail, where erfc keeps every digit
        density = math.exp(-0.5 * x * x) / _SQRT2PI
        if density == 0:
            break
        error = (_ndtr(x) - p) / density
        step = error / (1.0 + 0.5 * x * error)
        x -= step
        if abs(step) <= 1e-17 * abs(x):
            break
    return x if lower else -x


_SQRT1_2 = math.sqrt(0.5)
_SQRT2PI = math.sqrt(2 * math.pi)


def norm_cdf(x: Any) -> Any:
    """``scipy.stats.norm.cdf(x)`` (a plain number: by :mod:`math`, equal to scipy's to a
    few units in the last place, without importing scipy)."""
    if _scalar(x):
        return _like(x, _ndtr(float(x)))
    from scipy.special import ndtr

    return ndtr(x)


def norm_sf(x: Any) -> Any:
    """``scipy.stats.norm.sf(x)`` (a plain number: by :mod:`math`, see :func:`norm_cdf`)."""
    if _scalar(x):
        return _like(x, _ndtr(-float(x)))
    from scipy.special import ndtr

    return ndtr(-x)


def norm_ppf(q: Any) -> Any:
    """``scipy.stats.norm.ppf(q)`` (a plain number: by :mod:`math`, see :func:`norm_cdf`)."""
    if _scalar(q):
        return _like(q, _ndtri(float(q)))
    from scipy.special import ndtri

    return ndtri(q)


def t_cdf(x: Any, df: Any) -> Any:
    """``scipy.stats.t.cdf(x, df)``."""
    from scipy.special import stdtr

    return stdtr(df, x)


def t_sf(x: Any, df: Any) -> Any:
    """``scipy.stats.t.sf(x, df)``."""
    from scipy.special import stdtr

    return stdtr(df, -x)


def t_ppf(q: Any, df: Any) -> Any:
    """``scipy.stats.t.ppf(q, df)`` (``q = 0`` is the support's end, -inf, for every df)."""
    import numpy as np
    from scipy.special import stdtrit

    return np.where(np.asarray(q) == 0, -np.inf, stdtrit(df, q))[()]


def chi2_sf(x: Any, df: Any) -> Any:
    """``scipy.stats.chi2.sf(x, df)`` (1 below the support, NaN unless ``df > 0``). For plain
    numbers with 1 or 2 degrees of freedom (the SRM check of two arms, of three) by
    :mod:`math`: ``erfc(sqrt(x / 2))`` and ``exp(-x / 2)``."""
    if _scalar(x) and _scalar(df) and float(df) in (1.0, 2.0):
        v = float(x)
        if math.isnan(v) or v < 0:
            return _like(x, math.nan if math.isnan(v) else 1.0)
        return _like(x, math.erfc(math.sqrt(v / 2)) if float(df) == 1.0 else math.exp(-v / 2))
    import numpy as np
    from scipy.special import chdtrc

    x, df = np.asarray(x, dtype=np.float64), np.asarray(df, dtype=np.float64)
    value = np.where(x < 0, 1.0, chdtrc(df, x))
    return np.where(df > 0, value, np.nan)[()]


def beta_ppf(q: Any, a: Any, b: Any) -> Any:
    """``scipy.stats.beta.ppf(q, a, b)`` for ``0 < q < 1`` (both are Boost's ``ibeta_inv``)."""
    from scipy.special import betaincinv

    return betaincinv(a, b, q)


class Normal:
    """The standard normal, with the methods of a frozen ``scipy.stats.norm()``."""

    def cdf(self, x: Any) -> Any:
        return norm_cdf(x)

    def sf(self, x: Any) -> Any:
        return norm_sf(x)

    def ppf(self, q: Any) -> Any:
        return norm_ppf(q)


class StudentT:
    """Student's t with ``df`` degrees of freedom, like a frozen ``scipy.stats.t(df)``."""

    def __init__(self, df: float) -> None:
        self.df = df

    def cdf(self, x: Any) -> Any:
        return t_cdf(x, self.df)

    def sf(self, x: Any) -> Any:
        return t_sf(x, self.df)

    def ppf(self, q: Any) -> Any:
        return t_ppf(q, self.df)


Distribution = Normal | StudentT


def brentq(
    f: Callable[[float], float],
    a: float,
    b: float,
    *,
    xtol: float = 2e-12,
    rtol: float = _RTOL,
    maxiter: int = 100,
) -> float:
    """``scipy.optimize.brentq(f, a, b, xtol=..., rtol=..., maxiter=...)``, the same steps.

    Raises ValueError when ``f(a)`` and ``f(b)`` have the same sign or ``f`` returns NaN, and
    RuntimeError when ``maxiter`` steps do not converge, as scipy does.
    """
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")
    if rtol < _RTOL:
        raise ValueError(f"rtol too small ({rtol:g} < {_RTOL:g})")

    def call(x: float) -> float:
        value = float(f(x))
        if math.isnan(value):
            raise ValueError(f"The function value at x={x:f} is NaN; solver cannot continue.")
        return value

    xpre, xcur = float(a), float(b)
    xblk = fblk = spre = scur = 0.0
    fpre = call(xpre)
    fcur = call(xcur)
    if fpre * fcur > 0:
        raise ValueError("f(a) and f(b) must have different signs")
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and math.copysign(1, fpre) != math.copysign(1, fcur):
            xblk = xpre
            fblk = fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)  # interpolate
            else:
                dpre = (fpre - fcur) / (xpre - xcur)  # extrapolate
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):
                spre, scur = scur, stry  # good short step
            else:
                spre = scur = sbis  # bisect
        else:
            spre = scur = sbis  # bisect
        xpre, fpre = xcur, fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta
        fcur = call(xcur)
    raise RuntimeError(f"Failed to converge after {maxiter} iterations, value is {xcur}")


__all__ = [
    "Distribution",
    "Normal",
    "StudentT",
    "beta_ppf",
    "brentq",
    "chi2_sf",
    "norm_cdf",
    "norm_ppf",
    "norm_sf",
    "t_cdf",
    "t_ppf",
    "t_sf",
]
