"""The typed bindings come from the ABIs: every function is bound, every record is named.

``chainml.ledger.generated`` is written from the committed artifacts; these tests check it
is current, that each ABI function of each contract has a method taking the ABI's inputs by
name, that each one really goes through to the contract on a running chain, and that the
one contract list (``artifacts.CONTRACTS``) is what deployment and connection use.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from chainml.crypto import Identity
from chainml.ledger import artifacts, bindgen, generated
from chainml.ledger.bindings import BINDINGS, Chainml, Job, JobParams, Role
from chainml.ledger.client import LedgerClient, LocalSigner, Receipt
from chainml.ledger.deploy import Deployment, SystemParameters, constructor_args, deploy_system
from chainml.ledger.errors import ContractRevert, DeploymentFileError, InvalidParameter

ETHER = 10**18
FUNCTION_ITEMS = [
    (contract, item)
    for contract in artifacts.CONTRACTS
    for item in artifacts.load(contract).abi
    if item["type"] == "function"
]


def _functions_class(contract: str) -> type:
    return getattr(generated, f"{contract}Functions")  # type: ignore[no-any-return]


def test_the_generated_bindings_are_those_of_the_committed_abis():
    assert bindgen.is_current(), "run `make artifacts` to regenerate chainml/ledger/generated.py"


def test_a_stale_generated_file_is_noticed(tmp_path, monkeypatch):
    stale = tmp_path / "generated.py"
    stale.write_text(bindgen.GENERATED.read_text().replace("round: int", "rnd: int", 1))
    monkeypatch.setattr(bindgen, "GENERATED", stale)
    assert not bindgen.is_current()
    assert bindgen.main(["bindgen", "check"]) == 1  # what `make test` runs
    assert bindgen.main(["bindgen", "build"]) == 0 and bindgen.is_current()
    assert bindgen.main(["bindgen", "check"]) == 0


@pytest.mark.parametrize(
    ("contract", "item"), FUNCTION_ITEMS, ids=[f"{c}.{i['name']}" for c, i in FUNCTION_ITEMS]
)
def test_every_abi_function_is_bound_with_its_inputs_by_name(contract, item):
    method = getattr(_functions_class(contract), item["name"])
    params = list(inspect.signature(method).parameters.values())[1:]  # self
    view = item["stateMutability"] in ("view", "pure")
    if not view:
        assert params[0].name == "signer"
        params = params[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == [i["name"].lstrip("_") for i in item["inputs"]]
    keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    if view:
        assert keywords == ["block"]
    else:
        assert keywords == (["value"] if item["stateMutability"] == "payable" else [])
    hints = typing.get_type_hints(method, vars(generated))
    assert (hints["return"] is Receipt) is not view


def test_the_bindings_bind_nothing_the_abi_lacks():
    for contract in artifacts.CONTRACTS:
        abi_names = {i["name"] for i in artifacts.load(contract).abi if i["type"] == "function"}
        cls = _functions_class(contract)
        bound = {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}
        assert bound == abi_names, contract


def _struct_fields(name: str) -> list[str] | None:
    for source in artifacts.CONTRACTS_DIR.glob("*.vy"):
        match = re.search(rf"^struct {name}:\n((?:    .*\n)+)", source.read_text(), re.M)
        if match:
            return [line.split(":")[0].strip() for line in match.group(1).splitlines()]
    return None


EVENTS = {
    item["name"]: item
    for contract in artifacts.CONTRACTS
    for item in artifacts.load(contract).abi
    if item["type"] == "event"
}


def test_every_abi_event_is_a_typed_record_read_from_receipts():
    for contract in artifacts.CONTRACTS:
        events_class = getattr(generated, f"{contract}Events")
        readers = {n for n, v in vars(events_class).items() if callable(v) and n[0] != "_"}
        names = [i["name"] for i in artifacts.load(contract).abi if i["type"] == "event"]
        assert readers == {re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower() for n in names}
        for name in names:
            record = getattr(generated, name)
            fields = [f.name for f in dataclasses.fields(record)]
            assert fields == [i["name"] for i in EVENTS[name]["inputs"]], name


def test_every_record_is_a_vyper_struct_with_the_same_fields_in_order():
    records = [
        v
        for v in vars(generated).values()
        if isinstance(v, type)
        and dataclasses.is_dataclass(v)
        and v.__module__ == generated.__name__
        and v.__name__ not in EVENTS
    ]
    assert {r.__name__ for r in records} >= {"Job", "JobParams", "Round", "Challenge", "Batch"}
    for record in records:
        names = [f.name for f in dataclasses.fields(record)]
        assert _struct_fields(record.__name__) == names, record.__name__


def test_records_round_trip_through_their_abi_tuples():
    params = JobParams("0x" + "11" * 20, 3, 2, 4, 5, 60, clip_bound=7)
    assert JobParams.from_abi(params.to_abi()) == params
    assert params.config_hash == bytes(32)  # the ABI's zero value where a caller left it out


def test_one_contract_list_drives_sources_artifacts_bindings_and_connection():
    assert set(artifacts.CONTRACTS) == {p.stem for p in artifacts.CONTRACTS_DIR.glob("*.vy")}
    assert set(artifacts.CONTRACTS) == {p.stem for p in artifacts.ARTIFACTS_DIR.glob("*.json")}
    assert list(BINDINGS) == list(artifacts.CONTRACTS)
    assert [f.name for f in dataclasses.fields(Chainml)] == [c.lower() for c in artifacts.CONTRACTS]


def test_a_deployment_file_has_one_address_per_contract_and_refuses_others(tmp_path: Path):
    addresses = {c: "0x" + f"{i + 1:040x}" for i, c in enumerate(artifacts.CONTRACTS)}
    deployment = Deployment(chain_id=31337, block=4, addresses=addresses)
    path = tmp_path / "deployment.json"
    deployment.save(path)
    doc = json.loads(path.read_text())
    assert set(doc) == {"chain_id", "block"} | {c.lower() for c in artifacts.CONTRACTS}
    assert Deployment.load(path) == deployment
    assert deployment.jobs == addresses["Jobs"] == deployment.address("Jobs")
    with pytest.raises(AttributeError):
        _ = deployment.nonsense
    for broken in ({**doc, "jobs": "0x12"}, {**doc, "block": "4"}):
        path.write_text(json.dumps(broken))
        with pytest.raises(DeploymentFileError, match=r"deployment\.json"):
            Deployment.load(path)


# -- every function through the bindings, on the embedded chain --------------------------


def _sample(kind: str, account: str) -> Any:
    if kind.endswith("[]"):
        return []
    if kind == "address":
        return account
    if kind.startswith("uint"):
        return 1
    if kind == "bool":
        return True
    if kind == "string":
        return "bafy-sample"
    if kind == "bytes32":
        return b"\1" * 32
    if kind == "bytes":
        return b""
    raise AssertionError(f"no sample for {kind}")


# views that revert on 1 in the world below: there is no challenge 1, and the one validator
# is at index 0 of the validator list
REVERTING_VIEWS = {"Jobs.get_challenge", "Registry.validators"}


@pytest.fixture
def world(devchain_url: str, dev_signer: LocalSigner):
    client = LedgerClient(devchain_url, timeout=20)
    cm = Chainml.connect(client, deploy_system(client, dev_signer, SystemParameters()))
    party = Identity.generate()
    client.transact(dev_signer, to=party.address, value=20 * ETHER)
    cm.registry.register_identity(party, Role.TRAINER | Role.VALIDATOR, "http://x", 2 * ETHER)
    a = party.account
    cm.datasets.commit(a, b"\2" * 32, 10, b"\3" * 32)
    model = cm.models.create_model(a, "m")
    version = cm.models.publish_version(a, model, "bafy-ct", "bafy-man", b"\4" * 32)
    cm.models.grant(a, version, party.address, 2**40, "k")
    params = JobParams(party.address, 2, 1, 4, ETHER, 600, clip_bound=1000)
    cm.jobs.create_job(a, params, ETHER)
    cm.jobs.join(a, 1)
    cm.receipts.deposit(dev_signer, ETHER)
    cm.receipts.post_batch(a, dev_signer.address, b"\5" * 32, 3, ETHER // 10)
    yield cm, party, params
    client.close()


def test_every_function_goes_through_the_bindings_to_the_contract(world):
    cm, party, params = world
    reverted, succeeded = set(), set()
    for contract, item in FUNCTION_ITEMS:
        functions = getattr(cm, contract.lower()).functions
        method = getattr(functions, item["name"])
        args = [
            params if i["type"] == "tuple" else _sample(i["type"], party.address)
            for i in item["inputs"]
        ]
        view = item["stateMutability"] in ("view", "pure")
        name = f"{contract}.{item['name']}"
        try:
            result = method(*args) if view else method(party.account, *args)
        except ContractRevert:  # typed: the call was encoded and reached the contract
            reverted.add(name)
            continue
        succeeded.add(name)
        expected = typing.get_type_hints(method, vars(generated))["return"]
        origin = typing.get_origin(expected) or expected
        assert isinstance(result, origin), (name, result)
    views = {f"{c}.{i['name']}" for c, i in FUNCTION_ITEMS if i["stateMutability"] == "view"}
    assert views & reverted == REVERTING_VIEWS
    assert succeeded - views, "no transaction went through at all"
    # what a record holds is what was sent, field by field
    job = cm.jobs.functions.get_job(1)
    assert isinstance(job, Job) and job.params == params
    assert job.requester == party.address and job.participant_count == 1
    assert cm.registry.party(party.address).roles == Role.TRAINER | Role.VALIDATOR
    receipt = cm.jobs.functions.create_job(party.account, params, value=ETHER)
    (created,) = cm.jobs.events.job_created(receipt)
    assert (created.job_id, created.requester, created.escrow) == (2, party.address, ETHER)
    assert created.rounds == params.rounds and created.config_hash == params.config_hash
    assert cm.models.events.model_created(receipt) == []  # another contract's events


def test_bad_arguments_get_a_typed_error_before_anything_is_sent(world):
    cm, party, params = world
    for call in (
        lambda: cm.jobs.functions.get_job(1.5),
        lambda: cm.jobs.functions.get_job(-1),
        lambda: cm.registry.functions.stake_of("0x1234"),
        lambda: cm.datasets.functions.commit(party.account, b"short", 1, b"\1" * 32),
        lambda: cm.jobs.functions.create_job(party.account, dataclasses.replace(params, rounds=-1)),
    ):
        with pytest.raises(InvalidParameter):
            call()
    assert cm.jobs.job_count() == 1  # nothing was posted


def test_constructor_arguments_are_found_by_their_abi_names(world):
    cm, _, _ = world
    p = SystemParameters()
    assert constructor_args("Registry", p, {}) == [p.unbonding_delay, p.min_validator_stake]
    with pytest.raises(InvalidParameter, match="registry"):  # Jobs needs the Registry first
        constructor_args("Jobs", p, {})
    # and the deployed contracts hold them
    assert cm.registry.functions.unbonding_delay() == p.unbonding_delay
    assert cm.registry.functions.min_validator_stake() == p.min_validator_stake
    assert cm.jobs.functions.registry() == cm.registry.address
    assert cm.receipts.functions.dispute_window() == p.dispute_window
    assert cm.receipts.functions.withdrawal_delay() == p.withdrawal_delay
    assert cm.registry.functions.slasher() == cm.jobs.address
