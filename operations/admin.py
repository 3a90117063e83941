"""Dead letters in the admin: inspect, replay (with a cap) or discard."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from documents.paginators import EstimatedCountPaginator
from operations.badges import badge
from operations.confirm import confirm_when_many
from operations.dead_letters import dead_letters_discard, dead_letters_replay
from operations.models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = (
        "failed_at",
        "task_name",
        "status_badge",
        "replays",
        "short_exception",
        "replay_note",
    )
    list_filter = ("status", "task_name")
    search_fields = ("task_id", "task_name")
    readonly_fields = [field.name for field in DeadLetter._meta.fields]
    actions = ("replay", "discard")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, letter: DeadLetter) -> str:
        return badge(letter.status, letter.get_status_display())

    @admin.display(description="exception")
    def short_exception(self, letter: DeadLetter) -> str:
        return Truncator(letter.exception).chars(120)

    @admin.action(description="Replay the selected dead tasks", permissions=["change"])
    @confirm_when_many("Replay {count} {name}?")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        outcome = dead_letters_replay(letter_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Replayed {outcome.replayed} task(s).", messages.SUCCESS)
        if outcome.over_cap:
            cap = settings.DOCFLOW["DEAD_LETTER_MAX_REPLAYS"]
            self.message_user(
                request,
                f"{len(outcome.over_cap)} could not be replayed: already replayed {cap} times "
                "(DOCFLOW_DEAD_LETTER_MAX_REPLAYS). Fix the cause, then discard them.",
                messages.WARNING,
            )
        for error in outcome.errors:
            self.message_user(request, f"Could not replay {error}", messages.ERROR)

    @admin.action(description="Discard the selected dead tasks", permissions=["change"])
    @confirm_when_many("Discard {count} {name}?")
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        count = dead_letters_discard(letter_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Discarded {count} dead task(s).", messages.SUCCESS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.readonly_fields)
