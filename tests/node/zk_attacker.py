"""Test harness: a trainer node that does not clip.  Run instead of ``chainml.cli.main``
(``python -m tests.node.zk_attacker node run --config ...``); nothing in ``src`` knows
about it.  Its update's delta is ``SCALE`` times the job's clip bound, and in a job with
norm-bound proofs it commits to that delta and proves it anyway, with the prover that
skips the statement check (``zk._norm._prove``): a proof of a false statement, which the
aggregator must refuse."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainml.cli.main import app
from chainml.crypto.zk import _norm
from chainml.node import rounds
from chainml.training import normproofs
from chainml.training.job import JobConfig
from chainml.training.models import Params
from chainml.training.normproofs import CommittedInput, NormClaim
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
    statement = normproofs.norm_params(params, clip)
    x = [int(v) for v in committed.delta]
    proof = _norm._encode(
        _norm._prove(ctx, statement, x, committed.opening.blinding, _norm._SYSTEM)
    )
    return NormClaim(slot, committed.commitment, proof)


rounds.TrainerRole._train = _train  # type: ignore[method-assign]
rounds.TrainerRole._prove = _prove  # type: ignore[method-assign]

if __name__ == "__main__":
    app()
