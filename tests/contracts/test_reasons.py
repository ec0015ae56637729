"""Every revert reason in the contract sources maps to a typed Python error."""

from __future__ import annotations

import re

from chainml.ledger import errors
from chainml.ledger.artifacts import CONTRACTS_DIR

REASON = re.compile(r'^\s*assert .*, "(\w+)"\s*$', re.M)


def test_every_reason_has_its_exception_class():
    used = set()
    for path in CONTRACTS_DIR.glob("*.vy"):
        used |= set(REASON.findall(path.read_text()))
    assert len(used) > 30
    missing = used - errors.known_reasons()
    assert not missing, f"add to chainml.ledger.errors: {sorted(missing)}"
    for reason in used:
        err = errors.revert_error(reason)
        assert type(err).__name__ == reason and isinstance(err, errors.ContractRevert)


def test_an_unknown_reason_is_still_typed():
    err = errors.revert_error("SomethingElse")
    assert isinstance(err, errors.UnknownRevert) and err.reason == "SomethingElse"
