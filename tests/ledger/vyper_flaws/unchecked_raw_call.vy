# pragma version 0.4.3
# Planted flaw: a failed payment is silently ignored (the flag is assigned, never tested).
# (Vyper itself refuses an unassigned raw_call with revert_on_failure=False.)
balances: HashMap[address, uint256]

@external
@payable
def deposit():
    self.balances[msg.sender] += msg.value

@external
@nonreentrant
def withdraw():
    amount: uint256 = self.balances[msg.sender]
    self.balances[msg.sender] = 0
    ok: bool = raw_call(msg.sender, b"", value=amount, revert_on_failure=False)
