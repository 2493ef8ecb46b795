"""Hedge execution: sizing, account set-up, sending legs, the two-leg state machine."""
