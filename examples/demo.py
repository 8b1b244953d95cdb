"""guard-core in one screen: `python examples/demo.py` tells the same story as `make demo`.

Instance A (async face) and instance B (sync face) share a rate limit and bans through a
throwaway redis-server, keep protecting while it is down, and write back what they hold when
it comes back empty. The story lives in `guard_core/cli/demo.py`; it needs no extra.
"""

from guard_core.cli.demo import run_demo

if __name__ == "__main__":
    run_demo()
