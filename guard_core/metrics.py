"""Prometheus metrics of the request check (the `[metrics]` extra: `prometheus_client`).

    from guard_core.metrics import PrometheusMetrics
    app.add_middleware(GuardMiddleware, config=..., observers=(PrometheusMetrics(),))

Pure apart from `prometheus_client`; one instance serves both faces. Exposes:

- `guard_core_decisions_total{verdict, action}`: requests judged, by verdict (`allowed`,
  `exempt`, `banned`, `cloud_blocked`, `attack_pattern`, `rate_limited`, `auto_banned`) and
  action (`allowed`, `blocked`, or `logged` in passive mode);
- `guard_core_check_seconds{outcome}`: time the check took, in seconds, by outcome
  (`allowed` or `blocked`, passive findings counted as allowed).

Serve them as usual with prometheus_client (`make_asgi_app()`, `make_wsgi_app()`,
`start_http_server()`).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from guard_core._shared.policy.request_model import Decision

#: Seconds: a check answers in well under a millisecond from memory, a few with Redis.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PrometheusMetrics:
    """An observer for `CheckSettings(observers=...)` that updates Prometheus metrics.

    Metrics are registered in `registry` (the default registry when None); make one
    instance per registry (registering twice raises, as prometheus_client does).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = "guard_core"
    ) -> None:
        target = registry if registry is not None else REGISTRY
        self.decisions = Counter(
            "decisions",
            "Requests judged by guard-core, by verdict and action",
            ["verdict", "action"],
            namespace=namespace,
            registry=target,
        )
        self.check_seconds = Histogram(
            "check_seconds",
            "Time guard-core's request check took, in seconds",
            ["outcome"],
            namespace=namespace,
            registry=target,
            buckets=BUCKETS,
        )

    def __call__(self, decision: Decision, seconds: float) -> None:
        if decision.verdict in ("allowed", "exempt"):
            action = "allowed"
        else:
            action = "blocked" if decision.enforced else "logged"
        self.decisions.labels(verdict=decision.verdict, action=action).inc()
        outcome = "allowed" if decision.allowed else "blocked"
        self.check_seconds.labels(outcome=outcome).observe(seconds)
