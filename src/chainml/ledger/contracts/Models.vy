# pragma version 0.4.3
"""
@title chainml Models
@notice Model versions (ciphertext CID, manifest CID, plaintext commitment, parent
        version, training job) and access grants (grantee, expiry, reference to the
        wrapped key). Only a model's owner publishes, grants and revokes. The events
        drive key release: guardians act on GrantIssued and GrantRevoked.
@dev    Deploy: Models(). Ids start at 1; 0 means none.
"""


struct Model:
    owner: address
    name: String[64]
    version_count: uint256


struct Version:
    model_id: uint256
    ciphertext_cid: String[128]
    manifest_cid: String[128]
    plaintext_commitment: bytes32
    parent_version: uint256
    job_id: uint256
    published_at: uint256


struct Grant:
    version_id: uint256
    grantee: address
    expiry: uint256
    wrapped_key_ref: String[128]
    revoked: bool


event ModelCreated:
    model_id: indexed(uint256)
    owner: indexed(address)
    name: String[64]

event VersionPublished:
    model_id: indexed(uint256)
    version_id: indexed(uint256)
    ciphertext_cid: String[128]
    manifest_cid: String[128]
    plaintext_commitment: bytes32
    parent_version: uint256
    job_id: uint256

event GrantIssued:
    model_id: indexed(uint256)
    version_id: indexed(uint256)
    grant_id: indexed(uint256)
    grantee: address
    expiry: uint256
    wrapped_key_ref: String[128]

event GrantRevoked:
    model_id: indexed(uint256)
    version_id: indexed(uint256)
    grant_id: indexed(uint256)
    grantee: address

event OwnershipTransferred:
    model_id: indexed(uint256)
    previous_owner: indexed(address)
    new_owner: indexed(address)


model_count: public(uint256)
version_count: public(uint256)
grant_count: public(uint256)
models: HashMap[uint256, Model]
versions: HashMap[uint256, Version]
grants: HashMap[uint256, Grant]
latest_grant: public(HashMap[uint256, HashMap[address, uint256]])  # version -> grantee -> grant


@internal
@view
def _owned_model(model_id: uint256) -> Model:
    assert model_id != 0 and model_id <= self.model_count, "UnknownModel"
    m: Model = self.models[model_id]
    assert m.owner == msg.sender, "NotAuthorized"
    return m


@internal
@view
def _version(version_id: uint256) -> Version:
    assert version_id != 0 and version_id <= self.version_count, "UnknownModel"
    return self.versions[version_id]


# @audit permissionless: anyone may create a model of their own
@external
def create_model(name: String[64]) -> uint256:
    """
    @notice Create a model owned by msg.sender; returns its id.
    """
    model_id: uint256 = self.model_count + 1
    self.model_count = model_id
    self.models[model_id] = Model(owner=msg.sender, name=name, version_count=0)
    log ModelCreated(model_id=model_id, owner=msg.sender, name=name)
    return model_id


@external
def publish_version(
    model_id: uint256,
    ciphertext_cid: String[128],
    manifest_cid: String[128],
    plaintext_commitment: bytes32,
    parent_version: uint256,
    job_id: uint256,
) -> uint256:
    """
    @notice The owner publishes a sealed version. parent_version is 0 or an earlier version
            of the same model. Reverts UnknownModel, NotAuthorized, InvalidParameter.
    """
    m: Model = self._owned_model(model_id)
    assert len(ciphertext_cid) > 0 and plaintext_commitment != empty(bytes32), "InvalidParameter"
    if parent_version != 0:
        assert self._version(parent_version).model_id == model_id, "InvalidParameter"
    version_id: uint256 = self.version_count + 1
    self.version_count = version_id
    self.versions[version_id] = Version(
        model_id=model_id, ciphertext_cid=ciphertext_cid, manifest_cid=manifest_cid,
        plaintext_commitment=plaintext_commitment, parent_version=parent_version,
        job_id=job_id, published_at=block.timestamp
    )
    self.models[model_id].version_count = m.version_count + 1
    log VersionPublished(
        model_id=model_id, version_id=version_id, ciphertext_cid=ciphertext_cid,
        manifest_cid=manifest_cid, plaintext_commitment=plaintext_commitment,
        parent_version=parent_version, job_id=job_id
    )
    return version_id


@external
def grant(
    version_id: uint256, grantee: address, expiry: uint256, wrapped_key_ref: String[128]
) -> uint256:
    """
    @notice The owner grants grantee access to a version until expiry (a timestamp in the
            future). Returns the grant id.
    """
    v: Version = self._version(version_id)
    self._owned_model(v.model_id)
    assert grantee != empty(address), "InvalidParameter"
    assert expiry > block.timestamp, "InvalidParameter"
    grant_id: uint256 = self.grant_count + 1
    self.grant_count = grant_id
    self.latest_grant[version_id][grantee] = grant_id
    self.grants[grant_id] = Grant(
        version_id=version_id, grantee=grantee, expiry=expiry,
        wrapped_key_ref=wrapped_key_ref, revoked=False
    )
    log GrantIssued(
        model_id=v.model_id, version_id=version_id, grant_id=grant_id, grantee=grantee,
        expiry=expiry, wrapped_key_ref=wrapped_key_ref
    )
    return grant_id


@external
def revoke(grant_id: uint256):
    """
    @notice The owner revokes a grant; final. Reverts UnknownGrant, NotAuthorized,
            GrantRevoked.
    """
    assert grant_id != 0 and grant_id <= self.grant_count, "UnknownGrant"
    g: Grant = self.grants[grant_id]
    v: Version = self.versions[g.version_id]
    self._owned_model(v.model_id)
    assert not g.revoked, "GrantRevoked"
    self.grants[grant_id].revoked = True
    log GrantRevoked(
        model_id=v.model_id, version_id=g.version_id, grant_id=grant_id, grantee=g.grantee
    )


@external
def transfer_ownership(model_id: uint256, new_owner: address):
    """
    @notice The owner hands the model to new_owner.
    """
    self._owned_model(model_id)
    assert new_owner != empty(address), "InvalidParameter"
    self.models[model_id].owner = new_owner
    log OwnershipTransferred(model_id=model_id, previous_owner=msg.sender, new_owner=new_owner)


@internal
@view
def _grant_valid(grant_id: uint256) -> bool:
    if grant_id == 0 or grant_id > self.grant_count:
        return False
    g: Grant = self.grants[grant_id]
    return not g.revoked and block.timestamp < g.expiry


@external
@view
def grant_valid(grant_id: uint256) -> bool:
    """
    @notice True iff the grant exists, is not revoked and has not expired.
    """
    return self._grant_valid(grant_id)


@external
@view
def has_access(version_id: uint256, account: address) -> bool:
    """
    @notice True iff account owns the version's model or holds its latest grant for the
            version, unrevoked and unexpired.
    """
    if version_id == 0 or version_id > self.version_count:
        return False
    if self.models[self.versions[version_id].model_id].owner == account:
        return True
    return self._grant_valid(self.latest_grant[version_id][account])


@external
@view
def get_model(model_id: uint256) -> Model:
    assert model_id != 0 and model_id <= self.model_count, "UnknownModel"
    return self.models[model_id]


@external
@view
def get_version(version_id: uint256) -> Version:
    return self._version(version_id)


@external
@view
def get_grant(grant_id: uint256) -> Grant:
    assert grant_id != 0 and grant_id <= self.grant_count, "UnknownGrant"
    return self.grants[grant_id]
