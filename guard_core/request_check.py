"""`RequestCheck`: the framework-free check every adapter runs on each request.

Order: exempt (`exempt_ips`, exempt paths and views, the shared allow list of
`Guard.allow_list`) -> a forwarding chain past its bound (refused) -> allow/deny lists -> ban ->
cloud blocks (if configured) -> user agents -> attack patterns (path, query, chosen
headers and the start of the body) -> rate limits -> auto-ban. A request whose peer is not
an IP address has no client address: the IP-based steps (ban, cloud, auto-ban) are skipped
and the decision says so in `notes`; rate limits then key on the route alone only when a
key function gives an identity, else they are skipped too. Nothing here answers 500 for a
strange peer.

Every block (ban, cloud, pattern, limit, auto-ban) goes to the agent handler (as a
`SecurityEvent`) and to the `guard_core.decision` logger at INFO, as one line of
`key=value` fields (`verdict=rate_limited action=blocked status=429 client=...`) with the
same fields in `record.guard_decision`. Passive mode does the same with `action=logged`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, cast

from guard_core._shared.addresses import IPAddress
from guard_core._shared.keys import ALL_ROUTES, UNMATCHED_ROUTE, route_endpoint, shared_route
from guard_core._shared.policy.check_settings import CheckSettings
from guard_core._shared.policy.client_address import address_in, group_address
from guard_core._shared.policy.rate_limit_rules import (
    Limit,
    RouteRule,
    key_of,
    limit_state,
    ratelimit_headers,
    retry_after,
)
from guard_core._shared.policy.request_body import body_texts
from guard_core._shared.policy.request_decoding import scan_texts
from guard_core._shared.policy.request_model import (
    Decision,
    LimitState,
    RequestInfo,
    Verdict,
    built,
)
from guard_core._shared.policy.security_headers import path_matches
from guard_core._shared.redaction import escape_control
from guard_core.models import SecurityEvent

from .guard import Guard

#: Behaviour-tracker endpoint id under which blocks count toward an auto-ban.
AUTO_BAN_COUNTER = "guard_auto_ban"
NO_CLIENT_NOTE = "peer is not an IP address: ban, cloud and auto-ban steps skipped"
LONG_CHAIN_REASON = "forwarding chain too long"

decision_logger = logging.getLogger("guard_core.decision")


class RequestCheck:
    """Judges requests with the subsystems of one `Guard`."""

    def __init__(self, guard: Guard, settings: CheckSettings | None = None) -> None:
        self.guard = guard
        self.settings = settings if settings is not None else CheckSettings()
        self._resolver = self.settings.resolver()
        self._exempt_networks = self.settings.exempt_networks()
        self._allowed = self.settings.allowed_networks()
        self._denied = self.settings.denied_networks()
        self._user_agents = self.settings.user_agent_patterns()
        self._rules = cast(Mapping[str, RouteRule], self.settings.rules)
        self._default_limits = self.settings.default_limit_list(
            guard.config.rate_limit, guard.config.rate_limit_window
        )
        #: (endpoint, limit, name suffix, cost) of the default limits, the same on every request
        self._default_plan: tuple[tuple[str, Limit, str | None, int], ...] = tuple(
            (route_endpoint(ALL_ROUTES, limit.window), limit, None, 1)
            for limit in self._default_limits
        )
        self._observer_failing = False
        self.logger = logging.getLogger("guard_core.checks")

    async def check(self, request: RequestInfo) -> Decision:
        """The decision on one request (then given to each of `settings.observers`)."""
        started = time.perf_counter()
        decision = await self._decide(request)
        if self.settings.observers:
            self._observe(decision, time.perf_counter() - started)
        return decision

    def _observe(self, decision: Decision, seconds: float) -> None:
        failed = False
        for observer in self.settings.observers:
            try:
                observer(decision, seconds)
            except Exception as exc:
                failed = True
                if not self._observer_failing:
                    self.logger.warning(
                        "A decision observer failed; it is called again on later requests: %s",
                        type(exc).__name__,
                    )
        self._observer_failing = failed

    async def _decide(self, request: RequestInfo) -> Decision:
        settings = self.settings
        address, refused = self._resolver.resolve_request(request.peer, request.headers)
        client = None if address is None else str(address)
        notes = () if address is not None else (NO_CLIENT_NOTE,)
        rule = self._rule_for(request)
        if (
            rule.exempt
            or any(path_matches(prefix, request.path) for prefix in settings.exempt_paths)
            # a refused chain's address is the proxy's: never exempt as such, or padding the
            # chain would make any client exempt behind an exempted proxy network
            or (
                not refused
                and address is not None
                and (
                    address_in(address, self._exempt_networks)
                    or self.guard.allow_list.is_allowed(address)
                )
            )
        ):
            return Decision(
                allowed=True,
                verdict="exempt",
                status=200,
                reason="exempt",
                headers={},
                client=client,
                notes=notes,
            )
        headers = self._security_headers_now(request.path)
        if headers is None:
            headers = await self.guard.headers.get_headers(request.path)
        if refused:  # `client` is the trusted proxy that forwarded the chain
            return await self._block(request, "denied", 403, LONG_CHAIN_REASON, headers, client)

        if address is not None:
            if (self._allowed and not address_in(address, self._allowed)) or (
                self._denied and address_in(address, self._denied)
            ):
                return await self._block(request, "denied", 403, "address denied", headers, client)
            bans = self.guard.ip_bans
            banned = bans.is_ip_banned_now(client or "")
            if banned is None:
                banned = await bans.is_ip_banned(client or "")
            if banned:
                return await self._block(request, "banned", 403, "IP banned", headers, client)
            providers = settings.block_cloud_providers
            if providers and await self.guard.cloud.is_cloud_ip(address, providers):
                return await self._block(
                    request, "cloud_blocked", 403, "cloud provider address", headers, client
                )

        if self._user_agents:
            agent = request.headers.get("user-agent", "")
            if agent and any(pattern.matches(agent) for pattern in self._user_agents):
                return await self._block(
                    request, "user_agent_blocked", 403, "user agent blocked", headers, client
                )

        if settings.detect_patterns:
            extra = tuple(request.headers.get(name, "") for name in settings.scan_headers)
            texts = scan_texts(request.path, request.query, extra)
            if request.body and settings.body_max_bytes:
                content_type = request.headers.get("content-type")
                texts += body_texts(request.body, content_type, settings.body_max_bytes)
            patterns = self.guard.patterns
            for text in texts:
                matches = patterns.detect_now(text)
                if matches is None:
                    matches = await patterns.detect(text)
                if matches:
                    categories = sorted({m.category for m in matches})
                    decision = await self._block(
                        request,
                        "attack_pattern",
                        403,
                        "suspicious request",
                        headers,
                        client,
                        extra={"categories": categories},
                    )
                    return await self._count_toward_ban(request, decision, address)

        states = await self._rate_limits(request, rule, address)
        headers.update(
            ratelimit_headers(
                states, ietf=settings.ratelimit_headers, x_headers=settings.x_ratelimit_headers
            )
        )
        blocking = [state for state in states if not state.allowed]
        if blocking:
            wait = max(state.reset for state in blocking)
            headers["Retry-After"] = str(retry_after(wait))
            decision = await self._block(
                request,
                "rate_limited",
                429,
                "too many requests",
                headers,
                client,
                states=states,
                extra={"policy": blocking[0].policy},
            )
            if not settings.auto_ban_on_rate_limit:
                return decision
            return await self._count_toward_ban(request, decision, address)
        return built(
            Decision,
            allowed=True,
            verdict="allowed",
            status=200,
            reason="allowed",
            headers=headers,
            client=client,
            rate_limits=states,
            enforced=True,
            notes=notes,
        )

    # -- steps -----------------------------------------------------------------------

    def _rule_for(self, request: RequestInfo) -> RouteRule:
        if isinstance(request.rule, RouteRule):
            return request.rule
        if request.route is not None:
            found = self._rules.get(request.route)
            if found is not None:
                return found
        return RouteRule()

    def _security_headers_now(self, path: str) -> dict[str, str] | None:
        """The security headers of `path`, or None when they must be awaited."""
        if not self.settings.security_headers:
            return {}
        return self.guard.headers.get_headers_now(path)

    async def _rate_limits(
        self, request: RequestInfo, rule: RouteRule, address: IPAddress | None
    ) -> tuple[LimitState, ...]:
        grouped = None if address is None else group_address(address, self.settings.ipv6_prefix)
        key = rule.key if rule.key is not None else self.settings.key
        identity = key_of(key, request, grouped)
        if identity is None:
            return ()  # no address and no other identity: nothing to count against
        plan = list(self._default_plan)
        own = rule.limits_for(request)
        if own:
            cost = rule.cost_of(request)
            if rule.scope is not None:
                route, scope = shared_route(rule.scope), rule.scope
            else:
                route = request.route if request.route is not None else UNMATCHED_ROUTE
                scope = "route"
            plan.extend((route_endpoint(route, limit.window), limit, scope, cost) for limit in own)
        limiter = self.guard.rate_limiter
        states: list[LimitState] = []
        names: set[str] = set()
        for endpoint, limit, suffix, hits in plan:
            result = limiter.check_now(
                identity, endpoint=endpoint, limit=limit.count, window=limit.window, cost=hits
            )
            if result is None:  # Redis is needed: nothing was counted yet
                result = await limiter.check(
                    identity, endpoint=endpoint, limit=limit.count, window=limit.window, cost=hits
                )
            name = limit.name
            if name in names and suffix is not None:
                name = f"{name}-{suffix}"  # the default limit holds the plain name
            names.add(name)
            states.append(
                limit_state(
                    limit,
                    remaining=result.remaining,
                    reset_after=result.reset_after,
                    allowed=result.allowed,
                    name=name,
                )
            )
        return tuple(states)

    async def _count_toward_ban(
        self, request: RequestInfo, decision: Decision, address: IPAddress | None
    ) -> Decision:
        threshold = self.settings.auto_ban_threshold
        if threshold is None or address is None:
            return decision
        exceeded = await self.guard.behavior.track_usage(
            AUTO_BAN_COUNTER,
            str(address),
            threshold=threshold,
            window=self.settings.auto_ban_window,
        )
        if not exceeded:
            return decision
        duration = self.settings.auto_ban_duration or self.guard.config.ip_ban_default_duration
        if not self.settings.passive:
            banned = await self.guard.ip_bans.ban_ip(
                str(address), duration, reason=f"auto-ban after {decision.verdict}"
            )
            if not banned:  # loopback is never banned
                return decision
        return await self._block(
            request,
            "auto_banned",
            decision.status,
            decision.reason,
            decision.headers,
            decision.client,
            states=decision.rate_limits,
            extra={"after": decision.verdict, "duration": duration},
        )

    # -- decisions and events ----------------------------------------------------------

    async def _block(
        self,
        request: RequestInfo,
        verdict: Verdict,
        status: int,
        reason: str,
        headers: dict[str, str],
        client: str | None,
        *,
        states: tuple[LimitState, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> Decision:
        passive = self.settings.passive
        decision = Decision(
            allowed=passive,
            verdict=verdict,
            status=status,
            reason=reason,
            headers=headers,
            client=client,
            rate_limits=states,
            enforced=not passive,
            notes=() if client is not None else (NO_CLIENT_NOTE,),
        )
        fields: dict[str, Any] = {
            "verdict": verdict,
            "action": "logged" if passive else "blocked",
            "status": status,
            "client": client or "-",
            "method": escape_control(request.method),
            "route": escape_control(request.route or request.path),
            **(extra or {}),
        }
        decision_logger.info(
            "guard decision %s",
            " ".join(f"{name}={_shown(value)}" for name, value in fields.items()),
            extra={"guard_decision": fields},
        )
        await self.guard.redis.send_event(
            SecurityEvent(
                event_type=verdict,
                action_taken="request_logged" if passive else "request_blocked",
                reason=reason,
                ip_address=client or "unknown",
                metadata=fields,
            )
        )
        return decision


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(escape_control(str(item)) for item in value)
    return escape_control(str(value))
