from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from analytics.views import dashboard
from operations.views import healthz, metrics, queues_page

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Staff only (admin_view): the admin's login, permissions and no-cache headers.
    path(
        "admin/analytics/dashboard/",
        admin.site.admin_view(dashboard),
        name="analytics-dashboard",
    ),
    path(
        "admin/operations/queues/",
        admin.site.admin_view(queues_page),
        name="operations-queues",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("operations.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]

# MEDIA_ROOT is never served, not even with DEBUG: usage reports live there and are downloaded
# through a view that checks permissions; uploads are only read by workers.
