"""One MQTT connection of a tickbus component, configured the way the bus needs it.

Every component (feed, bridge, view) talks to the broker through a `BusClient`:
paho-mqtt 2.x with `CallbackAPIVersion.VERSION2`, MQTT 5 (or 3.1.1 when the
URL says ``?protocol=3.1.1``, for the embedded amqtt), TLS for ``mqtts://`` (verifying the
broker against the system's CAs or `MqttSettings.ca_file`), `TCP_NODELAY` on the socket (the
broker config sets it too: DESIGN.md, on both sides or on neither), a retained JSON status on
``status/<component>/<name>`` with an ``offline`` will, automatic reconnection,
and subscriptions that are sent again on every (re)connect so a broker restart
does not silently stop delivery.

One name, one process: before a component connects, a short probe connection
reads its retained status and refuses the start when a live component of the
same kind and name is already on the bus (`find_live_components`), so a second
process never takes the first one's MQTT client id and session.

Threading: paho runs its network loop in its own OS thread. `on_message`
callbacks run in that thread and must stay tiny (decode and enqueue).
`publish`, `subscribe` and `unsubscribe` may be called from any thread.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker._tls import client_tls_context, describe_tls_failure
from broker._topics import deadletter_topic, status_topic
from broker._url import MqttSettings
from tickbus.errors import ConfigError

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
"""Called in paho's network thread with (topic, payload) for every message."""

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 15
_OLD_BROKER = "Unsupported protocol version"
"""paho's text for the refusal of a broker that does not speak the protocol asked for."""

LOST_STATUS = {
    "state": "offline",
    "lost": True,
    "reason": "lost without a clean stop: the broker published its will",
}
"""The will: what the broker publishes as the status of a component that died.

``lost`` tells it from a clean stop's ``offline`` (see `tickbus status`); its
``ts`` is when the component connected, as paho fixes the will at connect.
"""

_PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}

_FINAL_REFUSALS = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
"""CONNACK reasons a retry cannot change: unsupported protocol version, client
identifier not valid, bad user name or password, not authorized, banned, bad
authentication method. paho maps MQTT 3.1.1's return codes onto these too."""

_LOGIN_REFUSALS = frozenset({0x86, 0x87})
"""Bad user name or password, not authorized: what a broker that requires a login says."""

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts where `tickbus broker` would be the broker a user forgot to start."""

_ROUND_TRIP_FILTER = "tickbus/round-trip"
"""A filter nobody subscribes to: `BusClient.round_trip` unsubscribes from it."""

LIVE_STATES = frozenset({"online", "degraded"})
"""Status states of a running component."""

HEARTBEAT_WAIT_S = 2.5
"""How long the start check waits for a fresh status (components send one every second)."""

RECENT_S = 10.0
"""A retained live status older than this is a ghost: the start check does not wait on it.

Generous, against clock skew between hosts: a younger ghost costs a start only
`HEARTBEAT_WAIT_S` of waiting."""


class BusClient:
    """A connected MQTT client that announces its component on the status topic.

    Use it as a context manager: entering connects (retrying until
    `connect_timeout` seconds pass, then raising `ConfigError` with the broker
    URL; a refused login, a broker certificate that cannot be verified, and a
    port where nothing listens at the first attempt (ECONNREFUSED) raise at
    once, with the reason and a hint), publishes a retained
    ``{"state": "online"}`` status and starts the network thread; leaving
    publishes a retained ``{"state": "offline"}`` status and disconnects
    cleanly. If the process dies instead, the broker publishes the will,
    `LOST_STATUS`: offline, marked ``lost``. Tools that are not components
    (the `swap` command, the live view) pass ``announce=False``: no status, no will.

    A lost connection is re-established by paho in the background (backoff up
    to 2 s); on every reconnect the current subscriptions are sent again and the
    last status is published again; a refused reconnection is logged as a
    warning. A message on a topic the user may not write is dropped by the
    broker: a QoS 1 one is acknowledged "Not authorized", which is not
    reported here (a callback per publish would slow every publisher down).

    With ``session_expiry`` > 0 the client keeps one MQTT session across
    restarts: a fixed client id ``tickbus-<component>-<name>`` and no clean
    start, so the broker keeps its subscriptions and queues the QoS 1 messages
    that arrive while it is away (fills for a bridge that restarts), for
    `session_expiry` seconds. Two processes with the same component and name
    then take the session from each other, which is why entering refuses to
    start a second one (below).

    With ``exclusive`` (the default; only for announcing clients), entering
    first checks with a short probe connection of its own (random client id,
    no status) whether a live component of the same kind and name is already
    on the bus (`find_live_components`), and raises `ConfigError` naming it,
    before connecting with the client id the running one uses. With nothing
    there the check costs one round trip; a retained ``online`` status that is
    recent costs up to `HEARTBEAT_WAIT_S` of waiting for the next heartbeat.
    It needs read access to the status topic: under an ACL that denies it,
    the check sees nothing and lets the start go ahead. Two processes that
    start at the same moment are not told apart.

    Raises:
        ConfigError: On construction, when the CA file of an ``mqtts://``
            connection cannot be read.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        component: str,
        name: str,
        on_message: MessageHandler | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        announce: bool = True,
        session_expiry: int = 0,
        exclusive: bool = True,
    ) -> None:
        self.settings = settings
        self.status_topic = status_topic(component, name)
        self._component, self._name = component, name
        self._exclusive = exclusive and announce
        self._identity = {"component": component, "name": name, "pid": os.getpid()}
        self._on_message = on_message
        self._connect_timeout = connect_timeout
        self._announce = announce
        self._subscriptions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._settled = threading.Event()  # connected, or refused for good
        self._last_status: dict[str, Any] = {"state": "online"}
        self.reconnects = 0
        self.handler_errors = 0
        self._refusal: str | None = None
        self._refusal_code: int | None = None
        self._connect_error: OSError | None = None
        self._ever_connected = False
        self._failed_before = False  # a connection attempt failed already
        self._refused_at_once = False  # the first attempt met ECONNREFUSED
        self._acks = threading.Condition()  # UNSUBACKs that `round_trip` waits for
        self._awaited: set[int] = set()
        self._acked: set[int] = set()
        self._session_expiry = session_expiry
        self._client_id = f"tickbus-{component}-{name}"
        if not session_expiry:
            self._client_id += f"-{uuid.uuid4().hex[:6]}"
        self._client = self._make_paho_client()

    def _make_paho_client(self) -> mqtt.Client:
        protocol = _PROTOCOLS[self.settings.protocol]
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=protocol,
            # MQTT 5 says it at connect (clean_start); 3.1.1 here.
            clean_session=None if protocol == mqtt.MQTTv5 else not self._session_expiry,
        )
        if self.settings.username is not None:
            client.username_pw_set(self.settings.username, self.settings.password)
        if self.settings.tls:
            client.tls_set_context(client_tls_context(self.settings.ca_file))
        if self._announce:
            client.will_set(self.status_topic, self._status_payload(LOST_STATUS), 1, True)
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.max_queued_messages_set(0)
        client.on_socket_open = _set_tcp_nodelay
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_unsubscribe = self._handle_unsubscribe
        if self._on_message is not None:
            client.on_message = self._handle_message
        return client

    def __enter__(self) -> BusClient:
        if self._exclusive:
            self._refuse_if_running()
        if self._client.protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry
            self._client.connect_async(
                self.settings.host,
                self.settings.port,
                KEEPALIVE_S,
                clean_start=not self._session_expiry,
                properties=properties,
            )
        else:
            self._client.connect_async(self.settings.host, self.settings.port, KEEPALIVE_S)
        self._client.loop_start()
        self._settled.wait(self._connect_timeout)
        if not self._ever_connected:
            self._client.loop_stop()
            raise ConfigError(self._why_not_connected())
        return self

    def _refuse_if_running(self) -> None:
        """Raise ConfigError when a live component with our kind and name is on the bus."""
        live = find_live_components(
            self.settings, [(self._component, self._name)], connect_timeout=self._connect_timeout
        )
        if live:
            article = "an" if self._component[:1] in "aeiou" else "a"
            raise ConfigError(
                f"{article} {self._component} named {self._name!r} is already running on "
                f"{self.settings.url} ({live[0].facts()}): stop it, or give this one another --name"
            )

    def _why_not_connected(self) -> str:
        where = f"the MQTT broker at {self.settings.url}"
        if self._refused_at_once:
            return f"cannot reach {where}: {self._nothing_listens()}"
        if self._refusal is not None:
            return f"{where} refused the connection: {self._refusal}{self._refusal_hint()}"
        # Over TLS, a reset comes from a listener that would not do a handshake.
        if self.settings.tls and isinstance(
            self._connect_error, (ssl.SSLError, ConnectionResetError)
        ):
            why = describe_tls_failure(self._connect_error, self.settings.ca_file)
            return f"cannot connect to {where}: {why}"
        detail = "" if self._connect_error is None else f" ({self._connect_error.strerror})"
        return f"cannot reach {where} within {self._connect_timeout:g} s; is it running?{detail}"

    def _nothing_listens(self) -> str:
        host, port = self.settings.host, self.settings.port
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if host in _LOOPBACK_HOSTS and not self.settings.tls:
            return (
                f"nothing listens on {where}; is the broker running? Start one with "
                f"`tickbus broker --port {port}`, or check --mqtt"
            )
        return f"nothing listens on {where}; is the broker running there? Check --mqtt"

    def _refusal_hint(self) -> str:
        if self._refusal == _OLD_BROKER:
            return " (a broker that speaks only MQTT 3.1.1 needs ?protocol=3.1.1 in the URL)"
        if self._refusal_code not in _LOGIN_REFUSALS:
            return ""
        if self.settings.username is None:
            return (
                "; the broker requires a login: name the user in the URL "
                "(mqtt://USER@host:port) and give its password with --mqtt-password-file FILE"
            )
        return (
            f"; check the password of user {self.settings.username!r} (from the URL or "
            "--mqtt-password-file) and that the broker knows this user"
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Publish the offline status (with the last counters), flush it, and disconnect."""
        if self._announce:
            final = {k: v for k, v in self._last_status.items() if k != "state"}
            info = self.publish_status("offline", **final)
            if self._connected.is_set():
                info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker right now."""
        return self._connected.is_set()

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message; while disconnected, QoS 1 messages wait for the reconnect."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish_json(
        self, topic: str, payload: Mapping[str, Any], *, qos: int = 0, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Publish `payload` as compact JSON."""
        return self.publish(topic, _dumps(payload), qos=qos, retain=retain)

    def publish_status(self, state: str, **stats: Any) -> mqtt.MQTTMessageInfo:
        """Publish a retained status: ``{"state": state, component, name, pid, ts, **stats}``.

        States: ``online``, ``degraded`` (running, but something it depends on is
        not; ``reason`` says what) and ``offline``.
        """
        status = {"state": state, **stats}
        payload = self._status_payload(status)  # raises before anything is kept
        self._last_status = status
        return self.publish(self.status_topic, payload, qos=1, retain=True)

    def publish_dead_letter(
        self, component: str, *, reason: str, topic: str | None = None, payload: bytes = b""
    ) -> mqtt.MQTTMessageInfo:
        """Publish a rejected payload on ``deadletter/<component>`` (QoS 1) with its reason.

        The message is ``{"reason", "topic", "payload"}``; a payload that is not
        UTF-8 is carried as ``"payload_b64"`` instead, so nothing is lost.
        """
        letter: dict[str, Any] = {"reason": reason, "topic": topic, "by": self._identity["name"]}
        try:
            letter["payload"] = payload.decode()
        except UnicodeDecodeError:
            letter["payload_b64"] = base64.b64encode(payload).decode()
        return self.publish_json(deadletter_topic(component), letter, qos=1)

    def subscribe(self, filters: Iterable[str], *, qos: int = 0) -> None:
        """Subscribe now (when connected) and again after every reconnect."""
        with self._lock:
            new = [f for f in filters if f not in self._subscriptions]
            self._subscriptions.update({f: qos for f in new})
        if new and self.connected:
            self._client.subscribe([(f, qos) for f in new])

    def round_trip(self, timeout: float) -> bool:
        """Wait until the broker has answered every request sent before this call.

        It sends an UNSUBSCRIBE for a filter nobody uses and waits for the
        acknowledgement. A broker handles one client's packets in order, and
        mosquitto sends a subscription's retained messages before it reads the
        next packet, so by then `on_message` has seen the retained messages of
        every earlier `subscribe`.

        Returns:
            False when not connected, or no answer came within `timeout` seconds.
        """
        with self._acks:  # the UNSUBACK's handler waits for this lock: no lost ack
            result, mid = self._client.unsubscribe(_ROUND_TRIP_FILTER)
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                return False
            self._awaited.add(mid)
            answered = self._acks.wait_for(lambda: mid in self._acked, timeout)
            self._awaited.discard(mid)
            self._acked.discard(mid)
        return answered

    def unsubscribe(self, filters: Iterable[str]) -> None:
        """Stop receiving `filters`; unknown filters are ignored."""
        with self._lock:
            gone = [f for f in filters if self._subscriptions.pop(f, None) is not None]
        if gone and self.connected:
            self._client.unsubscribe(gone)

    def _status_payload(self, fields: Mapping[str, Any]) -> bytes:
        return _dumps({**fields, **self._identity, "ts": time.time()})

    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            refusal = str(reason_code)  # e.g. "Not authorized"
            if self._ever_connected and refusal != self._refusal:
                log.warning(
                    "the MQTT broker at %s refused to reconnect: %s", self.settings.url, refusal
                )
            self._refusal, self._refusal_code = refusal, reason_code.value
            if reason_code.value in _FINAL_REFUSALS:
                self._settled.set()
            return
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        # Mark connected before reading the subscriptions: a concurrent
        # subscribe() then either sees "connected" and sends its own SUBSCRIBE,
        # or is in the snapshot below. A filter sent twice is harmless.
        self._connected.set()
        with self._lock:
            subscriptions = list(self._subscriptions.items())
        if subscriptions:
            client.subscribe(subscriptions)
        if self._announce:
            client.publish(self.status_topic, self._status_payload(self._last_status), 1, True)
        # Last: once `__enter__` returns, the subscriptions are on their way,
        # ahead of anything the caller sends next (`round_trip` relies on it).
        self._settled.set()

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # An exception escaping a paho callback would end the network thread:
        # every later message would be lost. Log it and go on instead.
        assert self._on_message is not None
        try:
            self._on_message(msg.topic, bytes(msg.payload))
        except Exception:
            self.handler_errors += 1
            log.exception("handling a message on %s failed", msg.topic)

    def _handle_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        # paho passes no exception, but calls this inside its `except OSError:`
        # around the connection attempt, where sys.exception() is the failure.
        error = sys.exception()
        first_attempt = not (self._failed_before or self._ever_connected)
        self._failed_before = True
        if isinstance(error, OSError):
            self._connect_error = error
        # A refusal on the first attempt is a port where nothing listens, not a
        # broker that is slow to come up (docker compose waits for its healthcheck).
        if first_attempt and isinstance(error, ConnectionRefusedError):
            self._refused_at_once = True
        if self._refused_at_once or isinstance(error, ssl.SSLCertVerificationError):
            # Retrying will meet the same refusal or certificate. Disconnecting
            # ends paho's loop at once instead of after its reconnect delay.
            client.disconnect()
            self._settled.set()

    def _handle_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _handle_unsubscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, *_: Any) -> None:
        with self._acks:
            if mid in self._awaited:
                self._acked.add(mid)
                self._acks.notify_all()


def _set_tcp_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def decode_status(payload: bytes) -> dict[str, Any] | None:
    """The status a ``status/<component>/<name>`` payload carries; None if it is not one."""
    try:
        status = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return status if isinstance(status, dict) else None


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True, kw_only=True)
class LiveComponent:
    """A component that is running on the bus right now (`find_live_components`).

    Attributes:
        component: Its kind: ``bridge``, ``feed``, ``execution``, ``relay``.
        name: Its name, the last level of ``status/<component>/<name>``.
        state: ``online`` or ``degraded``.
        pid: Its process id, from its status (None when the status has none);
            on another host, a pid there.
        age: Seconds since its newest status was sent, by the sender's clock.
    """

    component: str
    name: str
    state: str
    pid: int | None
    age: float

    def facts(self) -> str:
        """``pid 1234, last status 0.4 s ago`` (and ``degraded`` when it is)."""
        degraded = ", degraded" if self.state == "degraded" else ""
        return f"pid {self.pid}{degraded}, last status {self.age:.1f} s ago"


def find_live_components(
    settings: MqttSettings,
    components: Sequence[tuple[str, str]],
    *,
    wait: float = HEARTBEAT_WAIT_S,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> list[LiveComponent]:
    """Which of `components` (``(component, name)`` pairs) are running on the bus now.

    A short probe connection (random client id, announces nothing) reads the
    retained statuses on ``status/<component>/<name>`` right after its
    subscription is acknowledged (`BusClient.round_trip`). A component counts as
    live when its retained status is ``online`` or ``degraded`` and younger than
    `RECENT_S`, and a newer live status from a process other than this one
    arrives within `wait` seconds (components send one every second). So an
    ``offline`` status, an old one (a ghost: a process the broker has not yet
    declared dead) and none at all return at once, after one round trip.

    Args:
        settings: The broker.
        components: What to look for.
        wait: Seconds to wait for a heartbeat from those that look live.
        connect_timeout: Seconds to try to reach the broker.

    Returns:
        The live ones, in the order of `components`.

    Raises:
        ConfigError: The broker cannot be reached, or refused the connection.
    """
    topics = {status_topic(component, name): (component, name) for component, name in components}
    watch = _StatusWatch()
    probe = BusClient(
        settings,
        component="probe",
        name="status",
        on_message=watch.on_message,
        connect_timeout=connect_timeout,
        announce=False,
    )
    with probe:
        probe.subscribe(topics)
        probe.round_trip(wait)
        suspects = watch.end_of_retained(now=time.time())
        fresh = watch.wait_for_fresh(suspects, timeout=wait) if suspects else {}
    now = time.time()
    return [
        LiveComponent(
            component=component,
            name=name,
            state=str(fresh[topic]["state"]),
            pid=_pid_of(fresh[topic]),
            age=max(0.0, now - _ts_of(fresh[topic])),
        )
        for topic, (component, name) in topics.items()
        if topic in fresh
    ]


class _StatusWatch:
    """The statuses a probe receives: retained ones until `end_of_retained`, fresh ones after.

    `on_message` runs in paho's thread; the other methods in the caller's.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._retained: dict[str, dict[str, Any]] = {}
        self._fresh: dict[str, dict[str, Any]] = {}
        self._after_retained = False

    def on_message(self, topic: str, payload: bytes) -> None:
        """Keep the newest status on `topic`; a payload that is not a status is ignored."""
        status = decode_status(payload)
        if status is None:
            return
        with self._changed:
            (self._fresh if self._after_retained else self._retained)[topic] = status
            self._changed.notify_all()

    def end_of_retained(self, *, now: float) -> set[str]:
        """Mark what came so far as retained; return the topics whose status looks live.

        Live-looking: ``online`` or ``degraded``, sent less than `RECENT_S` ago
        (a status from a clock ahead of ours counts as recent).
        """
        with self._changed:
            self._after_retained = True
            return {
                topic
                for topic, status in self._retained.items()
                if status.get("state") in LIVE_STATES and now - _ts_of(status) < RECENT_S
            }

    def wait_for_fresh(self, topics: set[str], *, timeout: float) -> dict[str, dict[str, Any]]:
        """Wait up to `timeout` s for a fresh status on each of `topics`; return the live ones.

        A fresh status is one that arrived after `end_of_retained`, from another
        process than this one; an ``offline`` one ends the wait for its topic
        (the component is stopping) and is not returned.
        """
        own = os.getpid()

        def heard() -> dict[str, dict[str, Any]]:
            return {
                topic: status
                for topic, status in self._fresh.items()
                if topic in topics and status.get("pid") != own
            }

        with self._changed:
            self._changed.wait_for(lambda: heard().keys() >= topics, timeout)
            return {t: s for t, s in heard().items() if s.get("state") in LIVE_STATES}


def _ts_of(status: Mapping[str, Any]) -> float:
    """The status's ``ts``, or 0 (long ago) when it has none that is a number."""
    ts = status.get("ts")
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else 0.0


def _pid_of(status: Mapping[str, Any]) -> int | None:
    pid = status.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None
