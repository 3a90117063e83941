"""Operations pages: "Queues and workers" in the admin (/admin/operations/queues/), the
health check (/healthz) and Prometheus metrics (/metrics)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from operations.metrics import DocflowCollector
from operations.queues import queue_stats
from operations.services import health_check


def queues_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("documents.view_document"):
        raise PermissionDenied
    return TemplateResponse(
        request,
        "admin/operations/queues.html",
        {
            **admin.site.each_context(request),
            "title": "Queues and workers",
            "stats": queue_stats(timeout=1.0),
        },
    )


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and orchestrators: 200 when healthy, 503 otherwise, no auth."""
    health = health_check()
    return JsonResponse(health.as_dict(), status=200 if health.healthy else 503)


_registry = CollectorRegistry(auto_describe=False)
_registry.register(DocflowCollector())


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; with DOCFLOW_METRICS_TOKEN set, scrapers send it as a bearer
    token."""
    token = settings.DOCFLOW["METRICS_TOKEN"]
    if token and not constant_time_compare(
        request.headers.get("Authorization", ""), f"Bearer {token}"
    ):
        return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
