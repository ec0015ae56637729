# pragma version 0.4.3
# Planted flaw: the balance is zeroed after the payment (the classic reentrancy).
balances: HashMap[address, uint256]

@external
@payable
def deposit():
    self.balances[msg.sender] += msg.value

@external
@nonreentrant
def withdraw():
    amount: uint256 = self.balances[msg.sender]
    raw_call(msg.sender, b"", value=amount)
    self.balances[msg.sender] = 0
