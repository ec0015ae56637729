"""A real multi-node proof-of-stake chain: Lodestar 1.5.1 + EthereumJS 0.10.5, one pair per host.

``chainml.devtools.posdevnet`` starts three validator pairs (4 of the 12 interop
validators each), one per network namespace of ``chainml.devtools.hosts``, on the minimal
preset (6 s slots, 8 slots an epoch).  Needs root and ``make posdevnet`` (``make bench``
runs it first); without the install the result says so and measures nothing else.

Full run (``make bench``), measured in order on one devnet:

- ``first_finality_s``: genesis until every host's ``finalized`` tag is above block 0;
  ``blocks_per_slot`` up to then (1.0: a block in every slot);
- ``chainml``: chainml's five contracts deployed through the first host's execution RPC
  the way ``deploy_system`` does (compiled for the Paris EVM the devnet runs: the
  committed artifacts target Prague, past what Lodestar 1.5.1 can run), then
  ``Registry.set_slasher`` mined and read back from the third host's RPC; ``deploy_s``
  against ``deploy_system`` on the project's dev chain in the same run
  (``baseline_deploy_s``), and the wait until that transaction's block is finalized (what
  a step waits when it waits for finality);
- ``job``: chainml's nodes (``chainml.devtools.posdevnet_job``), each inside a devnet host
  talking to that host's own execution client with ``settle = "finalized"``, run a job of
  three trainers and two rounds: the job's creation until finalized (what the trainers
  wait for before joining), each round's wall time, and each round's record until
  finalized (what a round whose steps waited for finality would add: the round steps of
  ``node/rounds.py`` act on the latest block, see docs/deploy.md); against the same job
  across hosts on the project's dev chain, run after the devnet is gone
  (``baseline_dev_chain``, ``ratio_round_vs_dev_chain``);
- ``sybils``: one funder on pos-2 registers five identities holding the majority of the
  stake: which alerts every node's monitor raised (``common_funder``, ``stake_majority``);
- ``minority_partition``: pos-3's chain node cut off its peers (nftables; its RPC port left
  open, as for a chain client that lost its peers) for three epochs while the nodes run:
  the majority's finality, the minority's own blocks, the head lag, the alerts of the
  chainml node on pos-3 and of the aggregator's on pos-1, the rejoin (Lodestar 1.5.1 does
  not redial: ``connect_peer``, else a restart), the reorganisation alert after the heal,
  and ``as_documented``: each point of docs/monitoring.md checked (a failed one makes the
  run's ``ok`` false);
- ``one_pair_offline``: the third pair stopped (SIGSTOP) for three epochs: blocks per slot
  and the ``finalized`` blocks gained by the two others meanwhile (with exactly 2/3 of the
  stake online finality may stall: measured, not assumed); then resumed and reconnected,
  ``rejoin_s`` until its chain agrees with the others' again.

``--quick`` (under a minute): finality takes minutes here, so a quick run checks the
install and liveness only: three pairs started, blocks produced on every host in the
first slots after genesis, ``blocks_per_slot`` against the slot clock; the JSON says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainml.devtools import posdevnet, posdevnet_job
from chainml.devtools.hosts import Network, unavailable
from chainml.devtools.posdevnet import SECONDS_PER_SLOT, SLOTS_PER_EPOCH, Devnet, Head
from chainml.errors import ChainmlError

HOSTS = ["pos-1", "pos-2", "pos-3"]
INSTALL_DIR = Path(__file__).resolve().parents[1] / ".posdevnet"
EPOCH_S = SECONDS_PER_SLOT * SLOTS_PER_EPOCH
JOB_ROUNDS = 2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quick(net: Network) -> dict[str, Any]:
    started = time.monotonic()
    with Devnet(net, INSTALL_DIR, genesis_delay_s=15, log=log) as devnet:
        devnet.start(timeout=40)
        startup = time.monotonic() - started
        try:  # two blocks on every host, as long as the minute allows
            devnet.wait_blocks(2, timeout=max(52 - (time.monotonic() - started), 1))
        except posdevnet.DevnetError as exc:
            log(f"liveness: {exc}")
        heads, slots = _heads(devnet, HOSTS), devnet.slot_now()
    lowest = min(x.latest for x in heads.values())
    return {
        "liveness_only": True,
        "why": "finality takes ~3 min after genesis here: --quick checks that blocks are"
        " produced and imported on every host; the full run (make bench) measures finality,"
        " a pair offline, a partition and chainml's contracts on the devnet",
        "live": lowest >= 1,
        "startup_s": round(startup, 1),
        "blocks_on_every_host": lowest,
        "slots_since_genesis": round(slots, 1),
        "blocks_per_slot": round(max(x.latest for x in heads.values()) / max(slots, 1), 2),
        "baseline": "the slot clock: one block per 6 s slot (slots before every beacon node"
        " was up count as missed)",
    }


def _deploy_baseline() -> float:
    """Seconds for ``deploy_system`` on the project's dev chain (a block per transaction)."""
    from chainml.ledger.client import LedgerClient, LocalSigner
    from chainml.ledger.deploy import deploy_system
    from chainml.ledger.devchain.process import DevChainProcess

    with tempfile.TemporaryDirectory(prefix="chainml-devchain-") as tmp:
        with DevChainProcess(Path(tmp)) as chain:
            client = LedgerClient(chain.url, timeout=60)
            try:
                started = time.monotonic()
                deploy_system(client, LocalSigner.from_key(posdevnet.FUNDED_KEY))
                return time.monotonic() - started
            finally:
                client.close()


def _chainml_on_devnet(devnet: Devnet, compiled: posdevnet_job.Compiled) -> dict[str, Any]:
    """chainml's contracts deployed through pos-1 as ``deploy_system`` does (each contract
    with its constructor arguments, then Jobs set as the Registry's slasher), checked from
    pos-3: code at every address and the slasher the transaction wrote."""
    from eth_utils.address import to_checksum_address

    from chainml.ledger.abi import ContractABI
    from chainml.ledger.client import BoundContract, LedgerClient

    deployment, deploy_s, tx_block = posdevnet_job.deploy(devnet, compiled, "pos-1")
    mined_at = time.monotonic()
    there = devnet.pairs["pos-3"].host

    def check() -> str:
        client = LedgerClient(devnet.rpc_url("pos-3"), timeout=60, poll_interval=0.5)
        try:
            deadline = time.monotonic() + 60
            while client.block_number() < tx_block:
                if time.monotonic() > deadline:
                    raise posdevnet.DevnetError("pos-3 did not import the transaction's block")
                time.sleep(1)
            deployment.check(client)  # code at every address, seen from another host
            abi = ContractABI(compiled["Registry"][0])
            return str(BoundContract(client, deployment.addresses["Registry"], abi).call("slasher"))
        finally:
            client.close()

    slasher = there.call(check, timeout=180)
    if to_checksum_address(slasher) != deployment.addresses["Jobs"]:
        raise RuntimeError(f"pos-3 reads slasher {slasher}, not the Jobs contract")
    log(f"chainml deployed in {deploy_s:.1f} s, set_slasher mined in block {tx_block}")
    devnet.wait_finalized(tx_block - 1, timeout=8 * EPOCH_S)
    to_final = time.monotonic() - mined_at
    baseline = _deploy_baseline()
    return {
        "contracts": len(deployment.addresses),
        "evm": "paris (the committed artifacts target prague, past what the devnet runs)",
        "deploy_s": round(deploy_s, 1),
        "baseline_deploy_s": round(baseline, 2),
        "ratio_deploy_vs_devchain": round(deploy_s / baseline, 1),
        "transaction": "Registry.set_slasher(Jobs), mined through pos-1",
        "transaction_block": tx_block,
        "checked_from": "pos-3: code at every address, Registry.slasher() == Jobs",
        "transaction_to_finalized_s": round(to_final, 1),
        "deployment": deployment,
    }


def _heads(devnet: Devnet, hosts: list[str]) -> dict[str, Head]:
    return {h: devnet.head(h) for h in hosts}


def _window(devnet: Devnet, hosts: list[str], seconds: float) -> dict[str, Any]:
    """Blocks and finalized blocks gained on ``hosts`` over ``seconds``."""
    before, slot0 = _heads(devnet, hosts), devnet.slot_now()
    time.sleep(seconds)
    after, slot1 = _heads(devnet, hosts), devnet.slot_now()
    first = hosts[0]
    moved = all(after[h].finalized > before[h].finalized for h in hosts)
    return {
        "slots": round(slot1 - slot0, 1),
        "blocks_per_slot": round((after[first].latest - before[first].latest) / (slot1 - slot0), 2),
        "finalized_gained": {h: after[h].finalized - before[h].finalized for h in hosts},
        # 1.0 when every epoch is finalized in turn (a block a slot)
        "finalized_per_slot": round(
            (after[first].finalized - before[first].finalized) / (slot1 - slot0), 2
        ),
        "finality": "continues" if moved else "stalls",
    }


def _finality_after(devnet: Devnet) -> dict[str, Any]:
    """Whether each host's ``finalized`` tag moves within five epochs of a fault's end."""
    before, started = _heads(devnet, HOSTS), time.monotonic()

    def moved(now: dict[str, Head]) -> bool:
        return all(now[h].finalized > before[h].finalized for h in HOSTS)

    try:
        devnet.wait(HOSTS, moved, 5 * EPOCH_S, "finality")
        verdict = "advances on every host"
    except posdevnet.DevnetError:
        verdict = f"stalled on some host for {5 * EPOCH_S} s"
    after = _heads(devnet, HOSTS)
    return {
        "finality": verdict,
        "waited_s": round(time.monotonic() - started),
        "finalized_gained": {h: after[h].finalized - before[h].finalized for h in HOSTS},
        "latest": {h: after[h].latest for h in HOSTS},
    }


def _offline(devnet: Devnet) -> dict[str, Any]:
    majority, lone = HOSTS[:2], HOSTS[2]
    log(f"-- {lone}'s pair offline (SIGSTOP) for three epochs")
    devnet.pause(lone)
    try:
        window = _window(devnet, majority, 3 * EPOCH_S)
    finally:
        devnet.resume(lone)
    how, rejoin = devnet.rejoin(lone, timeout=5 * EPOCH_S)
    log(f"{lone} back ({how}) in {rejoin:.0f} s")
    after = _finality_after(devnet)
    return {
        "offline": f"{lone}: 4 of 12 validators",
        **window,
        "reconnected_by": how,
        "rejoin_s": round(rejoin, 1),
        "finality_after": after,
    }


def _partition(devnet: Devnet) -> dict[str, Any]:
    majority, lone = HOSTS[:2], HOSTS[2]
    log(f"-- {lone} partitioned off (nftables) for two epochs")
    start_lone = devnet.head(lone)
    devnet.partition([lone])
    try:
        window = _window(devnet, majority, 2 * EPOCH_S)
        lone_after = devnet.head(lone)
    finally:
        devnet.heal()
    how, rejoin = devnet.rejoin(lone, timeout=5 * EPOCH_S)
    log(f"{lone} rejoined ({how}) {rejoin:.0f} s after the heal")
    after = _finality_after(devnet)
    return {
        "partitioned": f"{lone}: 4 of 12 validators, 2 epochs",
        "majority": window,
        "minority_blocks_alone": lone_after.latest - start_lone.latest,
        "minority_finalized_gained": lone_after.finalized - start_lone.finalized,
        "reconnected_by": how,
        "rejoin_s": round(rejoin, 1),
        "finality_after": after,
    }


def _partition_with_nodes(devnet: Devnet, job: posdevnet_job.DevnetJob) -> dict[str, Any]:
    """The third host's chain node cut off its peers for three epochs (its RPC port open)
    while chainml's nodes run: the majority's finality, the minority's own blocks, the
    alerts of the chainml node on the cut-off host (and of the aggregator's), the rejoin and
    the reorganisation alert; then whether finality moves on every host."""
    log("-- pos-3's chain node cut off its peers (nftables, RPC left open) for three epochs")
    measured = posdevnet_job.partition_alerts(job, node="trainer-2", epochs=3)
    log(
        f"pos-3 rejoined ({measured['reconnected_by']}) {measured['rejoin_s']:.0f} s after the heal"
    )
    alerted = set(measured["alerts_on_partitioned_host"])
    documented = {
        # docs/monitoring.md: the cut-off side's own endpoint lags (its chain node stalls) or
        # disagrees (it builds a fork of its own): alarmed, and its node stops acting
        "its_endpoint_alarmed_and_acting_stopped": "acting_stopped" in alerted
        and bool(alerted & {"endpoint_behind", "endpoints_disagree"}),
        "its_own_endpoint_named": measured["own_endpoint_named"],
        "seen_from_another_host": measured["aggregator_names_the_cut_off_endpoint"],
        "acting_again_after_the_heal": measured["acting_again"],
        # on heal, a reorganisation alert if it had built (and seen buried) blocks of its own
        "deep_reorg_if_it_built_its_own": bool(measured["deep_reorg"])
        or measured["minority_blocks_alone"] < 3,
    }
    return {
        **measured,
        "as_documented": documented,
        "finality_after": _finality_after(devnet),
    }


def _full(net: Network) -> dict[str, Any]:
    compiled = posdevnet_job.paris_contracts()
    keep = bool(os.environ.get("CHAINML_KEEP_LOGS"))  # the clients' and nodes' logs
    with Devnet(net, INSTALL_DIR, genesis_delay_s=25, log=log, keep_logs=keep) as devnet:
        started = time.monotonic()
        devnet.start(timeout=180)
        startup = time.monotonic() - started
        devnet.wait_finalized(0, timeout=8 * EPOCH_S + 60)
        first_final = time.time() - devnet.genesis_time
        heads = _heads(devnet, HOSTS)
        slots = devnet.slot_now()
        log(f"first finality {first_final:.0f} s after genesis: {heads['pos-1']}")
        result: dict[str, Any] = {
            "liveness_only": False,
            "startup_s": round(startup, 1),
            "first_finality_s": round(first_final, 1),
            "blocks_per_slot": round(heads["pos-1"].latest / slots, 2),
            "at_first_finality": {
                "latest": heads["pos-1"].latest,
                "safe": heads["pos-1"].safe,
                "finalized": heads["pos-1"].finalized,
            },
            "baseline": "the slot clock (1 block a slot, finality at best 2-3 epochs ="
            f" {2 * EPOCH_S}-{3 * EPOCH_S} s) and deploy_system on the dev chain",
        }
        errors: dict[str, str] = {}

        def stage(name: str, measure: Callable[[], dict[str, Any]]) -> None:
            """A stage that fails is reported, the next still runs."""
            try:
                result[name] = measure()
            except (posdevnet.DevnetError, RuntimeError, OSError, ChainmlError) as exc:
                log(f"{name} failed: {exc}")
                errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
                devnet.heal()
                for host in HOSTS:
                    if devnet.pairs[host].paused:
                        devnet.resume(host)

        stage("chainml", lambda: _chainml_on_devnet(devnet, compiled))
        deployment = result.get("chainml", {}).pop("deployment", None)
        partitioned = False
        if deployment is not None:
            root = Path(tempfile.mkdtemp(prefix="chainml-posdevjob-"))
            try:
                job = posdevnet_job.prepare(devnet, root, deployment)
                with posdevnet_job.running_nodes(job):
                    stage("job", lambda: posdevnet_job.run_job(job, JOB_ROUNDS))
                    stage("sybils", lambda: posdevnet_job.sybils(job))
                    stage("minority_partition", lambda: _partition_with_nodes(devnet, job))
                    partitioned = True
            except (posdevnet.DevnetError, OSError, ChainmlError) as exc:
                log(f"chainml's nodes failed: {exc}")
                errors["nodes"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            finally:
                if keep:
                    log(f"chainml's nodes' homes and logs are kept in {root}")
                else:
                    shutil.rmtree(root, ignore_errors=True)
        if not partitioned:
            stage("minority_partition", lambda: _partition(devnet))
        stage("one_pair_offline", lambda: _offline(devnet))
        checks = result.get("minority_partition", {}).get("as_documented", {})
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            errors["minority_partition"] = f"not as docs/monitoring.md says: {failed}"
        if "sybils" in result and not result["sybils"]["every_node_alerted"]:
            errors["sybils"] = f"not every node raised the alerts: {result['sybils']}"[:300]
        result["ok"] = not errors
        if errors:
            result["errors"] = errors
        restarts = {h: p.cl_starts - 1 for h, p in devnet.pairs.items()}
        result["beacon_restarts"] = restarts
    return result


def run(quick: bool) -> dict[str, Any]:
    """See the module; a quick run that produced no block on some host fails."""
    present = posdevnet.installed(INSTALL_DIR)
    base: dict[str, Any] = {
        "install_present": present,
        "clients": f"Lodestar {posdevnet.LODESTAR_VERSION} + EthereumJS"
        f" {posdevnet.ETHEREUMJS_VERSION}, minimal preset",
        "pairs": len(HOSTS),
        "validators": 12,
    }
    if not present:
        log(f"skipped: no install in {INSTALL_DIR} (make posdevnet)")
        return {**base, "skipped": "the devnet is not installed: make posdevnet"}
    reason = unavailable()
    if reason:
        log(f"skipped: {reason}")
        return {**base, "skipped": reason}
    with Network(HOSTS) as net:
        measured = _quick(net) if quick else _full(net)
    leftovers = net.leftovers()
    if leftovers:
        raise RuntimeError(f"the devnet left {leftovers}")
    if not quick and "job" in measured:  # the same job on the dev chain, the devnet gone
        measured["job"]["baseline_dev_chain"] = posdevnet_job.dev_chain_baseline(JOB_ROUNDS)
        ratio = [
            round(a / b, 1)
            for a, b in zip(
                measured["job"]["round_s"],
                measured["job"]["baseline_dev_chain"]["round_s"],
                strict=False,
            )
        ]
        measured["job"]["ratio_round_vs_dev_chain"] = ratio
    if quick and not measured["live"]:
        raise RuntimeError(f"no block reached every host: {measured}")
    return {**base, **measured}
