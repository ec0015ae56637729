"""`chainml job create | status | audit` against the embedded chain: a job posted from the
command line carries its configuration's hash, clip bound and DP promise on chain, its
configuration lands in the node's jobs_dir, a bad one posts nothing; status and audit read
the chain without a keystore password.  (Auditing recorded rounds from the command line is
in tests/node/test_rounds.py, where rounds are recorded.)"""

from __future__ import annotations

import json

from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import localnet
from chainml.node.roles import load_config
from chainml.storage.factory import open_store
from chainml.training.job import JobConfig
from tests.cli import chainml

PASSWORD = "job cli test"
ETHER = 10**18


def test_post_follow_and_audit_a_job_from_the_command_line(tmp_path):
    with DevChainProcess(tmp_path / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp_path)
        node = localnet.init_node(tmp_path, "lab", PASSWORD, rpc=chain.url, work=1 << 10)
        client.transact(dev, to=node.identity.address, value=5 * ETHER)
        cm.registry.register_identity(
            node.identity, Role.AGGREGATOR | Role.REQUESTER, node.url, ETHER
        )
        config = str(node.config)
        shape = ["--features", "64", "--classes", "10", "--hidden", "16", "--epochs", "2"]
        common = ["job", "create", "--config", config, "--participants", "4", "--reward", "1"]

        for bad in (
            ["--dp", "distributed", "--aggregation", "krum"],  # DP needs secure aggregation
            ["--dp", "distributed", "--dp-delta", "2e-5"],  # the chain records 10^-e
            ["--aggregation", "fedsgd"],
            ["--activation", "tanh"],
        ):
            out = chainml(*common, *shape, *bad, password=PASSWORD)
            assert out.returncode == 1 and "not a job configuration" in out.stderr, out
        out = chainml(*common, *shape, "--aggregator", "0x1234", password=PASSWORD)
        assert out.returncode == 1 and "not an account address" in out.stdout
        assert cm.jobs.job_count() == 0  # nothing was posted

        out = chainml(
            *common, *shape, "--rounds", "2", "--clip", "2.5", "--dp", "distributed",
            "--noise-multiplier", "0.5", password=PASSWORD,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert "job 1:" in out.stdout and PASSWORD not in out.stdout + out.stderr
        job = cm.jobs.job(1)
        p = job.params
        assert job.requester == node.identity.address and job.escrow == ETHER
        assert (p.aggregator, p.rounds, p.max_participants, p.min_participants) == (
            node.identity.address,
            2,
            4,
            2,
        )
        assert (p.clip_bound, p.dp_noise_multiplier, p.dp_delta_exponent) == (2500, 500, 5)
        written = node.config.parent / "jobs" / f"{p.config_hash.hex()}.json"
        config_doc = JobConfig.decode(written.read_bytes())  # canonical, and it hashes to p's
        assert (config_doc.dp, config_doc.noise_multiplier, config_doc.hidden) == (
            "distributed",
            0.5,
            (16,),
        )

        status = chainml("job", "status", "1", "--config", config, "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert doc["state"] == "open" and doc["rounds"] == "0 of 2"
        assert doc["dp"] == "z = 0.5, δ = 1e-5" and doc["clip_bound"] == 2.5
        assert doc["config_hash"] == p.config_hash.hex() and doc["round_list"] == []
        # published in the node's store under the CID on chain: the same bytes
        assert doc["config_cid"] == p.config_cid
        store = open_store(load_config(node.config).storage)
        assert store.get(p.config_cid) == written.read_bytes()

        none_yet = chainml("job", "audit", "1", "--config", config)
        assert none_yet.returncode == 1 and "0 recorded rounds" in none_yet.stdout
        unknown = chainml("job", "status", "9", "--config", config)
        assert unknown.returncode == 1 and "no job 9" in unknown.stdout
