"""The curve families a learning curve is fitted with, on the score scale (0..1), as functions of
t = log n:

- flat:      s = a                                  (no further learning)
- log-linear: s = a + b * log n, up to 1            (a constant gain per doubling, no plateau in view)
- power:     s = a - b * n^(-c)                     (diminishing returns from the first size on)
- rectified: s = lo + r * sigmoid(c * (log n - m))^k (a pre-power phase, then a power-law approach
  to the plateau lo + r: with k = 1 the rectified scaling law of Lin et al. 2024 on the error scale,
  L(D) = B / (D_l + D^beta) + E, which is the logistic in log n; k bends the turn into the plateau)

Each non-linear parameter (c; c, m and k) runs over a fixed grid; given them, the rest is a weighted
least-squares line with the score's bounds as constraints, solved in closed form for every grid point
and every bootstrap replicate at once (matrix products), so a thousand refits cost milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 512  # grid points fitted at once
PLAUSIBLE = 3.84  # weighted residuals (chi-square units) within which a replicate's fits are not told apart


@dataclass
class Fitted:
    """One family fitted to every row of a (replicates x sizes) matrix of point means."""

    family: Family
    grid: np.ndarray  # per replicate: the chosen grid index
    alpha: np.ndarray  # per replicate: intercept of s = alpha + beta * x(t)
    beta: np.ndarray

    def predict(self, t: np.ndarray) -> np.ndarray:
        """(replicates, len(t)) scores at log sizes t."""
        x = self.family.basis(np.atleast_1d(t))[self.grid]
        return np.clip(self.alpha[:, None] + self.beta[:, None] * x, 0.0, 1.0)

    def plateau(self) -> np.ndarray:
        return self.family.plateau(self.alpha, self.beta)


class Family:
    name: str
    n_params: int
    limit: float  # the basis x(t) as t -> infinity

    def plateau(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return np.clip(alpha + beta * self.limit, 0.0, 1.0)

    def basis(self, t: np.ndarray) -> np.ndarray:
        """(grid, len(t)) basis values x(t) for every grid point."""
        raise NotImplementedError

    def fit(self, t: np.ndarray, y: np.ndarray, w: np.ndarray, rng: np.random.Generator | None = None) -> Fitted:
        """Weighted least squares of every row of y (replicates x sizes), weights w per size (the inverse
        of each point's variance), the grid in chunks (memory stays replicates x CHUNK).

        Row 0 (the observed points) gets its best fit. With `rng`, each replicate row gets a grid point
        drawn at random among those its data cannot tell from its best (weighted residuals within
        PLAUSIBLE of the least): where the data leave a parameter free (a plateau not yet in view, an
        onset not yet seen), the replicates spread over what the data allow instead of all taking the
        grid's edge."""
        x = self.basis(t)  # G x K
        rows = np.arange(len(y))
        least = np.full(len(y), np.inf)
        for _, (_, _, sse) in self._chunks(x, y, w):
            least = np.minimum(least, sse.min(axis=1))
        bound = least + (PLAUSIBLE if rng is not None else 0.0)
        bound[0] = least[0]
        chosen = (np.zeros(len(y), dtype=int), np.zeros(len(y)), np.zeros(len(y)))
        top = np.full(len(y), -np.inf)
        for start, (alpha, beta, sse) in self._chunks(x, y, w):
            keys = np.where(sse <= bound[:, None] + 1e-12, rng.random(sse.shape) if rng is not None else -sse, -np.inf)
            pick = np.argmax(keys, axis=1)
            better = keys[rows, pick] > top
            top = np.where(better, keys[rows, pick], top)
            chosen = tuple(np.where(better, new, old) for new, old in
                           zip((start + pick, alpha[rows, pick], beta[rows, pick]), chosen, strict=True))
        return Fitted(self, *chosen)

    def _chunks(self, x: np.ndarray, y: np.ndarray, w: np.ndarray):
        for start in range(0, len(x), CHUNK):
            stats = _Moments(x[start:start + CHUNK], y, w)
            alpha, beta = self.constrain(stats, *stats.unconstrained())
            yield start, (alpha, beta, stats.sse(alpha, beta))

    def constrain(self, m: _Moments, alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class _Moments:
    """Weighted sums for lines y ~ alpha + beta x, for every (replicate, grid point) pair."""

    def __init__(self, x: np.ndarray, y: np.ndarray, w: np.ndarray):
        self.W = w.sum()
        self.Sx = x @ w  # G
        self.Sxx = (x * x) @ w  # G
        self.Sy = y @ w  # R
        self.Syy = (y * y) @ w  # R
        self.Sxy = (y * w) @ x.T  # R x G

    def unconstrained(self) -> tuple[np.ndarray, np.ndarray]:
        var = self.Sxx - self.Sx**2 / self.W
        beta = (self.Sxy - self.Sy[:, None] * self.Sx / self.W) / np.where(var > 1e-300, var, np.inf)
        alpha = (self.Sy[:, None] - beta * self.Sx) / self.W
        return alpha, beta

    def flat(self, shape) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_to(np.clip(self.Sy / self.W, 0, 1)[:, None], shape), np.zeros(shape)

    def through(self, y0: float, x0: float) -> np.ndarray:
        """beta of the line through (x0, y0): y - y0 = beta (x - x0)."""
        num = self.Sxy - x0 * self.Sy[:, None] - y0 * self.Sx + self.W * x0 * y0
        den = self.Sxx - 2 * x0 * self.Sx + self.W * x0 * x0
        return num / np.where(den > 1e-300, den, np.inf)

    def sse(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return np.maximum(self.Syy[:, None] - 2 * (alpha * self.Sy[:, None] + beta * self.Sxy) + alpha**2 * self.W
                          + 2 * alpha * beta * self.Sx + beta**2 * self.Sxx, 0.0)


class Flat(Family):
    name, n_params, limit = "flat", 1, 0.0

    def basis(self, t):
        return np.zeros((1, len(t)))

    def constrain(self, m, alpha, beta):
        return m.flat(alpha.shape)


class LogLinear(Family):
    """s = a + b log n (b >= 0), clipped at 1: a constant gain per doubling, no plateau in view (what
    many fine-tuning curves look like over the sizes measured)."""

    name, n_params, limit = "log-linear", 2, np.inf

    def basis(self, t):
        return t[None, :]

    def constrain(self, m, alpha, beta):
        fa, fb = m.flat(alpha.shape)
        falling = beta < 0
        return np.where(falling, fa, alpha), np.where(falling, fb, beta)

    def plateau(self, alpha, beta):
        return np.where(beta > 0, 1.0, np.clip(alpha, 0.0, 1.0))


class Power(Family):
    """s = a - b * exp(-c t): alpha = a (<= 1, the plateau), beta = -b (<= 0)."""

    name, n_params, limit = "power", 3, 0.0
    C = np.geomspace(0.02, 3.0, 120)

    def basis(self, t):
        return np.exp(-self.C[:, None] * t[None, :])

    def constrain(self, m, alpha, beta):
        flat = beta > 0  # a falling curve: the best non-falling one is flat
        fa, fb = m.flat(alpha.shape)
        alpha, beta = np.where(flat, fa, alpha), np.where(flat, fb, beta)
        capped = alpha > 1  # plateau above a perfect score: pin it at 1 (x -> 0 as t grows)
        capped_beta = np.minimum(m.through(1.0, 0.0), 0.0)
        return np.where(capped, 1.0, alpha), np.where(capped, capped_beta, beta)


class Rectified(Family):
    """s = lo + r * sigmoid(c (t - m))^k: alpha = lo (>= 0), beta = r (>= 0), lo + r <= 1. k = 1 is
    the rectified law; k < 1 turns into the plateau more sharply than it left the floor, k > 1 more
    gently (the generalized logistic, Richards 1959)."""

    name, n_params, limit = "rectified", 5, 1.0
    SLOPES = np.geomspace(0.4, 8.0, 12)
    SHAPES = np.array([0.35, 0.6, 1.0, 2.0])

    def __init__(self, t_lo: float, t_hi: float):
        # midpoints from well before the first size to well past the last: the data may show only the
        # plateau's approach, only the pre-power phase, or the rise between them
        span = max(t_hi - t_lo, np.log(2))
        mids = np.linspace(t_lo - span, t_hi + span, 24)
        self.c, self.m, self.k = (a.ravel() for a in np.meshgrid(self.SLOPES, mids, self.SHAPES, indexing="ij"))

    def basis(self, t):
        return (1.0 + np.exp(-self.c[:, None] * (t[None, :] - self.m[:, None]))) ** -self.k[:, None]

    def constrain(self, m, alpha, beta):
        fa, fb = m.flat(alpha.shape)
        falling = beta < 0
        alpha, beta = np.where(falling, fa, alpha), np.where(falling, fb, beta)
        low = alpha < 0  # pinned at 0 below
        alpha, beta = np.where(low, 0.0, alpha), np.where(low, np.clip(m.through(0.0, 0.0), 0.0, 1.0), beta)
        high = alpha + beta > 1  # pinned at 1 above (x -> 1 as t grows)
        hb = np.clip(m.through(1.0, 1.0), 0.0, 1.0)
        return np.where(high, 1.0 - hb, alpha), np.where(high, hb, beta)

def families(t: np.ndarray) -> list[Family]:
    """The families for a curve measured at log sizes t."""
    return [Flat(), LogLinear(), Power(), Rectified(float(t.min()), float(t.max()))]
