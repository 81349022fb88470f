"""Live venues: ccxt exchange clients behind the same ports as the paper venue."""
