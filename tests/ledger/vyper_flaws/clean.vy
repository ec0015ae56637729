# pragma version 0.4.3
# The same features written correctly: no finding expected.
owner: public(address)
fee: public(uint256)
balances: HashMap[address, uint256]
paid: public(uint256)

@deploy
def __init__():
    self.owner = msg.sender

@internal
def _only_owner():
    assert msg.sender == self.owner, "NotAuthorized"

@external
def set_fee(fee: uint256):
    self._only_owner()
    self.fee = fee

# @audit permissionless: anyone may fund their own balance
@external
@payable
def deposit():
    self.balances[msg.sender] += msg.value

# @audit permissionless: anyone may tip the contract
@external
@payable
def tip():
    self.paid += msg.value

@external
@nonreentrant
def withdraw():
    amount: uint256 = self.balances[msg.sender]
    self.balances[msg.sender] = 0
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
    assert ok, "TransferFailed"

@external
@nonreentrant
def withdraw_or_keep(keep: bool):
    if keep:
        self.balances[msg.sender] += 0
    else:
        amount: uint256 = self.balances[msg.sender]
        self.balances[msg.sender] = 0
        send(msg.sender, amount)
