"""The admin as people use it, in headless Chromium: live progress, errors, actions, imports,
the dashboard and search, with the real worker doing the work."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from analytics.services import analytics_fill
from documents import samples
from documents.models import Agent, Document, DocumentStatus
from tests.browser.conftest import screenshot
from tests.conftest import upload, wait_terminal

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def no_reload_marker(page) -> None:
    page.evaluate("window.docflowSamePage = true")


def assert_same_page(page) -> None:
    assert page.evaluate("window.docflowSamePage === true"), "the page was reloaded"


def upload_through_the_form(page, agent: Agent, path) -> None:
    page.goto(f"{page.base}/admin/documents/document/add/")
    page.select_option("#id_agent", str(agent.pk))
    page.set_input_files("#id_file", str(path))
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/documents/document/\d+/change/$"))


def test_log_in_and_see_the_overview(admin_page, agent):
    expect(admin_page.locator("#site-name")).to_contain_text("Docflow")
    expect(admin_page.locator("#docflow-overview")).to_be_visible()
    screenshot(admin_page, "admin-index")


def test_upload_a_pdf_and_watch_its_progress_reach_100(
    admin_page, celery_worker, shared_media, agent, tmp_path
):
    pdf = tmp_path / "handbook.pdf"
    samples.make_pdf(pdf, pages=40, title="Handbook")

    upload_through_the_form(admin_page, agent, pdf)
    no_reload_marker(admin_page)

    expect(admin_page.locator(".messagelist")).to_contain_text("Uploaded handbook.pdf")
    expect(admin_page.locator(".docflow-progress-label")).to_have_text(
        re.compile(r"^100% done"), timeout=60_000
    )
    expect(admin_page.locator(".docflow-status")).to_have_text("Done")
    assert_same_page(admin_page)
    screenshot(admin_page, "document-done")


def test_upload_a_corrupt_file_and_read_its_error(
    admin_page, celery_worker, shared_media, agent, tmp_path
):
    broken = tmp_path / "broken.pdf"
    samples.make_corrupt_pdf(broken)

    upload_through_the_form(admin_page, agent, broken)
    no_reload_marker(admin_page)

    expect(admin_page.locator(".docflow-status")).to_have_text("Failed", timeout=60_000)
    error = admin_page.locator(".docflow-error")
    expect(error).to_contain_text("The PDF file is damaged and cannot be read")
    assert_same_page(admin_page)


def select_and_run(page, document: Document, action: str) -> None:
    page.check(f"input.action-select[value='{document.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_cancel_a_queued_document(admin_page, agent, media_root, pdf_file):
    document = upload(agent, pdf_file)
    # Parked: its message is one no worker will claim, so it stays queued.
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.QUEUED, task_id="parked")

    admin_page.goto(f"{admin_page.base}/admin/documents/document/")
    select_and_run(admin_page, document, "cancel_selected")

    expect(admin_page.locator(".messagelist")).to_contain_text("Cancelled 1 document.")
    badge = admin_page.locator(f".docflow-status[data-status-id='{document.pk}']")
    expect(badge).to_have_text("Cancelled")
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.CANCELLED


def test_retry_a_failed_document_and_watch_it_finish(
    admin_page, celery_worker, shared_media, agent, pdf_file
):
    document = upload(agent, pdf_file)
    wait_terminal([document.pk])
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.FAILED,
        error="Gave up after 4 attempts: the provider was down",
        error_code="transient",
        finished_at=timezone.now(),
    )

    admin_page.goto(f"{admin_page.base}/admin/documents/document/")
    expect(admin_page.locator(".docflow-error")).to_contain_text("Gave up after 4 attempts")
    select_and_run(admin_page, document, "retry_failed")
    no_reload_marker(admin_page)

    expect(admin_page.locator(".messagelist")).to_contain_text("Queued 1 document.")
    badge = admin_page.locator(f".docflow-status[data-status-id='{document.pk}']")
    expect(badge).to_have_text("Done", timeout=60_000)
    assert_same_page(admin_page)
    screenshot(admin_page, "document-changelist")


def test_an_action_over_many_rows_asks_first(admin_page, agent, settings):
    settings.DOCFLOW = {**settings.DOCFLOW, "ADMIN_CONFIRM_OVER": 2}
    for index in range(3):
        Document.objects.create(
            agent=agent, original_name=f"parked-{index}.pdf", status="queued", task_id="parked"
        )

    admin_page.goto(f"{admin_page.base}/admin/documents/document/")
    admin_page.check("#action-toggle")
    admin_page.select_option("select[name=action]", "cancel_selected")
    admin_page.click("button[name=index]")

    expect(admin_page.locator("h1")).to_have_text("Cancel 3 documents?")
    assert Document.objects.filter(status=DocumentStatus.CANCELLED).count() == 0
    screenshot(admin_page, "confirm-action")
    admin_page.click("text=Yes, go ahead")

    expect(admin_page.locator(".messagelist")).to_contain_text("Cancelled 3 documents.")
    assert Document.objects.filter(status=DocumentStatus.CANCELLED).count() == 3


def test_search_from_the_document_changelist(
    admin_page, celery_worker, shared_media, agent, tmp_path
):
    refunds, other = tmp_path / "refunds.txt", tmp_path / "hours.txt"
    refunds.write_text("Refund policy. Customers may return goods within thirty days.\n" * 5)
    other.write_text("Opening hours. The shop opens at nine and closes at five.\n" * 5)
    wait_terminal([upload(agent, refunds).pk, upload(agent, other).pk])

    admin_page.goto(f"{admin_page.base}/admin/documents/document/")
    admin_page.fill("#searchbar", "return goods")
    admin_page.press("#searchbar", "Enter")

    rows = admin_page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("refunds.txt")
    screenshot(admin_page, "document-search")


def test_import_agents_with_one_bad_row(
    admin_page, celery_worker, shared_media, organization, tmp_path
):
    rows = [f"acme,Agent {i},agent-{i},Helpful,gpt-4o,0.{i % 10}," for i in range(40)]
    rows.insert(7, "acme,Too hot,too-hot,,,3.5,")
    csv = tmp_path / "agents.csv"
    csv.write_text("organization,name,slug,persona,model,temperature,documents\n" + "\n".join(rows))

    admin_page.goto(f"{admin_page.base}/admin/documents/agent/import/")
    admin_page.set_input_files("#id_file", str(csv))
    admin_page.click("input[type=submit]")

    admin_page.wait_for_url(re.compile(r"/admin/documents/agentimport/\d+/change/$"))
    messages = admin_page.locator(".messagelist")
    expect(messages).to_contain_text("Queued 40 agents for import; 1 problems in the file.")
    expect(admin_page.locator(".field-row_errors")).to_contain_text("Line 9")
    expect(admin_page.locator(".field-row_errors")).to_contain_text("temperature")
    # The page follows the import by itself until it is done.
    expect(admin_page.locator(".field-status .readonly")).to_have_text("Done", timeout=60_000)
    expect(admin_page.locator(".field-progress .readonly")).to_have_text("100")
    expect(admin_page.locator(".field-created_count .readonly")).to_have_text("40")
    screenshot(admin_page, "agent-import")
    assert Agent.objects.filter(organization=organization).count() == 40


def test_the_analytics_dashboard_draws_its_charts(admin_page, agent):
    yesterday = (timezone.now() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    for hour in range(9, 15):
        finished = yesterday.replace(hour=hour, minute=30)
        for index in range(hour - 6):
            document = Document.objects.create(
                agent=agent,
                original_name=f"doc-{hour}-{index}.pdf",
                status=DocumentStatus.FAILED if index == 0 else DocumentStatus.DONE,
                error_code="corrupt" if index == 0 else "",
                processing_seconds=1.5 * (index + 1),
                page_count=3,
                chunk_count=5,
                queued_at=finished - timedelta(minutes=2),
                started_at=finished - timedelta(minutes=1),
                finished_at=finished,
            )
            Document.objects.filter(pk=document.pk).update(
                created_at=finished - timedelta(minutes=3)
            )
    day = yesterday.replace(hour=0)
    analytics_fill(granularity="hourly", start=day, end=day + timedelta(days=1))

    date = day.date().isoformat()
    admin_page.goto(f"{admin_page.base}/admin/analytics/dashboard/?start={date}&end={date}")

    charts = admin_page.locator("svg.docflow-chart")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 4
    assert admin_page.locator("rect.docflow-chart-bar").count() >= 6  # one per busy hour
    assert admin_page.locator("path.docflow-chart-line").count() >= 1
    expect(admin_page.locator(".totals")).to_contain_text("27")  # documents processed
    screenshot(admin_page, "analytics-dashboard")
