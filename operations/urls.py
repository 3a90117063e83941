from django.urls import path

from operations import api

app_name = "api"
urlpatterns = [
    path("tasks/<str:task_id>", api.TaskDetail.as_view(), name="task"),
    path("queues", api.Queues.as_view(), name="queues"),
    path("documents", api.DocumentList.as_view(), name="documents"),
    path("documents/<int:document_id>", api.DocumentDetail.as_view(), name="document"),
]
