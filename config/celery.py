"""The Celery application: `celery -A config worker` / `celery -A config beat`.

All configuration lives in Django settings under the CELERY_ namespace.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("docflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


def warn_when_inline() -> None:
    """Say once, loudly, that there is no broker: work then runs in the calling process."""
    if app.conf.task_always_eager:
        logger.warning("CELERY_BROKER_URL is not set: tasks run inline, in the calling process.")


@after_setup_logger.connect
def _log_inline_mode(**_: object) -> None:
    warn_when_inline()
