"""The log mailer writes one line per mail: the text log format keeps the mailed code on the prefixed line."""

from __future__ import annotations

import io
import logging

from control_api.mail import LogMailer
from switchboard.logs import configure_logging
from switchboard.settings import LogSettings


async def test_a_mailed_code_is_on_the_one_log_line_of_its_mail() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(LogSettings(format="text", level="INFO"), stream)
        await LogMailer().send("you@example.com", "Verify your email",
                               "Use the code 123456 to verify your email. It expires in 30 minutes.\n\nSwitchboard")
    finally:
        root.handlers[:], root.level = handlers, level
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "mail to you@example.com: Verify your email: Use the code 123456" in lines[0]
    assert lines[0].endswith("/ Switchboard")
