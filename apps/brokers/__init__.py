"""Broker clients (KIS Open API).

Everything under this package is ORM-free: persistence (access tokens) is injected through the
:class:`~apps.brokers.tokens.TokenStore` protocol, and shared state (rate limit, circuit
breaker, metrics) lives in Redis so that every process on every machine using one app key agrees.
"""
