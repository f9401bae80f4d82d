"""TURN: coturn credentials (TURN REST scheme), ICE server lists, the coturn config."""
