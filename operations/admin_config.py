"""Django's admin app, on Docflow's site (apart from operations.apps: Django would take either
config in one module for the default of `operations`)."""

from django.contrib.admin.apps import AdminConfig


class DocflowAdminConfig(AdminConfig):
    """Django's admin, on a site whose index shows what needs attention."""

    default_site = "operations.admin_site.DocflowAdminSite"
