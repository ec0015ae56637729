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
- ``one_pair_offline``: the third pair stopped (SIGSTOP) for three epochs: blocks per slot
  and the ``finalized`` blocks gained by the two others meanwhile (with exactly 2/3 of the
  stake online finality may stall: measured, not assumed); then resumed and reconnected,
  ``rejoin_s`` until its chain agrees with the others' again;
- ``minority_partition``: the third host cut off with nftables for two epochs: whether the
  majority kept finalizing and how far the minority's head went on its own; healed, then
  reconnected (Lodestar 1.5.1 does not redial: ``connect_peer``, else a restart) and
  ``rejoin_s`` until the minority's chain is the majority's again past the heal.

``--quick`` (under a minute): finality takes minutes here, so a quick run checks the
install and liveness only: three pairs started, blocks produced on every host in the
first slots after genesis, ``blocks_per_slot`` against the slot clock; the JSON says so.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainml.devtools import posdevnet
from chainml.devtools.hosts import Network, unavailable
from chainml.devtools.posdevnet import SECONDS_PER_SLOT, SLOTS_PER_EPOCH, Devnet, Head
from chainml.errors import ChainmlError

HOSTS = ["pos-1", "pos-2", "pos-3"]
INSTALL_DIR = Path(__file__).resolve().parents[1] / ".posdevnet"
EPOCH_S = SECONDS_PER_SLOT * SLOTS_PER_EPOCH


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


def _paris_bytecode() -> dict[str, tuple[list[dict[str, Any]], bytes]]:
    """chainml's contracts compiled for the Paris EVM the devnet runs (its genesis has no
    Shanghai, and Lodestar 1.5.1 predates Deneb): the committed artifacts target Prague
    and their deployment runs out of gas there.  Same sources, same ABI."""
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.settings import Settings

    from chainml.ledger import artifacts

    bundle = FilesystemInputBundle([artifacts.CONTRACTS_DIR])
    compiled = {}
    for name in artifacts.CONTRACTS:
        out = compile_from_file_input(
            bundle.load_file(artifacts.CONTRACTS_DIR / f"{name}.vy"),
            input_bundle=bundle,
            output_formats=["abi", "bytecode"],
            settings=Settings(evm_version="paris"),
        )
        if out["abi"] != artifacts.load(name).abi:
            raise RuntimeError(f"{name}: the Paris build has another ABI")
        compiled[name] = (out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x")))
    return compiled


def _chainml_on_devnet(
    devnet: Devnet, compiled: dict[str, tuple[list[dict[str, Any]], bytes]]
) -> dict[str, Any]:
    """chainml's contracts deployed through pos-1 as ``deploy_system`` does (each contract
    with its constructor arguments, then Jobs set as the Registry's slasher), checked from
    pos-3: code at every address and the slasher the transaction wrote."""
    from eth_utils.address import to_checksum_address

    from chainml.ledger.abi import ContractABI
    from chainml.ledger.client import BoundContract, LedgerClient, LocalSigner
    from chainml.ledger.deploy import Deployment, SystemParameters, constructor_args

    signer = LocalSigner.from_key(posdevnet.FUNDED_KEY)
    here, there = devnet.pairs["pos-1"].host, devnet.pairs["pos-3"].host

    def deploy() -> tuple[Deployment, float, int]:
        client = LedgerClient(devnet.rpc_url("pos-1"), timeout=120, poll_interval=0.5)
        try:
            started = time.monotonic()
            start_block = client.block_number()
            deployed: dict[str, str] = {}
            for name, (abi, code) in compiled.items():
                args = constructor_args(name, SystemParameters(), deployed)
                address, _ = client.deploy(signer, ContractABI(abi), code, args)
                deployed[name] = to_checksum_address(address)
            registry = BoundContract(
                client, deployed["Registry"], ContractABI(compiled["Registry"][0])
            )
            receipt = registry.transact(signer, "set_slasher", deployed["Jobs"])
            deployment = Deployment(chain_id=client.chain_id, block=start_block, addresses=deployed)
            return deployment, time.monotonic() - started, receipt.block_number
        finally:
            client.close()

    deployment, deploy_s, tx_block = here.call(deploy, timeout=900)
    mined_at = time.monotonic()

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


def _full(net: Network) -> dict[str, Any]:
    compiled = _paris_bytecode()
    with Devnet(net, INSTALL_DIR, genesis_delay_s=25, log=log) as devnet:
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
        stages: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("chainml", lambda: _chainml_on_devnet(devnet, compiled)),
            ("one_pair_offline", lambda: _offline(devnet)),
            ("minority_partition", lambda: _partition(devnet)),
        ]
        for stage, measure in stages:  # a stage that fails is reported, the next still runs
            try:
                result[stage] = measure()
            except (posdevnet.DevnetError, RuntimeError, OSError, ChainmlError) as exc:
                log(f"{stage} failed: {exc}")
                errors[stage] = f"{type(exc).__name__}: {str(exc)[:300]}"
                devnet.heal()
                for name in HOSTS:
                    if devnet.pairs[name].paused:
                        devnet.resume(name)
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
    if quick and not measured["live"]:
        raise RuntimeError(f"no block reached every host: {measured}")
    return {**base, **measured}
