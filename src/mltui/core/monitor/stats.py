"""The drift tests that hold up at monitoring sizes, computed from compact window aggregates.

Small windows (up to SMALL rows): the two-sample Kolmogorov–Smirnov test for numbers (exact statistic
on the window's values against the reference's sample, asymptotic p-value) and Pearson's chi-squared
goodness of fit for categories (expected shares from the reference). Larger windows: the Wasserstein
distance normalised by the reference's standard deviation for numbers (from the CDFs on the
reference's quantile bins) and the Jensen–Shannon distance for categories. PSI beside them always.
The thresholds are the ones monitoring tools default to: p < 0.05, Wasserstein and JS > 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mltui.core.data.drift import ks_exact, psi

SMALL = 1000
P_VALUE = 0.05
DISTANCE = 0.1
PSI_MAJOR = 0.25


def shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total for c in counts] if total else [0.0 for _ in counts]


def psi_of(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> float:
    return psi(shares(ref_counts), shares(cur_counts))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic p-value of a two-sample KS statistic (Kolmogorov's distribution, Stephens' correction)."""
    if n == 0 or m == 0 or math.isnan(d):
        return float("nan")
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def ks_test(values: Sequence[float], reference_sample: Sequence[float], ref_n: int) -> tuple[float, float]:
    d = ks_exact(values, reference_sample)
    return d, ks_pvalue(d, len(values), min(ref_n, len(reference_sample)))


def _gamma_q(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-14:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    b = x + 1 - a
    c = 1.0 / 1e-300
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-14:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def chi2_test(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> tuple[float, float]:
    """Goodness of fit of the window's category counts to the reference's shares: (statistic, p-value)."""
    n = float(sum(cur_counts))
    if n == 0:
        return float("nan"), float("nan")
    expected = [max(s, 1e-4) * n for s in shares(ref_counts)]
    stat = sum((o - e) ** 2 / e for o, e in zip(cur_counts, expected))
    dof = max(1, sum(1 for c in ref_counts if c > 0) - 1)
    return stat, _gamma_q(dof / 2.0, stat / 2.0)


def js_distance(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> float:
    """Jensen–Shannon distance (base 2, so in [0, 1]) of two count vectors over the same categories."""
    p, q = shares(ref_counts), shares(cur_counts)
    if not any(q) or not any(p):
        return float("nan")
    total = 0.0
    for a, b in zip(p, q):
        m = (a + b) / 2
        if a > 0:
            total += a * math.log2(a / m) / 2
        if b > 0:
            total += b * math.log2(b / m) / 2
    return math.sqrt(max(0.0, total))


def wasserstein_normed(edges: Sequence[float], ref_counts: Sequence[float], cur_counts: Sequence[float],
                       lo: float, hi: float, ref_std: float) -> float:
    """W1 between two distributions binned on `edges` (bins: below edges[0], between edges, above the
    last), with the outer bins spanning to the lowest/highest value seen, over the reference's std."""
    if ref_std <= 0 or not sum(cur_counts) or not sum(ref_counts):
        return float("nan") if ref_std <= 0 else 0.0
    bounds = [min(lo, edges[0]), *edges, max(hi, edges[-1])]
    pa, pb = shares(ref_counts), shares(cur_counts)
    ca = cb = 0.0
    total = 0.0
    for i in range(len(bounds) - 1):
        width = bounds[i + 1] - bounds[i]
        # within a bin the mass is spread evenly: the CDF gap grows linearly across it
        na, nb = ca + pa[i], cb + pb[i]
        total += width * (abs(ca - cb) + abs(na - nb)) / 2
        ca, cb = na, nb
    return total / ref_std


def percentile(bounds: Sequence[float], counts: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of values binned with `bounds` (len(counts) + 1 edges), interpolated."""
    total = sum(counts)
    if not total:
        return None
    want = q * total
    seen = 0.0
    for i, c in enumerate(counts):
        if c and seen + c >= want:
            frac = (want - seen) / c
            return bounds[i] + frac * (bounds[i + 1] - bounds[i])
        seen += c
    return bounds[-1]


def latency_bounds() -> list[float]:
    """Log-spaced latency bins from 0.01 ms to about 28 hours, 8 per doubling (under 5 % error)."""
    return [0.0] + [0.01 * 2 ** (i / 8) for i in range(8 * 33 + 1)]
