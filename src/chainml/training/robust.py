"""Aggregators for jobs that accept plaintext updates to a committee, robust to poisoners,
and FoolsGold-style similarity scores that point at Sybil poisoners.

Every function takes the updates as rows of one matrix (clients × parameters).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainml.training.errors import TrainingError


def _check(updates: NDArray[np.floating]) -> NDArray[np.float64]:
    u = np.asarray(updates, dtype=np.float64)
    if u.ndim != 2 or len(u) == 0:
        raise TrainingError("updates are a non-empty clients × parameters matrix")
    return u


def coordinate_median(updates: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.asarray(np.median(_check(updates), axis=0))


def trimmed_mean(updates: NDArray[np.floating], trim: int) -> NDArray[np.float64]:
    """Per coordinate, the mean after dropping the ``trim`` largest and smallest values."""
    u = _check(updates)
    if not 0 <= 2 * trim < len(u):
        raise TrainingError(f"cannot trim {trim} from each end of {len(u)} updates")
    s = np.sort(u, axis=0)
    return np.asarray(s[trim : len(u) - trim].mean(axis=0))


def multi_krum(
    updates: NDArray[np.floating], byzantine: int, keep: int | None = None
) -> NDArray[np.float64]:
    """Multi-Krum (Blanchard et al. 2017): score each update by the summed squared
    distance to its ``n - f - 2`` nearest others; average the ``keep`` best
    (``n - f`` by default)."""
    u = _check(updates)
    n = len(u)
    if n - byzantine - 2 < 1:
        raise TrainingError(f"Krum needs n > f + 2 (n = {n}, f = {byzantine})")
    sq = (u * u).sum(axis=1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * u @ u.T, 0.0)
    np.fill_diagonal(d, np.inf)
    nearest = np.sort(d, axis=1)[:, : n - byzantine - 2]
    scores = nearest.sum(axis=1)
    chosen = np.argsort(scores)[: keep or n - byzantine]
    return np.asarray(u[chosen].mean(axis=0))


def foolsgold_scores(history: NDArray[np.floating]) -> NDArray[np.float64]:
    """FoolsGold (Fung et al. 2020): a weight in [0, 1] per client from the cosine
    similarity of clients' summed historical updates.  Sybils pushing one poisoned
    direction look alike and get weights near 0; honest clients with diverse data keep
    weights near 1."""
    h = _check(history)
    n = len(h)
    norms = np.linalg.norm(h, axis=1)
    unit = h / np.where(norms > 0, norms, 1.0)[:, None]
    cs = unit @ unit.T
    np.fill_diagonal(cs, -np.inf)
    top = cs.max(axis=1)
    for i in range(n):  # pardoning: do not penalise an honest client for resembling a sybil
        for j in range(n):
            if i != j and top[j] > top[i]:
                cs[i, j] *= top[i] / top[j]
    np.fill_diagonal(cs, -np.inf)
    w = 1.0 - cs.max(axis=1)
    w = np.clip(w, 0.0, 1.0)
    if w.max() > 0:
        w /= w.max()
    w[w == 1.0] = 0.99
    with np.errstate(divide="ignore"):
        logit = np.log(w / (1.0 - w)) + 0.5
    return np.asarray(np.clip(np.nan_to_num(logit, neginf=0.0), 0.0, 1.0))


def flag_sybils(scores: NDArray[np.floating], threshold: float = 0.1) -> list[int]:
    """Indices of clients whose FoolsGold weight is below ``threshold``."""
    return [int(i) for i in np.flatnonzero(np.asarray(scores) < threshold)]


RULES = ("krum", "median", "trimmed_mean")


def aggregate(
    rule: str, updates: NDArray[np.floating], f: int | None = None
) -> NDArray[np.float64]:
    """One robust aggregate by name, tolerating ``f`` poisoners (by default up to 30%:
    ``⌊0.3 n⌋``, at most what the rule allows)."""
    u = _check(updates)
    n = len(u)
    if rule == "median":
        return coordinate_median(u)
    if rule == "trimmed_mean":
        return trimmed_mean(u, min(int(0.3 * n), (n - 1) // 2) if f is None else f)
    if rule == "krum":
        return multi_krum(u, max(0, min(int(0.3 * n), n - 3)) if f is None else f)
    raise TrainingError(f"the robust rules are {', '.join(RULES)}")
