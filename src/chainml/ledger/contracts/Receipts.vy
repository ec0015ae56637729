# pragma version 0.4.3
"""
@title chainml Receipts
@notice Paid inference. Clients prepay a balance; a provider posts, per client, a batch:
        the Merkle root of the receipts it signed, their count and the amount due, which
        is reserved from the client's balance. The client may dispute the batch within
        dispute_window seconds, which voids it and releases the amount; otherwise anyone
        settles it into the provider's earnings, which the provider withdraws.
@dev    Deploy: Receipts(dispute_window, withdrawal_delay). A client's withdrawal waits
        withdrawal_delay seconds so providers can post what is due first.
        Accounting: self.balance >= total_available + total_reserved + total_pending
        + total_earnings (equality unless ether is forced in, which only adds).
"""

STATUS_POSTED: constant(uint8) = 1
STATUS_SETTLED: constant(uint8) = 2
STATUS_DISPUTED: constant(uint8) = 3


struct Batch:
    provider: address
    client: address
    receipt_root: bytes32
    receipt_count: uint256
    amount: uint256
    posted_at: uint256
    status: uint8
    reason_hash: bytes32


event Deposited:
    client: indexed(address)
    amount: uint256
    available: uint256

event WithdrawalRequested:
    client: indexed(address)
    amount: uint256
    release_at: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event BatchPosted:
    batch_id: indexed(uint256)
    provider: indexed(address)
    client: indexed(address)
    receipt_root: bytes32
    receipt_count: uint256
    amount: uint256

event BatchDisputed:
    batch_id: indexed(uint256)
    client: indexed(address)
    reason_hash: bytes32

event BatchSettled:
    batch_id: indexed(uint256)
    provider: indexed(address)
    amount: uint256


dispute_window: public(immutable(uint256))
withdrawal_delay: public(immutable(uint256))

available: public(HashMap[address, uint256])
reserved: public(HashMap[address, uint256])
pending_withdrawal: public(HashMap[address, uint256])
withdrawal_release_at: public(HashMap[address, uint256])
earnings: public(HashMap[address, uint256])

total_available: public(uint256)
total_reserved: public(uint256)
total_pending: public(uint256)
total_earnings: public(uint256)

batch_count: public(uint256)
batches: HashMap[uint256, Batch]


@deploy
def __init__(_dispute_window: uint256, _withdrawal_delay: uint256):
    dispute_window = _dispute_window
    withdrawal_delay = _withdrawal_delay


# @audit permissionless: any client prepays its own balance
@external
@payable
def deposit():
    """
    @notice Add msg.value to msg.sender's prepaid balance.
    """
    assert msg.value > 0, "ZeroAmount"
    self.available[msg.sender] += msg.value
    self.total_available += msg.value
    log Deposited(client=msg.sender, amount=msg.value, available=self.available[msg.sender])


@external
def request_withdrawal(amount: uint256):
    """
    @notice Set aside amount of the available balance to withdraw after the delay.
    """
    assert amount > 0, "ZeroAmount"
    assert self.available[msg.sender] >= amount, "InsufficientBalance"
    self.available[msg.sender] -= amount
    self.total_available -= amount
    self.pending_withdrawal[msg.sender] += amount
    self.total_pending += amount
    release_at: uint256 = block.timestamp + withdrawal_delay
    self.withdrawal_release_at[msg.sender] = release_at
    log WithdrawalRequested(client=msg.sender, amount=amount, release_at=release_at)


@external
@nonreentrant
def withdraw():
    """
    @notice Pay out msg.sender's pending withdrawal once its delay has passed.
    """
    amount: uint256 = self.pending_withdrawal[msg.sender]
    assert amount > 0, "NothingToWithdraw"
    assert block.timestamp >= self.withdrawal_release_at[msg.sender], "UnbondingNotReady"
    self.pending_withdrawal[msg.sender] = 0
    self.total_pending -= amount
    log Withdrawn(account=msg.sender, amount=amount)
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"


# @audit permissionless: a provider bills only what the client may dispute
@external
def post_batch(client: address, receipt_root: bytes32, receipt_count: uint256, amount: uint256) -> uint256:
    """
    @notice A provider (msg.sender) bills client for a batch of signed receipts; amount is
            reserved from the client's available balance. Returns the batch id.
    """
    assert client != msg.sender and client != empty(address), "InvalidParameter"
    assert receipt_count > 0 and receipt_root != empty(bytes32), "InvalidParameter"
    assert self.available[client] >= amount, "InsufficientBalance"
    self.available[client] -= amount
    self.total_available -= amount
    self.reserved[client] += amount
    self.total_reserved += amount
    batch_id: uint256 = self.batch_count + 1
    self.batch_count = batch_id
    self.batches[batch_id] = Batch(
        provider=msg.sender, client=client, receipt_root=receipt_root,
        receipt_count=receipt_count, amount=amount, posted_at=block.timestamp,
        status=STATUS_POSTED, reason_hash=empty(bytes32)
    )
    log BatchPosted(
        batch_id=batch_id, provider=msg.sender, client=client, receipt_root=receipt_root,
        receipt_count=receipt_count, amount=amount
    )
    return batch_id


@external
def dispute(batch_id: uint256, reason_hash: bytes32):
    """
    @notice The batch's client disputes it within the window: the batch is void and its
            amount returns to the client's available balance.
    """
    assert batch_id != 0 and batch_id <= self.batch_count, "UnknownBatch"
    b: Batch = self.batches[batch_id]
    assert msg.sender == b.client, "NotAuthorized"
    assert b.status == STATUS_POSTED, "AlreadyResolved"
    assert block.timestamp < b.posted_at + dispute_window, "DisputeWindowClosed"
    self.batches[batch_id].status = STATUS_DISPUTED
    self.batches[batch_id].reason_hash = reason_hash
    self.reserved[b.client] -= b.amount
    self.total_reserved -= b.amount
    self.available[b.client] += b.amount
    self.total_available += b.amount
    log BatchDisputed(batch_id=batch_id, client=b.client, reason_hash=reason_hash)


# @audit permissionless: settlement after the window only moves funds as posted
@external
def settle(batch_id: uint256):
    """
    @notice After the dispute window, move an undisputed batch's amount to the provider.
    """
    assert batch_id != 0 and batch_id <= self.batch_count, "UnknownBatch"
    b: Batch = self.batches[batch_id]
    assert b.status == STATUS_POSTED, "AlreadyResolved"
    assert block.timestamp >= b.posted_at + dispute_window, "DisputeWindowOpen"
    self.batches[batch_id].status = STATUS_SETTLED
    self.reserved[b.client] -= b.amount
    self.total_reserved -= b.amount
    self.earnings[b.provider] += b.amount
    self.total_earnings += b.amount
    log BatchSettled(batch_id=batch_id, provider=b.provider, amount=b.amount)


@external
@nonreentrant
def withdraw_earnings():
    """
    @notice Pay a provider everything it has earned.
    """
    amount: uint256 = self.earnings[msg.sender]
    assert amount > 0, "NothingToWithdraw"
    self.earnings[msg.sender] = 0
    self.total_earnings -= amount
    log Withdrawn(account=msg.sender, amount=amount)
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"


@external
@view
def get_batch(batch_id: uint256) -> Batch:
    assert batch_id != 0 and batch_id <= self.batch_count, "UnknownBatch"
    return self.batches[batch_id]
