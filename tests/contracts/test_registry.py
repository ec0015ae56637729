"""Registry: every external function and every revert path."""

from __future__ import annotations

import boa

from chainml.crypto import Identity, keccak256
from chainml.crypto.keys import pop_digest

from .conftest import ETHER, MIN_VALIDATOR_STAKE, UNBONDING, funded, register


def test_pop_digest_matches_the_python_side(system):
    ident = Identity.generate()
    ours = pop_digest(
        boa.env.evm.patch.chain_id,
        system.registry.address,
        ident.address,
        ident.x25519.public_bytes,
    )
    assert system.registry.pop_digest(ident.address, ident.x25519.public_bytes) == ours


def test_register_and_its_reverts(system):
    reg = system.registry
    a = funded()
    digest = reg.pop_digest(a.address, a.x25519.public_bytes)
    pop = a.account.sign_digest(digest)
    with boa.env.prank(a.address):
        with boa.reverts("InvalidParameter"):
            reg.register(a.x25519.public_bytes, pop, 0, "x")
        with boa.reverts("InvalidParameter"):
            reg.register(a.x25519.public_bytes, pop, 64, "x")
        with boa.reverts("InvalidParameter"):
            reg.register(b"\0" * 32, pop, 2, "x")
        with boa.reverts("InvalidProofOfPossession"):
            reg.register(a.x25519.public_bytes, pop[:64], 2, "x")
        with boa.reverts("InvalidProofOfPossession"):
            reg.register(Identity.generate().x25519.public_bytes, pop, 2, "x")
        n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
        s = int.from_bytes(pop[32:64], "big")
        twin = pop[:32] + (n - s).to_bytes(32, "big") + bytes([55 - pop[64]])
        with boa.reverts("InvalidProofOfPossession"):  # the malleable twin
            reg.register(a.x25519.public_bytes, twin, 2, "x")
        with boa.reverts("InvalidProofOfPossession"):
            reg.register(a.x25519.public_bytes, pop[:64] + b"\x05", 2, "x")
        reg.register(a.x25519.public_bytes, pop, 2 | 8, "http://a", value=2 * ETHER)
        with boa.reverts("AlreadyRegistered"):
            reg.register(a.x25519.public_bytes, pop, 2, "x")
    assert reg.is_registered(a.address)
    assert reg.stake_of(a.address) == 2 * ETHER == reg.total_staked()
    assert reg.validators(0) == a.address and reg.validator_count() == 1
    b = funded()
    stolen = a.account.sign_digest(reg.pop_digest(b.address, b.x25519.public_bytes))
    with boa.env.prank(b.address), boa.reverts("InvalidProofOfPossession"):
        reg.register(b.x25519.public_bytes, stolen, 2, "x")  # signed by someone else


def test_rotate_key_and_endpoint(system):
    reg, a = system.registry, funded()
    new = Identity.generate().x25519
    with boa.env.prank(a.address):
        with boa.reverts("NotRegistered"):
            reg.set_endpoint("y")
        with boa.reverts("NotRegistered"):
            reg.rotate_key(new.public_bytes, b"\0" * 65)
    register(reg, a)
    pop = a.account.sign_digest(reg.pop_digest(a.address, new.public_bytes))
    with boa.env.prank(a.address):
        with boa.reverts("InvalidParameter"):
            reg.rotate_key(b"\0" * 32, pop)
        with boa.reverts("InvalidProofOfPossession"):
            reg.rotate_key(new.public_bytes, b"\1" * 65)
        reg.rotate_key(new.public_bytes, pop)
        reg.set_endpoint("https://b.example:8443")
    ident = reg.identities(a.address)
    assert ident.x25519_key == new.public_bytes and ident.endpoint == "https://b.example:8443"


def test_stake_unbond_withdraw(system):
    reg, a = system.registry, funded()
    with boa.env.prank(a.address), boa.reverts("NotRegistered"):
        reg.stake(value=1)
    register(reg, a, stake=0)
    with boa.env.prank(a.address):
        with boa.reverts("ZeroAmount"):
            reg.stake(value=0)
        reg.stake(value=3 * ETHER)
        with boa.reverts("ZeroAmount"):
            reg.request_unbond(0)
        with boa.reverts("InsufficientStake"):
            reg.request_unbond(4 * ETHER)
        with boa.reverts("NothingToWithdraw"):
            reg.withdraw()
        reg.request_unbond(ETHER)
        with boa.reverts("UnbondingNotReady"):
            reg.withdraw()
        boa.env.time_travel(seconds=UNBONDING)
        before = boa.env.get_balance(a.address)
        reg.withdraw()
    assert boa.env.get_balance(a.address) == before + ETHER
    assert reg.stake_of(a.address) == 2 * ETHER and reg.unbonding_of(a.address) == 0
    assert boa.env.get_balance(reg.address) == reg.total_staked() + reg.total_unbonding()


def test_slasher_is_set_once_by_the_deployer(system):
    reg = system.registry
    stranger = boa.env.generate_address()
    with boa.env.prank(stranger), boa.reverts("NotAuthorized"):
        reg.set_slasher(stranger)
    with boa.env.prank(system.owner), boa.reverts("AlreadyFinalized"):
        reg.set_slasher(stranger)
    with boa.env.prank(stranger), boa.reverts("NotAuthorized"):
        reg.slash(stranger, 1, stranger)


def test_slash_takes_active_then_unbonding_never_more_than_stake():
    from .conftest import deployer

    owner = boa.env.generate_address()
    slasher = boa.env.generate_address()
    with boa.env.prank(owner):
        reg = deployer("Registry").deploy(UNBONDING, MIN_VALIDATOR_STAKE)
        reg.set_slasher(slasher)
    a, reporter = funded(), boa.env.generate_address()
    register(reg, a, stake=3 * ETHER)
    with boa.env.prank(a.address):
        reg.request_unbond(ETHER)
    with boa.env.prank(slasher):
        assert reg.slash(a.address, 2 * ETHER + 10, reporter) == 2 * ETHER + 10
        assert reg.stake_of(a.address) == 0 and reg.unbonding_of(a.address) == ETHER - 10
        assert reg.slash(a.address, 100 * ETHER, reporter) == ETHER - 10  # capped at what is left
        assert reg.slash(a.address, ETHER, reporter) == 0
    assert reg.rewards_owed(reporter) == (3 * ETHER) // 2
    assert reg.slashed_pool() == 3 * ETHER - (3 * ETHER) // 2
    assert boa.env.get_balance(reg.address) == (
        reg.total_staked() + reg.total_unbonding() + reg.slashed_pool() + reg.total_rewards_owed()
    )
    with boa.env.prank(reporter):
        assert reg.claim_slash_reward() == (3 * ETHER) // 2
        with boa.reverts("NothingToWithdraw"):
            reg.claim_slash_reward()
    assert boa.env.get_balance(reporter) == (3 * ETHER) // 2 and reg.total_rewards_owed() == 0


def test_committee_is_stake_weighted_distinct_and_deterministic(system):
    reg = system.registry
    validators = [funded() for _ in range(6)]
    for i, v in enumerate(validators):
        register(reg, v, roles=8, stake=(i + 1) * ETHER)
    small = funded()
    register(reg, small, roles=8, stake=MIN_VALIDATOR_STAKE // 2)  # below the minimum
    trainer = funded()
    register(reg, trainer, roles=2, stake=50 * ETHER)  # not a validator
    counts = {v.address: 0 for v in validators}
    for k in range(300):
        c = reg.committee(keccak256(k.to_bytes(4, "big")), 3)
        assert len(c) == len(set(c)) == 3
        assert small.address not in c and trainer.address not in c
        for a in c:
            counts[a] += 1
    assert reg.committee(b"\1" * 32, 3) == reg.committee(b"\1" * 32, 3)
    assert len(reg.committee(b"\1" * 32, 32)) == 6
    # heavier stake, chosen more often (6 ETH vs 1 ETH)
    assert counts[validators[5].address] > 2 * counts[validators[0].address]
    assert reg.eligible_stake(trainer.address) == 0
    assert reg.eligible_stake(small.address) == 0
    assert reg.eligible_stake(validators[2].address) == 3 * ETHER


def test_committee_is_empty_without_validators(system):
    assert system.registry.committee(b"\2" * 32, 5) == []


def test_the_validator_set_is_bounded(system):
    reg = system.registry
    for _ in range(128):
        register(reg, funded(2), roles=8, stake=0)
    late = funded()
    digest = reg.pop_digest(late.address, late.x25519.public_bytes)
    with boa.env.prank(late.address), boa.reverts("ValidatorSetFull"):
        reg.register(late.x25519.public_bytes, late.account.sign_digest(digest), 8, "x")
    register(reg, late, roles=2)  # other roles are still welcome
