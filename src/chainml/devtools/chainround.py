"""A real round on a real chain without node processes, for tests and benchmarks: staked
parties registered on a chain, a job they joined, a SecAgg+ round between them in process,
its record and every blob it names stored as the aggregator stores them, and the record's
CID, root and bitmap submitted on chain.  ``tamper`` lets a test play an aggregator that
publishes something else (a sum one unit off, say)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainml.crypto import Identity
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import deploy_system
from chainml.ledger.devchain import DEV_KEY
from chainml.node.rounds import _bitmap, _root, record_params, roster_of, round_params
from chainml.storage.store import BlobStore
from chainml.training.job import JobConfig
from chainml.training.secagg import SecAggClient, SecAggServer, run_in_memory

ETHER = 10**18
Tamper = Callable[[dict[str, Any], dict[str, Any]], None]  # (record, transcript document)


def one_unit_off(record: dict[str, Any], transcript: dict[str, Any]) -> None:
    """An aggregator that adds one to the first word of the sum it publishes."""
    total = bytearray(bytes.fromhex(transcript["total"]))
    total[:4] = ((int.from_bytes(total[:4], "little") + 1) % 2**32).to_bytes(4, "little")
    transcript["total"] = total.hex()


@dataclass
class ChainWorld:
    """Contracts on the chain at ``url`` (deployed here, or ``deployed`` already), an
    aggregator, trainers and validators, each registered with ``stake`` wei staked."""

    url: str
    store: BlobStore
    trainers: int = 10
    validators: int = 0
    stake: int = 2 * ETHER
    window: int = 3600
    deployed: Chainml | None = None
    client: LedgerClient = field(init=False)
    cm: Chainml = field(init=False)
    dev: LocalSigner = field(init=False)
    aggregator: Identity = field(init=False)
    trainer_ids: list[Identity] = field(init=False)
    validator_ids: list[Identity] = field(init=False)

    def __post_init__(self) -> None:
        self.client = LedgerClient(self.url)
        self.dev = LocalSigner.from_key(DEV_KEY)
        self.cm = self.deployed or Chainml.connect(
            self.client, deploy_system(self.client, self.dev)
        )
        self.aggregator = self.party(Role.AGGREGATOR)
        self.trainer_ids = [self.party(Role.TRAINER) for _ in range(self.trainers)]
        self.validator_ids = [self.party(Role.VALIDATOR) for _ in range(self.validators)]

    def party(self, roles: Role) -> Identity:
        ident = Identity.generate()
        self.client.transact(self.dev, to=ident.address, value=self.stake + 3 * ETHER)
        self.cm.registry.register_identity(ident, roles, "http://127.0.0.1:1", self.stake)
        return ident

    def job(self, config: JobConfig, clip: float, escrow: int = ETHER) -> int:
        params = JobParams(
            self.aggregator.address,
            rounds=1,
            min_participants=self.trainers - 1,
            max_participants=self.trainers,
            min_stake=ETHER,
            challenge_window=self.window,
            clip_bound=int(clip * 1000),
            config_hash=config.config_hash,
            config_cid=self.store.put(config.encode()),
        )
        job_id = self.cm.jobs.create_job(self.dev, params, escrow)
        for t in self.trainer_ids:
            self.cm.jobs.join(t.account, job_id)
        return job_id

    def round(
        self,
        job_id: int,
        config: JobConfig,
        clip: float,
        *,
        dropped: Sequence[int] = (4,),
        tamper: Tamper | None = None,
    ) -> tuple[str, float]:
        """Round 1 of ``job_id``: run, store, submit. Returns the record's CID and the
        round's own wall time (without storing and submitting)."""
        roster = roster_of(self.cm, job_id)
        params = round_params(self.cm, job_id, 1, 1, config, clip, roster)
        by_address = {t.address: t for t in self.trainer_ids}
        rng = np.random.default_rng(job_id)
        clients = {
            i: SecAggClient(
                params, i, by_address[a], rng.normal(scale=0.05, size=params.vector_len)
            )
            for i, a in roster.items()
        }
        server = SecAggServer(params)
        started = time.perf_counter()
        result = run_in_memory(params, clients, server=server, drop={"masked": list(dropped)})
        elapsed = time.perf_counter() - started
        put = self.store.put
        transcript = json.loads(result.transcript.encode())
        root = _root(job_id, 1, result.transcript.leaves(params))
        bitmap = _bitmap(result.survivors)
        record: dict[str, Any] = {
            "format": "chainml-round-record/2",
            "job": job_id,
            "round": 1,
            "config": config.encode().decode(),
            "model_manifest": put(b"not read by an audit: the sealed model's manifest"),
            "model_ciphertext": put(b"not read by an audit: the sealed model"),
            "inputs": {str(i): put(v.astype("<u4").tobytes()) for i, v in server.inputs.items()},
            "params": record_params(params, 1),
            "root": root.hex(),
            "bitmap": bitmap,
        }
        if tamper is not None:
            tamper(record, transcript)
        record["transcript"] = put(_canonical(transcript))
        cid = put(_canonical(record))
        self.cm.jobs.submit_round(self.aggregator.account, job_id, 1, cid, root, bitmap)
        return cid, elapsed


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
