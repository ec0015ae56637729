"""Test harness: a trainer node that does not clip.  Run instead of ``chainml.cli.main``
(``python -m tests.node.zk_attacker node run --config ...``); nothing in ``src`` knows
about it.  Its update's delta is ``SCALE`` times the job's clip bound, and in a job with
norm-bound proofs it commits to that delta and proves it anyway, with the prover that
skips the statement check (``zk._norm._prove``): a proof of a false statement, which the
aggregator must refuse.  With ``ZK_ATTACK=overweight`` it trains and proves honestly but
claims three times the records its data set on chain holds (``own_stake`` patched)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.cli.main import app
from chainml.crypto.zk import _norm
from chainml.node import rounds
from chainml.training import normproofs
from chainml.training.job import JobConfig
from chainml.training.models import Params
from chainml.training.normproofs import CommittedInput, DataStake, NormClaim
from chainml.training.secagg import RoundParams

SCALE = 10.0


def _train(
    self: rounds.TrainerRole, config: JobConfig, global_params: Params, round_no: int, clip: float
) -> NDArray[np.float64]:
    update = config.local_update(global_params, self.x, self.y, round_no=round_no, clip=clip)
    delta = update[:-1]
    return np.append(delta * (SCALE * clip / np.linalg.norm(delta)), update[-1])


def _prove(
    self: rounds.TrainerRole, params: RoundParams, slot: int, clip: float, committed: CommittedInput
) -> NormClaim:
    ctx = normproofs.context(params, params.roster[slot])
    stake = committed.stake
    statement = normproofs.norm_params(
        params, normproofs.weighted_clip(clip, stake.records, stake.weight_base)
    )
    x = [int(v) for v in committed.delta]
    proof = _norm._encode(
        _norm._prove(ctx, statement, x, committed.opening.blinding, _norm._SYSTEM)
    )
    return NormClaim(slot, stake.dataset, stake.records, committed.commitment, proof)


def _own_stake(datasets: Any, owner: str, available: int, weight_base: int) -> DataStake:
    """Three times the records its data set holds: weight 1 for a third of it or less."""
    real = _real_stake(datasets, owner, available, weight_base)
    return DataStake(real.dataset, 3 * real.records, weight_base)


_real_stake = normproofs.own_stake
if os.environ.get("ZK_ATTACK", "unclipped") == "overweight":
    normproofs.own_stake = _own_stake  # type: ignore[assignment]
else:
    rounds.TrainerRole._train = _train  # type: ignore[method-assign]
    rounds.TrainerRole._prove = _prove  # type: ignore[method-assign]

if __name__ == "__main__":
    app()
