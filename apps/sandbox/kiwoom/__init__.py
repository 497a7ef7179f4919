"""The Kiwoom REST/WebSocket side of the sandbox broker (kiwoom-api.md Part A) over the shared replay."""
