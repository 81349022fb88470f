"""Fake exchange HTTP servers for offline tests, benchmarks and rehearsals.

Each server speaks enough of one exchange's REST API for the calls marginbot makes, over loopback, in
front of a paper world (`PaperExchange`): real ccxt code signs the requests and parses the answers, the
server checks the signatures, and the money moves inside the paper world, so a scenario can run against
the paper venue directly and through ccxt with the same outcome. Fault modes: 429 with Retry-After,
418, 5xx, a timeout after the effect, a timeout before it, a malformed answer, and lookups that answer
"not found" for a few polls.
"""
