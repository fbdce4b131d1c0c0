"""`payment-platform bench`: the platform's throughput, latency and memory against its ceilings, on this machine.

Every figure comes from the real broker and the real MariaDB, next to what the same hardware can do
with no platform code at all (plain consume, plain bulk insert) and what a naive per-message consumer
does, so a number is read against what is possible here rather than in the abstract.
"""
