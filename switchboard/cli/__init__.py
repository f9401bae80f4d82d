"""``switchboard``: the composition root, the only module that imports every plane.

    switchboard up                 everything in one process (embedded Redis/Postgres when no URLs)
    switchboard node               one node (signaling + SFU) against SWITCHBOARD_REDIS_URL
    switchboard node drain ID      move a node's clients to other nodes, then stop it
    switchboard nodes [--json]     the node registry: every live node and its load
    switchboard api [migrate]      the control API (or only its migrations)
    switchboard matchmaker         one matchmaker process
    switchboard config             the effective settings, secrets masked
    switchboard ledger check|reconcile   prove the credit ledger; compare it with Stripe
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvloop

from control_api.payments.commands import run_ledger_command
from switchboard.cli.assembly import need
from switchboard.cli.commands import cmd_api, cmd_config, cmd_drain, cmd_matchmaker, cmd_node, cmd_turn_config, cmd_up
from switchboard.errors import EmbeddedServiceError, PortInUse, SettingsError
from switchboard.logs import configure_logging
from switchboard.nodes import list_nodes
from switchboard.settings import load_settings
from switchboard_client.loadtest import add_arguments as add_loadtest_arguments
from switchboard_client.loadtest import main as run_loadtest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard realtime media server")
    parser.add_argument("--config", type=Path, help="TOML settings file (also $SWITCHBOARD_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="everything in one process, embedded Redis/Postgres when no URLs are set")
    up.add_argument("--stripe-emulator", action="store_true", help="run localstripe and point payments at it")
    node = sub.add_parser("node", help="one node: signaling WebSockets and the SFU; `node drain ID` drains one")
    node.add_argument("action", nargs="?", choices=["serve", "drain"], default="serve")
    node.add_argument("node_id", nargs="?", help="drain: the node's id (see `switchboard nodes`)")
    node.add_argument("--workers", type=int, help="SFU worker processes (default: one per core)")
    nodes = sub.add_parser("nodes", help="the node registry: every live node and its load")
    nodes.add_argument("--json", action="store_true", help="JSON instead of a table")
    api = sub.add_parser("api", help="the control API")
    api.add_argument("action", nargs="?", choices=["serve", "migrate"], default="serve")
    sub.add_parser("matchmaker", help="one matchmaker process")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    turn = sub.add_parser("turn", help="coturn: write its config for this deployment")
    turn.add_argument("action", choices=["config"])
    turn.add_argument("--out", type=Path, help="write here (mode 0600) instead of standard output")
    turn.add_argument("--allow-loopback", action="store_true", help="tests only: relay to loopback peers")
    ledger = sub.add_parser("ledger", help="the credit ledger: check its books, reconcile it with Stripe")
    ledger.add_argument("action", choices=["check", "reconcile"])
    ledger.add_argument("--days", type=int, default=90, help="reconcile: Stripe payments of the last N days")
    loadtest = sub.add_parser("loadtest", help="viewers and publishers of shows against any deployment (the SDK)")
    add_loadtest_arguments(loadtest)
    return parser


PORT_SETTING = {"up": "http.port", "node": "node.port", "api": "api.port", "matchmaker": "matchmaker.port"}
"""The setting that moves each command's listening port (named when the port is taken)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "loadtest":  # a client of any deployment: no server settings
        return run_loadtest(args)
    environ = dict(os.environ)
    if getattr(args, "workers", None) is not None:
        environ["SWITCHBOARD_NODE_WORKERS"] = str(args.workers)
    try:
        settings = load_settings(args.config, environ)
        configure_logging(settings.log)
        if args.command == "up":
            return cmd_up(settings, stripe_emulator=args.stripe_emulator)
        if args.command == "ledger":
            database_url = need(settings.database_url, "database_url")
            return uvloop.run(run_ledger_command(args.action, database_url, settings.payments, days=args.days))
        if args.command == "node" and args.action == "drain":
            return cmd_drain(settings, args.node_id)
        if args.command == "node":
            return cmd_node(settings)
        if args.command == "nodes":
            print(uvloop.run(list_nodes(need(settings.redis_url, "redis_url"), args.json)))
            return 0
        if args.command == "api":
            return cmd_api(settings, migrate_only=args.action == "migrate")
        if args.command == "matchmaker":
            return cmd_matchmaker(settings)
        if args.command == "turn":
            return cmd_turn_config(settings, args.out, args.allow_loopback)
        return cmd_config(settings)
    except (SettingsError, EmbeddedServiceError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except PortInUse as exc:
        key = exc.setting or PORT_SETTING.get(args.command, "http.port")
        env = "SWITCHBOARD_" + key.replace(".", "_").upper()
        print(f"switchboard: {exc}; choose another port with the setting {key} (e.g. {env}={exc.port + 1})",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

