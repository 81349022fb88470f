"""The imperative shell: the cycle loop, the executor (intents -> venue calls), reconciliation, clocks."""
