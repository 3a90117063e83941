from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """What operators and scripts use: the JSON API, queue and worker figures."""

    name = "operations"
    default_auto_field = "django.db.models.BigAutoField"
