"""The pure half of the connection layer: Redis URLs, the circuit breaker, auto-pipelining."""
