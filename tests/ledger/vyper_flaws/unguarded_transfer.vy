# pragma version 0.4.3
# Planted flaw: value leaves the contract with no reentrancy guard.
balances: HashMap[address, uint256]

@external
@payable
def deposit():
    self.balances[msg.sender] += msg.value

@external
def withdraw():
    amount: uint256 = self.balances[msg.sender]
    self.balances[msg.sender] = 0
    send(msg.sender, amount)
