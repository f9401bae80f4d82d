"""Switchboard kernel: settings, ids, tokens, Redis keyspace, embedded services, health, logs; cli.py composes the planes."""
