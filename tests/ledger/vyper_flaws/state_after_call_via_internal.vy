# pragma version 0.4.3
# Planted flaw: the write after the call hides in an internal function, and a loop pays
# several recipients while updating storage.
balances: HashMap[address, uint256]
paid: public(uint256)

@internal
def _forget(who: address):
    self.balances[who] = 0

@external
@payable
def deposit():
    self.balances[msg.sender] += msg.value

@external
@nonreentrant
def withdraw():
    raw_call(msg.sender, b"", value=self.balances[msg.sender])
    self._forget(msg.sender)

@external
@nonreentrant
def pay_all(who: DynArray[address, 8]):
    assert msg.sender == empty(address)
    for w: address in who:
        self.paid += 1
        send(w, 1)
