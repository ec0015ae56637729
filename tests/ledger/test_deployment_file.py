"""A missing or foreign deployment file gets its own error, naming the file."""

from __future__ import annotations

import pytest

from chainml.ledger.deploy import Deployment
from chainml.ledger.errors import ContractRevert, DeploymentFileError


@pytest.mark.parametrize("content", [None, "not json", '{"registry": "0x00"}'])
def test_a_bad_deployment_file_is_named_and_is_not_a_revert(tmp_path, content):
    path = tmp_path / "deployment.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DeploymentFileError, match=r"deployment\.json") as caught:
        Deployment.load(path)
    assert not isinstance(caught.value, ContractRevert)
