"""Typed Python bindings: one class per chainml contract.

Each method sends a locally signed transaction (or makes a call) and returns Python values;
every revert raises the ``chainml.ledger.errors`` class named by the contract's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from chainml.crypto.keys import Identity
from chainml.ledger.client import BoundContract, LedgerClient, Receipt, TransactionSigner
from chainml.ledger.deploy import Deployment, bind
from chainml.ledger.errors import ChainDataError


class Role(IntFlag):
    DATA_OWNER = 1
    TRAINER = 2
    AGGREGATOR = 4
    VALIDATOR = 8
    INFERENCE_PROVIDER = 16
    REQUESTER = 32


class JobState(IntEnum):
    OPEN = 1
    FINALIZED = 2
    CANCELLED = 3


class RoundStatus(IntEnum):
    NONE = 0
    RECORDED = 1
    INVALID = 2


class ChallengeStatus(IntEnum):
    OPEN = 1
    UPHELD = 2
    REJECTED = 3


def _event_value(contract: BoundContract, receipt: Receipt, event: str, field: str) -> Any:
    found = contract.events(receipt, event)
    if not found:
        raise ChainDataError(f"transaction {receipt.tx_hash} emitted no {event}")
    return found[0][field]


class _Binding:
    name = ""

    def __init__(self, client: LedgerClient, address: str) -> None:
        self.contract = bind(client, self.name, address)
        self.client = client

    @property
    def address(self) -> str:
        return self.contract.address


@dataclass(frozen=True)
class PartyInfo:
    x25519_key: bytes
    roles: Role
    endpoint: str
    registered_at: int


class Registry(_Binding):
    name = "Registry"

    def register(
        self,
        signer: TransactionSigner,
        x25519_key: bytes,
        pop: bytes,
        roles: Role,
        endpoint: str,
        stake: int = 0,
    ) -> Receipt:
        return self.contract.transact(
            signer, "register", x25519_key, pop, int(roles), endpoint, value=stake
        )

    def register_identity(
        self, identity: Identity, roles: Role, endpoint: str = "", stake: int = 0
    ) -> Receipt:
        """Register ``identity`` (its account signs, with its proof of possession)."""
        pop = identity.proof_of_possession(self.contract.client.chain_id, self.address)
        return self.register(
            identity.account, identity.x25519.public_bytes, pop, roles, endpoint, stake
        )

    def rotate_key(self, signer: TransactionSigner, x25519_key: bytes, pop: bytes) -> Receipt:
        return self.contract.transact(signer, "rotate_key", x25519_key, pop)

    def set_endpoint(self, signer: TransactionSigner, endpoint: str) -> Receipt:
        return self.contract.transact(signer, "set_endpoint", endpoint)

    def stake(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.contract.transact(signer, "stake", value=amount)

    def request_unbond(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.contract.transact(signer, "request_unbond", amount)

    def withdraw(self, signer: TransactionSigner) -> Receipt:
        return self.contract.transact(signer, "withdraw")

    def is_registered(self, account: str) -> bool:
        return bool(self.contract.call("is_registered", account))

    def party(self, account: str) -> PartyInfo:
        key, roles, endpoint, at = self.contract.call("identities", account)
        return PartyInfo(bytes(key), Role(roles), str(endpoint), int(at))

    def stake_of(self, account: str) -> int:
        return int(self.contract.call("stake_of", account))

    def unbonding_of(self, account: str) -> int:
        return int(self.contract.call("unbonding_of", account))

    def total_staked(self) -> int:
        return int(self.contract.call("total_staked"))

    def slashed_pool(self) -> int:
        return int(self.contract.call("slashed_pool"))

    def committee(self, seed: bytes, size: int) -> list[str]:
        return list(self.contract.call("committee", seed, size))


@dataclass(frozen=True)
class DatasetInfo:
    owner: str
    merkle_root: bytes
    record_count: int
    schema_hash: bytes
    committed_at: int
    revoked: bool


class Datasets(_Binding):
    name = "Datasets"

    def commit(
        self, signer: TransactionSigner, root: bytes, record_count: int, schema_hash: bytes
    ) -> int:
        receipt = self.contract.transact(signer, "commit", root, record_count, schema_hash)
        return int(_event_value(self.contract, receipt, "DatasetCommitted", "dataset_id"))

    def revoke(self, signer: TransactionSigner, dataset_id: int) -> Receipt:
        return self.contract.transact(signer, "revoke", dataset_id)

    def get(self, dataset_id: int) -> DatasetInfo:
        owner, root, count, schema, at, revoked = self.contract.call("get", dataset_id)
        return DatasetInfo(owner, bytes(root), count, bytes(schema), at, bool(revoked))


@dataclass(frozen=True)
class ModelInfo:
    owner: str
    name: str
    version_count: int


@dataclass(frozen=True)
class VersionInfo:
    model_id: int
    ciphertext_cid: str
    manifest_cid: str
    plaintext_commitment: bytes
    parent_version: int
    job_id: int
    published_at: int


@dataclass(frozen=True)
class GrantInfo:
    version_id: int
    grantee: str
    expiry: int
    wrapped_key_ref: str
    revoked: bool


class Models(_Binding):
    name = "Models"

    def create_model(self, signer: TransactionSigner, name: str) -> int:
        receipt = self.contract.transact(signer, "create_model", name)
        return int(_event_value(self.contract, receipt, "ModelCreated", "model_id"))

    def publish_version(
        self,
        signer: TransactionSigner,
        model_id: int,
        ciphertext_cid: str,
        manifest_cid: str,
        plaintext_commitment: bytes,
        parent_version: int = 0,
        job_id: int = 0,
    ) -> int:
        receipt = self.contract.transact(
            signer,
            "publish_version",
            model_id,
            ciphertext_cid,
            manifest_cid,
            plaintext_commitment,
            parent_version,
            job_id,
        )
        return int(_event_value(self.contract, receipt, "VersionPublished", "version_id"))

    def grant(
        self,
        signer: TransactionSigner,
        version_id: int,
        grantee: str,
        expiry: int,
        wrapped_key_ref: str,
    ) -> int:
        receipt = self.contract.transact(
            signer, "grant", version_id, grantee, expiry, wrapped_key_ref
        )
        return int(_event_value(self.contract, receipt, "GrantIssued", "grant_id"))

    def revoke(self, signer: TransactionSigner, grant_id: int) -> Receipt:
        return self.contract.transact(signer, "revoke", grant_id)

    def transfer_ownership(
        self, signer: TransactionSigner, model_id: int, new_owner: str
    ) -> Receipt:
        return self.contract.transact(signer, "transfer_ownership", model_id, new_owner)

    def has_access(self, version_id: int, account: str) -> bool:
        return bool(self.contract.call("has_access", version_id, account))

    def model(self, model_id: int) -> ModelInfo:
        return ModelInfo(*self.contract.call("get_model", model_id))

    def version(self, version_id: int) -> VersionInfo:
        return VersionInfo(*self.contract.call("get_version", version_id))

    def grant_info(self, grant_id: int) -> GrantInfo:
        return GrantInfo(*self.contract.call("get_grant", grant_id))


@dataclass(frozen=True)
class JobParams:
    """What a requester asks for; fixed-point values are integers (see docs/contracts.md)."""

    aggregator: str
    rounds: int
    min_participants: int
    max_participants: int
    min_stake: int
    challenge_window: int
    clip_bound: int = 0  # the L2 bound on each trainer's update, in thousandths
    dp_noise_multiplier: int = 0
    dp_delta_exponent: int = 0
    config_hash: bytes = b"\0" * 32

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.aggregator,
            self.rounds,
            self.min_participants,
            self.max_participants,
            self.min_stake,
            self.challenge_window,
            self.clip_bound,
            self.dp_noise_multiplier,
            self.dp_delta_exponent,
            self.config_hash,
        )


@dataclass(frozen=True)
class JobInfo:
    requester: str
    params: JobParams
    escrow: int
    paid: int
    state: JobState
    participant_count: int
    rounds_done: int
    last_round_at: int
    total_participations: int
    claimed_participations: int
    open_challenges: int


@dataclass(frozen=True)
class RoundInfo:
    aggregate_cid: str
    commitment_root: bytes
    bitmap: int
    participants: int
    submitted_at: int
    status: RoundStatus


@dataclass(frozen=True)
class ChallengeInfo:
    job_id: int
    round: int
    challenger: str
    reason_hash: bytes
    deadline: int
    committee: tuple[str, ...]
    committee_stake: int
    uphold_stake: int
    reject_stake: int
    status: ChallengeStatus


class Jobs(_Binding):
    name = "Jobs"

    def create_job(self, signer: TransactionSigner, params: JobParams, escrow: int) -> int:
        receipt = self.contract.transact(signer, "create_job", params.as_tuple(), value=escrow)
        return int(_event_value(self.contract, receipt, "JobCreated", "job_id"))

    def join(self, signer: TransactionSigner, job_id: int) -> int:
        receipt = self.contract.transact(signer, "join", job_id)
        return int(_event_value(self.contract, receipt, "Joined", "index"))

    def cancel(self, signer: TransactionSigner, job_id: int) -> Receipt:
        return self.contract.transact(signer, "cancel", job_id)

    def submit_round(
        self,
        signer: TransactionSigner,
        job_id: int,
        round_no: int,
        aggregate_cid: str,
        commitment_root: bytes,
        bitmap: int,
    ) -> Receipt:
        return self.contract.transact(
            signer, "submit_round", job_id, round_no, aggregate_cid, commitment_root, bitmap
        )

    def challenge(
        self, signer: TransactionSigner, job_id: int, round_no: int, reason_hash: bytes
    ) -> int:
        receipt = self.contract.transact(signer, "challenge", job_id, round_no, reason_hash)
        return int(_event_value(self.contract, receipt, "ChallengeOpened", "challenge_id"))

    def vote(self, signer: TransactionSigner, challenge_id: int, uphold: bool) -> Receipt:
        return self.contract.transact(signer, "vote", challenge_id, uphold)

    def resolve(self, signer: TransactionSigner, challenge_id: int) -> Receipt:
        return self.contract.transact(signer, "resolve", challenge_id)

    def finalize(self, signer: TransactionSigner, job_id: int) -> Receipt:
        return self.contract.transact(signer, "finalize", job_id)

    def claim_reward(self, signer: TransactionSigner, job_id: int) -> int:
        receipt = self.contract.transact(signer, "claim_reward", job_id)
        return int(_event_value(self.contract, receipt, "RewardClaimed", "amount"))

    def refund(self, signer: TransactionSigner, job_id: int) -> int:
        receipt = self.contract.transact(signer, "refund", job_id)
        return int(_event_value(self.contract, receipt, "Refunded", "amount"))

    def report_double_sign(
        self,
        signer: TransactionSigner,
        job_id: int,
        round_no: int,
        participant: str,
        evidence: Sequence[tuple[bytes, bytes]],
    ) -> int:
        """``evidence``: two (commitment, signature) pairs by ``participant``."""
        (ca, sa), (cb, sb) = evidence
        receipt = self.contract.transact(
            signer, "report_double_sign", job_id, round_no, participant, ca, sa, cb, sb
        )
        return int(_event_value(self.contract, receipt, "DoubleSignSlashed", "slashed"))

    def job_count(self) -> int:
        """Jobs posted so far: their ids run from 1 to this."""
        return int(self.contract.call("job_count"))

    def job(self, job_id: int) -> JobInfo:
        (req, params, escrow, paid, state, count, done, last, total, claimed, open_) = (
            self.contract.call("get_job", job_id)
        )
        return JobInfo(
            req,
            JobParams(*params),
            escrow,
            paid,
            JobState(state),
            count,
            done,
            last,
            total,
            claimed,
            open_,
        )

    def round(self, job_id: int, round_no: int) -> RoundInfo:
        cid, root, bitmap, n, at, status = self.contract.call("get_round", job_id, round_no)
        return RoundInfo(cid, bytes(root), bitmap, n, at, RoundStatus(status))

    def challenge_info(self, challenge_id: int) -> ChallengeInfo:
        (job, rnd, who, reason, deadline, committee, stake, up, down, status) = self.contract.call(
            "get_challenge", challenge_id
        )
        return ChallengeInfo(
            job, rnd, who, reason, deadline, committee, stake, up, down, ChallengeStatus(status)
        )

    def verify_inclusion(
        self,
        job_id: int,
        round_no: int,
        participant: str,
        commitment: bytes,
        proof: Sequence[bytes],
    ) -> bool:
        return bool(
            self.contract.call(
                "verify_inclusion", job_id, round_no, participant, commitment, list(proof)
            )
        )

    def reward_of(self, job_id: int, account: str) -> int:
        return int(self.contract.call("reward_of", job_id, account))

    def escrow_held(self) -> int:
        return int(self.contract.call("escrow_held"))


@dataclass(frozen=True)
class BatchInfo:
    provider: str
    client: str
    receipt_root: bytes
    receipt_count: int
    amount: int
    posted_at: int
    status: int
    reason_hash: bytes


class Receipts(_Binding):
    name = "Receipts"

    def deposit(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.contract.transact(signer, "deposit", value=amount)

    def request_withdrawal(self, signer: TransactionSigner, amount: int) -> Receipt:
        return self.contract.transact(signer, "request_withdrawal", amount)

    def withdraw(self, signer: TransactionSigner) -> Receipt:
        return self.contract.transact(signer, "withdraw")

    def post_batch(
        self, signer: TransactionSigner, client: str, root: bytes, count: int, amount: int
    ) -> int:
        receipt = self.contract.transact(signer, "post_batch", client, root, count, amount)
        return int(_event_value(self.contract, receipt, "BatchPosted", "batch_id"))

    def dispute(self, signer: TransactionSigner, batch_id: int, reason_hash: bytes) -> Receipt:
        return self.contract.transact(signer, "dispute", batch_id, reason_hash)

    def settle(self, signer: TransactionSigner, batch_id: int) -> Receipt:
        return self.contract.transact(signer, "settle", batch_id)

    def withdraw_earnings(self, signer: TransactionSigner) -> Receipt:
        return self.contract.transact(signer, "withdraw_earnings")

    def available(self, account: str) -> int:
        return int(self.contract.call("available", account))

    def earnings(self, account: str) -> int:
        return int(self.contract.call("earnings", account))

    def batch(self, batch_id: int) -> BatchInfo:
        return BatchInfo(*self.contract.call("get_batch", batch_id))


@dataclass
class Chainml:
    """All five contracts of one deployment, bound to one client."""

    registry: Registry
    datasets: Datasets
    models: Models
    jobs: Jobs
    receipts: Receipts

    @classmethod
    def connect(cls, client: LedgerClient, deployment: Deployment) -> Chainml:
        deployment.check(client)
        return cls(
            Registry(client, deployment.registry),
            Datasets(client, deployment.datasets),
            Models(client, deployment.models),
            Jobs(client, deployment.jobs),
            Receipts(client, deployment.receipts),
        )
