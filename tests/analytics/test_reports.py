"""Usage reports: totals read back from the PDF and CSV, the command, the admin action."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pymupdf
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from analytics import services
from analytics.models import Granularity, ReportStatus, Scope, Snapshot, UsageReport
from tests.analytics.conftest import World

pytestmark = pytest.mark.django_db

MARCH = date(2026, 3, 1)
APRIL_2ND = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def pdf_text(content: bytes) -> str:
    with pymupdf.open(stream=content, filetype="pdf") as pdf:
        return "\n".join(page.get_text() for page in pdf)


def test_the_pdf_has_the_period_each_agent_and_the_right_totals(world: World) -> None:
    content = services.usage_report_render(
        organization=world.acme, month=MARCH, fmt="pdf", now=APRIL_2ND
    )

    text = pdf_text(content)
    assert "Usage report: Acme" in text
    assert "March 2026" in text
    for name in ("Support", "Sales"):
        assert name in text
    assert "Helper" not in text  # Beta's agent
    # Support in March: 4 uploaded, 3 processed (one finished at 15:02), 1 failed,
    # 9 pages, 12 chunks, 3 interactions and 1,300 tokens.
    assert "1,300" in text
    # The report is per agent: the 50 tokens of an interaction without an agent are in no row.
    assert "1,350" not in text


def test_the_csv_is_one_header_row_and_one_row_per_agent_and_day(world: World) -> None:
    content = services.usage_report_render(
        organization=world.acme, month=MARCH, fmt="csv", now=APRIL_2ND
    )

    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [(r["date"], r["agent_slug"]) for r in rows] == [
        ("2026-03-10", "sales"),
        ("2026-03-10", "support"),
    ]
    support = rows[1]
    assert {k: support[k] for k in ("documents_uploaded", "documents_processed", "pages")} == {
        "documents_uploaded": "4",
        "documents_processed": "3",
        "pages": "9",
    }
    assert (support["chunks"], support["interactions"], support["tokens_used"]) == (
        "12",
        "3",
        "1300",
    )
    assert rows[0]["documents_failed"] == "1"
    # Rendering filled the month's complete days, once.
    days = Snapshot.objects.filter(granularity=Granularity.DAILY, scope=Scope.SYSTEM)
    assert days.count() == 31


def test_a_requested_report_is_queued_after_commit_and_written_by_its_task(
    world: World, django_capture_on_commit_callbacks, settings, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks() as callbacks:
        (report,) = services.usage_reports_request(
            organization_ids=[world.acme.pk], month=MARCH, formats=["pdf"]
        )
    assert len(callbacks) == 1
    assert report.status == ReportStatus.QUEUED

    name = services.usage_report_generate(report_id=report.pk, task_id=report.task_id)
    again = services.usage_report_generate(report_id=report.pk, task_id=report.task_id)

    report.refresh_from_db()
    assert report.status == ReportStatus.DONE
    assert report.file.name == name
    assert again is None  # a second delivery finds nothing to claim
    with report.file.open("rb") as stored:
        assert "Usage report: Acme" in pdf_text(stored.read())


def test_regenerating_replaces_the_file_and_a_stale_task_changes_nothing(
    world: World, django_capture_on_commit_callbacks, settings, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks():
        (first,) = services.usage_reports_request(
            organization_ids=[world.acme.pk], month=MARCH, formats=["csv"]
        )
    services.usage_report_generate(report_id=first.pk, task_id=first.task_id)
    old_file = tmp_path / UsageReport.objects.get().file.name

    with django_capture_on_commit_callbacks():
        (second,) = services.usage_reports_request(
            organization_ids=[world.acme.pk], month=MARCH, formats=["csv"]
        )
    stale = services.usage_report_generate(report_id=first.pk, task_id=first.task_id)
    services.usage_report_generate(report_id=second.pk, task_id=second.task_id)

    assert stale is None
    assert UsageReport.objects.count() == 1
    report = UsageReport.objects.get()
    assert report.status == ReportStatus.DONE
    assert not old_file.exists()
    assert (tmp_path / report.file.name).exists()


@pytest.mark.parametrize(
    ("month", "formats", "message"),
    [
        (date(2099, 1, 1), ["pdf"], "has not started yet"),
        (MARCH, ["docx"], "Unknown report format"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_queued(
    world: World, month: date, formats: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        services.usage_reports_request(
            organization_ids=[world.acme.pk], month=month, formats=formats
        )
    assert not UsageReport.objects.exists()


def test_the_monthly_entry_queues_last_months_reports_for_every_organization(
    world: World, django_capture_on_commit_callbacks, settings
) -> None:
    settings.DOCFLOW = {**settings.DOCFLOW, "USAGE_REPORT_FORMATS": ["pdf", "csv"]}

    with django_capture_on_commit_callbacks() as callbacks:
        queued = services.usage_reports_request_monthly(today=date(2026, 4, 1))

    assert queued == 4
    assert len(callbacks) == 4
    assert set(UsageReport.objects.values_list("organization__slug", "month", "format")) == {
        (slug, MARCH, fmt) for slug in ("acme", "beta") for fmt in ("pdf", "csv")
    }


def test_usage_report_command_writes_the_file(world: World, tmp_path: Path) -> None:
    output = tmp_path / "acme.csv"

    call_command(
        "usage_report",
        "--organization=acme",
        "--month=2026-03",
        "--format=csv",
        f"--output={output}",
    )

    rows = list(csv.DictReader(output.open()))
    # Over the whole day: Support's 4 and Sales' 2 (one uploaded at 13:50).
    assert sum(int(r["documents_uploaded"]) for r in rows) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--organization=nope", "--month=2026-03"], "No organization with slug 'nope'"),
        (["--organization=acme", "--month=March"], "is not a month like 2026-11"),
        (["--organization=acme", "--month=2099-01"], "has not started yet"),
    ],
)
def test_usage_report_command_rejects_bad_input(
    world: World, tmp_path: Path, args: list[str], message: str
) -> None:
    output = tmp_path / "report.pdf"

    with pytest.raises(CommandError, match=message):
        call_command("usage_report", *args, f"--output={output}")
    assert not output.exists()


def test_the_organization_action_asks_for_the_month_then_queues_reports(
    world: World, admin_client, django_capture_on_commit_callbacks
) -> None:
    url = reverse("admin:documents_organization_changelist")
    selection = {"action": "generate_usage_reports", "_selected_action": [world.acme.pk]}

    page = admin_client.post(url, selection)
    assert page.status_code == 200
    assert b"Generate usage reports" in page.content
    assert not UsageReport.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            url, {**selection, "apply": "1", "month": "2026-03-01", "formats": ["pdf", "csv"]},
            follow=True,
        )  # fmt: skip

    assert len(callbacks) == 2
    assert "Queued 2 usage report(s) for March 2026" in response.content.decode()
    assert set(UsageReport.objects.values_list("format", "status")) == {
        ("pdf", ReportStatus.QUEUED),
        ("csv", ReportStatus.QUEUED),
    }


def test_the_reports_changelist_links_a_finished_file(
    world: World, admin_client, django_capture_on_commit_callbacks, settings, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks():
        (report,) = services.usage_reports_request(
            organization_ids=[world.acme.pk], month=MARCH, formats=["pdf"]
        )
    services.usage_report_generate(report_id=report.pk, task_id=report.task_id)

    page = admin_client.get(reverse("admin:analytics_usagereport_changelist"))
    download = reverse("admin:analytics_usagereport_download", args=[report.pk])
    response = admin_client.get(download)

    assert page.status_code == 200
    assert download in page.content.decode()
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="usage-acme-2026-03.pdf"'
    assert "Usage report: Acme" in pdf_text(b"".join(response.streaming_content))


def test_a_report_without_a_file_or_an_unknown_id_is_not_found(world: World, admin_client):
    report = UsageReport.objects.create(organization=world.acme, month=MARCH, format="pdf")

    for report_id in (report.pk, report.pk + 1000):
        url = reverse("admin:analytics_usagereport_download", args=[report_id])
        assert admin_client.get(url).status_code == 404


def test_staff_without_the_report_permission_cannot_generate_reports(
    world: World, client, django_user_model, django_capture_on_commit_callbacks
) -> None:
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_organization"))
    client.force_login(user)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("admin:documents_organization_changelist"),
            {
                "action": "generate_usage_reports",
                "_selected_action": [world.acme.pk],
                "apply": "1",
                "month": "2026-03-01",
                "formats": ["pdf"],
            },
            follow=True,
        )

    assert "You may not create usage reports." in response.content.decode()
    assert callbacks == []
    assert not UsageReport.objects.exists()
