"""Errors of chainml.ledger.

Every ``assert`` in chainml's contracts carries a reason that is the name of one
``ContractRevert`` subclass below (``assert msg.sender == self.owner, "NotAuthorized"``).
``revert_error(reason)`` turns the reason a node reports into that class, so a caller
catches ``InsufficientStake`` rather than parsing a web3 message.  A test checks that
every reason in the contract sources has its class here.

    LedgerError
     ├── ContractRevert(reason)       a transaction or call reverted
     │    ├── NotAuthorized, InsufficientStake, ChallengeWindowOpen, ...
     │    └── UnknownRevert           a reason chainml's contracts never give
     ├── TransactionTimeout           no receipt within the deadline
     ├── ChainUnavailable             the JSON-RPC endpoint did not answer
     ├── RpcError                     the endpoint answered with an error
     ├── ArtifactMismatch             committed artifacts differ from the sources
     ├── ViewDistrusted               the node's view of the chain is held (an eclipse)
     ├── SettleSettingError           a settle setting that names no policy
     └── ChainDataError               a block, log or receipt failed a consistency check
          └── SettlementUnsupported   the chain has no finalized/safe tag
"""

from __future__ import annotations

from typing import TypeVar

from chainml.errors import ChainmlError


class LedgerError(ChainmlError):
    """Base class of ledger failures."""


class TransactionTimeout(LedgerError):
    """A transaction was sent but no receipt arrived before the deadline."""


class ChainUnavailable(LedgerError):
    """The JSON-RPC endpoint could not be reached."""


class RpcError(LedgerError):
    """The JSON-RPC endpoint answered with an error that is not a contract revert."""


class ArtifactMismatch(LedgerError):
    """Committed compiled artifacts do not match the contract sources."""


class ViewDistrusted(LedgerError):
    """The node's monitor found its view of the chain disagreeing with other endpoints:
    nothing is acted on (no transaction sent, no chain fact settled) until they agree."""


class SettleSettingError(LedgerError, ValueError):
    """A ``settle`` setting that is neither ``finalized``, ``safe`` nor a depth >= 0."""


class DeploymentFileError(LedgerError):
    """A deployment file is missing or is not one ``chainml chain deploy`` wrote."""


class ChainDataError(LedgerError):
    """Data returned by a chain failed a consistency check."""


class ContractRevert(LedgerError):
    """A contract call or transaction reverted.  ``reason`` is the contract's reason."""

    reason: str = ""

    def __init__(self, reason: str | None = None, *, tx_hash: str | None = None) -> None:
        self.reason = reason if reason is not None else type(self).__name__
        self.tx_hash = tx_hash
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"contract reverted: {self.reason}{where}")


class UnknownRevert(ContractRevert):
    """A revert whose reason is not one of chainml's (or that carried no reason)."""


_REASONS: dict[str, type[ContractRevert]] = {}


_C = TypeVar("_C", bound=type[ContractRevert])


def _register(cls: _C) -> _C:
    _REASONS[cls.__name__] = cls
    return cls


# One class per revert reason used in src/chainml/ledger/contracts/*.vy.
@_register
class NotAuthorized(ContractRevert):
    """The sender may not call this function."""


@_register
class AlreadyRegistered(ContractRevert):
    """The account already has an identity."""


@_register
class NotRegistered(ContractRevert):
    """The account has no identity in the Registry."""


@_register
class NotTrainer(ContractRevert):
    """The account is registered without the trainer role."""


@_register
class InvalidProofOfPossession(ContractRevert):
    """The account's signature over its X25519 key did not verify."""


@_register
class InvalidSignatureOnChain(ContractRevert):
    """A signature failed ecrecover."""


@_register
class ValidatorSetFull(ContractRevert):
    """The Registry holds as many validators as its committee draw can iterate."""


@_register
class InsufficientStake(ContractRevert):
    """Stake is below what the action requires."""


@_register
class InsufficientBalance(ContractRevert):
    """A balance is too small for the action."""


@_register
class ZeroAmount(ContractRevert):
    """An amount of zero was given where a positive one is needed."""


@_register
class UnbondingNotReady(ContractRevert):
    """The unbonding delay has not passed yet."""


@_register
class NothingToWithdraw(ContractRevert):
    """There is nothing to withdraw."""


@_register
class TransferFailed(ContractRevert):
    """Sending native currency failed."""


@_register
class InvalidParameter(ContractRevert):
    """A parameter is out of its allowed range."""


@_register
class UnknownDataset(ContractRevert):
    """No data set with that id."""


@_register
class DatasetRevoked(ContractRevert):
    """The data set was revoked."""


@_register
class UnknownModel(ContractRevert):
    """No model or version with that id."""


@_register
class UnknownGrant(ContractRevert):
    """No grant with that id."""


@_register
class GrantRevoked(ContractRevert):
    """The grant was already revoked."""


@_register
class UnknownJob(ContractRevert):
    """No job with that id."""


@_register
class JobNotOpen(ContractRevert):
    """The job does not accept this action in its current state."""


@_register
class AlreadyJoined(ContractRevert):
    """The account already joined this job."""


@_register
class JobFull(ContractRevert):
    """The job has no room for more participants."""


@_register
class NotParticipant(ContractRevert):
    """The account is not a participant of the job."""


@_register
class WrongRound(ContractRevert):
    """The round number is not the one expected."""


@_register
class TooFewParticipants(ContractRevert):
    """Fewer participants than the job requires."""


@_register
class ChallengeWindowOpen(ContractRevert):
    """The challenge window has not closed yet."""


@_register
class ChallengeWindowClosed(ContractRevert):
    """The challenge window has closed."""


@_register
class ChallengePending(ContractRevert):
    """A challenge on this job is still undecided."""


@_register
class UnknownChallenge(ContractRevert):
    """No challenge with that id."""


@_register
class NotCommitteeMember(ContractRevert):
    """The sender is not on the committee."""


@_register
class AlreadyVoted(ContractRevert):
    """The committee member has already voted."""


@_register
class VotingOpen(ContractRevert):
    """The committee vote has not ended."""


@_register
class VotingClosed(ContractRevert):
    """The committee vote has ended."""


@_register
class AlreadyResolved(ContractRevert):
    """The challenge or dispute was already decided."""


@_register
class AlreadyFinalized(ContractRevert):
    """The job or round is already final."""


@_register
class NotFinalized(ContractRevert):
    """The job is not final yet."""


@_register
class AlreadyClaimed(ContractRevert):
    """The reward was already claimed."""


@_register
class NoReward(ContractRevert):
    """The account has no reward in this job."""


@_register
class InvalidEvidence(ContractRevert):
    """Misbehaviour evidence did not hold up."""


@_register
class EvidenceAlreadyUsed(ContractRevert):
    """This evidence was already acted upon."""


@_register
class UnknownBatch(ContractRevert):
    """No receipt batch with that id."""


@_register
class DisputeWindowOpen(ContractRevert):
    """The dispute window has not closed yet."""


@_register
class DisputeWindowClosed(ContractRevert):
    """The dispute window has closed."""


@_register
class Disputed(ContractRevert):
    """The batch is under dispute."""


@_register
class Reentrancy(ContractRevert):
    """A reentrant call was refused."""


def revert_error(reason: str | None, *, tx_hash: str | None = None) -> ContractRevert:
    """The typed exception for a revert ``reason`` (``UnknownRevert`` if it is not ours)."""
    if reason and reason in _REASONS:
        return _REASONS[reason](reason, tx_hash=tx_hash)
    return UnknownRevert(reason or "no reason given", tx_hash=tx_hash)


def known_reasons() -> frozenset[str]:
    """Every revert reason chainml's contracts may give."""
    return frozenset(_REASONS)


class ReorgDetected(ChainDataError):
    """A block an event stream had already processed is no longer on the chain.

    With a confirmation depth larger than any reorganisation this never happens; when it
    does, the reorganisation was deeper than the depth and the node must raise an alarm.
    """


class SettlementUnsupported(ChainDataError):
    """The chain does not answer the ``finalized`` or ``safe`` block tag that the node's
    ``settle`` setting names: settle by a confirmation depth instead."""
