"""The grantee's side of threshold key release, over the guardians' node APIs.

The grant on chain names the key bundle; the bundle names the guardians; the Registry
gives each guardian's endpoint.  Requests go to the guardians one by one until the
threshold of valid releases is reached (a guardian that is down, refuses or lies costs
one more request, not the key).
"""

from __future__ import annotations

import json
import logging

import requests

from chainml.crypto import Identity
from chainml.ledger.bindings import Chainml
from chainml.node.access import LedgerChainView
from chainml.storage import access
from chainml.storage.access import KeyRelease, KeyRequest, NotEnoughShares
from chainml.storage.sealed import Manifest
from chainml.storage.store import BlobStore

log = logging.getLogger("chainml.node.keyrelease")


def _post(url: str, request: KeyRequest, timeout: float) -> KeyRelease | None:
    try:
        reply = requests.post(
            f"{url.rstrip('/')}/v1/keys/release", data=request.encode(), timeout=timeout
        )
    except requests.RequestException as exc:
        log.warning("guardian %s unreachable: %s", request.guardian, type(exc).__name__)
        return None
    if reply.status_code != 200:
        try:
            cause = reply.json().get("error", reply.status_code)
        except ValueError:
            cause = reply.status_code
        log.warning("guardian %s refused: %s", request.guardian, cause)
        return None
    try:
        body = reply.json()
        return KeyRelease(
            body["guardian"],
            int(body["index"]),
            bytes.fromhex(body["sealed_share"]),
            bytes.fromhex(body["signature"]),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("guardian %s sent a malformed release", request.guardian)
        return None


def fetch_key(
    me: Identity,
    cm: Chainml,
    store: BlobStore,
    grant_id: int,
    manifest: Manifest,
    *,
    timeout: float = 10.0,
) -> bytes:
    """The artifact's data key, released by at least the threshold of its guardians."""
    view = LedgerChainView(cm)
    grant = view.grant(grant_id)
    raw = store.get(grant.wrapped_key_ref)
    try:
        bundle = json.loads(raw)
        guardians = [str(e["guardian"]) for e in bundle["shares"]]
        threshold = int(bundle["threshold"])
    except (ValueError, KeyError, TypeError):
        raise access.MalformedBundle("the grant's key bundle is not a threshold bundle") from None
    requests_sent: list[KeyRequest] = []
    releases: list[KeyRelease] = []
    for guardian in guardians:
        endpoint = cm.registry.party(guardian).endpoint
        request = access.make_request(me.account, view, grant_id, guardian, view.now())
        release = _post(endpoint, request, timeout)
        if release is not None:
            requests_sent.append(request)
            releases.append(release)
            if len(releases) >= threshold:
                try:
                    return access.recover_key(me, view, requests_sent, releases, manifest)
                except NotEnoughShares:
                    continue  # a bad share among them: ask the next guardian
    raise NotEnoughShares(
        f"{len(releases)} of {len(guardians)} guardians released, {threshold} needed"
    )
