"""A stand-in for the chain holding only what ``audit_round`` reads of it: the job's
parameters (configuration hash and CID, clip bound), its participants and their registered
keys (as they are now, and as they were at the round's block), and one recorded round (its
record CID, root and bitmap, and the block of its ``RoundRecorded``). The audit tests run
real in-process rounds against it, with no chain process."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

from chainml.training.job import JobConfig

ROUND_BLOCK = 40  # the block that recorded the round


class StandInChain:
    def __init__(
        self,
        config: JobConfig,
        roster: Mapping[int, str],
        keys: Mapping[str, bytes],
        *,
        clip: float,
        chain_id: int = 31337,
        jobs: str = "0x" + "ab" * 20,
        record_cid: str = "",
        root: bytes = b"",
        bitmap: int = 0,
        config_cid: str = "",
    ) -> None:
        job = SimpleNamespace(
            participant_count=len(roster),
            params=SimpleNamespace(
                config_hash=config.config_hash,
                config_cid=config_cid,
                clip_bound=int(clip * 1000),
            ),
        )
        info = SimpleNamespace(aggregate_cid=record_cid, commitment_root=root, bitmap=bitmap)
        self.jobs = SimpleNamespace(
            address=jobs,
            client=SimpleNamespace(chain_id=chain_id),
            job=lambda job_id: job,
            round=lambda job_id, r: info,
            contract=SimpleNamespace(
                call=lambda name, job_id, i: roster[i + 1],
                past_events=lambda name, where: [
                    SimpleNamespace(block_number=ROUND_BLOCK, args={"aggregate_cid": record_cid})
                ],
            ),
        )
        # the Registry's keys today, and as they were when the round was recorded
        self.keys = dict(keys)
        self.keys_then = dict(keys)
        self.registry = SimpleNamespace(party=self._party)

    def _party(self, account: str, block: int | str = "latest") -> SimpleNamespace:
        keys = self.keys_then if isinstance(block, int) and block < ROUND_BLOCK else self.keys
        return SimpleNamespace(x25519_key=keys[account])
