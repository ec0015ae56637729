"""Data sets shipped inside scikit-learn, and how to split them among parties.

Nothing is downloaded at run time: digits (1,797 8×8 images, 10 classes), breast cancer
(569 × 30, 2 classes) and wine (178 × 13, 3 classes) come with scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

from chainml.training.errors import TrainingError

_LOADERS = {
    "digits": skdata.load_digits,
    "breast_cancer": skdata.load_breast_cancer,
    "wine": skdata.load_wine,
}


@dataclass(frozen=True)
class Dataset:
    """Features scaled to [0, 1] per column on the training split, integer labels."""

    name: str
    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def load(name: str, *, test_size: float = 0.3, seed: int = 0) -> Dataset:
    """Load a bundled data set, split into train and test, stratified by label."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise TrainingError(f"unknown data set {name!r}; choose from {sorted(_LOADERS)}") from None
    bunch = loader()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    low, high = x_tr.min(axis=0), x_tr.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return Dataset(
        name,
        (x_tr - low) / span,
        y_tr,
        np.clip((x_te - low) / span, 0.0, 1.0),
        y_te,
    )


def dirichlet_partition(
    labels: NDArray[np.int64], n_parties: int, alpha: float, *, seed: int = 0, min_size: int = 5
) -> list[NDArray[np.int64]]:
    """Split sample indices among parties with label proportions drawn from Dirichlet(alpha).

    Small ``alpha`` gives each party few labels (strongly non-IID); large ``alpha`` tends to
    IID.  Every party receives at least ``min_size`` samples (redrawn until it does).
    """
    if n_parties < 1 or alpha <= 0:
        raise TrainingError("need at least one party and alpha > 0")
    if n_parties * min_size > len(labels):
        raise TrainingError("too few samples for that many parties")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_parties)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(n_parties, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for party, chunk in enumerate(np.split(idx, cuts)):
                parts[party].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise TrainingError("could not draw a partition with every party above min_size")


def iid_partition(n_samples: int, n_parties: int, *, seed: int = 0) -> list[NDArray[np.int64]]:
    """Split sample indices uniformly at random into ``n_parties`` near-equal parts."""
    if n_parties < 1 or n_parties > n_samples:
        raise TrainingError("need 1 <= n_parties <= n_samples")
    rng = np.random.default_rng(seed)
    return [np.sort(p) for p in np.array_split(rng.permutation(n_samples), n_parties)]
