"""The Switchboard client SDK: speaks only the public protocols (HTTP, WebSocket, webhooks).

It imports no product package (an import-linter contract keeps it so): integrators install it alone.
"""
