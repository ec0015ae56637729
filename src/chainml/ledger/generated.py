"""Typed bindings of chainml's contracts, generated from their ABIs in
artifacts/{Registry,Datasets,Models,Jobs,Receipts}.json.

Do not edit: ``python -m chainml.ledger.bindgen build`` writes this file from the
committed ABIs and ``python -m chainml.ledger.bindgen check`` fails if it is stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chainml.ledger.client import BoundContract, Receipt, TransactionSigner
from chainml.ledger.enums import BatchStatus, ChallengeStatus, JobState, Role, RoundStatus


@dataclass(frozen=True)
class Identity:
    """``Registry``: identities()."""

    x25519_key: bytes
    roles: Role
    endpoint: str
    registered_at: int

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Identity:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            x25519_key=bytes(value[0]),
            roles=Role(value[1]),
            endpoint=str(value[2]),
            registered_at=int(value[3]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.x25519_key,
            self.roles,
            self.endpoint,
            self.registered_at,
        )


@dataclass(frozen=True)
class Dataset:
    """``Datasets``: get()."""

    owner: str
    merkle_root: bytes
    record_count: int
    schema_hash: bytes
    committed_at: int
    revoked: bool

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Dataset:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            owner=str(value[0]),
            merkle_root=bytes(value[1]),
            record_count=int(value[2]),
            schema_hash=bytes(value[3]),
            committed_at=int(value[4]),
            revoked=bool(value[5]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.owner,
            self.merkle_root,
            self.record_count,
            self.schema_hash,
            self.committed_at,
            self.revoked,
        )


@dataclass(frozen=True)
class Model:
    """``Models``: get_model()."""

    owner: str
    name: str
    version_count: int

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Model:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            owner=str(value[0]),
            name=str(value[1]),
            version_count=int(value[2]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.owner,
            self.name,
            self.version_count,
        )


@dataclass(frozen=True)
class Version:
    """``Models``: get_version()."""

    model_id: int
    ciphertext_cid: str
    manifest_cid: str
    plaintext_commitment: bytes
    parent_version: int
    job_id: int
    published_at: int

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Version:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            model_id=int(value[0]),
            ciphertext_cid=str(value[1]),
            manifest_cid=str(value[2]),
            plaintext_commitment=bytes(value[3]),
            parent_version=int(value[4]),
            job_id=int(value[5]),
            published_at=int(value[6]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.model_id,
            self.ciphertext_cid,
            self.manifest_cid,
            self.plaintext_commitment,
            self.parent_version,
            self.job_id,
            self.published_at,
        )


@dataclass(frozen=True)
class Grant:
    """``Models``: get_grant()."""

    version_id: int
    grantee: str
    expiry: int
    wrapped_key_ref: str
    revoked: bool

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Grant:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            version_id=int(value[0]),
            grantee=str(value[1]),
            expiry=int(value[2]),
            wrapped_key_ref=str(value[3]),
            revoked=bool(value[4]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.version_id,
            self.grantee,
            self.expiry,
            self.wrapped_key_ref,
            self.revoked,
        )


@dataclass(frozen=True)
class Job:
    """``Jobs``: get_job()."""

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

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Job:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            requester=str(value[0]),
            params=JobParams.from_abi(value[1]),
            escrow=int(value[2]),
            paid=int(value[3]),
            state=JobState(value[4]),
            participant_count=int(value[5]),
            rounds_done=int(value[6]),
            last_round_at=int(value[7]),
            total_participations=int(value[8]),
            claimed_participations=int(value[9]),
            open_challenges=int(value[10]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.requester,
            self.params.to_abi(),
            self.escrow,
            self.paid,
            self.state,
            self.participant_count,
            self.rounds_done,
            self.last_round_at,
            self.total_participations,
            self.claimed_participations,
            self.open_challenges,
        )


@dataclass(frozen=True)
class JobParams:
    """``Jobs``: Job.params, create_job()."""

    aggregator: str
    rounds: int
    min_participants: int
    max_participants: int
    min_stake: int
    challenge_window: int
    clip_bound: int = 0
    dp_noise_multiplier: int = 0
    dp_delta_exponent: int = 0
    config_hash: bytes = bytes(32)
    config_cid: str = ""

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> JobParams:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            aggregator=str(value[0]),
            rounds=int(value[1]),
            min_participants=int(value[2]),
            max_participants=int(value[3]),
            min_stake=int(value[4]),
            challenge_window=int(value[5]),
            clip_bound=int(value[6]),
            dp_noise_multiplier=int(value[7]),
            dp_delta_exponent=int(value[8]),
            config_hash=bytes(value[9]),
            config_cid=str(value[10]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
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
            self.config_cid,
        )


@dataclass(frozen=True)
class Round:
    """``Jobs``: get_round()."""

    aggregate_cid: str
    commitment_root: bytes
    bitmap: int
    participants: int
    submitted_at: int
    status: RoundStatus

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Round:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            aggregate_cid=str(value[0]),
            commitment_root=bytes(value[1]),
            bitmap=int(value[2]),
            participants=int(value[3]),
            submitted_at=int(value[4]),
            status=RoundStatus(value[5]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.aggregate_cid,
            self.commitment_root,
            self.bitmap,
            self.participants,
            self.submitted_at,
            self.status,
        )


@dataclass(frozen=True)
class Challenge:
    """``Jobs``: get_challenge()."""

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

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Challenge:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            job_id=int(value[0]),
            round=int(value[1]),
            challenger=str(value[2]),
            reason_hash=bytes(value[3]),
            deadline=int(value[4]),
            committee=tuple(str(v) for v in value[5]),
            committee_stake=int(value[6]),
            uphold_stake=int(value[7]),
            reject_stake=int(value[8]),
            status=ChallengeStatus(value[9]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.job_id,
            self.round,
            self.challenger,
            self.reason_hash,
            self.deadline,
            list(self.committee),
            self.committee_stake,
            self.uphold_stake,
            self.reject_stake,
            self.status,
        )


@dataclass(frozen=True)
class Batch:
    """``Receipts``: get_batch()."""

    provider: str
    client: str
    receipt_root: bytes
    receipt_count: int
    amount: int
    posted_at: int
    status: BatchStatus
    reason_hash: bytes

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> Batch:
        """From the decoded ABI tuple (components in ABI order)."""
        return cls(
            provider=str(value[0]),
            client=str(value[1]),
            receipt_root=bytes(value[2]),
            receipt_count=int(value[3]),
            amount=int(value[4]),
            posted_at=int(value[5]),
            status=BatchStatus(value[6]),
            reason_hash=bytes(value[7]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        """The ABI tuple, components in ABI order."""
        return (
            self.provider,
            self.client,
            self.receipt_root,
            self.receipt_count,
            self.amount,
            self.posted_at,
            self.status,
            self.reason_hash,
        )


@dataclass(frozen=True)
class Registered:
    """The ``Registered`` event (first seen in ``Registry``)."""

    account: str
    x25519_key: bytes
    roles: int
    endpoint: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Registered:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            x25519_key=bytes(args["x25519_key"]),
            roles=int(args["roles"]),
            endpoint=str(args["endpoint"]),
        )


@dataclass(frozen=True)
class KeyRotated:
    """The ``KeyRotated`` event (first seen in ``Registry``)."""

    account: str
    x25519_key: bytes

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> KeyRotated:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            x25519_key=bytes(args["x25519_key"]),
        )


@dataclass(frozen=True)
class EndpointChanged:
    """The ``EndpointChanged`` event (first seen in ``Registry``)."""

    account: str
    endpoint: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> EndpointChanged:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            endpoint=str(args["endpoint"]),
        )


@dataclass(frozen=True)
class Staked:
    """The ``Staked`` event (first seen in ``Registry``)."""

    account: str
    amount: int
    total: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Staked:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            amount=int(args["amount"]),
            total=int(args["total"]),
        )


@dataclass(frozen=True)
class UnbondRequested:
    """The ``UnbondRequested`` event (first seen in ``Registry``)."""

    account: str
    amount: int
    release_at: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> UnbondRequested:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            amount=int(args["amount"]),
            release_at=int(args["release_at"]),
        )


@dataclass(frozen=True)
class Withdrawn:
    """The ``Withdrawn`` event (first seen in ``Registry``)."""

    account: str
    amount: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Withdrawn:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            amount=int(args["amount"]),
        )


@dataclass(frozen=True)
class Slashed:
    """The ``Slashed`` event (first seen in ``Registry``)."""

    offender: str
    amount: int
    beneficiary: str
    reward: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Slashed:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            offender=str(args["offender"]),
            amount=int(args["amount"]),
            beneficiary=str(args["beneficiary"]),
            reward=int(args["reward"]),
        )


@dataclass(frozen=True)
class SlasherSet:
    """The ``SlasherSet`` event (first seen in ``Registry``)."""

    slasher: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SlasherSet:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            slasher=str(args["slasher"]),
        )


@dataclass(frozen=True)
class SlashRewardClaimed:
    """The ``SlashRewardClaimed`` event (first seen in ``Registry``)."""

    account: str
    amount: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SlashRewardClaimed:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            account=str(args["account"]),
            amount=int(args["amount"]),
        )


@dataclass(frozen=True)
class DatasetCommitted:
    """The ``DatasetCommitted`` event (first seen in ``Datasets``)."""

    dataset_id: int
    owner: str
    merkle_root: bytes
    record_count: int
    schema_hash: bytes

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> DatasetCommitted:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            dataset_id=int(args["dataset_id"]),
            owner=str(args["owner"]),
            merkle_root=bytes(args["merkle_root"]),
            record_count=int(args["record_count"]),
            schema_hash=bytes(args["schema_hash"]),
        )


@dataclass(frozen=True)
class DatasetRevoked:
    """The ``DatasetRevoked`` event (first seen in ``Datasets``)."""

    dataset_id: int
    owner: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> DatasetRevoked:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            dataset_id=int(args["dataset_id"]),
            owner=str(args["owner"]),
        )


@dataclass(frozen=True)
class ModelCreated:
    """The ``ModelCreated`` event (first seen in ``Models``)."""

    model_id: int
    owner: str
    name: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ModelCreated:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            model_id=int(args["model_id"]),
            owner=str(args["owner"]),
            name=str(args["name"]),
        )


@dataclass(frozen=True)
class VersionPublished:
    """The ``VersionPublished`` event (first seen in ``Models``)."""

    model_id: int
    version_id: int
    ciphertext_cid: str
    manifest_cid: str
    plaintext_commitment: bytes
    parent_version: int
    job_id: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> VersionPublished:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            model_id=int(args["model_id"]),
            version_id=int(args["version_id"]),
            ciphertext_cid=str(args["ciphertext_cid"]),
            manifest_cid=str(args["manifest_cid"]),
            plaintext_commitment=bytes(args["plaintext_commitment"]),
            parent_version=int(args["parent_version"]),
            job_id=int(args["job_id"]),
        )


@dataclass(frozen=True)
class GrantIssued:
    """The ``GrantIssued`` event (first seen in ``Models``)."""

    model_id: int
    version_id: int
    grant_id: int
    grantee: str
    expiry: int
    wrapped_key_ref: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> GrantIssued:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            model_id=int(args["model_id"]),
            version_id=int(args["version_id"]),
            grant_id=int(args["grant_id"]),
            grantee=str(args["grantee"]),
            expiry=int(args["expiry"]),
            wrapped_key_ref=str(args["wrapped_key_ref"]),
        )


@dataclass(frozen=True)
class GrantRevoked:
    """The ``GrantRevoked`` event (first seen in ``Models``)."""

    model_id: int
    version_id: int
    grant_id: int
    grantee: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> GrantRevoked:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            model_id=int(args["model_id"]),
            version_id=int(args["version_id"]),
            grant_id=int(args["grant_id"]),
            grantee=str(args["grantee"]),
        )


@dataclass(frozen=True)
class OwnershipTransferred:
    """The ``OwnershipTransferred`` event (first seen in ``Models``)."""

    model_id: int
    previous_owner: str
    new_owner: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> OwnershipTransferred:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            model_id=int(args["model_id"]),
            previous_owner=str(args["previous_owner"]),
            new_owner=str(args["new_owner"]),
        )


@dataclass(frozen=True)
class JobCreated:
    """The ``JobCreated`` event (first seen in ``Jobs``)."""

    job_id: int
    requester: str
    aggregator: str
    escrow: int
    rounds: int
    config_hash: bytes

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> JobCreated:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            requester=str(args["requester"]),
            aggregator=str(args["aggregator"]),
            escrow=int(args["escrow"]),
            rounds=int(args["rounds"]),
            config_hash=bytes(args["config_hash"]),
        )


@dataclass(frozen=True)
class Joined:
    """The ``Joined`` event (first seen in ``Jobs``)."""

    job_id: int
    participant: str
    index: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Joined:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            participant=str(args["participant"]),
            index=int(args["index"]),
        )


@dataclass(frozen=True)
class RoundRecorded:
    """The ``RoundRecorded`` event (first seen in ``Jobs``)."""

    job_id: int
    round: int
    aggregate_cid: str
    commitment_root: bytes
    bitmap: int
    participants: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RoundRecorded:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            round=int(args["round"]),
            aggregate_cid=str(args["aggregate_cid"]),
            commitment_root=bytes(args["commitment_root"]),
            bitmap=int(args["bitmap"]),
            participants=int(args["participants"]),
        )


@dataclass(frozen=True)
class ChallengeOpened:
    """The ``ChallengeOpened`` event (first seen in ``Jobs``)."""

    challenge_id: int
    job_id: int
    round: int
    challenger: str
    committee: tuple[str, ...]
    deadline: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ChallengeOpened:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            challenge_id=int(args["challenge_id"]),
            job_id=int(args["job_id"]),
            round=int(args["round"]),
            challenger=str(args["challenger"]),
            committee=tuple(str(v) for v in args["committee"]),
            deadline=int(args["deadline"]),
        )


@dataclass(frozen=True)
class Voted:
    """The ``Voted`` event (first seen in ``Jobs``)."""

    challenge_id: int
    voter: str
    uphold: bool
    weight: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Voted:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            challenge_id=int(args["challenge_id"]),
            voter=str(args["voter"]),
            uphold=bool(args["uphold"]),
            weight=int(args["weight"]),
        )


@dataclass(frozen=True)
class ChallengeResolved:
    """The ``ChallengeResolved`` event (first seen in ``Jobs``)."""

    challenge_id: int
    job_id: int
    upheld: bool
    slashed: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ChallengeResolved:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            challenge_id=int(args["challenge_id"]),
            job_id=int(args["job_id"]),
            upheld=bool(args["upheld"]),
            slashed=int(args["slashed"]),
        )


@dataclass(frozen=True)
class JobFinalized:
    """The ``JobFinalized`` event (first seen in ``Jobs``)."""

    job_id: int
    total_participations: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> JobFinalized:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            total_participations=int(args["total_participations"]),
        )


@dataclass(frozen=True)
class JobCancelled:
    """The ``JobCancelled`` event (first seen in ``Jobs``)."""

    job_id: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> JobCancelled:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
        )


@dataclass(frozen=True)
class RewardClaimed:
    """The ``RewardClaimed`` event (first seen in ``Jobs``)."""

    job_id: int
    participant: str
    amount: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RewardClaimed:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            participant=str(args["participant"]),
            amount=int(args["amount"]),
        )


@dataclass(frozen=True)
class Refunded:
    """The ``Refunded`` event (first seen in ``Jobs``)."""

    job_id: int
    requester: str
    amount: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Refunded:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            requester=str(args["requester"]),
            amount=int(args["amount"]),
        )


@dataclass(frozen=True)
class DoubleSignSlashed:
    """The ``DoubleSignSlashed`` event (first seen in ``Jobs``)."""

    job_id: int
    round: int
    participant: str
    reporter: str
    slashed: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> DoubleSignSlashed:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            job_id=int(args["job_id"]),
            round=int(args["round"]),
            participant=str(args["participant"]),
            reporter=str(args["reporter"]),
            slashed=int(args["slashed"]),
        )


@dataclass(frozen=True)
class Deposited:
    """The ``Deposited`` event (first seen in ``Receipts``)."""

    client: str
    amount: int
    available: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Deposited:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            client=str(args["client"]),
            amount=int(args["amount"]),
            available=int(args["available"]),
        )


@dataclass(frozen=True)
class WithdrawalRequested:
    """The ``WithdrawalRequested`` event (first seen in ``Receipts``)."""

    client: str
    amount: int
    release_at: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> WithdrawalRequested:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            client=str(args["client"]),
            amount=int(args["amount"]),
            release_at=int(args["release_at"]),
        )


@dataclass(frozen=True)
class BatchPosted:
    """The ``BatchPosted`` event (first seen in ``Receipts``)."""

    batch_id: int
    provider: str
    client: str
    receipt_root: bytes
    receipt_count: int
    amount: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> BatchPosted:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            batch_id=int(args["batch_id"]),
            provider=str(args["provider"]),
            client=str(args["client"]),
            receipt_root=bytes(args["receipt_root"]),
            receipt_count=int(args["receipt_count"]),
            amount=int(args["amount"]),
        )


@dataclass(frozen=True)
class BatchDisputed:
    """The ``BatchDisputed`` event (first seen in ``Receipts``)."""

    batch_id: int
    client: str
    reason_hash: bytes

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> BatchDisputed:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            batch_id=int(args["batch_id"]),
            client=str(args["client"]),
            reason_hash=bytes(args["reason_hash"]),
        )


@dataclass(frozen=True)
class BatchSettled:
    """The ``BatchSettled`` event (first seen in ``Receipts``)."""

    batch_id: int
    provider: str
    amount: int

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> BatchSettled:
        """From a decoded log's arguments (``Event.args``), by name."""
        return cls(
            batch_id=int(args["batch_id"]),
            provider=str(args["provider"]),
            amount=int(args["amount"]),
        )


class RegistryFunctions:
    """Every function of ``Registry``'s ABI, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def register(
        self,
        signer: TransactionSigner,
        x25519_key: bytes,
        pop: bytes,
        roles: int,
        endpoint: str,
        *,
        value: int = 0,
    ) -> Receipt:
        """``Registry.register`` (payable transaction)."""
        return self.contract.transact(
            signer, "register", x25519_key, pop, roles, endpoint, value=value
        )

    def rotate_key(self, signer: TransactionSigner, x25519_key: bytes, pop: bytes) -> Receipt:
        """``Registry.rotate_key`` (transaction)."""
        return self.contract.transact(signer, "rotate_key", x25519_key, pop)

    def set_endpoint(self, signer: TransactionSigner, endpoint: str) -> Receipt:
        """``Registry.set_endpoint`` (transaction)."""
        return self.contract.transact(signer, "set_endpoint", endpoint)

    def stake(self, signer: TransactionSigner, *, value: int = 0) -> Receipt:
        """``Registry.stake`` (payable transaction)."""
        return self.contract.transact(signer, "stake", value=value)

    def request_unbond(self, signer: TransactionSigner, amount: int) -> Receipt:
        """``Registry.request_unbond`` (transaction)."""
        return self.contract.transact(signer, "request_unbond", amount)

    def withdraw(self, signer: TransactionSigner) -> Receipt:
        """``Registry.withdraw`` (transaction)."""
        return self.contract.transact(signer, "withdraw")

    def set_slasher(self, signer: TransactionSigner, slasher: str) -> Receipt:
        """``Registry.set_slasher`` (transaction)."""
        return self.contract.transact(signer, "set_slasher", slasher)

    def slash(
        self, signer: TransactionSigner, offender: str, amount: int, beneficiary: str
    ) -> Receipt:
        """``Registry.slash`` (transaction)."""
        return self.contract.transact(signer, "slash", offender, amount, beneficiary)

    def claim_slash_reward(self, signer: TransactionSigner) -> Receipt:
        """``Registry.claim_slash_reward`` (transaction)."""
        return self.contract.transact(signer, "claim_slash_reward")

    def pop_digest(self, account: str, x25519_key: bytes, *, block: int | str = "latest") -> bytes:
        """``Registry.pop_digest`` (call)."""
        return bytes(self.contract.call("pop_digest", account, x25519_key, block=block))

    def has_role(self, account: str, role: int, *, block: int | str = "latest") -> bool:
        """``Registry.has_role`` (call)."""
        return bool(self.contract.call("has_role", account, role, block=block))

    def eligible_stake(self, account: str, *, block: int | str = "latest") -> int:
        """``Registry.eligible_stake`` (call)."""
        return int(self.contract.call("eligible_stake", account, block=block))

    def committee(self, seed: bytes, size: int, *, block: int | str = "latest") -> tuple[str, ...]:
        """``Registry.committee`` (call)."""
        return tuple(str(v) for v in self.contract.call("committee", seed, size, block=block))

    def validator_count(self, *, block: int | str = "latest") -> int:
        """``Registry.validator_count`` (call)."""
        return int(self.contract.call("validator_count", block=block))

    def deployer(self, *, block: int | str = "latest") -> str:
        """``Registry.deployer`` (call)."""
        return str(self.contract.call("deployer", block=block))

    def unbonding_delay(self, *, block: int | str = "latest") -> int:
        """``Registry.unbonding_delay`` (call)."""
        return int(self.contract.call("unbonding_delay", block=block))

    def min_validator_stake(self, *, block: int | str = "latest") -> int:
        """``Registry.min_validator_stake`` (call)."""
        return int(self.contract.call("min_validator_stake", block=block))

    def slasher(self, *, block: int | str = "latest") -> str:
        """``Registry.slasher`` (call)."""
        return str(self.contract.call("slasher", block=block))

    def identities(self, arg0: str, *, block: int | str = "latest") -> Identity:
        """``Registry.identities`` (call)."""
        return Identity.from_abi(self.contract.call("identities", arg0, block=block))

    def is_registered(self, arg0: str, *, block: int | str = "latest") -> bool:
        """``Registry.is_registered`` (call)."""
        return bool(self.contract.call("is_registered", arg0, block=block))

    def stake_of(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Registry.stake_of`` (call)."""
        return int(self.contract.call("stake_of", arg0, block=block))

    def unbonding_of(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Registry.unbonding_of`` (call)."""
        return int(self.contract.call("unbonding_of", arg0, block=block))

    def unbonding_release_at(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Registry.unbonding_release_at`` (call)."""
        return int(self.contract.call("unbonding_release_at", arg0, block=block))

    def total_staked(self, *, block: int | str = "latest") -> int:
        """``Registry.total_staked`` (call)."""
        return int(self.contract.call("total_staked", block=block))

    def total_unbonding(self, *, block: int | str = "latest") -> int:
        """``Registry.total_unbonding`` (call)."""
        return int(self.contract.call("total_unbonding", block=block))

    def slashed_pool(self, *, block: int | str = "latest") -> int:
        """``Registry.slashed_pool`` (call)."""
        return int(self.contract.call("slashed_pool", block=block))

    def rewards_owed(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Registry.rewards_owed`` (call)."""
        return int(self.contract.call("rewards_owed", arg0, block=block))

    def total_rewards_owed(self, *, block: int | str = "latest") -> int:
        """``Registry.total_rewards_owed`` (call)."""
        return int(self.contract.call("total_rewards_owed", block=block))

    def validators(self, arg0: int, *, block: int | str = "latest") -> str:
        """``Registry.validators`` (call)."""
        return str(self.contract.call("validators", arg0, block=block))


class RegistryEvents:
    """Every event of ``Registry``'s ABI: those a transaction emitted, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def registered(self, receipt: Receipt) -> list[Registered]:
        """The ``Registered`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Registered")
        return [Registered.from_args(e.args) for e in found]

    def key_rotated(self, receipt: Receipt) -> list[KeyRotated]:
        """The ``KeyRotated`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "KeyRotated")
        return [KeyRotated.from_args(e.args) for e in found]

    def endpoint_changed(self, receipt: Receipt) -> list[EndpointChanged]:
        """The ``EndpointChanged`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "EndpointChanged")
        return [EndpointChanged.from_args(e.args) for e in found]

    def staked(self, receipt: Receipt) -> list[Staked]:
        """The ``Staked`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Staked")
        return [Staked.from_args(e.args) for e in found]

    def unbond_requested(self, receipt: Receipt) -> list[UnbondRequested]:
        """The ``UnbondRequested`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "UnbondRequested")
        return [UnbondRequested.from_args(e.args) for e in found]

    def withdrawn(self, receipt: Receipt) -> list[Withdrawn]:
        """The ``Withdrawn`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Withdrawn")
        return [Withdrawn.from_args(e.args) for e in found]

    def slashed(self, receipt: Receipt) -> list[Slashed]:
        """The ``Slashed`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Slashed")
        return [Slashed.from_args(e.args) for e in found]

    def slasher_set(self, receipt: Receipt) -> list[SlasherSet]:
        """The ``SlasherSet`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "SlasherSet")
        return [SlasherSet.from_args(e.args) for e in found]

    def slash_reward_claimed(self, receipt: Receipt) -> list[SlashRewardClaimed]:
        """The ``SlashRewardClaimed`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "SlashRewardClaimed")
        return [SlashRewardClaimed.from_args(e.args) for e in found]


class DatasetsFunctions:
    """Every function of ``Datasets``'s ABI, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def commit(
        self, signer: TransactionSigner, merkle_root: bytes, record_count: int, schema_hash: bytes
    ) -> Receipt:
        """``Datasets.commit`` (transaction)."""
        return self.contract.transact(signer, "commit", merkle_root, record_count, schema_hash)

    def revoke(self, signer: TransactionSigner, dataset_id: int) -> Receipt:
        """``Datasets.revoke`` (transaction)."""
        return self.contract.transact(signer, "revoke", dataset_id)

    def get(self, dataset_id: int, *, block: int | str = "latest") -> Dataset:
        """``Datasets.get`` (call)."""
        return Dataset.from_abi(self.contract.call("get", dataset_id, block=block))

    def dataset_count(self, *, block: int | str = "latest") -> int:
        """``Datasets.dataset_count`` (call)."""
        return int(self.contract.call("dataset_count", block=block))


class DatasetsEvents:
    """Every event of ``Datasets``'s ABI: those a transaction emitted, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def dataset_committed(self, receipt: Receipt) -> list[DatasetCommitted]:
        """The ``DatasetCommitted`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "DatasetCommitted")
        return [DatasetCommitted.from_args(e.args) for e in found]

    def dataset_revoked(self, receipt: Receipt) -> list[DatasetRevoked]:
        """The ``DatasetRevoked`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "DatasetRevoked")
        return [DatasetRevoked.from_args(e.args) for e in found]


class ModelsFunctions:
    """Every function of ``Models``'s ABI, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def create_model(self, signer: TransactionSigner, name: str) -> Receipt:
        """``Models.create_model`` (transaction)."""
        return self.contract.transact(signer, "create_model", name)

    def publish_version(
        self,
        signer: TransactionSigner,
        model_id: int,
        ciphertext_cid: str,
        manifest_cid: str,
        plaintext_commitment: bytes,
        parent_version: int,
        job_id: int,
    ) -> Receipt:
        """``Models.publish_version`` (transaction)."""
        return self.contract.transact(
            signer,
            "publish_version",
            model_id,
            ciphertext_cid,
            manifest_cid,
            plaintext_commitment,
            parent_version,
            job_id,
        )

    def grant(
        self,
        signer: TransactionSigner,
        version_id: int,
        grantee: str,
        expiry: int,
        wrapped_key_ref: str,
    ) -> Receipt:
        """``Models.grant`` (transaction)."""
        return self.contract.transact(signer, "grant", version_id, grantee, expiry, wrapped_key_ref)

    def revoke(self, signer: TransactionSigner, grant_id: int) -> Receipt:
        """``Models.revoke`` (transaction)."""
        return self.contract.transact(signer, "revoke", grant_id)

    def transfer_ownership(
        self, signer: TransactionSigner, model_id: int, new_owner: str
    ) -> Receipt:
        """``Models.transfer_ownership`` (transaction)."""
        return self.contract.transact(signer, "transfer_ownership", model_id, new_owner)

    def grant_valid(self, grant_id: int, *, block: int | str = "latest") -> bool:
        """``Models.grant_valid`` (call)."""
        return bool(self.contract.call("grant_valid", grant_id, block=block))

    def has_access(self, version_id: int, account: str, *, block: int | str = "latest") -> bool:
        """``Models.has_access`` (call)."""
        return bool(self.contract.call("has_access", version_id, account, block=block))

    def get_model(self, model_id: int, *, block: int | str = "latest") -> Model:
        """``Models.get_model`` (call)."""
        return Model.from_abi(self.contract.call("get_model", model_id, block=block))

    def get_version(self, version_id: int, *, block: int | str = "latest") -> Version:
        """``Models.get_version`` (call)."""
        return Version.from_abi(self.contract.call("get_version", version_id, block=block))

    def get_grant(self, grant_id: int, *, block: int | str = "latest") -> Grant:
        """``Models.get_grant`` (call)."""
        return Grant.from_abi(self.contract.call("get_grant", grant_id, block=block))

    def model_count(self, *, block: int | str = "latest") -> int:
        """``Models.model_count`` (call)."""
        return int(self.contract.call("model_count", block=block))

    def version_count(self, *, block: int | str = "latest") -> int:
        """``Models.version_count`` (call)."""
        return int(self.contract.call("version_count", block=block))

    def grant_count(self, *, block: int | str = "latest") -> int:
        """``Models.grant_count`` (call)."""
        return int(self.contract.call("grant_count", block=block))

    def latest_grant(self, arg0: int, arg1: str, *, block: int | str = "latest") -> int:
        """``Models.latest_grant`` (call)."""
        return int(self.contract.call("latest_grant", arg0, arg1, block=block))


class ModelsEvents:
    """Every event of ``Models``'s ABI: those a transaction emitted, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def model_created(self, receipt: Receipt) -> list[ModelCreated]:
        """The ``ModelCreated`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "ModelCreated")
        return [ModelCreated.from_args(e.args) for e in found]

    def version_published(self, receipt: Receipt) -> list[VersionPublished]:
        """The ``VersionPublished`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "VersionPublished")
        return [VersionPublished.from_args(e.args) for e in found]

    def grant_issued(self, receipt: Receipt) -> list[GrantIssued]:
        """The ``GrantIssued`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "GrantIssued")
        return [GrantIssued.from_args(e.args) for e in found]

    def grant_revoked(self, receipt: Receipt) -> list[GrantRevoked]:
        """The ``GrantRevoked`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "GrantRevoked")
        return [GrantRevoked.from_args(e.args) for e in found]

    def ownership_transferred(self, receipt: Receipt) -> list[OwnershipTransferred]:
        """The ``OwnershipTransferred`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "OwnershipTransferred")
        return [OwnershipTransferred.from_args(e.args) for e in found]


class JobsFunctions:
    """Every function of ``Jobs``'s ABI, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def create_job(
        self, signer: TransactionSigner, params: JobParams, *, value: int = 0
    ) -> Receipt:
        """``Jobs.create_job`` (payable transaction)."""
        return self.contract.transact(signer, "create_job", params.to_abi(), value=value)

    def join(self, signer: TransactionSigner, job_id: int) -> Receipt:
        """``Jobs.join`` (transaction)."""
        return self.contract.transact(signer, "join", job_id)

    def cancel(self, signer: TransactionSigner, job_id: int) -> Receipt:
        """``Jobs.cancel`` (transaction)."""
        return self.contract.transact(signer, "cancel", job_id)

    def submit_round(
        self,
        signer: TransactionSigner,
        job_id: int,
        round: int,
        aggregate_cid: str,
        commitment_root: bytes,
        bitmap: int,
    ) -> Receipt:
        """``Jobs.submit_round`` (transaction)."""
        return self.contract.transact(
            signer, "submit_round", job_id, round, aggregate_cid, commitment_root, bitmap
        )

    def challenge(
        self, signer: TransactionSigner, job_id: int, round: int, reason_hash: bytes
    ) -> Receipt:
        """``Jobs.challenge`` (transaction)."""
        return self.contract.transact(signer, "challenge", job_id, round, reason_hash)

    def vote(self, signer: TransactionSigner, challenge_id: int, uphold: bool) -> Receipt:
        """``Jobs.vote`` (transaction)."""
        return self.contract.transact(signer, "vote", challenge_id, uphold)

    def resolve(self, signer: TransactionSigner, challenge_id: int) -> Receipt:
        """``Jobs.resolve`` (transaction)."""
        return self.contract.transact(signer, "resolve", challenge_id)

    def finalize(self, signer: TransactionSigner, job_id: int) -> Receipt:
        """``Jobs.finalize`` (transaction)."""
        return self.contract.transact(signer, "finalize", job_id)

    def claim_reward(self, signer: TransactionSigner, job_id: int) -> Receipt:
        """``Jobs.claim_reward`` (transaction)."""
        return self.contract.transact(signer, "claim_reward", job_id)

    def refund(self, signer: TransactionSigner, job_id: int) -> Receipt:
        """``Jobs.refund`` (transaction)."""
        return self.contract.transact(signer, "refund", job_id)

    def report_double_sign(
        self,
        signer: TransactionSigner,
        job_id: int,
        round: int,
        participant: str,
        commitment_a: bytes,
        sig_a: bytes,
        commitment_b: bytes,
        sig_b: bytes,
    ) -> Receipt:
        """``Jobs.report_double_sign`` (transaction)."""
        return self.contract.transact(
            signer,
            "report_double_sign",
            job_id,
            round,
            participant,
            commitment_a,
            sig_a,
            commitment_b,
            sig_b,
        )

    def verify_inclusion(
        self,
        job_id: int,
        round: int,
        participant: str,
        commitment: bytes,
        proof: Sequence[bytes],
        *,
        block: int | str = "latest",
    ) -> bool:
        """``Jobs.verify_inclusion`` (call)."""
        return bool(
            self.contract.call(
                "verify_inclusion", job_id, round, participant, commitment, list(proof), block=block
            )
        )

    def commitment_digest(
        self, job_id: int, round: int, commitment: bytes, *, block: int | str = "latest"
    ) -> bytes:
        """``Jobs.commitment_digest`` (call)."""
        return bytes(
            self.contract.call("commitment_digest", job_id, round, commitment, block=block)
        )

    def get_job(self, job_id: int, *, block: int | str = "latest") -> Job:
        """``Jobs.get_job`` (call)."""
        return Job.from_abi(self.contract.call("get_job", job_id, block=block))

    def get_round(self, job_id: int, round: int, *, block: int | str = "latest") -> Round:
        """``Jobs.get_round`` (call)."""
        return Round.from_abi(self.contract.call("get_round", job_id, round, block=block))

    def get_challenge(self, challenge_id: int, *, block: int | str = "latest") -> Challenge:
        """``Jobs.get_challenge`` (call)."""
        return Challenge.from_abi(self.contract.call("get_challenge", challenge_id, block=block))

    def participant_of(self, job_id: int, account: str, *, block: int | str = "latest") -> int:
        """``Jobs.participant_of`` (call)."""
        return int(self.contract.call("participant_of", job_id, account, block=block))

    def reward_of(self, job_id: int, account: str, *, block: int | str = "latest") -> int:
        """``Jobs.reward_of`` (call)."""
        return int(self.contract.call("reward_of", job_id, account, block=block))

    def registry(self, *, block: int | str = "latest") -> str:
        """``Jobs.registry`` (call)."""
        return str(self.contract.call("registry", block=block))

    def job_count(self, *, block: int | str = "latest") -> int:
        """``Jobs.job_count`` (call)."""
        return int(self.contract.call("job_count", block=block))

    def challenge_count(self, *, block: int | str = "latest") -> int:
        """``Jobs.challenge_count`` (call)."""
        return int(self.contract.call("challenge_count", block=block))

    def escrow_held(self, *, block: int | str = "latest") -> int:
        """``Jobs.escrow_held`` (call)."""
        return int(self.contract.call("escrow_held", block=block))

    def participant_at(self, arg0: int, arg1: int, *, block: int | str = "latest") -> str:
        """``Jobs.participant_at`` (call)."""
        return str(self.contract.call("participant_at", arg0, arg1, block=block))

    def claimed(self, arg0: int, arg1: str, *, block: int | str = "latest") -> bool:
        """``Jobs.claimed`` (call)."""
        return bool(self.contract.call("claimed", arg0, arg1, block=block))

    def round_challenged(self, arg0: int, arg1: int, *, block: int | str = "latest") -> bool:
        """``Jobs.round_challenged`` (call)."""
        return bool(self.contract.call("round_challenged", arg0, arg1, block=block))

    def voted(self, arg0: int, arg1: str, *, block: int | str = "latest") -> bool:
        """``Jobs.voted`` (call)."""
        return bool(self.contract.call("voted", arg0, arg1, block=block))

    def evidence_used(self, arg0: bytes, *, block: int | str = "latest") -> bool:
        """``Jobs.evidence_used`` (call)."""
        return bool(self.contract.call("evidence_used", arg0, block=block))


class JobsEvents:
    """Every event of ``Jobs``'s ABI: those a transaction emitted, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def job_created(self, receipt: Receipt) -> list[JobCreated]:
        """The ``JobCreated`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "JobCreated")
        return [JobCreated.from_args(e.args) for e in found]

    def joined(self, receipt: Receipt) -> list[Joined]:
        """The ``Joined`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Joined")
        return [Joined.from_args(e.args) for e in found]

    def round_recorded(self, receipt: Receipt) -> list[RoundRecorded]:
        """The ``RoundRecorded`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "RoundRecorded")
        return [RoundRecorded.from_args(e.args) for e in found]

    def challenge_opened(self, receipt: Receipt) -> list[ChallengeOpened]:
        """The ``ChallengeOpened`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "ChallengeOpened")
        return [ChallengeOpened.from_args(e.args) for e in found]

    def voted(self, receipt: Receipt) -> list[Voted]:
        """The ``Voted`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Voted")
        return [Voted.from_args(e.args) for e in found]

    def challenge_resolved(self, receipt: Receipt) -> list[ChallengeResolved]:
        """The ``ChallengeResolved`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "ChallengeResolved")
        return [ChallengeResolved.from_args(e.args) for e in found]

    def job_finalized(self, receipt: Receipt) -> list[JobFinalized]:
        """The ``JobFinalized`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "JobFinalized")
        return [JobFinalized.from_args(e.args) for e in found]

    def job_cancelled(self, receipt: Receipt) -> list[JobCancelled]:
        """The ``JobCancelled`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "JobCancelled")
        return [JobCancelled.from_args(e.args) for e in found]

    def reward_claimed(self, receipt: Receipt) -> list[RewardClaimed]:
        """The ``RewardClaimed`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "RewardClaimed")
        return [RewardClaimed.from_args(e.args) for e in found]

    def refunded(self, receipt: Receipt) -> list[Refunded]:
        """The ``Refunded`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Refunded")
        return [Refunded.from_args(e.args) for e in found]

    def double_sign_slashed(self, receipt: Receipt) -> list[DoubleSignSlashed]:
        """The ``DoubleSignSlashed`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "DoubleSignSlashed")
        return [DoubleSignSlashed.from_args(e.args) for e in found]


class ReceiptsFunctions:
    """Every function of ``Receipts``'s ABI, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def deposit(self, signer: TransactionSigner, *, value: int = 0) -> Receipt:
        """``Receipts.deposit`` (payable transaction)."""
        return self.contract.transact(signer, "deposit", value=value)

    def request_withdrawal(self, signer: TransactionSigner, amount: int) -> Receipt:
        """``Receipts.request_withdrawal`` (transaction)."""
        return self.contract.transact(signer, "request_withdrawal", amount)

    def withdraw(self, signer: TransactionSigner) -> Receipt:
        """``Receipts.withdraw`` (transaction)."""
        return self.contract.transact(signer, "withdraw")

    def post_batch(
        self,
        signer: TransactionSigner,
        client: str,
        receipt_root: bytes,
        receipt_count: int,
        amount: int,
    ) -> Receipt:
        """``Receipts.post_batch`` (transaction)."""
        return self.contract.transact(
            signer, "post_batch", client, receipt_root, receipt_count, amount
        )

    def dispute(self, signer: TransactionSigner, batch_id: int, reason_hash: bytes) -> Receipt:
        """``Receipts.dispute`` (transaction)."""
        return self.contract.transact(signer, "dispute", batch_id, reason_hash)

    def settle(self, signer: TransactionSigner, batch_id: int) -> Receipt:
        """``Receipts.settle`` (transaction)."""
        return self.contract.transact(signer, "settle", batch_id)

    def withdraw_earnings(self, signer: TransactionSigner) -> Receipt:
        """``Receipts.withdraw_earnings`` (transaction)."""
        return self.contract.transact(signer, "withdraw_earnings")

    def get_batch(self, batch_id: int, *, block: int | str = "latest") -> Batch:
        """``Receipts.get_batch`` (call)."""
        return Batch.from_abi(self.contract.call("get_batch", batch_id, block=block))

    def dispute_window(self, *, block: int | str = "latest") -> int:
        """``Receipts.dispute_window`` (call)."""
        return int(self.contract.call("dispute_window", block=block))

    def withdrawal_delay(self, *, block: int | str = "latest") -> int:
        """``Receipts.withdrawal_delay`` (call)."""
        return int(self.contract.call("withdrawal_delay", block=block))

    def available(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Receipts.available`` (call)."""
        return int(self.contract.call("available", arg0, block=block))

    def reserved(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Receipts.reserved`` (call)."""
        return int(self.contract.call("reserved", arg0, block=block))

    def pending_withdrawal(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Receipts.pending_withdrawal`` (call)."""
        return int(self.contract.call("pending_withdrawal", arg0, block=block))

    def withdrawal_release_at(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Receipts.withdrawal_release_at`` (call)."""
        return int(self.contract.call("withdrawal_release_at", arg0, block=block))

    def earnings(self, arg0: str, *, block: int | str = "latest") -> int:
        """``Receipts.earnings`` (call)."""
        return int(self.contract.call("earnings", arg0, block=block))

    def total_available(self, *, block: int | str = "latest") -> int:
        """``Receipts.total_available`` (call)."""
        return int(self.contract.call("total_available", block=block))

    def total_reserved(self, *, block: int | str = "latest") -> int:
        """``Receipts.total_reserved`` (call)."""
        return int(self.contract.call("total_reserved", block=block))

    def total_pending(self, *, block: int | str = "latest") -> int:
        """``Receipts.total_pending`` (call)."""
        return int(self.contract.call("total_pending", block=block))

    def total_earnings(self, *, block: int | str = "latest") -> int:
        """``Receipts.total_earnings`` (call)."""
        return int(self.contract.call("total_earnings", block=block))

    def batch_count(self, *, block: int | str = "latest") -> int:
        """``Receipts.batch_count`` (call)."""
        return int(self.contract.call("batch_count", block=block))


class ReceiptsEvents:
    """Every event of ``Receipts``'s ABI: those a transaction emitted, typed."""

    def __init__(self, contract: BoundContract) -> None:
        self.contract = contract

    def deposited(self, receipt: Receipt) -> list[Deposited]:
        """The ``Deposited`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Deposited")
        return [Deposited.from_args(e.args) for e in found]

    def withdrawal_requested(self, receipt: Receipt) -> list[WithdrawalRequested]:
        """The ``WithdrawalRequested`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "WithdrawalRequested")
        return [WithdrawalRequested.from_args(e.args) for e in found]

    def withdrawn(self, receipt: Receipt) -> list[Withdrawn]:
        """The ``Withdrawn`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "Withdrawn")
        return [Withdrawn.from_args(e.args) for e in found]

    def batch_posted(self, receipt: Receipt) -> list[BatchPosted]:
        """The ``BatchPosted`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "BatchPosted")
        return [BatchPosted.from_args(e.args) for e in found]

    def batch_disputed(self, receipt: Receipt) -> list[BatchDisputed]:
        """The ``BatchDisputed`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "BatchDisputed")
        return [BatchDisputed.from_args(e.args) for e in found]

    def batch_settled(self, receipt: Receipt) -> list[BatchSettled]:
        """The ``BatchSettled`` events this contract emitted in ``receipt``."""
        found = self.contract.events(receipt, "BatchSettled")
        return [BatchSettled.from_args(e.args) for e in found]


__all__ = [
    "Batch",
    "BatchDisputed",
    "BatchPosted",
    "BatchSettled",
    "Challenge",
    "ChallengeOpened",
    "ChallengeResolved",
    "Dataset",
    "DatasetCommitted",
    "DatasetRevoked",
    "DatasetsEvents",
    "DatasetsFunctions",
    "Deposited",
    "DoubleSignSlashed",
    "EndpointChanged",
    "Grant",
    "GrantIssued",
    "GrantRevoked",
    "Identity",
    "Job",
    "JobCancelled",
    "JobCreated",
    "JobFinalized",
    "JobParams",
    "JobsEvents",
    "JobsFunctions",
    "Joined",
    "KeyRotated",
    "Model",
    "ModelCreated",
    "ModelsEvents",
    "ModelsFunctions",
    "OwnershipTransferred",
    "ReceiptsEvents",
    "ReceiptsFunctions",
    "Refunded",
    "Registered",
    "RegistryEvents",
    "RegistryFunctions",
    "RewardClaimed",
    "Round",
    "RoundRecorded",
    "SlashRewardClaimed",
    "Slashed",
    "SlasherSet",
    "Staked",
    "UnbondRequested",
    "Version",
    "VersionPublished",
    "Voted",
    "WithdrawalRequested",
    "Withdrawn",
]
