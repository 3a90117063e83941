"""The staff dashboard: drawn from snapshots, staff only, ranges in the display time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from django.urls import reverse

from analytics import services
from analytics.models import Granularity, Scope, Snapshot
from tests.analytics.conftest import HOUR, World

pytestmark = pytest.mark.django_db
URL = "/admin/analytics/dashboard/"


def fill_day(day_start: datetime) -> None:
    services.analytics_fill(
        granularity=Granularity.HOURLY,
        start=day_start,
        end=day_start + timedelta(days=1),
        now=day_start + timedelta(days=2),
    )


def svgs(html: str) -> list[ElementTree.Element]:
    return [
        ElementTree.fromstring(m)  # noqa: S314  (our own output)
        for m in re.findall(r"<svg[^>]*docflow-chart.*?</svg>", html, re.S)
    ]


def test_the_url_is_the_one_documented() -> None:
    assert reverse("analytics-dashboard") == URL


def test_an_organizations_day_shows_its_totals_and_five_charts(world: World, admin_client) -> None:
    fill_day(HOUR.replace(hour=0))

    page = admin_client.get(
        URL, {"organization": world.acme.pk, "start": "2026-03-10", "end": "2026-03-10"}
    )

    assert page.status_code == 200
    html = page.content.decode()
    charts = svgs(html)
    assert len(charts) == 5
    processed = charts[0]
    values = {
        (rect.get("data-label"), rect.get("data-series")): rect.get("data-value")
        for rect in processed.iter("{http://www.w3.org/2000/svg}rect")
        if rect.get("data-value")
    }
    assert values == {
        ("10 Mar 14:00", "processed"): "2",
        ("10 Mar 14:00", "failed"): "2",
        ("10 Mar 15:00", "processed"): "1",  # uploaded at 14:55, finished at 15:02
    }
    assert "encrypted" in html
    assert "corrupt" in html
    assert "not computed yet" not in html


def test_the_dashboard_reads_snapshots_not_the_raw_tables(world: World, admin_client) -> None:
    fill_day(HOUR.replace(hour=0))
    Snapshot.objects.filter(scope=Scope.SYSTEM, period_start=HOUR).update(documents_processed=42)

    page = admin_client.get(URL, {"start": "2026-03-10", "end": "2026-03-10"})

    assert 'data-value="42"' in page.content.decode()


def test_periods_not_computed_yet_are_announced(world: World, admin_client) -> None:
    page = admin_client.get(URL, {"start": "2026-03-10", "end": "2026-03-10"})

    assert "24 periods of this range are not computed yet" in page.content.decode()


def test_an_hourly_range_is_whole_local_days_across_a_dst_change(
    world: World, admin_client, settings
) -> None:
    # In Berlin, 25 October 2026 has 25 hours (02:00 happens twice).
    settings.TIME_ZONE = "Europe/Berlin"
    local_day_start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    services.analytics_fill(
        granularity=Granularity.HOURLY,
        start=local_day_start,
        end=local_day_start + timedelta(hours=25),
        now=datetime(2026, 10, 27, tzinfo=UTC),
    )

    page = admin_client.get(
        URL, {"start": "2026-10-25", "end": "2026-10-25", "granularity": "hourly"}
    )

    html = page.content.decode()
    assert "not computed yet" not in html
    periods = Snapshot.objects.filter(granularity=Granularity.HOURLY, scope=Scope.SYSTEM)
    assert periods.count() == 25
    labels = page.context["data"].labels
    assert len(labels) == 25
    assert labels.count("25 Oct 02:00") == 2  # once in summer time, once in winter time
    assert "25 Oct 00:00" in labels
    assert "25 Oct 23:00" in labels


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "must not be before"),
        ({"start": "2026-01-01", "end": "2026-03-01", "granularity": "hourly"}, "at most 14"),
    ],
)
def test_bad_ranges_show_an_error_and_no_chart(admin_client, params, message) -> None:
    page = admin_client.get(URL, params)

    assert page.status_code == 200
    assert message in page.content.decode()
    assert svgs(page.content.decode()) == []


def test_the_dashboard_is_for_staff_only(client, django_user_model) -> None:
    user = django_user_model.objects.create_user("visitor", password="pw-visitor-123")
    client.force_login(user)

    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_every_admin_page_links_the_dashboard(admin_client) -> None:
    page = admin_client.get(reverse("admin:index"))

    assert f'href="{URL}"' in page.content.decode()
