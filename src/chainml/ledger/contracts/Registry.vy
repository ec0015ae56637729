# pragma version 0.4.3
"""
@title chainml Registry
@notice Identities (EVM account, X25519 key, roles, endpoint), native-currency stake,
        unbonding with a delay, slashing by the Jobs contract only, and stake-weighted
        committees drawn from on-chain randomness.
@dev    Deploy: Registry(unbonding_delay, min_validator_stake), then set_slasher(jobs)
        once from the deployer; the slasher can never change afterwards.

        Accounting: self.balance >= total_staked + total_unbonding + slashed_pool
        + total_rewards_owed (equality unless ether is forced in, which only adds).
        Half of every slash is owed to the beneficiary (the reporter), who collects it
        with claim_slash_reward (a pull payment, so no beneficiary can block a slash by
        refusing it); the other half stays in slashed_pool for ever (burnt).

        Committee randomness: the seed mixes block.prevrandao with the caller's ids. On a
        proof-of-stake chain prevrandao is the RANDAO mix; the proposer of the block that
        draws a committee can only choose between its value and a missed slot, so a single
        proposer biases a draw by at most one bit, and k consecutive slots it controls give
        at most 2^k candidate committees. On a development chain prevrandao is predictable:
        committees there are only as random as the chain.
"""

MAX_VALIDATORS: constant(uint256) = 128
MAX_COMMITTEE: constant(uint256) = 32
ROLE_VALIDATOR: constant(uint256) = 8
ALL_ROLES: constant(uint256) = 63
SECP256K1_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
POP_CONTEXT: constant(Bytes[23]) = b"chainml/registry/pop/v1"


struct Identity:
    x25519_key: bytes32
    roles: uint256
    endpoint: String[256]
    registered_at: uint256


event Registered:
    account: indexed(address)
    x25519_key: bytes32
    roles: uint256
    endpoint: String[256]

event KeyRotated:
    account: indexed(address)
    x25519_key: bytes32

event EndpointChanged:
    account: indexed(address)
    endpoint: String[256]

event Staked:
    account: indexed(address)
    amount: uint256
    total: uint256

event UnbondRequested:
    account: indexed(address)
    amount: uint256
    release_at: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event Slashed:
    offender: indexed(address)
    amount: uint256
    beneficiary: indexed(address)
    reward: uint256

event SlasherSet:
    slasher: address

event SlashRewardClaimed:
    account: indexed(address)
    amount: uint256


deployer: public(immutable(address))
unbonding_delay: public(immutable(uint256))
min_validator_stake: public(immutable(uint256))
slasher: public(address)

identities: public(HashMap[address, Identity])
is_registered: public(HashMap[address, bool])
stake_of: public(HashMap[address, uint256])
unbonding_of: public(HashMap[address, uint256])
unbonding_release_at: public(HashMap[address, uint256])

total_staked: public(uint256)
total_unbonding: public(uint256)
slashed_pool: public(uint256)
rewards_owed: public(HashMap[address, uint256])
total_rewards_owed: public(uint256)
validators: public(DynArray[address, MAX_VALIDATORS])


@deploy
def __init__(_unbonding_delay: uint256, _min_validator_stake: uint256):
    deployer = msg.sender
    unbonding_delay = _unbonding_delay
    min_validator_stake = _min_validator_stake


@internal
@view
def _pop_digest(account: address, x25519_key: bytes32) -> bytes32:
    inner: bytes32 = keccak256(
        concat(POP_CONTEXT, convert(chain.id, bytes32), convert(self, bytes20),
               convert(account, bytes20), x25519_key)
    )
    return keccak256(concat(b"\x19Ethereum Signed Message:\n32", inner))


@internal
@view
def _check_pop(account: address, x25519_key: bytes32, pop: Bytes[65]):
    assert len(pop) == 65, "InvalidProofOfPossession"
    r: uint256 = convert(extract32(pop, 0), uint256)
    s: uint256 = convert(extract32(pop, 32), uint256)
    v: uint256 = convert(slice(pop, 64, 1), uint256)
    assert s <= SECP256K1_HALF_N, "InvalidProofOfPossession"
    assert v == 27 or v == 28, "InvalidProofOfPossession"
    signer: address = ecrecover(self._pop_digest(account, x25519_key), v, r, s)
    assert signer != empty(address) and signer == account, "InvalidProofOfPossession"


@internal
def _add_stake(account: address, amount: uint256):
    self.stake_of[account] += amount
    self.total_staked += amount
    log Staked(account=account, amount=amount, total=self.stake_of[account])


# @audit permissionless: anyone may register an identity for their own account
@external
@payable
def register(x25519_key: bytes32, pop: Bytes[65], roles: uint256, endpoint: String[256]):
    """
    @notice Register msg.sender with its X25519 key, roles and endpoint; msg.value is staked.
    @dev    pop: the account's EIP-191 signature over the key (proof of possession).
            Reverts AlreadyRegistered, InvalidParameter (roles), InvalidProofOfPossession.
    """
    assert not self.is_registered[msg.sender], "AlreadyRegistered"
    assert roles != 0 and roles & ALL_ROLES == roles, "InvalidParameter"
    assert x25519_key != empty(bytes32), "InvalidParameter"
    self._check_pop(msg.sender, x25519_key, pop)
    self.is_registered[msg.sender] = True
    self.identities[msg.sender] = Identity(
        x25519_key=x25519_key, roles=roles, endpoint=endpoint, registered_at=block.timestamp
    )
    if roles & ROLE_VALIDATOR != 0:
        assert len(self.validators) < MAX_VALIDATORS, "ValidatorSetFull"
        self.validators.append(msg.sender)
    log Registered(account=msg.sender, x25519_key=x25519_key, roles=roles, endpoint=endpoint)
    if msg.value > 0:
        self._add_stake(msg.sender, msg.value)


@external
def rotate_key(x25519_key: bytes32, pop: Bytes[65]):
    """
    @notice Replace msg.sender's X25519 key (with a new proof of possession).
    """
    assert self.is_registered[msg.sender], "NotRegistered"
    assert x25519_key != empty(bytes32), "InvalidParameter"
    self._check_pop(msg.sender, x25519_key, pop)
    self.identities[msg.sender].x25519_key = x25519_key
    log KeyRotated(account=msg.sender, x25519_key=x25519_key)


@external
def set_endpoint(endpoint: String[256]):
    """
    @notice Change msg.sender's endpoint URL.
    """
    assert self.is_registered[msg.sender], "NotRegistered"
    self.identities[msg.sender].endpoint = endpoint
    log EndpointChanged(account=msg.sender, endpoint=endpoint)


@external
@payable
def stake():
    """
    @notice Add msg.value to msg.sender's stake. Reverts NotRegistered, ZeroAmount.
    """
    assert self.is_registered[msg.sender], "NotRegistered"
    assert msg.value > 0, "ZeroAmount"
    self._add_stake(msg.sender, msg.value)


@external
def request_unbond(amount: uint256):
    """
    @notice Move amount from active stake to unbonding; it stays slashable and can be
            withdrawn unbonding_delay seconds after the latest request.
    """
    assert amount > 0, "ZeroAmount"
    assert self.stake_of[msg.sender] >= amount, "InsufficientStake"
    self.stake_of[msg.sender] -= amount
    self.total_staked -= amount
    self.unbonding_of[msg.sender] += amount
    self.total_unbonding += amount
    release_at: uint256 = block.timestamp + unbonding_delay
    self.unbonding_release_at[msg.sender] = release_at
    log UnbondRequested(account=msg.sender, amount=amount, release_at=release_at)


@external
@nonreentrant
def withdraw():
    """
    @notice Pay out msg.sender's unbonded stake once the delay has passed.
            Reverts NothingToWithdraw, UnbondingNotReady, TransferFailed.
    """
    amount: uint256 = self.unbonding_of[msg.sender]
    assert amount > 0, "NothingToWithdraw"
    assert block.timestamp >= self.unbonding_release_at[msg.sender], "UnbondingNotReady"
    self.unbonding_of[msg.sender] = 0
    self.total_unbonding -= amount
    log Withdrawn(account=msg.sender, amount=amount)
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"


@external
def set_slasher(slasher: address):
    """
    @notice Name the one contract allowed to slash (the Jobs contract). Once only.
    """
    assert msg.sender == deployer, "NotAuthorized"
    assert self.slasher == empty(address), "AlreadyFinalized"
    assert slasher != empty(address), "InvalidParameter"
    self.slasher = slasher
    log SlasherSet(slasher=slasher)


@external
def slash(offender: address, amount: uint256, beneficiary: address) -> uint256:
    """
    @notice Take up to amount from offender's stake (active first, then unbonding); half
            of what is taken is owed to beneficiary, the rest is burnt. Only the slasher.
    @return What was taken: never more than the offender's stake.
    """
    assert msg.sender == self.slasher, "NotAuthorized"
    active: uint256 = self.stake_of[offender]
    bonding: uint256 = self.unbonding_of[offender]
    taken: uint256 = min(amount, active + bonding)
    from_active: uint256 = min(taken, active)
    from_bonding: uint256 = taken - from_active
    self.stake_of[offender] = active - from_active
    self.total_staked -= from_active
    self.unbonding_of[offender] = bonding - from_bonding
    self.total_unbonding -= from_bonding
    reward: uint256 = 0
    if beneficiary != empty(address):
        reward = taken // 2
    self.slashed_pool += taken - reward
    self.rewards_owed[beneficiary] += reward
    self.total_rewards_owed += reward
    log Slashed(offender=offender, amount=taken, beneficiary=beneficiary, reward=reward)
    return taken


@external
@nonreentrant
def claim_slash_reward() -> uint256:
    """
    @notice Pay msg.sender the slashing rewards it is owed. Reverts NothingToWithdraw.
    """
    amount: uint256 = self.rewards_owed[msg.sender]
    assert amount > 0, "NothingToWithdraw"
    self.rewards_owed[msg.sender] = 0
    self.total_rewards_owed -= amount
    log SlashRewardClaimed(account=msg.sender, amount=amount)
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"
    return amount


@external
@view
def pop_digest(account: address, x25519_key: bytes32) -> bytes32:
    """
    @notice The digest an account signs to prove possession of x25519_key.
    """
    return self._pop_digest(account, x25519_key)


@external
@view
def has_role(account: address, role: uint256) -> bool:
    """
    @notice Whether account is registered with every role bit of role (a non-zero mask).
    """
    return role != 0 and self.is_registered[account] and self.identities[account].roles & role == role


@external
@view
def eligible_stake(account: address) -> uint256:
    """
    @notice The committee weight of account: its active stake if it is a validator with
            at least min_validator_stake, else 0.
    """
    if self.identities[account].roles & ROLE_VALIDATOR == 0:
        return 0
    weight: uint256 = self.stake_of[account]
    if weight < min_validator_stake:
        return 0
    return weight


@external
@view
def committee(seed: bytes32, size: uint256) -> DynArray[address, MAX_COMMITTEE]:
    """
    @notice Draw up to size distinct validators, each with probability proportional to
            its active stake (sampling without replacement). Fewer if fewer are eligible.
    """
    weights: DynArray[uint256, MAX_VALIDATORS] = []
    total: uint256 = 0
    for v: address in self.validators:
        w: uint256 = 0
        if self.identities[v].roles & ROLE_VALIDATOR != 0 and self.stake_of[v] >= min_validator_stake:
            w = self.stake_of[v]
        weights.append(w)
        total += w
    chosen: DynArray[address, MAX_COMMITTEE] = []
    for k: uint256 in range(MAX_COMMITTEE):
        if k >= size or total == 0:
            break
        r: uint256 = convert(keccak256(concat(seed, convert(k, bytes32))), uint256) % total
        acc: uint256 = 0
        for i: uint256 in range(MAX_VALIDATORS):
            if i >= len(weights):
                break
            acc += weights[i]
            if r < acc:
                chosen.append(self.validators[i])
                total -= weights[i]
                weights[i] = 0
                break
    return chosen


@external
@view
def validator_count() -> uint256:
    return len(self.validators)
