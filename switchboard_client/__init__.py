"""The Switchboard client SDK: speaks only the public protocols (HTTP, WebSocket, webhooks).

It imports no product package (an import-linter contract keeps it so): integrators install it alone.
docs/sdk.md shows it at work.
"""

from switchboard_client.api import ApiClient, Login, NodeToken, Room
from switchboard_client.call import Call, Incoming, invite, next_incoming
from switchboard_client.errors import ApiError, ClosedError, Disconnected, NodeError, SwitchboardError
from switchboard_client.events import EventStream
from switchboard_client.handshake import Hello
from switchboard_client.node import NodeClient
from switchboard_client.queue import RandomChat
from switchboard_client.show import Broadcast, Viewing, publish_show, tap_show, view_show
from switchboard_client.tap import CallTap, live_calls, tap_call

__all__ = [
    "ApiClient", "ApiError", "Broadcast", "Call", "CallTap", "ClosedError", "Disconnected", "EventStream", "Hello",
    "Incoming", "Login", "NodeClient", "NodeError", "NodeToken", "RandomChat", "Room", "SwitchboardError",
    "Viewing", "invite", "live_calls", "next_incoming", "publish_show", "tap_call", "tap_show", "view_show",
]
