"""Item 12 of issue 12 (admin part): the first-run admin password is shown only on a terminal;
output that is a pipe or a file (logs) names the 0600 file that holds it instead."""

from __future__ import annotations

from pathlib import Path

from control_api.accounts import AdminLogin
from switchboard.cli.commands import admin_login_line

LOGIN = AdminLogin(email="admin@switchboard.local", password="s3cret-first-run")
SAVED = Path("/srv/switchboard/var/secrets/admin_login")


def test_a_log_never_holds_the_admin_password() -> None:
    line = admin_login_line(LOGIN, SAVED, terminal=False)
    assert LOGIN.password not in line
    assert LOGIN.email in line and str(SAVED) in line


def test_a_person_at_a_terminal_sees_it_once() -> None:
    line = admin_login_line(LOGIN, SAVED, terminal=True)
    assert f"{LOGIN.email} / {LOGIN.password}" in line and str(SAVED) in line
