"""A real node process on loopback, against the embedded chain in its own process."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from chainml.crypto import Identity
from chainml.crypto.stream import generate_key
from chainml.ledger.anvil import AnvilProcess
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.access import LedgerChainView
from chainml.node.envelope import Envelope, seal_envelope
from chainml.storage import access
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import seal_artifact

ETHER = 10**18
PASSWORD = "node test password"


def _register(client, cm, dev, ident, stake):
    client.transact(dev, to=ident.address, value=stake + ETHER)
    cm.registry.register_identity(ident, Role.TRAINER, "x", stake)


def _start(config: Path) -> subprocess.Popen[bytes]:
    return daemon.spawn(config, PASSWORD)


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    daemon.wait_ready(url, proc)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("net")
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        node = localnet.init_node(tmp, "bob", PASSWORD, rpc=chain.url, work=1 << 10)
        bob = node.identity
        alice, mallory, poor = Identity.generate(), Identity.generate(), Identity.generate()
        for ident, stake in ((bob, ETHER), (alice, ETHER), (poor, 0)):
            _register(client, cm, dev, ident, stake)
        yield {
            "client": client,
            "cm": cm,
            "dev": dev,
            "config": node.config,
            "url": node.url,
            "bob": bob,
            "alice": alice,
            "mallory": mallory,
            "poor": poor,
        }


def _envelope(net, sender, plaintext=b"hello bob", **kw) -> Envelope:
    args = dict(
        recipient=net["bob"].address,
        recipient_key=net["bob"].x25519.public_bytes,
        purpose="ping",
        plaintext=plaintext,
        chain_id=net["client"].chain_id,
        registry=net["cm"].registry.address,
        timestamp=int(time.time()),
    )
    args.update(kw)
    return seal_envelope(sender, **args)


def test_node_serves_refuses_by_cause_and_keeps_replays_across_restart(network):
    net = network
    url = net["url"]
    proc = _start(net["config"])
    try:
        _wait_up(url, proc)
        status = requests.get(url + "/v1/status", timeout=5).json()
        assert status["address"] == net["bob"].address

        good = _envelope(net, net["alice"]).to_bytes()
        r = requests.post(url + "/v1/envelopes", data=good, timeout=5)
        assert r.status_code == 202, r.text
        assert r.json()["sender"] == net["alice"].address

        def post(body: bytes) -> tuple[int, str]:
            resp = requests.post(url + "/v1/envelopes", data=body, timeout=5)
            return resp.status_code, resp.json()["error"]

        assert post(good) == (409, "replayed")
        assert post(_envelope(net, net["mallory"]).to_bytes()) == (403, "unknown_sender")
        assert post(_envelope(net, net["poor"]).to_bytes()) == (403, "unstaked")
        assert post(b"{not json") == (400, "malformed")
        assert post(_envelope(net, net["alice"], timestamp=1).to_bytes()) == (400, "stale")
        doc = json.loads(_envelope(net, net["alice"]).to_bytes())
        doc["sender"] = net["poor"].address
        assert post(json.dumps(doc, separators=(",", ":")).encode()) == (401, "bad_signature")
        huge = _envelope(net, net["alice"], b"\0" * (5 << 20)).to_bytes()
        assert post(huge) == (413, "oversized")

        metrics = requests.get(url + "/metrics", timeout=5).text
        assert "chainml_envelopes_accepted_total 1.0" in metrics
        deadline = time.monotonic() + 15  # bob, alice, poor, once the monitor's first pass is done
        while "chainml_peers 3.0" not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            metrics = requests.get(url + "/metrics", timeout=5).text
        assert "chainml_peers 3.0" in metrics
        assert "chainml_chain_head_lag_blocks" in metrics
        for cause in ("replayed", "unknown_sender", "unstaked", "malformed", "stale"):
            assert f'chainml_envelopes_rejected_total{{cause="{cause}"}} 1.0' in metrics
        schema = requests.get(url + "/openapi.json", timeout=5).json()
        assert "/v1/envelopes" in schema["paths"] and "/v1/status" in schema["paths"]

        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "chainml.cli.main",
                "node",
                "status",
                "--json",
                "--config",
                str(net["config"]),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert json.loads(out.stdout)["rejected"]["replayed"] == 1

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        logs = proc.stdout.read().decode() if proc.stdout else ""
        assert PASSWORD not in logs and net["bob"].account.private_bytes().hex() not in logs
        assert net["bob"].x25519.private_bytes().hex() not in logs
        records = [json.loads(line) for line in logs.splitlines() if line.strip()]
        assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
        assert any("stopped" in r["msg"] for r in records)

        proc = _start(net["config"])
        _wait_up(url, proc)
        assert post(good) == (409, "replayed")  # the replay cache survived the restart
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def test_a_guardian_node_releases_its_share_only_as_the_chain_allows(network):
    """bob's node is one of the guardians of a model alice owns and is granted."""
    net = network
    cm, alice, mallory, bob = net["cm"], net["alice"], net["mallory"], net["bob"]
    view = LedgerChainView(cm)
    store = LocalBlobStore(net["config"].parent / "store")  # bob's node's store
    key = generate_key()
    sealed = seal_artifact(store, key, os.urandom(10_000), artifact_id="m", version=1)
    model = cm.models.create_model(alice.account, "m")
    version = cm.models.publish_version(
        alice.account,
        model,
        sealed.manifest.ciphertext_cid,
        sealed.manifest_cid,
        sealed.plaintext_commitment,
    )
    bundle = access.split_among_guardians(view, key, version, [bob.address], threshold=1)
    grant = cm.models.grant(
        alice.account, version, alice.address, view.now() + 3600, store.put(bundle)
    )
    url = net["url"] + "/v1/keys/release"

    def ask(signer=alice, grant_id=grant, **change):
        request = access.make_request(signer.account, view, grant_id, bob.address, view.now())
        return request, request.encode() if not change else dataclasses.replace(
            request, **change
        ).encode()

    proc = _start(net["config"])
    try:
        _wait_up(net["url"], proc)
        request, body = ask()
        reply = requests.post(url, data=body, timeout=5)
        assert reply.status_code == 200, reply.text
        r = reply.json()
        release = access.KeyRelease(
            r["guardian"],
            r["index"],
            bytes.fromhex(r["sealed_share"]),
            bytes.fromhex(r["signature"]),
        )
        assert access.recover_key(alice, view, [request], [release], sealed.manifest) == key
        assert key.hex() not in reply.text
        refusals = {
            "replay": body,
            "forged": ask(mallory, requester=alice.address)[1],
            "not the grantee": ask(mallory)[1],
            "unknown grant": ask(grant_id=grant + 100)[1],
            "garbage": b"{not json",
        }
        got = {name: requests.post(url, data=b, timeout=5) for name, b in refusals.items()}
        assert {n: (g.status_code, g.json()["error"]) for n, g in got.items()} == {
            "replay": (409, "replayed_request"),
            "forged": (401, "forged_request"),
            "not the grantee": (403, "not_grantee"),
            "unknown grant": (404, "unknown_grant"),
            "garbage": (400, "malformed_bundle"),
        }
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        proc = _start(net["config"])
        _wait_up(net["url"], proc)
        assert requests.post(url, data=body, timeout=5).status_code == 409  # survives a restart
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def test_node_refuses_to_start_without_password(network):
    env = {k: v for k, v in os.environ.items() if k != "CHAINML_PASSWORD"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainml.cli.main",
            "node",
            "run",
            "--config",
            str(network["config"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 1 and "CHAINML_PASSWORD" in out.stdout


def _get(port: int, path: str, source: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_a_flooding_peer_is_banned_and_alerted_others_still_served(network, tmp_path):
    """A loopback client is each of its connections (see chainml.node.api): the flooder
    floods over one keep-alive connection and is banned; other local clients are not."""
    net = network
    config = net["config"].read_text().replace("rate_per_peer = 50", "rate_per_peer = 20")
    flood_config = net["config"].with_name("flood.toml")
    flood_config.write_text(config.replace('state = "state.db"', 'state = "flood.db"'))
    port = int(net["url"].rsplit(":", 1)[1])
    proc = _start(flood_config)
    try:
        _wait_up(net["url"], proc)
        flood = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

        def get() -> int:
            flood.request("GET", "/v1/status")
            resp = flood.getresponse()
            resp.read()
            return resp.status

        codes = Counter(get() for _ in range(400))
        # its burst of 20, then refusals to a ban (more 200s only if the bucket refilled)
        assert codes[200] >= 20 and codes[429] >= 100 and set(codes) == {200, 429}
        assert get() == 429  # banned, whatever its rate
        flooder = f"127.0.0.1:{flood.sock.getsockname()[1]}"
        flood.close()
        assert _get(port, "/v1/status", "127.0.0.1") == 200  # another local client is served
        assert _get(port, "/v1/status", "127.0.0.2") == 200
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0)
        )
        conn.request("GET", "/v1/alerts")
        alerts = json.loads(conn.getresponse().read())
        conn.close()
        assert any(a["kind"] == "peer_banned" and a["subject"] == flooder for a in alerts)
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0)
        )
        conn.request("GET", "/metrics")
        assert 'chainml_alerts{kind="peer_banned"} 1.0' in conn.getresponse().read().decode()
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    # the alert is in the node's log too, as a JSON record
    logs = proc.stdout.read().decode() if proc.stdout else ""
    records = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert any(
        r["logger"] == "chainml.node.ids" and f"peer_banned {flooder}" in r["msg"] for r in records
    )


def test_node_alarms_when_its_endpoints_disagree(network):
    net = network
    with AnvilProcess() as anvil:
        text = net["config"].read_text()
        text = text.replace("interval = 5 ", "interval = 0.2 ").replace(
            "endpoints = []", f'endpoints = ["{anvil.url}"]'
        )
        config = net["config"].with_name("eclipse.toml")
        config.write_text(text.replace('state = "state.db"', 'state = "eclipse.db"'))
        proc = _start(config)
        try:
            _wait_up(net["url"], proc)
            deadline = time.monotonic() + 20
            kinds: set[str] = set()
            expected = {"endpoints_disagree", "stake_majority", "common_funder"}
            while time.monotonic() < deadline and not expected <= kinds:
                time.sleep(0.2)
                alerts = requests.get(net["url"] + "/v1/alerts", timeout=5).json()
                kinds = {a["kind"] for a in alerts}
            assert "endpoints_disagree" in kinds
            # every party here was funded by the one dev account: one entity, all the stake
            assert {"stake_majority", "common_funder"} <= kinds
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0


def test_dashboard_in_a_headless_browser(network, tmp_path):
    """The page a user opens: parties with a stake chart, the job posted, the alerts."""
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from chainml.ledger.bindings import JobParams

    net = network
    cm, dev = net["cm"], net["dev"]
    job_id = cm.jobs.create_job(dev, JobParams(net["alice"].address, 2, 1, 4, 1, 60), ETHER)
    config = net["config"].with_name("dash.toml")
    config.write_text(net["config"].read_text().replace('state = "state.db"', 'state = "dash.db"'))
    proc = _start(config)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = None
    try:  # the node is stopped whatever fails, the browser's start included
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        _wait_up(net["url"], proc)
        deadline = time.monotonic() + 20
        while True:  # the chain monitor's first pass fills the party list, then the alerts
            driver.get(net["url"] + "/")
            rows = driver.find_elements(By.CSS_SELECTOR, "#parties tr")
            alerts = driver.find_element(By.ID, "alerts").text
            if (len(rows) >= 4 and "stake_majority" in alerts) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert driver.title == "chainml node bob"
        text = driver.find_element(By.TAG_NAME, "body").text
        for ident in ("bob", "alice", "poor"):
            assert net[ident].address in text
        assert len(rows) == 4  # header + three parties
        jobs = driver.find_element(By.ID, "jobs").text
        assert f"{job_id} OPEN 0/2" in jobs
        assert "stake_majority" in alerts  # one funder staked for everyone here
        bars = driver.find_elements(By.CSS_SELECTOR, "#stake-chart rect")
        assert len(bars) == 3
        shot = tmp_path / "dashboard.png"  # kept by pytest under its basetemp for a look
        assert driver.save_screenshot(str(shot))
        image = Image.open(shot).convert("RGB")
        assert image.size[0] >= 1000
        chart = driver.find_element(By.ID, "stake-chart")
        x, y = chart.location["x"], chart.location["y"]
        w, h = chart.size["width"], chart.size["height"]
        scale = image.size[0] / driver.execute_script("return window.innerWidth")
        box = image.crop(
            (int(x * scale), int(y * scale), int((x + w) * scale), int((y + h) * scale))
        )
        blue = sum(1 for px in box.getdata() if px[2] > 180 and px[0] < 100)
        assert blue > 500, "the stake bars are not drawn"
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
