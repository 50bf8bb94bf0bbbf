"""Topic names of the bus, and MQTT topic-filter validation and matching.

`topic_matches` is the one matcher used by the MQTT bridge and by the ring
(which filters ticks by topic per message), so it compiles each filter once
into a small closure and caches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tickbus.errors import ConfigError

QUOTES = "quotes"
"""The quotes channel: quotes of any symbol, and the root of ``quotes/<SYMBOL>``."""

_FORBIDDEN_IN_NAME = ("/", "+", "#", "\x00")
_MAX_TOPIC_BYTES = 65_535  # MQTT strings are length-prefixed with 16 bits
_MAX_CACHED_FILTERS = 4096

_Matcher = Callable[[str], bool]
_matchers: dict[str, _Matcher] = {}


def validate_name(name: str) -> str:
    """Check that `name` can be one level of a topic (a symbol, algo or component name).

    Args:
        name: The would-be topic level.

    Returns:
        `name`, unchanged.

    Raises:
        ConfigError: `name` is empty or contains ``/``, ``+``, ``#`` or NUL.
    """
    if not name:
        raise ConfigError("a topic level name must not be empty")
    for char in _FORBIDDEN_IN_NAME:
        if char in name:
            raise ConfigError(
                f"topic level name {name!r} must not contain {char!r} "
                "(names must not contain '/', '+', '#' or NUL)"
            )
    return name


def quote_topic(sid: str) -> str:
    """The topic of one symbol's quotes: ``quotes/<SID>``, the symbol upper-cased.

    Raises:
        ConfigError: `sid` is not a valid topic level (see `validate_name`).
    """
    return f"{QUOTES}/{validate_name(sid).upper()}"


def orders_topic(algo: str) -> str:
    """The topic on which the bridge publishes an algorithm's orders: ``orders/<algo>``.

    Raises:
        ConfigError: `algo` is not a valid topic level.
    """
    return f"orders/{validate_name(algo)}"


def rejected_orders_topic(algo: str) -> str:
    """Where execution returns an algorithm's rejected orders: ``orders/<algo>/rejected``.

    One level below ``orders/<algo>``, so a subscription on ``orders/+`` (the
    orders themselves) does not receive the rejections.

    Raises:
        ConfigError: `algo` is not a valid topic level.
    """
    return f"orders/{validate_name(algo)}/rejected"


def fills_topic(algo: str) -> str:
    """The topic of fills for an algorithm's orders: ``fills/<algo>``.

    Raises:
        ConfigError: `algo` is not a valid topic level.
    """
    return f"fills/{validate_name(algo)}"


def status_topic(component: str, name: str) -> str:
    """A component's retained status topic: ``status/<component>/<name>``.

    Raises:
        ConfigError: `component` or `name` is not a valid topic level.
    """
    return f"status/{validate_name(component)}/{validate_name(name)}"


def control_topic(component: str, name: str) -> str:
    """A component's command topic: ``control/<component>/<name>``.

    Raises:
        ConfigError: `component` or `name` is not a valid topic level.
    """
    return f"control/{validate_name(component)}/{validate_name(name)}"


def deadletter_topic(component: str) -> str:
    """Where a component publishes payloads it rejected: ``deadletter/<component>``.

    Raises:
        ConfigError: `component` is not a valid topic level.
    """
    return f"deadletter/{validate_name(component)}"


def validate_filter(topic_filter: str) -> str:
    """Check a topic filter against the MQTT 3.1.1/5 rules.

    A filter is non-empty, has no NUL, is at most 65535 bytes of UTF-8, uses
    ``+`` only as a whole level and ``#`` only as the whole last level.
    Empty levels (``a//b``, ``/a``) are valid, as in MQTT.

    Args:
        topic_filter: e.g. ``"quotes/#"``, ``"status/+/bridge1"``.

    Returns:
        `topic_filter`, unchanged.

    Raises:
        ConfigError: The filter breaks a rule; the reason says which.
    """
    if not topic_filter:
        raise ConfigError("a topic filter must not be empty")
    if "\x00" in topic_filter:
        raise ConfigError(f"topic filter {topic_filter!r} contains NUL")
    try:
        encoded_size = len(topic_filter.encode())
    except UnicodeEncodeError as exc:
        raise ConfigError(f"topic filter {topic_filter!r} is not valid Unicode") from exc
    if encoded_size > _MAX_TOPIC_BYTES:
        raise ConfigError(
            f"topic filter is {encoded_size} bytes of UTF-8, the MQTT limit is {_MAX_TOPIC_BYTES}"
        )
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level:
            if level != "#":
                raise ConfigError(
                    f"in topic filter {topic_filter!r}, '#' must be a whole level (got {level!r})"
                )
            if index != last:
                raise ConfigError(f"in topic filter {topic_filter!r}, '#' must be the last level")
        elif "+" in level and level != "+":
            raise ConfigError(
                f"in topic filter {topic_filter!r}, '+' must be a whole level (got {level!r})"
            )
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches `topic_filter`, exactly as MQTT 3.1.1/5 define it.

    ``+`` matches exactly one level, including an empty one (``a/+`` matches
    ``a/``); ``#`` matches the rest, including nothing (``a/#`` matches ``a``;
    ``#`` matches every topic). A filter whose first level is ``+`` or ``#``
    does not match a topic starting with ``$`` (``$SYS/...``); ``$SYS/#`` does.

    The filter is validated and compiled on first use and cached (up to 4096
    filters; the cache is cleared when full), so repeated calls cost one dict
    lookup and a few string comparisons. Safe to call from several threads.

    Args:
        topic_filter: A topic filter; validated as by `validate_filter`.
        topic: A topic name as published: non-empty, without wildcards. It is
            not validated (this is the per-message path); ``+`` or ``#`` in it
            compare as plain characters.

    Returns:
        True when a message published on `topic` is delivered to a
        subscription on `topic_filter`.

    Raises:
        ConfigError: `topic_filter` is not a valid filter.
    """
    matcher = _matchers.get(topic_filter)
    if matcher is None:
        matcher = _compile(topic_filter)
    return matcher(topic)


def filter_covers(wide: str, narrow: str) -> bool:
    """Whether every topic matched by `narrow` is also matched by `wide`.

    Every filter covers itself. ``#`` covers every filter except those with a
    literal ``$``-first level (``$SYS/#``); ``a/#`` covers ``a``; ``+/#`` and
    ``#`` cover each other (they match the same topics, since a topic has at
    least one character).

    Raises:
        ConfigError: Either filter is not valid.
    """
    return _covers(validate_filter(wide).split("/"), validate_filter(narrow).split("/"))


def minimal_filters(filters: Iterable[str]) -> list[str]:
    """The smallest subscription list that delivers every message once.

    Validates every filter, drops duplicates and every filter covered by
    another one (see `filter_covers`), and keeps the first-seen order of what
    remains. Of two filters that match the same topics (``#`` and ``+/#``) the
    first one is kept. ``["quotes", "quotes/#"]`` gives ``["quotes/#"]``.
    Cost grows with (filters x wildcard filters), so thousands of literal
    ``quotes/<SYMBOL>`` filters stay cheap.

    Args:
        filters: Topic filters, e.g. the channels an algorithm asked for.

    Returns:
        A new list; empty when `filters` is empty.

    Raises:
        ConfigError: A filter is not valid, or `filters` is a single string
            (a common slip for ``["quotes/#"]``).
    """
    if isinstance(filters, str):
        raise ConfigError(f"expected a list of topic filters, got the string {filters!r}")
    unique = list(dict.fromkeys(validate_filter(f) for f in filters))
    split = [f.split("/") for f in unique]
    # A filter without wildcards covers only itself, and duplicates are gone.
    wildcards = [i for i, f in enumerate(unique) if "+" in f or "#" in f]
    kept: list[str] = []
    for index, levels in enumerate(split):
        redundant = any(
            other != index
            and _covers(split[other], levels)
            and (other < index or not _covers(levels, split[other]))
            for other in wildcards
        )
        if not redundant:
            kept.append(unique[index])
    return kept


def subscription_filters(channels: Iterable[str]) -> list[str]:
    """Filters to subscribe to so that every message on `channels` arrives exactly once.

    A broker sends a message once per matching subscription, so two filters
    that match a common topic (``quotes/+`` and ``+/GOOG`` both match
    ``quotes/GOOG``) would deliver it twice. This returns `minimal_filters` of
    `channels` with every such pair replaced by one filter covering both
    (``+/+``), repeated until no two filters share a topic. The result may
    match more topics than `channels`: the subscriber must keep only topics
    that match a channel (`topic_matches`).

    Raises:
        ConfigError: A filter is not valid.
    """
    filters = minimal_filters(channels)
    while True:
        pair = _first_overlapping_pair(filters)
        if pair is None:
            return filters
        first, second = pair
        rest = [f for f in filters if f not in pair]
        filters = minimal_filters([_generalize(first, second), *rest])


def _first_overlapping_pair(filters: list[str]) -> tuple[str, str] | None:
    # Literal filters never overlap each other, and minimal_filters already
    # removed every literal a wildcard filter matches.
    wild = [f for f in filters if "+" in f or "#" in f]
    for i, first in enumerate(wild):
        for second in wild[i + 1 :]:
            if _intersect(first.split("/"), second.split("/")):
                return first, second
    return None


def _intersect(a: list[str], b: list[str]) -> bool:
    """Whether some topic matches both split filters."""
    dollar = a[0].startswith("$") or b[0].startswith("$")
    if dollar and (a[0] in ("+", "#") or b[0] in ("+", "#")):
        return False  # a filter starting with a wildcard matches no "$..." topic
    for x, y in zip(a, b, strict=False):
        if x == "#" or y == "#":
            return True
        if x != y and "+" not in (x, y):
            return False
    rest = a[len(b) :] or b[len(a) :]
    return not rest or rest == ["#"]


def _generalize(first: str, second: str) -> str:
    """A filter that matches every topic either filter matches."""
    a, b = first.split("/"), second.split("/")
    levels: list[str] = []
    for x, y in zip(a, b, strict=False):
        if x == "#" or y == "#":
            return "/".join([*levels, "#"])
        levels.append(x if x == y else "+")
    if len(a) != len(b):
        levels.append("#")
    return "/".join(levels)


def _covers(wide: list[str], narrow: list[str]) -> bool:
    """`filter_covers` on valid filters already split into levels."""
    if wide[0] in ("+", "#") and narrow[0] not in ("+", "#") and narrow[0].startswith("$"):
        return False  # wildcard-first filters never match $-topics
    for index, wide_level in enumerate(wide):
        if wide_level == "#":
            return True  # matches whatever narrow allows from here, even nothing
        if index == len(narrow):
            return False  # narrow ended; wide still needs a level
        narrow_level = narrow[index]
        if narrow_level == "#":
            # Narrow allows any depth from here, or none; only '#' covers that. Where
            # "none" would leave the empty topic, which does not exist (at the first
            # level, or after one empty level: "/#"), "+/#" and "/+/#" cover it too.
            none_is_empty = index == 0 or (index == 1 and narrow[0] == "")
            return none_is_empty and wide_level == "+" and wide[index + 1 :] == ["#"]
        if wide_level not in ("+", narrow_level):
            return False  # a literal covers only the same literal (not '+')
    return len(wide) == len(narrow)


def _compile(topic_filter: str) -> _Matcher:
    validate_filter(topic_filter)
    matcher = _build_matcher(topic_filter)
    if len(_matchers) >= _MAX_CACHED_FILTERS:
        _matchers.clear()  # filters come from config; a full cache means churn, not a working set
    _matchers[topic_filter] = matcher
    return matcher


def _build_matcher(topic_filter: str) -> _Matcher:
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter.__eq__
    if topic_filter == "#":
        return _not_dollar
    if "+" not in topic_filter:  # "<literal levels>/#"
        parent = topic_filter[:-2]
        prefix = topic_filter[:-1]  # keeps the trailing "/"

        def match_subtree(topic: str) -> bool:
            return topic.startswith(prefix) or topic == parent

        return match_subtree
    return _level_matcher(topic_filter.split("/"))


def _level_matcher(levels: list[str]) -> _Matcher:
    multi = levels[-1] == "#"
    if multi:
        levels = levels[:-1]
    depth = len(levels)
    literals = tuple((i, level) for i, level in enumerate(levels) if level != "+")
    guard_dollar = levels[0] == "+"

    def match_levels(topic: str) -> bool:
        if guard_dollar and topic.startswith("$"):
            return False
        parts = topic.split("/")
        if len(parts) < depth if multi else len(parts) != depth:
            return False
        for index, level in literals:  # noqa: SIM110 - a loop beats all(<genexpr>) here
            if parts[index] != level:
                return False
        return True

    return match_levels


def _not_dollar(topic: str) -> bool:
    return not topic.startswith("$")
