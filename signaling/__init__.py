"""The node's WebSocket protocol: sessions, rooms, 1:1 call flows, presence, fan-out via Redis."""
