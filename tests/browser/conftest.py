"""Headless Chromium (Debian's package) driven by Playwright, against a live Django server and
the real worker. Skipped where Chromium is missing, except in CI, where it is installed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test.utils import override_settings
from pytest_django.live_server_helper import LiveServer

CHROMIUM = os.environ.get("DOCFLOW_CHROMIUM") or shutil.which("chromium")
PASSWORD = "pw-browser-12345"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("CI runs the browser tests: install Debian's chromium (.ci/run does)")
        pytest.skip("browser tests need Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the tests' ORM calls around it
    # are still synchronous. Only while these tests run: later subprocesses (check --deploy)
    # must not inherit it.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """A live server built with plain HTTP settings (its middleware reads them at start)."""
    plain_http = override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    )
    plain_http.enable()
    live = LiveServer("localhost")
    live._live_server_modified_settings.enable()
    yield live
    live._live_server_modified_settings.disable()
    live.stop()
    plain_http.disable()


@pytest.fixture
def admin_page(browser: Any, server: LiveServer, django_user_model: Any) -> Iterator[Any]:
    """A page logged in to the admin as a superuser."""
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}/admin/")
    page.base = server.url
    yield page
    context.close()


def screenshot(page: Any, name: str) -> None:
    """Saved when DOCFLOW_SCREENSHOTS names a folder (`make screenshots`: docs/screenshots)."""
    folder = os.environ.get("DOCFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
