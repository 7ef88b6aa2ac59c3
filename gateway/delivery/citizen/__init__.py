"""What is sent back to the citizen: the case code by e-mail reply or SMS, through the
outbox like any delivery (docs/citizen.md)."""
