"""MQTT URL parsing, settings validation and password redaction."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker import DEFAULT_MQTT_URL, DEFAULT_MQTTS_PORT, MQTT_URL_ENV, MqttSettings
from tickbus.errors import ConfigError


def test_constants() -> None:
    assert DEFAULT_MQTT_URL == "mqtt://127.0.0.1:1883"
    assert MQTT_URL_ENV == "TICKBUS_MQTT_URL"
    assert MqttSettings.from_url(DEFAULT_MQTT_URL) == MqttSettings(host="127.0.0.1", port=1883)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://localhost", MqttSettings(host="localhost")),
        ("mqtt://broker:1884", MqttSettings(host="broker", port=1884)),
        ("MQTT://Broker.Example.com:1", MqttSettings(host="Broker.Example.com", port=1)),
        ("mqtt://mosquitto_1:65535", MqttSettings(host="mosquitto_1", port=65535)),
        ("mqtt://feed@broker", MqttSettings(host="broker", username="feed")),
        (
            "mqtt://feed:secret@broker:1883",
            MqttSettings(host="broker", username="feed", password="secret"),
        ),
        ("mqtt://feed:@broker", MqttSettings(host="broker", username="feed", password="")),
        (
            "mqtt://us%40er:p%3Ass%2Fw%25rd%40@broker",
            MqttSettings(host="broker", username="us@er", password="p:ss/w%rd@"),
        ),
        ("mqtt://user:pa:ss@h", MqttSettings(host="h", username="user", password="pa:ss")),
        ("mqtt://user:p@ss@h", MqttSettings(host="h", username="user", password="p@ss")),
        ("mqtt://%C3%BCser:%E2%82%AC@h", MqttSettings(host="h", username="üser", password="€")),
        ("mqtt://[::1]", MqttSettings(host="::1")),
        ("mqtt://[::1]:1884", MqttSettings(host="::1", port=1884)),
        (
            "mqtt://u:p@[2001:db8::7]:8883",
            MqttSettings(host="2001:db8::7", port=8883, username="u", password="p"),
        ),
        ("mqtt://[fe80::1%25eth0]:1883", MqttSettings(host="fe80::1%eth0")),
        ("  mqtt://h:1883\n", MqttSettings(host="h")),
        ("mqtt://10.0.0.5:00080", MqttSettings(host="10.0.0.5", port=80)),
        ("mqtt://h?protocol=3.1.1", MqttSettings(host="h", protocol="3.1.1")),
        ("mqtt://u:p@h:2?protocol=5", MqttSettings(host="h", port=2, username="u", password="p")),
        ("mqtts://broker", MqttSettings(host="broker", port=8883, tls=True)),
        ("MQTTS://broker:18883", MqttSettings(host="broker", port=18883, tls=True)),
        (
            "mqtts://feed@[::1]?protocol=3.1.1",
            MqttSettings(host="::1", port=8883, username="feed", protocol="3.1.1", tls=True),
        ),
    ],
)
def test_from_url(url: str, expected: MqttSettings) -> None:
    assert MqttSettings.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ssl://h:8883", "unsupported URL scheme 'ssl': only mqtt:// and mqtts:// are supported"),
        ("tcp://h:1883", "unsupported URL scheme 'tcp': only mqtt:// and mqtts:// are supported"),
        ("ws://h/mqtt", "unsupported URL scheme 'ws': only mqtt:// and mqtts:// are supported"),
        ("mqtts://h/x", "an MQTT URL takes no path"),
        ("localhost:1883", "not an MQTT URL: 'localhost:1883'; expected mqtt://host[:port]"),
        ("", "not an MQTT URL: ''; expected mqtt://host[:port]"),
        ("mqtt://", "the MQTT URL has no host; expected mqtt://host[:port]"),
        ("mqtt://:1883", "the MQTT URL has no host; expected mqtt://host[:port]"),
        ("mqtt://user:pw@", "the MQTT URL has no host; expected mqtt://host[:port]"),
        ("mqtt://user:pw@:1883", "the MQTT URL has no host; expected mqtt://host[:port]"),
        ("mqtt://[]:1883", "invalid IPv6 address [] in MQTT URL"),
        ("mqtt://h:", "the MQTT URL has ':' but no port after it"),
        ("mqtt://h:abc", "MQTT URL port 'abc' is not a number"),
        ("mqtt://h:-1", "MQTT URL port '-1' is not a number"),
        ("mqtt://h:+1", "MQTT URL port '+1' is not a number"),
        ("mqtt://h: 1", "MQTT URL port ' 1' is not a number"),
        ("mqtt://h:\u0661\u0662", "MQTT URL port '\u0661\u0662' is not a number"),
        ("mqtt://h:0", "MQTT URL port 0 is out of range 1-65535"),
        ("mqtt://h:65536", "MQTT URL port 65536 is out of range 1-65535"),
        ("mqtt://h:" + "9" * 5000, "MQTT URL port 9999999999... is out of range 1-65535"),
        (
            "mqtt://h:1883/",
            "an MQTT URL takes no path, fragment or query but ?protocol=; this one has a path",
        ),
        (
            "mqtt://h/topic",
            "an MQTT URL takes no path, fragment or query but ?protocol=; this one has a path",
        ),
        (
            "mqtt://h:1883?x=1",
            "an MQTT URL takes no path, fragment or query but ?protocol=; this one has a query",
        ),
        ("mqtt://h?protocol=4", "an MQTT URL's ?protocol= must be 5 or 3.1.1"),
        ("mqtt://h?protocol=5&x=1", "an MQTT URL's ?protocol= must be 5 or 3.1.1"),
        (
            "mqtt://h#frag",
            "an MQTT URL takes no path, fragment or query but ?protocol=; this one has a fragment",
        ),
        (
            "mqtt://h:1:2",
            "MQTT URL host 'h:1:2' has several ':'; write an IPv6 address in brackets",
        ),
        ("mqtt://::1", "MQTT URL host '::1' has several ':'; write an IPv6 address in brackets"),
        ("mqtt://[::1", "unclosed '[' in MQTT URL host '[::1'"),
        ("mqtt://[::1]x", "unexpected 'x' after ']' in MQTT URL host"),
        ("mqtt://[not-ipv6]", "invalid IPv6 address [not-ipv6] in MQTT URL"),
        ("mqtt://bad host", "invalid host 'bad host' in MQTT URL"),
        ("mqtt://h%41", "invalid host 'h%41' in MQTT URL"),
        ("mqtt://@h", "the user name before '@' in the MQTT URL is empty"),
        ("mqtt://:pw@h", "the user name before '@' in the MQTT URL is empty"),
        (
            "mqtt://u:p%zz@h",
            "the password in the MQTT URL has a '%' not followed by two hex digits",
        ),
        ("mqtt://u%4@h", "the user name in the MQTT URL has a '%' not followed by two hex digits"),
        ("mqtt://u:%ff@h", "the password in the MQTT URL is not percent-encoded UTF-8"),
    ],
)
def test_from_url_rejects(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        MqttSettings.from_url(url)
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    "url",
    [
        "mqtt://user:s3cr3t@h:0",
        "mqtt://user:s3cr3t@h:99999",
        "mqtt://user:s3cr3t@h/x",
        "mqtt://user:s3cr3t@",
        "ws://user:s3cr3t@h",
        "mqtts://user:s3cr3t@h:0",
        "user:s3cr3t@h:1883",
        "mqtt://user:s3cr3t#@h",
        "mqtt://user:s3cr3t/@h",
        "mqtt://user:s3cr3t%zz@h",
        "mqtt://user:s3cr3t@[::1]x",
        "mqtt://user:pw@h?protocol=s3cr3t",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        MqttSettings.from_url(url)
    assert "s3cr3t" not in str(info.value)


def test_a_password_with_an_unencoded_slash_gets_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        MqttSettings.from_url("mqtt://user:a/b@h")
    assert "percent-encode '/', '?', '#' and '@'" in info.value.reason


def test_url_redacts_the_password() -> None:
    settings = MqttSettings.from_url("mqtt://feed:s3cr3t@broker:1884")
    assert settings.password == "s3cr3t"
    assert settings.url == "mqtt://feed:***@broker:1884"
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings)
    assert repr(settings) == (
        "MqttSettings(host='broker', port=1884, username='feed', password='***', protocol='5', "
        "tls=False, ca_file=None)"
    )


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        (MqttSettings(host="h"), "mqtt://h:1883"),
        (MqttSettings(host="h", port=2, username="u"), "mqtt://u@h:2"),
        (MqttSettings(host="h", username="u", password=""), "mqtt://u:***@h:1883"),
        (MqttSettings(host="::1", port=1884), "mqtt://[::1]:1884"),
        (MqttSettings(host="fe80::1%eth0"), "mqtt://[fe80::1%25eth0]:1883"),
        (MqttSettings(host="h", username="a@b:c/d"), "mqtt://a%40b%3Ac%2Fd@h:1883"),
        (MqttSettings(host="h", protocol="3.1.1"), "mqtt://h:1883?protocol=3.1.1"),
        (MqttSettings(host="h", port=8883, tls=True), "mqtts://h:8883"),
        (
            MqttSettings(host="h", port=8883, username="u", password="p", tls=True),
            "mqtts://u:***@h:8883",
        ),
        (
            MqttSettings(host="h", port=8883, tls=True, ca_file=Path("/etc/ca.pem")),
            "mqtts://h:8883",
        ),
    ],
)
def test_url_round_trips_except_the_password_and_the_ca(settings: MqttSettings, url: str) -> None:
    assert settings.url == url
    parsed = MqttSettings.from_url(url)
    assert dataclasses.replace(parsed, password=settings.password, ca_file=settings.ca_file) == (
        settings
    )


def test_mqtts_defaults_to_port_8883() -> None:
    assert DEFAULT_MQTTS_PORT == 8883
    assert MqttSettings.from_url("mqtts://h").port == 8883
    assert MqttSettings.from_url("mqtt://h").port == 1883


def test_repr_without_password() -> None:
    assert repr(MqttSettings(host="h")) == (
        "MqttSettings(host='h', port=1883, username=None, password=None, protocol='5', "
        "tls=False, ca_file=None)"
    )


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = MqttSettings(host="h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        MqttSettings("h")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"host": ""}, "MQTT host must not be empty"),
        ({"host": "h", "port": 0}, "MQTT port must be in 1-65535, got 0"),
        ({"host": "h", "port": 70000}, "MQTT port must be in 1-65535, got 70000"),
        ({"host": "h", "port": "1883"}, "MQTT port must be an int, got str"),
        ({"host": "h", "port": True}, "MQTT port must be an int, got bool"),
        ({"host": "h", "password": "pw"}, "an MQTT password needs a user name"),
        ({"host": "h", "protocol": "4"}, "MQTT protocol must be 5 or 3.1.1, got '4'"),
        (
            {"host": "h", "ca_file": Path("ca.pem")},
            "a CA file is only used over TLS: the broker URL must be mqtts://",
        ),
    ],
)
def test_constructor_validates(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        MqttSettings(**kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason
