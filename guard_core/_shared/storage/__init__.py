"""The pure half of the storage layer: state held in memory (the outage journal, the memory
fallbacks, the ban mirror and verdict cache, the network index, outage windows), the
bookkeeping of write-backs and refreshes, and the Lua scripts (`lua/`)."""
