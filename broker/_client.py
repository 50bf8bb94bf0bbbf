"""One MQTT connection of a tickbus component, configured the way the bus needs it.

Every component (feed, bridge, view) talks to the broker through a `BusClient`:
paho-mqtt 2.x with `CallbackAPIVersion.VERSION2`, MQTT 5 (or 3.1.1 when the
URL says ``?protocol=3.1.1``, for the embedded amqtt), TLS for ``mqtts://`` (verifying the
broker against the system's CAs or `MqttSettings.ca_file`), `TCP_NODELAY` on the socket (the
broker config sets it too: DESIGN.md, on both sides or on neither), a retained JSON status on
``status/<component>/<name>`` with an ``offline`` will, automatic reconnection,
and subscriptions that are sent again on every (re)connect so a broker restart
does not silently stop delivery.

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
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
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

_PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}

_FINAL_REFUSALS = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
"""CONNACK reasons a retry cannot change: unsupported protocol version, client
identifier not valid, bad user name or password, not authorized, banned, bad
authentication method. paho maps MQTT 3.1.1's return codes onto these too."""

_LOGIN_REFUSALS = frozenset({0x86, 0x87})
"""Bad user name or password, not authorized: what a broker that requires a login says."""


class BusClient:
    """A connected MQTT client that announces its component on the status topic.

    Use it as a context manager: entering connects (retrying until
    `connect_timeout` seconds pass, then raising `ConfigError` with the broker
    URL; a refused login or a broker certificate that cannot be verified raises
    at once, with the reason and a hint), publishes a retained
    ``{"state": "online"}`` status and starts the network thread; leaving
    publishes a retained ``{"state": "offline"}`` status and disconnects
    cleanly. If the process dies instead, the broker publishes the same
    offline status as the will message. Tools that are not components
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
    then take the session from each other: give every one its own name.

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
    ) -> None:
        self.settings = settings
        self.status_topic = status_topic(component, name)
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
            client.will_set(self.status_topic, self._status_payload({"state": "offline"}), 1, True)
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.max_queued_messages_set(0)
        client.on_socket_open = _set_tcp_nodelay
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        if self._on_message is not None:
            client.on_message = self._handle_message
        return client

    def __enter__(self) -> BusClient:
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

    def _why_not_connected(self) -> str:
        where = f"the MQTT broker at {self.settings.url}"
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
        self._settled.set()
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

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # An exception escaping a paho callback would end the network thread:
        # every later message would be lost. Log it and go on instead.
        assert self._on_message is not None
        try:
            self._on_message(msg.topic, bytes(msg.payload))
        except Exception:
            self.handler_errors += 1
            log.exception("handling a message on %s failed", msg.topic)

    def _handle_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho passes no exception, but calls this inside its `except OSError:`
        # around the connection attempt, where sys.exception() is the failure.
        error = sys.exception()
        if isinstance(error, OSError):
            self._connect_error = error
        if isinstance(error, ssl.SSLCertVerificationError):
            self._settled.set()  # retrying will meet the same certificate

    def _handle_disconnect(self, *_args: Any) -> None:
        self._connected.clear()


def _set_tcp_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
