"""Profile enrichment on PostgreSQL: debounced requests, idempotent runs, admin and command."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from profiles import services
from profiles.models import CustomerProfile, EnrichmentStatus, Interaction
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile(organization) -> CustomerProfile:
    return CustomerProfile.objects.create(organization=organization, external_id="c-1", name="Ann")


@pytest.fixture
def published():
    with mock.patch.object(services, "_publish") as publish:
        yield publish


def say(profile: CustomerProfile, text: str, *, days_ago: float = 0, direction: str = "in"):
    return Interaction.objects.create(
        profile=profile,
        channel="chat",
        direction=direction,
        text=text,
        occurred_at=timezone.now() - timedelta(days=days_ago),
    )


def test_a_burst_of_messages_queues_one_enrichment(
    profile, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(50):
            say(profile, f"Message {index}: where is my parcel?")

    profile.refresh_from_db()
    assert profile.enrichment_status == EnrichmentStatus.QUEUED
    assert published.call_count == 1
    (task_name, jobs), kwargs = published.call_args
    assert task_name == "profiles.tasks.profile_enrich_task"
    assert jobs == [([profile.pk], profile.enrichment_task_id)]
    assert kwargs["countdown"] > 0


def test_enrichment_replaces_the_previous_result_and_runs_once_per_message(profile, published):
    say(profile, "I love this service, thank you so much!", days_ago=1)
    profile.refresh_from_db()

    assert services.profile_enrich(profile_id=profile.pk, task_id=profile.enrichment_task_id) == (
        "done"
    )
    assert services.profile_enrich(profile_id=profile.pk, task_id=profile.enrichment_task_id) == (
        "skipped"
    )

    profile.refresh_from_db()
    assert profile.enrichment_status == EnrichmentStatus.DONE
    assert profile.sentiment_label == "positive"
    assert profile.interaction_count == 1
    first_score = profile.sentiment_score

    say(profile, "This is terrible, awful, I am furious and want a refund.")
    profile.refresh_from_db()
    services.profile_enrich(profile_id=profile.pk, task_id=profile.enrichment_task_id)
    profile.refresh_from_db()
    assert profile.interaction_count == 2
    assert profile.sentiment_score < first_score


def test_a_request_during_a_run_queues_the_next_one(profile, published):
    say(profile, "Hello")
    profile.refresh_from_db()
    CustomerProfile.objects.filter(pk=profile.pk).update(
        enrichment_status=EnrichmentStatus.PROCESSING
    )

    assert services.profiles_request_enrichment(profile_ids=[profile.pk]) == 1
    assert services.profiles_request_enrichment(profile_ids=[profile.pk]) == 0


def test_admin_action_and_changelist(admin_client, profile, published):
    say(profile, "Thanks, all good.")

    response = admin_client.post(
        reverse("admin:profiles_customerprofile_changelist"),
        {"action": "enrich_selected", "_selected_action": [profile.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "were already queued" in response.content.decode()
    change = admin_client.get(reverse("admin:profiles_customerprofile_change", args=[profile.pk]))
    assert "Thanks, all good." in change.content.decode()


def test_enrich_profiles_command_selects_stale_ones(organization, published):
    fresh = CustomerProfile.objects.create(
        organization=organization, external_id="fresh", enriched_at=timezone.now()
    )
    stale = CustomerProfile.objects.create(
        organization=organization,
        external_id="stale",
        enriched_at=timezone.now() - timedelta(days=2),
    )
    out = StringIO()

    call_command("enrich_profiles", stale_hours=24, json=True, stdout=out)

    summary = json.loads(out.getvalue())
    assert (summary["selected"], summary["queued"]) == (1, 1)
    assert CustomerProfile.objects.get(pk=stale.pk).enrichment_status == "queued"
    assert CustomerProfile.objects.get(pk=fresh.pk).enrichment_status == "never"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_burst_is_enriched_by_one_or_two_runs_of_a_real_worker(
    celery_worker, organization, settings
):
    settings.DOCFLOW = {**settings.DOCFLOW, "ENRICH_DEBOUNCE_SECONDS": 1.0}
    profile = CustomerProfile.objects.create(organization=organization, external_id="burst")
    for index in range(200):
        say(profile, f"Order {index} arrived broken, I am not happy.")

    wait_for(
        lambda: CustomerProfile.objects.get(pk=profile.pk).enrichment_status == "done",
        timeout=60,
    )
    profile.refresh_from_db()
    assert profile.interaction_count == 200
    assert profile.enrichment_attempts in (1, 2)
    assert profile.sentiment_label == "negative"


def test_profile_page_shows_the_latest_interactions_newest_first(admin_client, profile):
    say(profile, "older message", days_ago=2)
    say(profile, "newer message", days_ago=1)

    body = admin_client.get(
        reverse("admin:profiles_customerprofile_change", args=[profile.pk])
    ).content.decode()

    assert body.index("newer message") < body.index("older message")
    assert f"?profile__id__exact={profile.pk}" in body


def test_the_nightly_re_enrichment_is_scheduled_by_migrate():
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.get(task="profiles.tasks.profiles_enrich_stale_task")
    assert (entry.queue, entry.crontab.hour, entry.crontab.minute) == ("scheduled", "2", "30")
    assert str(entry.crontab.timezone) == "UTC"
    assert json.loads(entry.kwargs) == {"stale_hours": 24}


def test_stale_profiles_are_queued_by_the_nightly_task(organization, published):
    from profiles.tasks import profiles_enrich_stale_task

    CustomerProfile.objects.create(
        organization=organization, external_id="fresh", enriched_at=timezone.now()
    )
    stale = CustomerProfile.objects.create(organization=organization, external_id="never")

    assert profiles_enrich_stale_task.apply(kwargs={"stale_hours": 24}).get() == 1
    assert CustomerProfile.objects.get(pk=stale.pk).enrichment_status == "queued"


def test_bulk_runs_enrich_batches_with_the_same_result_as_single_runs(
    organization, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    profiles = [
        CustomerProfile.objects.create(organization=organization, external_id=f"p{i}")
        for i in range(5)
    ]
    with mock.patch.object(services, "_publish"):
        for index, profile in enumerate(profiles[:4]):
            say(profile, "Great help, thank you!" if index % 2 else "Awful, still broken.")
    single = profiles[0]
    single.refresh_from_db()
    services.profile_enrich(profile_id=single.pk, task_id=single.enrichment_task_id)
    single.refresh_from_db()
    CustomerProfile.objects.update(enrichment_status="done")

    with (
        mock.patch.object(services, "_publish") as publish,
        django_capture_on_commit_callbacks(execute=True),
    ):
        queued = services.profiles_request_enrichment(
            profile_ids=[p.pk for p in profiles], countdown=0, batch_size=3
        )
    (task_name, jobs), _ = publish.call_args
    assert task_name == "profiles.tasks.profiles_enrich_batch_task"
    batches = [(ids, task_id) for (ids,), task_id in jobs]
    assert queued == 5
    assert [len(ids) for ids, _ in batches] == [3, 2]

    with django_assert_max_num_queries(2 * 9):  # a fixed handful per batch, none per row
        done = [
            services.profiles_enrich_batch(profile_ids=ids, task_id=task_id)
            for ids, task_id in batches
        ]

    assert done == [3, 2]
    again = services.profiles_enrich_batch(profile_ids=batches[0][0], task_id=batches[0][1])
    assert again == 0  # a second delivery finds nothing to claim
    rebatched = CustomerProfile.objects.get(pk=single.pk)
    assert (rebatched.sentiment_score, rebatched.segment, rebatched.top_topics) == (
        single.sentiment_score,
        single.segment,
        single.top_topics,
    )
    silent = CustomerProfile.objects.get(pk=profiles[4].pk)
    assert (silent.enrichment_status, silent.segment, silent.interaction_count) == (
        "done",
        "new",
        0,
    )


def test_a_failing_batch_marks_its_profiles_failed_instead_of_processing(
    organization, django_capture_on_commit_callbacks
):
    from profiles.tasks import profiles_enrich_batch_task

    profiles = [
        CustomerProfile.objects.create(organization=organization, external_id=f"f{i}")
        for i in range(3)
    ]
    with (
        mock.patch.object(services, "_publish") as publish,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.profiles_request_enrichment(
            profile_ids=[p.pk for p in profiles], countdown=0, batch_size=10
        )
    (((ids,), task_id),) = publish.call_args.args[1]

    with mock.patch.object(services, "enrich", side_effect=ValueError("boom")):
        result = profiles_enrich_batch_task.apply(args=[ids], task_id=task_id)

    assert result.failed()
    statuses = set(CustomerProfile.objects.values_list("enrichment_status", "enrichment_error"))
    assert statuses == {
        ("failed", "Unexpected error (ValueError: boom). This is a bug; report it.")
    }
