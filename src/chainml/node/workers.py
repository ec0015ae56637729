"""Workers: what a node does on its own, driven by chain events and chain state.

Every action a worker takes on chain goes through ``Actions.perform``, which makes it
idempotent across crashes: the intent is recorded (SQLite, synchronous) before the
transaction is sent, its hash right after, and the outcome once mined.  After a restart, an
action found half-done is finished from what the chain says — a receipt for the recorded
hash, or the chain state the action was meant to reach — never by sending blindly again.
Events are read through an ``EventStream`` whose cursor is stored in the same database and
advanced only after every event of a batch was handled.

``crash_point(name)`` is the fault-injection hook the crash tests use: when the
environment variable ``CHAINML_CRASH_AT`` names it, the process kills itself with SIGKILL
right there.  It is a no-op otherwise.

The workers today: a trainer joins every open job it qualifies for; any node finalises a
job it took part in once the last challenge window has passed; a participant claims its
reward once.  The training and inference issues add round steps and key-guardian duties.

What a worker acts on is settled first, by the node's one ``Settlement`` policy
(``chainml.ledger.settle``, the ``[chain] settle`` setting): it reads jobs created at
settled blocks only, reads a job's state as of the settled block, and counts its own
transaction done only once the transaction's block is settled and still on the chain (a
step reorganised away is sent again if the settled chain says it is not done).  While the
policy holds the node's view (the monitor saw an eclipse), a tick does nothing and says why
once; ``gated`` keeps a role's message handlers from acting then too.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from chainml.crypto import Identity
from chainml.ledger.bindings import Chainml, JobState, Role
from chainml.ledger.client import LedgerClient, Receipt
from chainml.ledger.errors import ContractRevert, LedgerError, ViewDistrusted
from chainml.ledger.events import Cursor, EventStream
from chainml.ledger.settle import Settlement
from chainml.node.envelope import Opened
from chainml.node.state import NodeState

log = logging.getLogger("chainml.node.workers")

CRASH_ENV = "CHAINML_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        log.warning("crash point %s: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)


class SqliteCursorStore:
    def __init__(self, state: NodeState) -> None:
        self.state = state

    def load(self, name: str) -> Cursor | None:
        raw = self.state.get(f"cursor:{name}")
        if raw is None:
            return None
        number, block_hash = raw.split(":", 1)
        return Cursor(int(number), block_hash)

    def save(self, name: str, cursor: Cursor) -> None:
        # not flushed to the disk on its own (``NodeState.execute``): a cursor lost with the
        # machine only means the same events are read and handled again, and every action
        # they lead to is idempotent (``Actions``); one flush per block was a cost every node
        # paid at every block
        self.state.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"cursor:{name}", f"{cursor.block_number}:{cursor.block_hash}"),
            sync=False,
        )


@dataclass(frozen=True)
class Action:
    key: str
    status: str  # intent | sent | done | failed
    tx_hash: str | None


class Actions:
    """The durable record of on-chain actions.  With a ``settlement`` policy, an action is
    done only once its transaction's block is settled (until then it stays ``sent`` and
    ``perform`` answers False); ``done_on_chain`` should then read the settled state."""

    def __init__(
        self,
        state: NodeState,
        client: LedgerClient,
        settlement: Settlement | None = None,
        *,
        receipt_timeout: float = 5.0,
    ) -> None:
        self.state = state
        self.client = client
        self.settlement = settlement
        self.receipt_timeout = receipt_timeout  # waiting for a sent transaction found again

    def get(self, key: str) -> Action | None:
        rows = self.state.query("SELECT status, tx_hash FROM actions WHERE key = ?", (key,))
        return Action(key, rows[0][0], rows[0][1]) if rows else None

    def _set(self, key: str, status: str, tx_hash: str | None, detail: str = "") -> None:
        self.state.execute(
            "INSERT INTO actions (key, status, tx_hash, detail, updated) VALUES (?,?,?,?,?)"
            " ON CONFLICT (key) DO UPDATE SET status = excluded.status,"
            " tx_hash = excluded.tx_hash, detail = excluded.detail, updated = excluded.updated",
            (key, status, tx_hash, detail, time.time()),
        )

    def unfinished(self) -> list[str]:
        rows = self.state.query(
            "SELECT key FROM actions WHERE status IN ('intent', 'sent') ORDER BY updated"
        )
        return [str(r[0]) for r in rows]

    def perform(
        self,
        key: str,
        *,
        done_on_chain: Callable[[], bool],
        send: Callable[[], str],
    ) -> bool:
        """Make the action ``key`` happen exactly once; True once it is done."""
        kind = key.split(":", 1)[0]
        action = self.get(key)
        if action is not None and action.status in ("done", "failed"):
            return action.status == "done"
        if action is None:
            self._set(key, "intent", None)
            crash_point(f"{kind}:after-intent")
        elif action.status == "sent" and action.tx_hash:
            receipt = self._receipt(action.tx_hash)
            if receipt is not None and receipt.status == 1:
                return self._settle(key, receipt)
        # intent only, or sent but not mined (dropped) or reverted: ask the chain first
        if done_on_chain():
            self._set(key, "done", action.tx_hash if action else None, "found done on chain")
            return True
        try:
            tx_hash = send()
        except ContractRevert as exc:
            # refused before sending (gas estimation): the chain says it cannot be done
            self._set(key, "failed", None, f"{type(exc).__name__}: {exc}")
            log.info("action %s refused: %s", key, type(exc).__name__)
            return False
        crash_point(f"{kind}:after-send")
        self._set(key, "sent", tx_hash)
        crash_point(f"{kind}:after-record")
        receipt = self.client.wait_for_receipt(tx_hash)
        crash_point(f"{kind}:after-receipt")
        if receipt.status == 1:
            return self._settle(key, receipt)
        self._set(key, "failed", tx_hash, "reverted")
        return False

    def _settle(self, key: str, receipt: Receipt) -> bool:
        """Done if the mined transaction is settled; else it stays ``sent`` for later."""
        if self.settlement is None or self.settlement.receipt_settled(self.client, receipt):
            self._set(key, "done", receipt.tx_hash)
            return True
        log.info("action %s mined in block %d, not settled yet", key, receipt.block_number)
        return False

    def _receipt(self, tx_hash: str) -> Receipt | None:
        try:
            return self.client.wait_for_receipt(tx_hash, timeout=self.receipt_timeout)
        except ViewDistrusted:
            raise
        except LedgerError:
            return None


class JobWorkers:
    """Trainer joins, finalisation and reward claims for one node."""

    def __init__(
        self,
        cm: Chainml,
        identity: Identity,
        state: NodeState,
        *,
        roles: Role,
        confirmations: int = 0,
        admit: Callable[[int], str | None] | None = None,
        settlement: Settlement | None = None,
    ) -> None:
        self.cm = cm
        self.client = cm.jobs.contract.client
        self.identity = identity
        self.roles = roles
        self.admit = admit  # a trainer's check of a job before it joins (None: any job)
        # when a step counts (None: ``confirmations`` deep, the setting before ``settle``)
        self.settlement = settlement if settlement is not None else Settlement(confirmations)
        self.actions = Actions(state, self.client, self.settlement)
        self.stream = EventStream(
            self.client,
            [cm.jobs.contract],
            name="jobs",
            store=SqliteCursorStore(state),
            settlement=self.settlement,
        )
        self._holding: str | None = None  # why the last tick did nothing (view held)
        self.state = state
        self._done_at: tuple[int, int] = (-1, -1)  # (head, settled) of the last full tick
        # per joined job, the chain time before which reading it again is pointless
        # (infinite: until one of its events); forgotten on restart, so all are read
        self._recheck: dict[int, float] = {}
        self._rounds: dict[int, int] = {}  # per job read, its number of rounds

    def _send(self, fn: str, *args: object) -> Callable[[], str]:
        contract = self.cm.jobs.contract

        def go() -> str:
            return str(
                self.client.send(
                    self.identity.account,
                    to=contract.address,
                    data=contract.abi.encode_call(fn, list(args)),
                    wait=False,
                )
            )

        return go

    def _at(self) -> int:
        """The block a decision reads the chain at: the settled head, read afresh."""
        return max(self.settlement.settled_head(self.client), 0)

    def _joined(self, job_id: int) -> bool:
        return bool(
            self.cm.jobs.contract.call(
                "participant_of", job_id, self.identity.address, block=self._at()
            )
        )

    def on_job_created(self, job_id: int) -> None:
        if not self.roles & Role.TRAINER:
            return
        key = f"join:{job_id}"
        if self.actions.get(key) is None:  # a new decision: is the job for us?
            job = self.cm.jobs.job(job_id, block=self._at())
            if job.state != JobState.OPEN or job.rounds_done > 0:
                return
            if self.cm.registry.stake_of(self.identity.address) < job.params.min_stake:
                return
            refused = self.admit(job_id) if self.admit is not None else None
            if refused is not None:
                log.info("job %d: not joined: %s", job_id, refused)
                return
        # an action already begun is finished whatever the job looks like now
        self._do("join", job_id)

    def _do(self, kind: str, job_id: int) -> bool:
        done, fn = {
            "join": (self._joined, "join"),
            "finalize": (self._finalized, "finalize"),
            "claim": (self._claimed, "claim_reward"),
        }[kind]
        ok = self.actions.perform(
            f"{kind}:{job_id}", done_on_chain=partial(done, job_id), send=self._send(fn, job_id)
        )
        if ok and kind == "join" and self.state.get(f"job:{job_id}") is None:
            self.state.put(f"job:{job_id}", "joined")  # settled: the node takes part
        return ok

    def resume(self) -> None:
        """Finish every action a crash left half-done, whatever the job looks like now."""
        for key in self.actions.unfinished():
            kind, job_id = key.split(":", 1)
            if kind in ("join", "finalize", "claim"):  # round results are the aggregator's
                self._do(kind, int(job_id))

    def _my_jobs(self) -> list[int]:
        rows = self.state.query("SELECT key FROM meta WHERE key LIKE 'job:%' AND value = 'joined'")
        return sorted(int(r[0].split(":", 1)[1]) for r in rows)

    def _finalized(self, job_id: int) -> bool:
        return self.cm.jobs.job(job_id, block=self._at()).state != JobState.OPEN

    def _claimed(self, job_id: int) -> bool:
        return bool(
            self.cm.jobs.contract.call("claimed", job_id, self.identity.address, block=self._at())
        )

    def advance(self, now: float) -> None:
        """Finalise and claim, from settled chain state, for every job this node joined.  A
        job is read again only once something can have changed for it: one of its events,
        or the chain's clock (``now``: the settled block's time) reaching the end of its
        challenge window."""
        for job_id in self._my_jobs():
            if now < self._recheck.get(job_id, -math.inf):
                continue
            job = self.cm.jobs.job(job_id, block=self._at())
            self._rounds[job_id] = job.params.rounds
            if job.state == JobState.CANCELLED:
                self.state.put(f"job:{job_id}", "cancelled")
                continue
            window_over = now >= job.last_round_at + job.params.challenge_window
            if (
                job.state == JobState.OPEN
                and job.rounds_done == job.params.rounds
                and job.open_challenges == 0
                and window_over
            ):
                self._do("finalize", job_id)
                job = self.cm.jobs.job(job_id, block=self._at())
            if job.state == JobState.FINALIZED:
                self._do("claim", job_id)
                self.state.put(f"job:{job_id}", "claimed")
            elif job.rounds_done == job.params.rounds and job.open_challenges == 0:
                self._recheck[job_id] = job.last_round_at + job.params.challenge_window
            else:
                self._recheck[job_id] = math.inf  # until one of its events

    def tick(self) -> int:
        """Finish half-done actions, handle new settled events, then advance joined jobs;
        returns the number of events handled.  Everything a tick acts on is chain state at
        the settled head, so while the head and the settled head stay where the last
        complete tick saw them and no action is half-done, there is nothing to do.  While
        the view is held (``ViewDistrusted``), nothing is done and the reason logged once."""
        try:
            mark = (self.client.block_number(), self.settlement.settled_head(self.client))
        except ViewDistrusted as exc:
            if self._holding != str(exc):
                log.warning("workers: not acting: %s", exc)
                self._holding = str(exc)
            return 0
        if self._holding is not None:
            log.warning("workers: acting again (the chain view agrees)")
            self._holding = None
        if mark == self._done_at and not self.actions.unfinished():
            return 0
        self.resume()
        batch = self.stream.poll()
        for event in batch.events:
            if event.name == "JobCreated":
                self.on_job_created(int(event.args["job_id"]))
            if self._changes_nothing(event.name, event.args):
                continue
            if "job_id" in event.args:  # the job's state may have changed: read it again
                self._recheck.pop(int(event.args["job_id"]), None)
            else:
                self._recheck.clear()
        crash_point("events:before-ack")
        self.stream.ack(batch)
        if self._due():
            self.advance(int(self.client.block(self._at())["timestamp"], 16))
        self._done_at = mark
        return len(batch.events)

    def _changes_nothing(self, name: str, args: Mapping[str, Any]) -> bool:
        """Whether an event leaves ``advance``'s decision for its job as it was: another
        trainer joining, or a round recorded that is not the job's last (its rounds known
        from an earlier read).  Every other event of a job has it read again."""
        if name == "Joined":
            return True
        rounds = self._rounds.get(int(args.get("job_id", 0)))
        return name == "RoundRecorded" and rounds is not None and int(args["round"]) < rounds

    def _due(self) -> bool:
        """Whether ``advance`` has a job to read (or needs the chain's clock for one)."""
        recheck = self._recheck
        return any(recheck.get(job_id, -math.inf) < math.inf for job_id in self._my_jobs())

    def run(self, stop: threading.Event, interval: float) -> None:
        """Tick now, then every ``interval`` seconds until ``stop`` is set."""
        while True:
            try:
                self.tick()
            except LedgerError as exc:
                log.warning("workers: %s: %s", type(exc).__name__, exc)
            if stop.wait(interval):
                return


Handler = Callable[[Opened], None]


def gated(handler: Handler, settlement: Settlement, name: str = "message") -> Handler:
    """``handler``, except that while ``settlement`` holds the node's view the envelope is
    dropped, and logged (once per hold): a trainer trains and submits nothing, an
    aggregator takes no update, on the word of a chain it cannot trust.  (A role's round
    that then misses its inputs fails as a round with dropouts does.)"""
    logged: list[str] = []

    def run(opened: Opened) -> None:
        reason = settlement.held
        if reason is None:
            handler(opened)
            return
        if logged != [reason]:
            logged[:] = [reason]
            log.warning("%s from %s dropped: %s", name, opened.header.sender, reason)

    return run
