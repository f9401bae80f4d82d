"""Browser fixtures: one ``switchboard up`` per test module, one Chromium per test, one context
(its own storage) per page, and on failure a screenshot and the console of every page, plus the
server's output, in ``test-output/browser/<test>/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, chromium_args, launch, up_on_fresh_data

PHONE = {"width": 390, "height": 844}
"""Pages open at phone width: the layout must hold there."""
PAGE_TIMEOUT_MS = 30_000
"""Every wait on a page is bounded by this unless the test says less."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def up_env() -> dict[str, str]:
    """Extra environment for the module's ``switchboard up`` (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def up(up_env: dict[str, str]) -> Iterator[Up]:
    with up_on_fresh_data("switchboard-browser-", up_env) as server:
        yield server


# Module scope: Playwright's driver and loop are gone before the async tests of later modules run.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright import sync_api as pw_sync

    from tests.conftest import missing_system_dependency

    problem = missing_system_dependency("chromium")
    if problem:
        pytest.fail(problem, pytrace=False)
    manager = pw_sync.sync_playwright().start()
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def launch_args(playwright: Any) -> tuple[list[str], list[str]]:
    return chromium_args(playwright)


@dataclass
class Pages:
    """The pages of one test, by name; ``open`` logs a user in (sessionStorage) and loads a path."""

    up: Up
    browser: Any
    pages: dict[str, Any] = field(default_factory=dict)
    console: dict[str, list[str]] = field(default_factory=dict)

    def open(self, name: str, path: str, login: dict[str, Any] | None, script: str = "") -> Any:
        """``script`` runs in the page before its own (e.g. to take the camera away)."""
        context = self.browser.new_context(viewport=PHONE, base_url=self.up.base)
        if script:
            context.add_init_script(script)
        if login is not None:
            auth = {k: login[k] for k in ("access_token", "refresh_token", "user_id")}
            context.add_init_script(
                f"if (!sessionStorage.getItem('switchboard.auth')) "
                f"sessionStorage.setItem('switchboard.auth', {_js(auth)});")
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        lines = self.console.setdefault(name, [])
        page.on("console", lambda msg: lines.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: lines.append(f"pageerror: {exc}"))
        page.goto(path)
        self.pages[name] = page
        return page

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, page in self.pages.items():
            try:
                page.screenshot(path=str(folder / f"{name}.png"), full_page=True, timeout=5_000)
            except Exception as exc:  # a crashed page must not hide the other screenshots
                (folder / f"{name}.screenshot-error.txt").write_text(str(exc))
        for name, lines in self.console.items():
            (folder / f"{name}.console.txt").write_text("\n".join(lines))
        (folder / "up.log").write_text(self.up.output()[-200_000:])


def _js(value: dict[str, Any]) -> str:
    import json

    return json.dumps(json.dumps(value))


@pytest.fixture
def pages(request: pytest.FixtureRequest, playwright: Any, launch_args: tuple[list[str], list[str]],
          up: Up) -> Iterator[Pages]:
    # Every `expect` waits as long as a page action may (Playwright's own default is 5 s: a loaded CI
    # box took longer than that to connect two browsers through the SFU).
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    browser = launch(playwright, *launch_args)
    opened = Pages(up, browser)
    try:
        yield opened
    finally:
        if request.node.stash.get(_FAILED, True):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            opened.save(Path(request.config.rootpath) / "test-output" / "browser" / safe)
        browser.close()
