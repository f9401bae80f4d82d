"""Webhooks to integrators: endpoints, the outbox of events, signed deliveries retried with backoff.

Sources write an event with :func:`control_api.webhooks.outbox.record` in the transaction of their
own change (or, for the nodes' facts, the events consumer with the node's event id); the
:class:`~control_api.webhooks.dispatcher.Dispatcher` delivers it to every endpoint that asked for its
type. See docs/webhooks.md.
"""
