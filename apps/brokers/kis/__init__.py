"""KIS (한국투자증권) REST client. See /work/shared/reference/kis-api.md for the protocol."""
