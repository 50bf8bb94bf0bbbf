"""Topic builders, filter validation, and MQTT matching cross-checked against paho."""

from __future__ import annotations

import itertools
import random

import pytest
from paho.mqtt.client import topic_matches_sub

from broker import (
    QUOTES,
    control_topic,
    deadletter_topic,
    fills_topic,
    filter_covers,
    minimal_filters,
    orders_topic,
    quote_topic,
    status_topic,
    subscription_filters,
    topic_matches,
    validate_filter,
    validate_name,
)
from tickbus.errors import ConfigError

# --- builders ----------------------------------------------------------------------------


def test_builders() -> None:
    assert QUOTES == "quotes"
    assert quote_topic("goog") == "quotes/GOOG"
    assert quote_topic("BRK.B") == "quotes/BRK.B"
    assert orders_topic("momentum") == "orders/momentum"
    assert fills_topic("momentum") == "fills/momentum"
    assert status_topic("bridge", "b1") == "status/bridge/b1"
    assert control_topic("bridge", "b1") == "control/bridge/b1"
    assert deadletter_topic("feed") == "deadletter/feed"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "a topic level name must not be empty"),
        ("a/b", "topic level name 'a/b' must not contain '/'"),
        ("a+", "topic level name 'a+' must not contain '+'"),
        ("#", "topic level name '#' must not contain '#'"),
        ("a\x00b", "topic level name 'a\\x00b' must not contain '\\x00'"),
    ],
)
def test_validate_name_rejects(name: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_name(name)
    assert info.value.reason.startswith(reason)


def test_validate_name_returns_the_name() -> None:
    assert validate_name("bridge-1.eu") == "bridge-1.eu"


@pytest.mark.parametrize(
    "build",
    [
        lambda bad: quote_topic(bad),
        lambda bad: orders_topic(bad),
        lambda bad: fills_topic(bad),
        lambda bad: status_topic("bridge", bad),
        lambda bad: status_topic(bad, "b1"),
        lambda bad: control_topic("bridge", bad),
        lambda bad: control_topic(bad, "b1"),
        lambda bad: deadletter_topic(bad),
    ],
)
@pytest.mark.parametrize("bad", ["", "a/b", "+", "x#", "\x00"])
def test_builders_validate(build: object, bad: str) -> None:
    with pytest.raises(ConfigError):
        build(bad)  # type: ignore[operator]


# --- validate_filter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#",
        "+",
        "quotes",
        "quotes/#",
        "quotes/+",
        "+/+",
        "/",
        "//",
        "/#",
        "+/#",
        "a//b",
        "$SYS/#",
        "a/+/b/#",
    ],
)
def test_valid_filters(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(
    ("topic_filter", "reason"),
    [
        ("", "a topic filter must not be empty"),
        ("a/#/b", "in topic filter 'a/#/b', '#' must be the last level"),
        ("#/a", "in topic filter '#/a', '#' must be the last level"),
        ("a#", "in topic filter 'a#', '#' must be a whole level (got 'a#')"),
        ("a/b#", "in topic filter 'a/b#', '#' must be a whole level (got 'b#')"),
        ("##", "in topic filter '##', '#' must be a whole level (got '##')"),
        ("a+/b", "in topic filter 'a+/b', '+' must be a whole level (got 'a+')"),
        ("++", "in topic filter '++', '+' must be a whole level (got '++')"),
        ("a/\x00", "topic filter 'a/\\x00' contains NUL"),
        ("a/\ud800", "topic filter 'a/\\ud800' is not valid Unicode"),
        ("a" * 65_536, "topic filter is 65536 bytes of UTF-8, the MQTT limit is 65535"),
    ],
)
def test_invalid_filters(topic_filter: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_filter(topic_filter)
    assert info.value.reason == reason


def test_topic_matches_refuses_an_invalid_filter() -> None:
    with pytest.raises(ConfigError, match="must be the last level"):
        topic_matches("a/#/b", "a/x/b")


# --- topic_matches ------------------------------------------------------------------------------

# The examples of MQTT 3.1.1 section 4.7 and MQTT 5 section 4.7, plus the edge cases.
SPEC_CASES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+", "finance", True),
    ("a/+/c", "a//c", True),
    ("a/+/#", "a", False),
    ("a/+/#", "a/b", True),
    ("+/#", "a", True),
    ("#", "$SYS/monitor/Clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("+", "$SYS", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("a/$x", "a/$x", True),
    ("a/+", "a/$x", True),
    ("quotes", "quotes", True),
    ("quotes", "quotes/GOOG", False),
    ("quotes/#", "quotes", True),
    ("quotes/#", "quotesX", False),
    ("quotes/#", "quotes/", True),
    ("quotes/GOOG", "quotes/goog", False),
    ("Quotes/#", "quotes/A", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), SPEC_CASES)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected
    assert topic_matches_sub(topic_filter, topic) is expected  # the reference agrees


LEVELS = ["a", "b", "", "$x"]
TOPIC_LEVELS = [*LEVELS, "z"]  # "z" appears in no filter: a witness for "+"


def all_filters(max_depth: int) -> list[str]:
    filters = []
    for depth in range(1, max_depth + 1):
        for levels in itertools.product([*LEVELS, "+"], repeat=depth):
            filters.append("/".join(levels))
        for levels in itertools.product([*LEVELS, "+"], repeat=depth - 1):
            filters.append("/".join([*levels, "#"]))
    return [f for f in filters if f]  # "" (one empty level) is not a valid filter


def all_topics(max_depth: int) -> list[str]:
    topics = [
        "/".join(levels)
        for depth in range(1, max_depth + 1)
        for levels in itertools.product(TOPIC_LEVELS, repeat=depth)
    ]
    return [t for t in topics if t]  # a topic name is at least one character


FILTERS = all_filters(3)
TOPICS = all_topics(4)


def test_exhaustive_small_cases_agree_with_paho() -> None:
    mismatches = [
        (f, t)
        for f in FILTERS
        for t in TOPICS
        if topic_matches(f, t) is not topic_matches_sub(f, t)
    ]
    assert len(FILTERS) > 180 and len(TOPICS) > 700
    assert mismatches == []


def test_random_cases_agree_with_paho() -> None:
    rng = random.Random(3)
    words = ["quotes", "GOOG", "BRK.B", "", "$SYS", "status", "x", "+x", "#"]
    for _ in range(30_000):
        depth = rng.randint(1, 7)
        topic = "/".join(rng.choice(words[:6]) for _ in range(rng.randint(1, 7))) or "t"
        levels = [rng.choice([*words[:6], "+", "+"]) for _ in range(depth)]
        if rng.random() < 0.4:
            levels[-1] = "#"
        topic_filter = "/".join(levels)
        if not topic_filter:
            continue
        assert topic_matches(topic_filter, topic) is topic_matches_sub(topic_filter, topic), (
            topic_filter,
            topic,
        )


def test_many_distinct_filters_overflow_the_cache_without_harm() -> None:
    for i in range(10_000):
        assert topic_matches(f"quotes/S{i}/+", f"quotes/S{i}/x")
        assert not topic_matches(f"quotes/S{i}/+", f"quotes/S{i + 1}/x")
    assert topic_matches("quotes/#", "quotes/GOOG")


# --- filter_covers and minimal_filters ---------------------------------------------------


MATCHED = {f: frozenset(t for t in TOPICS if topic_matches_sub(f, t)) for f in FILTERS}


def test_filter_covers_agrees_with_brute_force() -> None:
    wrong = [
        (wide, narrow)
        for wide, wide_set in MATCHED.items()
        for narrow, narrow_set in MATCHED.items()
        if filter_covers(wide, narrow) is not (narrow_set <= wide_set)
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ("quotes/#", "quotes", True),
        ("quotes", "quotes/#", False),
        ("#", "+/#", True),
        ("+/#", "#", True),
        ("/+/#", "/#", True),
        ("a/+/#", "a/#", False),
        ("#", "$SYS/#", False),
        ("$SYS/#", "$SYS/x", True),
        ("+/+", "a/b", True),
        ("a/+", "a/+/b", False),
        ("a/+/#", "a/b", True),
        ("a/+/#", "a", False),
        ("quotes/+", "quotes/GOOG", True),
        ("quotes/GOOG", "quotes/+", False),
    ],
)
def test_filter_covers_examples(wide: str, narrow: str, expected: bool) -> None:
    assert filter_covers(wide, narrow) is expected


def test_filter_covers_validates() -> None:
    with pytest.raises(ConfigError):
        filter_covers("a#", "a")
    with pytest.raises(ConfigError):
        filter_covers("a", "")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["quotes", "quotes/#"], ["quotes/#"]),
        (["quotes/#", "quotes"], ["quotes/#"]),
        (["quotes/GOOG", "quotes/AAPL", "quotes/GOOG"], ["quotes/GOOG", "quotes/AAPL"]),
        (["quotes/GOOG", "status/#", "quotes/+"], ["status/#", "quotes/+"]),
        (["quotes/+", "+/GOOG"], ["quotes/+", "+/GOOG"]),
        (["#", "+/#"], ["#"]),
        (["+/#", "#"], ["+/#"]),
        (["#", "$SYS/#", "quotes"], ["#", "$SYS/#"]),
        ([], []),
        (iter(["a", "a/#"]), ["a/#"]),
    ],
)
def test_minimal_filters(filters: list[str], expected: list[str]) -> None:
    assert minimal_filters(filters) == expected


def test_minimal_filters_keeps_every_topic_and_drops_every_covered_filter() -> None:
    rng = random.Random(5)
    pool = list(MATCHED)
    for _ in range(500):
        filters = [rng.choice(pool) for _ in range(rng.randint(1, 8))]
        result = minimal_filters(filters)
        assert result == [f for f in dict.fromkeys(filters) if f in result], "first-seen order"
        assert frozenset().union(*(MATCHED[f] for f in result)) == frozenset().union(
            *(MATCHED[f] for f in filters)
        )
        for kept, other in itertools.permutations(result, 2):
            assert not MATCHED[kept] <= MATCHED[other], (kept, other, filters)


def test_minimal_filters_validates() -> None:
    with pytest.raises(ConfigError, match="'#' must be the last level"):
        minimal_filters(["quotes/#", "a/#/b"])


def test_minimal_filters_refuses_a_bare_string() -> None:
    with pytest.raises(
        ConfigError, match="expected a list of topic filters, got the string 'quotes/#'"
    ):
        minimal_filters("quotes/#")


def test_minimal_filters_with_many_literal_filters_is_fast() -> None:
    filters = [f"quotes/S{i}" for i in range(20_000)] + ["status/#"]
    assert minimal_filters(filters) == filters


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (["quotes", "quotes/#"], ["quotes/#"]),
        (["quotes/GOOG", "quotes/AAPL"], ["quotes/GOOG", "quotes/AAPL"]),
        (["quotes/+", "+/GOOG"], ["+/+"]),
        (["a/+/c", "a/b/+", "x/#"], ["a/+/+", "x/#"]),
        (["a/+", "a/b/#"], ["a/+/#"]),
        (["$SYS/+", "+/x"], ["$SYS/+", "+/x"]),
    ],
)
def test_subscription_filters(channels: list[str], expected: list[str]) -> None:
    assert subscription_filters(channels) == expected


def test_subscription_filters_deliver_every_channel_topic_exactly_once() -> None:
    rng = random.Random(11)
    pool = list(MATCHED)
    for _ in range(1_000):
        channels = [rng.choice(pool) for _ in range(rng.randint(1, 5))]
        result = subscription_filters(channels)
        wanted = frozenset().union(*(MATCHED[c] for c in channels))
        for topic in wanted:
            assert sum(topic in MATCHED[f] for f in result) == 1, (channels, result, topic)
        for first, second in itertools.combinations(result, 2):
            assert not MATCHED[first] & MATCHED[second], (channels, result)
