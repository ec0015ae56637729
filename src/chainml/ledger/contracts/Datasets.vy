# pragma version 0.4.3
"""
@title chainml Datasets
@notice Commitments to private data sets: a salted Merkle root over the records, the
        record count and a hash of the schema. The data never leaves its owner; the
        root lets the owner later prove that a record was, or was not, in the set.
@dev    Deploy: Datasets(). Only a data set's owner revokes it; a revocation is final.
"""


struct Dataset:
    owner: address
    merkle_root: bytes32
    record_count: uint256
    schema_hash: bytes32
    committed_at: uint256
    revoked: bool


event DatasetCommitted:
    dataset_id: indexed(uint256)
    owner: indexed(address)
    merkle_root: bytes32
    record_count: uint256
    schema_hash: bytes32

event DatasetRevoked:
    dataset_id: indexed(uint256)
    owner: indexed(address)


dataset_count: public(uint256)
datasets: HashMap[uint256, Dataset]


# @audit permissionless: any data owner commits to its own data set
@external
def commit(merkle_root: bytes32, record_count: uint256, schema_hash: bytes32) -> uint256:
    """
    @notice Commit to a data set; returns its id. Reverts InvalidParameter on an empty
            root or zero records.
    """
    assert merkle_root != empty(bytes32), "InvalidParameter"
    assert record_count > 0, "InvalidParameter"
    dataset_id: uint256 = self.dataset_count + 1
    self.dataset_count = dataset_id
    self.datasets[dataset_id] = Dataset(
        owner=msg.sender, merkle_root=merkle_root, record_count=record_count,
        schema_hash=schema_hash, committed_at=block.timestamp, revoked=False
    )
    log DatasetCommitted(
        dataset_id=dataset_id, owner=msg.sender, merkle_root=merkle_root,
        record_count=record_count, schema_hash=schema_hash
    )
    return dataset_id


@external
def revoke(dataset_id: uint256):
    """
    @notice The owner withdraws a data set from use. Reverts UnknownDataset,
            NotAuthorized, DatasetRevoked.
    """
    assert dataset_id != 0 and dataset_id <= self.dataset_count, "UnknownDataset"
    assert self.datasets[dataset_id].owner == msg.sender, "NotAuthorized"
    assert not self.datasets[dataset_id].revoked, "DatasetRevoked"
    self.datasets[dataset_id].revoked = True
    log DatasetRevoked(dataset_id=dataset_id, owner=msg.sender)


@external
@view
def get(dataset_id: uint256) -> Dataset:
    """
    @notice A committed data set. Reverts UnknownDataset.
    """
    assert dataset_id != 0 and dataset_id <= self.dataset_count, "UnknownDataset"
    return self.datasets[dataset_id]
