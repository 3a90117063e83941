from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from config.celery import warn_when_inline

        from . import checks, lookups, signals  # noqa: F401  (receivers, checks, lookups)

        warn_when_inline()
