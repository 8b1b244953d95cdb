"""The pure half of the policy layer: rules and what they read (attack patterns, security
headers, rate-limit rules and keys, cloud ranges, the request model, decoding and client
address, check settings)."""
