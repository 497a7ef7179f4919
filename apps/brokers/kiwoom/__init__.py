"""Kiwoom Securities REST API + WebSocket client (kiwoom-api.md Part A)."""
