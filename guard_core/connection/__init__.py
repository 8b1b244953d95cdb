"""The connection to Redis: `RedisManager` (`manager.py`: keys, commands, the circuit
breaker, the connection budget, events) and the clients it builds (`client.py`: one
server, Sentinel or Cluster, chosen by the URL's scheme). The lowest layer of each face:
it imports nothing of the storage or the subsystems.
"""
