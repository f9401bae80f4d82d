"""Switchboard kernel: settings, ids, tokens, Redis keyspace, embedded services, health, logs.

``switchboard.cli`` is the composition root that puts the planes together.
"""
