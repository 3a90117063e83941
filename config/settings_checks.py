"""Refusals at start-up: a web process never serves production with development values."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def check_production_secret_key() -> None:
    """With DEBUG off, SECRET_KEY must come from the environment (sessions, CSRF, signing)."""
    if not settings.DEBUG and settings.SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "SECRET_KEY is the development default while DEBUG is false: set SECRET_KEY in "
            "the environment (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
