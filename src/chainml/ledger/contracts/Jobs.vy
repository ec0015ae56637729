# pragma version 0.4.3
"""
@title chainml Jobs
@notice Training jobs: escrow, joining with a stake check, one transaction per round
        result, challenges decided by a stake-weighted committee, finalisation,
        rewards claimed once, and on-chain double-signing evidence.
@dev    Deploy: Jobs(registry) after the Registry, then Registry.set_slasher(jobs).

        A round result stores the aggregate's CID, the Merkle root over the participants'
        signed commitments and a participant bitmap: its gas does not depend on how many
        took part. Per-participant records stay off chain under the root; anyone proves
        inclusion with verify_inclusion.

        Challenges: a staked, registered account challenges a round within its window.
        A committee of COMMITTEE_SIZE validators (not the aggregator, not the challenger)
        is drawn from the Registry, weighted by stake, and votes within the job's
        challenge window. The challenge is upheld when the stake voting to uphold is more
        than half of the committee's stake; then the round is invalid, the job is
        cancelled (escrow back to the requester) and the aggregator loses min_stake,
        half of it to the challenger. Otherwise the challenge is rejected and the
        challenger loses min_stake // 10, half of it to the aggregator.

        Rewards: a finalised job's escrow is shared among participants in proportion to
        the rounds each took part in; the rounding remainder, and the whole escrow of a
        cancelled job, go back to the requester. Accounting:
        self.balance >= escrow_held == sum over jobs of (escrow - paid); equality unless
        ether is forced in (selfdestruct, block rewards), which only adds.
"""

interface IRegistry:
    def is_registered(account: address) -> bool: view
    def has_role(account: address, role: uint256) -> bool: view
    def stake_of(account: address) -> uint256: view
    def eligible_stake(account: address) -> uint256: view
    def committee(seed: bytes32, size: uint256) -> DynArray[address, 32]: view
    def slash(offender: address, amount: uint256, beneficiary: address) -> uint256: nonpayable


MAX_ROUNDS: constant(uint256) = 64
MAX_PARTICIPANTS: constant(uint256) = 256
COMMITTEE_SIZE: constant(uint256) = 7
MAX_PROOF: constant(uint256) = 32
ROLE_TRAINER: constant(uint256) = 2  # the Registry's trainer role bit
SECP256K1_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

STATE_OPEN: constant(uint8) = 1
STATE_FINALIZED: constant(uint8) = 2
STATE_CANCELLED: constant(uint8) = 3

ROUND_RECORDED: constant(uint8) = 1
ROUND_INVALID: constant(uint8) = 2

CHALLENGE_OPEN: constant(uint8) = 1
CHALLENGE_UPHELD: constant(uint8) = 2
CHALLENGE_REJECTED: constant(uint8) = 3

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ROUND_COMMITMENT_TYPEHASH: constant(bytes32) = keccak256(
    "RoundCommitment(uint256 jobId,uint256 round,bytes32 commitment)"
)


struct JobParams:
    aggregator: address
    rounds: uint256
    min_participants: uint256
    max_participants: uint256
    min_stake: uint256
    challenge_window: uint256
    clip_bound: uint256
    dp_noise_multiplier: uint256
    dp_delta_exponent: uint256
    config_hash: bytes32
    config_cid: String[64]  # where the configuration's bytes are stored (CID), "" if none


struct Job:
    requester: address
    params: JobParams
    escrow: uint256
    paid: uint256
    state: uint8
    participant_count: uint256
    rounds_done: uint256
    last_round_at: uint256
    total_participations: uint256
    claimed_participations: uint256
    open_challenges: uint256


struct Round:
    aggregate_cid: String[128]
    commitment_root: bytes32
    bitmap: uint256
    participants: uint256
    submitted_at: uint256
    status: uint8


struct Challenge:
    job_id: uint256
    round: uint256
    challenger: address
    reason_hash: bytes32
    deadline: uint256
    committee: DynArray[address, 32]
    committee_stake: uint256
    uphold_stake: uint256
    reject_stake: uint256
    status: uint8


event JobCreated:
    job_id: indexed(uint256)
    requester: indexed(address)
    aggregator: indexed(address)
    escrow: uint256
    rounds: uint256
    config_hash: bytes32

event Joined:
    job_id: indexed(uint256)
    participant: indexed(address)
    index: uint256

event RoundRecorded:
    job_id: indexed(uint256)
    round: indexed(uint256)
    aggregate_cid: String[128]
    commitment_root: bytes32
    bitmap: uint256
    participants: uint256

event ChallengeOpened:
    challenge_id: indexed(uint256)
    job_id: indexed(uint256)
    round: uint256
    challenger: address
    committee: DynArray[address, 32]
    deadline: uint256

event Voted:
    challenge_id: indexed(uint256)
    voter: indexed(address)
    uphold: bool
    weight: uint256

event ChallengeResolved:
    challenge_id: indexed(uint256)
    job_id: indexed(uint256)
    upheld: bool
    slashed: uint256

event JobFinalized:
    job_id: indexed(uint256)
    total_participations: uint256

event JobCancelled:
    job_id: indexed(uint256)

event RewardClaimed:
    job_id: indexed(uint256)
    participant: indexed(address)
    amount: uint256

event Refunded:
    job_id: indexed(uint256)
    requester: indexed(address)
    amount: uint256

event DoubleSignSlashed:
    job_id: indexed(uint256)
    round: indexed(uint256)
    participant: indexed(address)
    reporter: address
    slashed: uint256


registry: public(immutable(IRegistry))
job_count: public(uint256)
challenge_count: public(uint256)
escrow_held: public(uint256)

jobs: HashMap[uint256, Job]
rounds: HashMap[uint256, HashMap[uint256, Round]]
participant_index: HashMap[uint256, HashMap[address, uint256]]  # index + 1; 0 = not joined
participant_at: public(HashMap[uint256, HashMap[uint256, address]])
claimed: public(HashMap[uint256, HashMap[address, bool]])
round_challenged: public(HashMap[uint256, HashMap[uint256, bool]])
challenges: HashMap[uint256, Challenge]
voted: public(HashMap[uint256, HashMap[address, bool]])
evidence_used: public(HashMap[bytes32, bool])


@deploy
def __init__(_registry: address):
    registry = IRegistry(_registry)


@internal
@pure
def _popcount(x: uint256) -> uint256:
    if x == max_value(uint256):
        return 256
    # SWAR popcount: constant cost whatever the bitmap (0x55.., 0x33.., 0x0f.., 0x01.. masks)
    m1: uint256 = max_value(uint256) // 3
    m2: uint256 = max_value(uint256) // 5
    m4: uint256 = max_value(uint256) // 17
    h01: uint256 = max_value(uint256) // 255
    y: uint256 = x - ((x >> 1) & m1)
    y = (y & m2) + ((y >> 2) & m2)
    y = (y + (y >> 4)) & m4
    return unsafe_mul(y, h01) >> 248


@internal
@view
def _job(job_id: uint256) -> Job:
    assert job_id != 0 and job_id <= self.job_count, "UnknownJob"
    return self.jobs[job_id]


@internal
@view
def _domain_separator() -> bytes32:
    return keccak256(
        abi_encode(
            EIP712_DOMAIN_TYPEHASH, keccak256("chainml"), keccak256("1"), chain.id, self
        )
    )


@internal
@view
def _commitment_digest(job_id: uint256, round: uint256, commitment: bytes32) -> bytes32:
    struct_hash: bytes32 = keccak256(
        abi_encode(ROUND_COMMITMENT_TYPEHASH, job_id, round, commitment)
    )
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@internal
@pure
def _recover(digest: bytes32, sig: Bytes[65]) -> address:
    if len(sig) != 65:
        return empty(address)
    r: uint256 = convert(extract32(sig, 0), uint256)
    s: uint256 = convert(extract32(sig, 32), uint256)
    v: uint256 = convert(slice(sig, 64, 1), uint256)
    if s > SECP256K1_HALF_N or (v != 27 and v != 28):
        return empty(address)
    return ecrecover(digest, v, r, s)


@internal
@pure
def _leaf_hash(data: Bytes[128]) -> bytes32:
    return keccak256(concat(b"\x00", data))


@internal
@pure
def _node_hash(a: bytes32, b: bytes32) -> bytes32:
    if convert(a, uint256) <= convert(b, uint256):
        return keccak256(concat(b"\x01", a, b))
    return keccak256(concat(b"\x01", b, a))


# @audit permissionless: anyone may post a job and fund its escrow
@external
@payable
def create_job(params: JobParams) -> uint256:
    """
    @notice Post a training job; msg.value is the reward held in escrow.
    @dev    Reverts ZeroAmount, InvalidParameter.
    """
    assert msg.value > 0, "ZeroAmount"
    assert params.aggregator != empty(address), "InvalidParameter"
    assert params.rounds >= 1 and params.rounds <= MAX_ROUNDS, "InvalidParameter"
    assert params.min_participants >= 1, "InvalidParameter"
    assert params.max_participants >= params.min_participants, "InvalidParameter"
    assert params.max_participants <= MAX_PARTICIPANTS, "InvalidParameter"
    assert params.challenge_window >= 1, "InvalidParameter"
    # a published configuration is named by its hash (chainml's own clients always publish)
    assert len(params.config_cid) == 0 or params.config_hash != empty(bytes32), "InvalidParameter"
    job_id: uint256 = self.job_count + 1
    self.job_count = job_id
    self.jobs[job_id] = Job(
        requester=msg.sender,
        params=params,
        escrow=msg.value,
        paid=0,
        state=STATE_OPEN,
        participant_count=0,
        rounds_done=0,
        last_round_at=0,
        total_participations=0,
        claimed_participations=0,
        open_challenges=0,
    )
    self.escrow_held += msg.value
    log JobCreated(
        job_id=job_id, requester=msg.sender, aggregator=params.aggregator,
        escrow=msg.value, rounds=params.rounds, config_hash=params.config_hash
    )
    return job_id


@external
def join(job_id: uint256) -> uint256:
    """
    @notice Join a job before its first round; needs a registered identity with the
            trainer role and at least the job's min_stake. Returns the participant's
            bitmap index.
    """
    job: Job = self._job(job_id)
    assert job.state == STATE_OPEN and job.rounds_done == 0, "JobNotOpen"
    assert staticcall registry.is_registered(msg.sender), "NotRegistered"
    assert staticcall registry.has_role(msg.sender, ROLE_TRAINER), "NotTrainer"
    assert staticcall registry.stake_of(msg.sender) >= job.params.min_stake, "InsufficientStake"
    assert self.participant_index[job_id][msg.sender] == 0, "AlreadyJoined"
    assert job.participant_count < job.params.max_participants, "JobFull"
    index: uint256 = job.participant_count
    self.participant_index[job_id][msg.sender] = index + 1
    self.participant_at[job_id][index] = msg.sender
    self.jobs[job_id].participant_count = index + 1
    log Joined(job_id=job_id, participant=msg.sender, index=index)
    return index


@external
def cancel(job_id: uint256):
    """
    @notice The requester cancels a job that has not recorded a round yet.
    """
    job: Job = self._job(job_id)
    assert msg.sender == job.requester, "NotAuthorized"
    assert job.state == STATE_OPEN and job.rounds_done == 0, "JobNotOpen"
    self.jobs[job_id].state = STATE_CANCELLED
    log JobCancelled(job_id=job_id)


@external
def submit_round(
    job_id: uint256,
    round: uint256,
    aggregate_cid: String[128],
    commitment_root: bytes32,
    bitmap: uint256,
):
    """
    @notice The job's aggregator records round `round` (1-based, in order): the aggregate's
            CID, the Merkle root over the participants' signed commitments, and the bitmap
            of participant indices that took part. Constant gas in the number of them.
    """
    job: Job = self._job(job_id)
    assert msg.sender == job.params.aggregator, "NotAuthorized"
    assert job.state == STATE_OPEN, "JobNotOpen"
    assert round == job.rounds_done + 1 and round <= job.params.rounds, "WrongRound"
    assert len(aggregate_cid) > 0, "InvalidParameter"
    members: uint256 = 0
    if job.participant_count < 256:
        assert bitmap >> job.participant_count == 0, "NotParticipant"
    members = self._popcount(bitmap)
    assert members >= job.params.min_participants, "TooFewParticipants"
    self.rounds[job_id][round] = Round(
        aggregate_cid=aggregate_cid,
        commitment_root=commitment_root,
        bitmap=bitmap,
        participants=members,
        submitted_at=block.timestamp,
        status=ROUND_RECORDED,
    )
    self.jobs[job_id].rounds_done = round
    self.jobs[job_id].last_round_at = block.timestamp
    self.jobs[job_id].total_participations = job.total_participations + members
    log RoundRecorded(
        job_id=job_id, round=round, aggregate_cid=aggregate_cid,
        commitment_root=commitment_root, bitmap=bitmap, participants=members
    )


@external
def challenge(job_id: uint256, round: uint256, reason_hash: bytes32) -> uint256:
    """
    @notice Dispute a recorded round within its challenge window; a committee is drawn.
    @dev    The challenger needs a registered identity and at least the job's min_stake.
    """
    job: Job = self._job(job_id)
    assert job.state == STATE_OPEN, "JobNotOpen"
    rnd: Round = self.rounds[job_id][round]
    assert rnd.status == ROUND_RECORDED, "WrongRound"
    assert block.timestamp < rnd.submitted_at + job.params.challenge_window, "ChallengeWindowClosed"
    assert not self.round_challenged[job_id][round], "ChallengePending"
    assert staticcall registry.is_registered(msg.sender), "NotRegistered"
    assert staticcall registry.stake_of(msg.sender) >= job.params.min_stake, "InsufficientStake"
    challenge_id: uint256 = self.challenge_count + 1
    self.challenge_count = challenge_id
    seed: bytes32 = keccak256(
        abi_encode(block.prevrandao, job_id, round, challenge_id, msg.sender)
    )
    drawn: DynArray[address, 32] = staticcall registry.committee(seed, COMMITTEE_SIZE + 2)
    members: DynArray[address, 32] = []
    weight: uint256 = 0
    for m: address in drawn:
        if m == msg.sender or m == job.params.aggregator or len(members) == COMMITTEE_SIZE:
            continue
        members.append(m)
        weight += staticcall registry.eligible_stake(m)
    assert weight > 0, "InsufficientStake"
    deadline: uint256 = block.timestamp + job.params.challenge_window
    self.challenges[challenge_id] = Challenge(
        job_id=job_id, round=round, challenger=msg.sender, reason_hash=reason_hash,
        deadline=deadline, committee=members, committee_stake=weight,
        uphold_stake=0, reject_stake=0, status=CHALLENGE_OPEN
    )
    self.round_challenged[job_id][round] = True
    self.jobs[job_id].open_challenges = job.open_challenges + 1
    log ChallengeOpened(
        challenge_id=challenge_id, job_id=job_id, round=round, challenger=msg.sender,
        committee=members, deadline=deadline
    )
    return challenge_id


@external
def vote(challenge_id: uint256, uphold: bool):
    """
    @notice A committee member votes, weighted by its eligible stake now.
    """
    assert challenge_id != 0 and challenge_id <= self.challenge_count, "UnknownChallenge"
    c: Challenge = self.challenges[challenge_id]
    assert c.status == CHALLENGE_OPEN, "AlreadyResolved"
    assert block.timestamp < c.deadline, "VotingClosed"
    assert msg.sender in c.committee, "NotCommitteeMember"
    assert not self.voted[challenge_id][msg.sender], "AlreadyVoted"
    w: uint256 = staticcall registry.eligible_stake(msg.sender)
    self.voted[challenge_id][msg.sender] = True
    if uphold:
        self.challenges[challenge_id].uphold_stake = c.uphold_stake + w
    else:
        self.challenges[challenge_id].reject_stake = c.reject_stake + w
    log Voted(challenge_id=challenge_id, voter=msg.sender, uphold=uphold, weight=w)


# @audit permissionless: anyone may settle a challenge once its outcome is fixed
@external
def resolve(challenge_id: uint256):
    """
    @notice Settle a challenge: after its deadline, or as soon as a side holds more than
            half of the committee's stake.
    """
    assert challenge_id != 0 and challenge_id <= self.challenge_count, "UnknownChallenge"
    c: Challenge = self.challenges[challenge_id]
    assert c.status == CHALLENGE_OPEN, "AlreadyResolved"
    upheld: bool = c.uphold_stake * 2 > c.committee_stake
    rejected: bool = c.reject_stake * 2 >= c.committee_stake
    assert upheld or rejected or block.timestamp >= c.deadline, "VotingOpen"
    job: Job = self.jobs[c.job_id]
    self.jobs[c.job_id].open_challenges = job.open_challenges - 1
    slashed: uint256 = 0
    if upheld:
        self.challenges[challenge_id].status = CHALLENGE_UPHELD
        self.rounds[c.job_id][c.round].status = ROUND_INVALID
        if job.state == STATE_OPEN:
            self.jobs[c.job_id].state = STATE_CANCELLED
            log JobCancelled(job_id=c.job_id)
        log ChallengeResolved(challenge_id=challenge_id, job_id=c.job_id, upheld=True, slashed=0)
        slashed = extcall registry.slash(job.params.aggregator, job.params.min_stake, c.challenger)
    else:
        self.challenges[challenge_id].status = CHALLENGE_REJECTED
        log ChallengeResolved(challenge_id=challenge_id, job_id=c.job_id, upheld=False, slashed=0)
        slashed = extcall registry.slash(c.challenger, job.params.min_stake // 10, job.params.aggregator)


# @audit permissionless: anyone may finalise a job once its last window has passed
@external
def finalize(job_id: uint256):
    """
    @notice Close a job whose rounds are all recorded, whose last challenge window has
            passed and that has no open challenge. Rewards become claimable.
    """
    job: Job = self._job(job_id)
    assert job.state == STATE_OPEN, "JobNotOpen"
    assert job.rounds_done == job.params.rounds, "WrongRound"
    assert job.open_challenges == 0, "ChallengePending"
    assert block.timestamp >= job.last_round_at + job.params.challenge_window, "ChallengeWindowOpen"
    self.jobs[job_id].state = STATE_FINALIZED
    log JobFinalized(job_id=job_id, total_participations=job.total_participations)


@internal
@view
def _participations(job_id: uint256, index: uint256, rounds_done: uint256) -> uint256:
    count: uint256 = 0
    for r: uint256 in range(1, MAX_ROUNDS + 1):
        if r > rounds_done:
            break
        if (self.rounds[job_id][r].bitmap >> index) & 1 == 1:
            count += 1
    return count


@external
@nonreentrant
def claim_reward(job_id: uint256) -> uint256:
    """
    @notice Pay msg.sender its share of a finalised job's escrow, once.
    """
    job: Job = self._job(job_id)
    assert job.state == STATE_FINALIZED, "NotFinalized"
    slot: uint256 = self.participant_index[job_id][msg.sender]
    assert slot != 0, "NotParticipant"
    assert not self.claimed[job_id][msg.sender], "AlreadyClaimed"
    count: uint256 = self._participations(job_id, slot - 1, job.rounds_done)
    assert count > 0, "NoReward"
    amount: uint256 = job.escrow * count // job.total_participations
    self.claimed[job_id][msg.sender] = True
    self.jobs[job_id].paid = job.paid + amount
    self.jobs[job_id].claimed_participations = job.claimed_participations + count
    self.escrow_held -= amount
    log RewardClaimed(job_id=job_id, participant=msg.sender, amount=amount)
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"
    return amount


@external
@nonreentrant
def refund(job_id: uint256) -> uint256:
    """
    @notice Return to the requester what no participant can claim: the whole escrow of a
            cancelled job, or the rounding remainder once every share was claimed.
    """
    job: Job = self._job(job_id)
    assert msg.sender == job.requester, "NotAuthorized"
    if job.state == STATE_FINALIZED:
        assert job.claimed_participations == job.total_participations, "NotFinalized"
    else:
        assert job.state == STATE_CANCELLED, "JobNotOpen"
    amount: uint256 = job.escrow - job.paid
    assert amount > 0, "NothingToWithdraw"
    self.jobs[job_id].paid = job.escrow
    self.escrow_held -= amount
    log Refunded(job_id=job_id, requester=msg.sender, amount=amount)
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"
    return amount


# @audit permissionless: evidence is checked on chain; any reporter is rewarded
@external
def report_double_sign(
    job_id: uint256,
    round: uint256,
    participant: address,
    commitment_a: bytes32,
    sig_a: Bytes[65],
    commitment_b: bytes32,
    sig_b: Bytes[65],
) -> uint256:
    """
    @notice Slash a participant that signed two different commitments for the same job and
            round (EIP-712 RoundCommitment). Half of what is slashed goes to the reporter.
    """
    job: Job = self._job(job_id)
    assert self.participant_index[job_id][participant] != 0, "NotParticipant"
    assert commitment_a != commitment_b, "InvalidEvidence"
    key: bytes32 = keccak256(abi_encode(job_id, round, participant))
    assert not self.evidence_used[key], "EvidenceAlreadyUsed"
    signer_a: address = self._recover(self._commitment_digest(job_id, round, commitment_a), sig_a)
    signer_b: address = self._recover(self._commitment_digest(job_id, round, commitment_b), sig_b)
    assert signer_a == participant and signer_b == participant, "InvalidEvidence"
    self.evidence_used[key] = True
    slashed: uint256 = extcall registry.slash(participant, job.params.min_stake, msg.sender)
    log DoubleSignSlashed(
        job_id=job_id, round=round, participant=participant, reporter=msg.sender, slashed=slashed
    )
    return slashed


@external
@view
def verify_inclusion(
    job_id: uint256,
    round: uint256,
    participant: address,
    commitment: bytes32,
    proof: DynArray[bytes32, MAX_PROOF],
) -> bool:
    """
    @notice True iff (participant, job_id, round, commitment) is a leaf of the round's
            commitment root under proof (sorted-pair Merkle tree, leaves 0x00-prefixed).
    """
    node: bytes32 = self._leaf_hash(abi_encode(participant, job_id, round, commitment))
    for sibling: bytes32 in proof:
        node = self._node_hash(node, sibling)
    return node == self.rounds[job_id][round].commitment_root


@external
@view
def commitment_digest(job_id: uint256, round: uint256, commitment: bytes32) -> bytes32:
    """
    @notice The EIP-712 digest a participant signs for its round commitment.
    """
    return self._commitment_digest(job_id, round, commitment)


@external
@view
def get_job(job_id: uint256) -> Job:
    return self._job(job_id)


@external
@view
def get_round(job_id: uint256, round: uint256) -> Round:
    return self.rounds[job_id][round]


@external
@view
def get_challenge(challenge_id: uint256) -> Challenge:
    assert challenge_id != 0 and challenge_id <= self.challenge_count, "UnknownChallenge"
    return self.challenges[challenge_id]


@external
@view
def participant_of(job_id: uint256, account: address) -> uint256:
    """
    @notice The account's bitmap index + 1 in the job, or 0 if it did not join.
    """
    return self.participant_index[job_id][account]


@external
@view
def reward_of(job_id: uint256, account: address) -> uint256:
    """
    @notice What claim_reward would pay account now (0 if nothing).
    """
    job: Job = self.jobs[job_id]
    slot: uint256 = self.participant_index[job_id][account]
    if job.state != STATE_FINALIZED or slot == 0 or self.claimed[job_id][account]:
        return 0
    return job.escrow * self._participations(job_id, slot - 1, job.rounds_done) // job.total_participations
