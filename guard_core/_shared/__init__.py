"""Pure code that both faces import, written once and never generated.

Nothing here awaits or opens a connection: the async face (`guard_core`) and the generated
sync face (`guard_core_sync`) import these modules as they are. The tree follows the layers
of the faces, bottom up:

- here: what every layer uses (`keys`: every key and namespace; `validation`, `redaction`,
  `addresses`: IP parsing; `concurrency`: the paired primitives the generator maps one to
  the other; `logs`; `results`);
- `connection/`: URL parsing, the circuit breaker, auto-pipelining;
- `storage/`: the memory side of shared state (journal, memory fallbacks, the ban mirror,
  the network index, outage windows) and the Lua scripts;
- `policy/`: rules and their inputs (attack patterns, security headers, rate-limit rules,
  cloud ranges, request model and decoding, client address, check settings).

Private: import the public names from `guard_core` (or `guard_core_sync`) instead.
"""
