# pragma version 0.4.3
# Planted flaw: anyone may change the fee and the owner; tx.origin is used for auth.
owner: public(address)
fee: public(uint256)

@deploy
def __init__():
    self.owner = msg.sender

@external
def set_fee(fee: uint256):
    self.fee = fee

@external
def set_owner(new_owner: address):
    assert tx.origin == self.owner
    self.owner = new_owner
