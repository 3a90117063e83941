"""The enrichment rules of profiles.enrichment, pinned on hand-made histories.

Plain pytest, no database: the module is pure. VADER compounds of the texts used here
(VADER rounds them to 4 decimals): PRAISE 0.9041, THANKS 0.7579, LOVE 0.7901,
PERFECT 0.8316, BROKEN -0.7351, FURIOUS -0.7717, NEUTRAL 0.0, "happy" 0.5719, "hate" -0.5719.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from profiles.enrichment import (
    SEGMENTS,
    SENTIMENT_MAX_CHARS,
    Enrichment,
    Message,
    engagement_score,
    enrich,
)

NOW = datetime(2024, 6, 14, 12, 0, tzinfo=UTC)  # a Friday

PRAISE = "The dashboard export works great, awesome support!"
THANKS = "Thanks, the dashboard export is fantastic."
LOVE = "I love the dashboard export, thank you!"
PERFECT = "Great news, the invoice export is perfect."
BROKEN = "This is terrible. The billing portal is broken again."
FURIOUS = "Awful service, the refund never arrived and I am furious."
NEUTRAL = "Where is my order?"


def inbound(days_ago: float, text: str, channel: str = "chat") -> Message:
    return Message(NOW - timedelta(days=days_ago), "in", channel, text)


def outbound(days_ago: float, text: str = "How can I help?", channel: str = "chat") -> Message:
    return Message(NOW - timedelta(days=days_ago), "out", channel, text)


def champion_history() -> list[Message]:
    """Signed up 45 days ago, then wrote daily for 20 days, happily, and got answers."""
    cycle = [THANKS, PRAISE, LOVE, PERFECT]
    history = [outbound(45, "Welcome aboard!"), inbound(45, "Hi, I just signed up.")]
    for day in range(20):
        history.append(inbound(day + 0.01, cycle[day % 4]))
        history.append(outbound(day, "Glad to hear it!"))  # a quarter of an hour later
    return history


def turned_angry_history() -> list[Message]:
    """Happy three weeks ago, angry in the last week."""
    return [
        inbound(20, THANKS),
        inbound(18, THANKS),
        inbound(16, THANKS),
        inbound(5, BROKEN),
        inbound(3, FURIOUS),
        inbound(1, BROKEN),
    ]


# Segments ------------------------------------------------------------------------------------


def test_happy_frequent_customer_is_a_champion():
    # Given a customer who writes daily and warmly about the dashboard export
    history = champion_history()

    # When enriched
    result = enrich(history, now=NOW)

    # Then they are a champion whose topics come from their own words
    assert result.segment == "champion"
    assert result.sentiment_label == "positive"
    assert result.sentiment_score == 0.8135  # "Hi, I just signed up." (0.0) weighs almost nil
    assert result.sentiment_trend == 0.0048
    assert result.top_topics == ["dashboard export", "export", "dashboard", "great", "export works"]
    # recency 40 (last message now) + frequency 40 (40 messages in 30 days, capped at 20)
    # + sentiment 20 * (0.8135 + 1) / 2 = 18.135
    assert result.engagement_score == 98.1
    assert result.frequency_30d == 40
    assert result.interaction_count == 42
    assert result.first_seen == NOW - timedelta(days=45)
    assert result.last_seen == NOW
    assert result.recency_days == 0.0


def test_customer_who_turned_angry_is_at_risk_with_a_negative_trend():
    # Given a customer who was happy two to three weeks ago and angry this week
    history = turned_angry_history()

    # When enriched
    result = enrich(history, now=NOW)

    # Then recent anger dominates the weighted score, and the trend alone makes them at risk
    assert result.segment == "at_risk"
    assert result.sentiment_label == "negative"
    assert result.sentiment_score == -0.262  # above -0.3: not at risk by score
    # mean(BROKEN, FURIOUS, BROKEN) - mean(THANKS x 3) = -0.7473 - 0.7579
    assert result.sentiment_trend == -1.5052
    assert result.top_topics == [
        "dashboard export",
        "fantastic",
        "billing portal",
        "dashboard",
        "export",
    ]


@pytest.mark.parametrize(
    ("history", "reason"),
    [
        ([inbound(50, PRAISE), inbound(30, PRAISE)], "silent for over 21 days"),
        ([inbound(20, BROKEN), inbound(2, BROKEN)], "score <= -0.3"),
    ],
)
def test_each_at_risk_condition_alone_is_enough(history: list[Message], reason: str):
    # When enriched
    result = enrich(history, now=NOW)

    # Then
    assert result.segment == "at_risk", reason


def test_trend_alone_makes_at_risk_even_with_a_positive_score():
    # Given praise three weeks ago and a neutral question two days ago
    history = [inbound(20, PRAISE), inbound(18, PRAISE), inbound(2, NEUTRAL)]

    # When enriched
    result = enrich(history, now=NOW)

    # Then: 0.0 - 0.9041 <= -0.4, although the weighted score stays positive
    assert result.sentiment_trend == -0.9041
    # weights 0.5 ** (18 / 14), 0.5 ** (16 / 14), 1: 0.9041 * 0.8632 / 1.8632
    assert result.sentiment_score == 0.4188
    assert result.sentiment_label == "positive"
    assert result.segment == "at_risk"


def test_customer_silent_for_90_days_is_dormant():
    # Given a customer whose last message was 90 days ago, and who loved us then
    history = [inbound(120, PRAISE), outbound(119), inbound(90, PRAISE)]

    # When enriched
    result = enrich(history, now=NOW)

    # Then dormant wins over every other segment
    assert result.segment == "dormant"
    assert result.recency_days == 90.0
    assert result.frequency_30d == 0


@pytest.mark.parametrize(
    ("last_days_ago", "segment"),
    [(60.0, "dormant"), (59.9, "at_risk")],
)
def test_dormant_starts_at_60_days(last_days_ago: float, segment: str):
    # Given a first message long ago and the last one around 60 days ago
    history = [inbound(100, PRAISE), inbound(last_days_ago, PRAISE)]

    # When / Then
    assert enrich(history, now=NOW).segment == segment


def test_brand_new_customer_is_new_even_when_angry():
    # Given a customer first seen three days ago, angry already
    history = [inbound(3, FURIOUS), outbound(2.9), inbound(1, BROKEN)]

    # When enriched
    result = enrich(history, now=NOW)

    # Then "new" is decided before "at_risk"
    assert result.segment == "new"
    assert result.sentiment_label == "negative"


@pytest.mark.parametrize(
    ("first_days_ago", "segment"),
    [(13.99, "new"), (14.0, "active")],
)
def test_new_lasts_14_days(first_days_ago: float, segment: str):
    # Given a neutral customer first seen around 14 days ago, last seen today
    history = [inbound(first_days_ago, NEUTRAL), inbound(0, NEUTRAL)]

    # When / Then
    assert enrich(history, now=NOW).segment == segment


def test_every_segment_is_one_of_segments():
    histories = [[], champion_history(), turned_angry_history(), [inbound(90, PRAISE)]]
    assert {enrich(h, now=NOW).segment for h in histories} <= set(SEGMENTS)


# Edge histories ------------------------------------------------------------------------------


def test_empty_history():
    # When enriching nothing
    result = enrich([], now=NOW)

    # Then every field is empty, engagement is zero and the customer is new
    assert result == Enrichment(
        sentiment_score=None,
        sentiment_label="",
        sentiment_trend=None,
        top_topics=[],
        engagement_score=0.0,
        segment="new",
        preferred_hours=[],
        preferred_weekdays=[],
        preferred_channel="",
        first_seen=None,
        last_seen=None,
        interaction_count=0,
        recency_days=None,
        frequency_30d=0,
    )


def test_outbound_only_history():
    # Given agents wrote three times and the customer never answered
    history = [outbound(28, PRAISE), outbound(21, BROKEN), outbound(14, NEUTRAL, "email")]

    # When enriched
    result = enrich(history, now=NOW)

    # Then nothing is said about the customer's mood, habits or topics
    assert result.sentiment_score is None
    assert result.sentiment_label == ""
    assert result.sentiment_trend is None
    assert result.top_topics == []
    assert result.preferred_hours == []
    assert result.preferred_weekdays == []
    assert result.preferred_channel == ""
    # but activity counts both directions:
    # recency 40 * 0.5 ** (14 / 14) = 20 + frequency 40 * 3 / 20 = 6 + sentiment None = 10
    assert result.engagement_score == 36.0
    assert result.interaction_count == 3
    assert result.frequency_30d == 3
    assert result.recency_days == 14.0
    assert result.segment == "active"


def test_blank_texts_count_as_activity_but_not_as_sentiment_or_topics():
    # Given inbound messages without words (e.g. an attachment, a phone call)
    history = [inbound(20, ""), inbound(10, "   \n", "phone"), inbound(1, "", "phone")]

    # When enriched
    result = enrich(history, now=NOW)

    # Then
    assert result.sentiment_score is None
    assert result.sentiment_label == ""
    assert result.sentiment_trend is None
    assert result.top_topics == []
    assert result.preferred_channel == "phone"
    assert result.preferred_hours == [12]
    assert result.interaction_count == 3


def test_a_message_after_now_counts_as_now():
    # Given a reply stamped an hour after `now` (clock skew between systems)
    later = NOW + timedelta(hours=1)
    history = [inbound(20, NEUTRAL), Message(later, "out", "chat", "On it.")]

    # When enriched
    result = enrich(history, now=NOW)

    # Then it is kept as given but is zero days old
    assert result.last_seen == later
    assert result.recency_days == 0.0
    assert result.frequency_30d == 2
    assert result.engagement_score == 54.0  # 40 + 40 * 2 / 20 + 20 * (0 + 1) / 2


@pytest.mark.parametrize(
    ("now", "history", "match"),
    [
        (datetime(2024, 6, 14, 12, 0), [], "now is naive"),  # noqa: DTZ001
        (NOW, [Message(datetime(2024, 6, 1), "in", "chat", "hi")], "message 0"),  # noqa: DTZ001
        (NOW, [inbound(1, "hi"), Message(NOW, "inbound", "chat", "hi")], "message 1 has dir"),
    ],
)
def test_naive_datetimes_and_unknown_directions_are_rejected(
    now: datetime, history: list[Message], match: str
):
    with pytest.raises(ValueError, match=match):
        enrich(history, now=now)


@pytest.mark.parametrize(
    "options",
    [{"half_life_days": 0}, {"trend_window_days": -1}, {"topic_messages": -1}],
)
def test_nonsense_options_are_rejected(options: dict[str, float]):
    with pytest.raises(ValueError, match="must"):
        enrich([inbound(1, PRAISE)], now=NOW, **options)  # type: ignore[arg-type]


# Sentiment -----------------------------------------------------------------------------------


def test_recent_negative_outweighs_old_positive_of_equal_magnitude():
    # Given "happy" (0.5719) four weeks ago and "hate" (-0.5719) now
    history = [inbound(28, "happy"), inbound(0, "hate")]

    # When enriched with the default 14-day half-life
    result = enrich(history, now=NOW)

    # Then weights 0.25 and 1: (0.25 * 0.5719 - 0.5719) / 1.25 = -0.34314
    assert result.sentiment_score == -0.3431
    assert result.sentiment_label == "negative"


def test_recency_weighting_is_symmetric_and_follows_the_half_life():
    # Given the same two messages the other way round
    assert enrich([inbound(28, "hate"), inbound(0, "happy")], now=NOW).sentiment_score == 0.3431

    # When the half-life is 28 days: weights 0.5 and 1, -0.5719 * 0.5 / 1.5 = -0.19063
    result = enrich([inbound(28, "happy"), inbound(0, "hate")], now=NOW, half_life_days=28)

    # Then
    assert result.sentiment_score == -0.1906


def test_weights_do_not_underflow_for_very_old_histories():
    # Given only messages from 50 years ago, where 0.5 ** (age / 14) is 0.0 in floating point
    history = [inbound(18_250, "happy"), inbound(18_251, "happy")]

    # When / Then the mean is still defined
    assert enrich(history, now=NOW).sentiment_score == 0.5719


@pytest.mark.parametrize(
    ("text", "label"),
    [("happy", "positive"), (NEUTRAL, "neutral"), ("hate", "negative")],
)
def test_sentiment_labels(text: str, label: str):
    assert enrich([inbound(1, text)], now=NOW).sentiment_label == label


def test_trend_needs_both_windows():
    # Given messages only in the last 14 days
    result = enrich([inbound(1, PRAISE), inbound(13, BROKEN)], now=NOW)

    # Then there is no trend
    assert result.sentiment_trend is None


def test_trend_windows_are_half_open():
    # Given messages exactly 14 and 28 days old: the first belongs to the earlier window,
    # the second to neither
    history = [inbound(0, NEUTRAL), inbound(14, PRAISE), inbound(28, BROKEN)]

    # When / Then 0.0 - 0.9041
    assert enrich(history, now=NOW).sentiment_trend == -0.9041


def test_only_the_first_characters_of_a_long_message_are_scored():
    # Given a pasted wall of text whose tail is angry
    long_text = "good " * (SENTIMENT_MAX_CHARS // 5) + "hate " * 10_000

    # When / Then it scores as its head
    head = long_text[:SENTIMENT_MAX_CHARS]
    assert (
        enrich([inbound(1, long_text)], now=NOW).sentiment_score
        == enrich([inbound(1, head)], now=NOW).sentiment_score
    )


# Topics --------------------------------------------------------------------------------------


def test_topics_read_only_the_newest_topic_messages():
    # Given older messages about billing and the newest about the dashboard export
    history = [inbound(3, BROKEN), inbound(2, BROKEN), inbound(1, PRAISE)]

    # When only the newest message is read
    result = enrich(history, now=NOW, topic_messages=1)

    # Then
    assert result.top_topics == [
        "awesome support",
        "works great",
        "dashboard export",
        "export works",
        "great",
    ]


def test_topic_text_is_capped_keeping_the_newest():
    # Given a newest message of exactly 20,000 characters, then more words, then older ones
    history = [inbound(2, "giraffe crossing zone"), inbound(1, "invoice " * 2_500 + "zebra")]

    # When enriched
    result = enrich(history, now=NOW)

    # Then YAKE never read past the cap
    assert result.top_topics == ["invoice invoice"]


def test_no_topics_when_topic_messages_is_zero():
    assert enrich([inbound(1, PRAISE)], now=NOW, topic_messages=0).top_topics == []


# Behaviour -----------------------------------------------------------------------------------


def test_preferred_hours_weekdays_and_channel_with_ties():
    # Given inbound messages (Mon 2024-06-10 .. Sun 2024-06-16) and louder outbound ones
    def at(day: int, hour: int) -> datetime:
        return datetime(2024, 6, day, hour, 30, tzinfo=UTC)

    plus_two = timezone(timedelta(hours=2))
    history = [
        Message(at(11, 15), "in", "email", "a"),  # Tue 15h
        Message(at(10, 9), "in", "chat", "b"),  # Mon 9h
        Message(datetime(2024, 6, 13, 11, 30, tzinfo=plus_two), "in", "email", "c"),  # Thu 9h
        Message(at(11, 15), "in", "chat", "d"),  # Tue 15h
        Message(at(13, 20), "in", "web", "e"),  # Thu 20h
        Message(at(12, 7), "in", "", "f"),  # Wed 7h, no channel
        *(Message(at(9, 3), "out", "phone", "ping") for _ in range(5)),  # Sun 3h, agents
    ]

    # When enriched
    result = enrich(history, now=NOW)

    # Then counts 2-2-1-1 pick the smaller hour and weekday on ties, in UTC, inbound only
    assert result.preferred_hours == [9, 15, 7]
    assert result.preferred_weekdays == [1, 3, 0]  # Tue 2, Thu 2, then Mon before Wed
    assert result.preferred_channel == "chat"  # chat 2 ties email 2; "chat" < "email"


# Engagement ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recency_days", "frequency_30d", "sentiment_score", "expected"),
    [
        (None, 0, None, 0.0),  # no history at all
        (0.0, 20, 1.0, 100.0),  # the maximum
        (0.0, 500, 1.0, 100.0),  # frequency is capped
        (10_000.0, 0, -1.0, 0.0),  # the minimum
        (14.0, 10, 0.0, 50.0),  # 20 + 20 + 10
        (28.0, 5, None, 30.0),  # 10 + 10 + 10
        (7.0, 3, 0.5, 49.3),  # 40 * 2 ** -0.5 = 28.284 + 6 + 15
    ],
)
def test_engagement_formula(
    recency_days: float | None, frequency_30d: int, sentiment_score: float | None, expected: float
):
    score = engagement_score(
        recency_days=recency_days, frequency_30d=frequency_30d, sentiment_score=sentiment_score
    )
    assert score == expected
    assert 0.0 <= score <= 100.0


def test_engagement_of_a_constructed_history():
    # Given ten neutral questions, one a day from 23 to 14 days ago
    history = [inbound(day, NEUTRAL) for day in range(14, 24)]

    # When enriched
    result = enrich(history, now=NOW)

    # Then recency 40 * 0.5 = 20, frequency 40 * 10 / 20 = 20, sentiment 20 * 1 / 2 = 10
    assert result.engagement_score == 50.0
    assert result.sentiment_score == 0.0
    assert result.sentiment_label == "neutral"
    assert result.segment == "active"


@pytest.mark.parametrize(
    "history",
    [
        [inbound(0, PRAISE) for _ in range(40)],
        [inbound(3650, "hate")],
        [outbound(0) for _ in range(40)],
    ],
)
def test_engagement_stays_within_bounds(history: list[Message]):
    assert 0.0 <= enrich(history, now=NOW).engagement_score <= 100.0


# Determinism ---------------------------------------------------------------------------------


def test_same_input_same_output():
    history = champion_history() + turned_angry_history()
    assert enrich(history, now=NOW) == enrich(history, now=NOW)


def test_order_of_the_input_does_not_matter():
    # Given one history in chronological order, including messages sharing a timestamp
    same_time = NOW - timedelta(days=2)
    history = sorted(
        [
            *champion_history(),
            *turned_angry_history(),
            Message(same_time, "in", "web", "The billing portal export is slow."),
            Message(same_time, "in", "web", "Dashboard filters reset on reload."),
        ],
        key=lambda message: message.occurred_at,
    )

    # When enriched in chronological, reversed and interleaved orders
    results = [
        enrich(ordering, now=NOW)
        for ordering in (history, history[::-1], history[1::2] + history[::2])
    ]

    # Then all results are equal, to the last bit
    assert results[0] == results[1] == results[2]
