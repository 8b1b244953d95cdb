"""The six subsystems, policy only: rate limits, IP bans, attack patterns, security headers,
cloud ranges and behaviour tracking. What they store lives in `storage/`;
`redis_handler.py` keeps `RedisManager` at the path the seed documents."""
