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
                       ref_tails: tuple[float | None, float | None], cur_tails: tuple[float | None, float | None],
                       ref_std: float) -> float:
    """W1 between two distributions binned on `edges`, over the reference's standard deviation.

    Inside a bin the mass is taken as spread evenly. The two outer bins (below the first edge, above the
    last) have no far end, so each side's tail mass is spread evenly over an interval that ends at the
    edge and has the tail's own mean (`*_tails`: the means of the values below and above the edges)."""
    if ref_std <= 0:
        return float("nan")
    if not sum(cur_counts) or not sum(ref_counts):
        return 0.0
    pa, pb = shares(ref_counts), shares(cur_counts)
    first, last = edges[0], edges[-1]
    # breakpoints: every edge, and where each side's tail intervals end
    low_a = first - 2 * (first - ref_tails[0]) if ref_tails[0] is not None else first
    low_b = first - 2 * (first - cur_tails[0]) if cur_tails[0] is not None else first
    high_a = last + 2 * (ref_tails[1] - last) if ref_tails[1] is not None else last
    high_b = last + 2 * (cur_tails[1] - last) if cur_tails[1] is not None else last
    points = sorted({*edges, low_a, low_b, high_a, high_b})

    def cdf(p: Sequence[float], low: float, high: float, x: float) -> float:
        if x <= low:
            return 0.0
        if x < first:
            return p[0] * (x - low) / (first - low)
        total = p[0]
        for i in range(len(edges) - 1):
            if x < edges[i + 1]:
                return total + p[i + 1] * (x - edges[i]) / (edges[i + 1] - edges[i])
            total += p[i + 1]
        if x >= high:
            return 1.0
        return total + p[-1] * (x - last) / (high - last)

    area = 0.0
    for a, b in zip(points, points[1:]):
        # both CDFs are linear between breakpoints: integrate |F - G| exactly, crossing included
        fa, fb = cdf(pa, low_a, high_a, a) - cdf(pb, low_b, high_b, a), cdf(pa, low_a, high_a, b) - cdf(pb, low_b, high_b, b)
        if fa * fb >= 0:
            area += (b - a) * (abs(fa) + abs(fb)) / 2
        else:
            cross = abs(fa) / (abs(fa) + abs(fb))
            area += (b - a) * (abs(fa) * cross + abs(fb) * (1 - cross)) / 2
    return area / ref_std


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
    """Log-spaced latency bins from 0.01 ms to about 28 hours, 16 per doubling: each is 4.4 % wide, so
    a percentile read from them is within 4.4 % of the true one."""
    return [0.0] + [0.01 * 2 ** (i / 16) for i in range(16 * 33 + 1)]
