"""Forms of the analytics admin pages: the dashboard's filters and the usage report request."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from analytics.models import Granularity, ReportFormat
from analytics.services import month_start, previous_month
from documents.models import Organization

MAX_HOURLY_DAYS = 14
MAX_DAILY_DAYS = 400
AUTO = "auto"


class DashboardForm(forms.Form):
    """Dates are whole days in the display time zone for hourly charts; daily charts show
    UTC days (a day's snapshot is a UTC day)."""

    organization = forms.ModelChoiceField(
        queryset=Organization.objects.order_by("name"),
        required=False,
        empty_label="All organizations",
    )
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    granularity = forms.ChoiceField(
        choices=[(AUTO, "Automatic"), *Granularity.choices], initial=AUTO, required=False
    )

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        today = timezone.localdate()
        return {"start": today - timedelta(days=6), "end": today, "granularity": AUTO}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return data
        if end < start:
            raise forms.ValidationError("“To” must not be before “From”.")
        days = (end - start).days + 1
        granularity = data.get("granularity") or AUTO
        if granularity == AUTO:
            granularity = Granularity.HOURLY if days <= 3 else Granularity.DAILY
        limit = MAX_HOURLY_DAYS if granularity == Granularity.HOURLY else MAX_DAILY_DAYS
        if days > limit:
            raise forms.ValidationError(
                f"Show at most {limit} days {granularity}: pick a shorter range or daily."
            )
        data["granularity"] = granularity
        return data

    def window(self) -> tuple[datetime, datetime]:
        """The cleaned range as aware datetimes [start, end)."""
        start: date = self.cleaned_data["start"]
        end: date = self.cleaned_data["end"] + timedelta(days=1)
        if self.cleaned_data["granularity"] == Granularity.DAILY:
            return (
                datetime.combine(start, time.min, tzinfo=UTC),
                datetime.combine(end, time.min, tzinfo=UTC),
            )
        zone = timezone.get_current_timezone()
        return (
            timezone.make_aware(datetime.combine(start, time.min), zone),
            timezone.make_aware(datetime.combine(end, time.min), zone),
        )


def _recent_months(count: int = 13) -> list[tuple[str, str]]:
    month = month_start(timezone.now().date())
    choices = []
    for _ in range(count):
        choices.append((month.isoformat(), f"{month:%B %Y}"))
        month = previous_month(month)
    return choices


class UsageReportRequestForm(forms.Form):
    month = forms.TypedChoiceField(coerce=date.fromisoformat, choices=())
    formats = forms.MultipleChoiceField(
        choices=ReportFormat.choices,
        initial=[ReportFormat.PDF, ReportFormat.CSV],
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["month"].choices = _recent_months()
        self.fields["month"].initial = previous_month(timezone.now().date()).isoformat()
