"""broker: the Python side of the bus contract.

Everything that two tickbus processes must agree on to talk over MQTT lives
here, so feeds, bridges and tools import it instead of spelling it out:

* Topics: `quote_topic` (``quotes/<SYMBOL>``, under the `QUOTES` channel),
  `orders_topic`, `rejected_orders_topic`, `fills_topic`, `status_topic`, `control_topic`,
  `deadletter_topic`; `validate_name` for one topic level, `validate_filter`,
  `topic_matches` (MQTT wildcard rules, used by the bridge and the ring),
  `filter_covers`, `minimal_filters` and `subscription_filters` (subscribe so
  that no message arrives twice).
* Quote codec: `decode_quotes` reads JSON or msgpack payloads (full quotes,
  arrays of them, the short form ``{"GOOG": 345.1}``) into validated `Quote`
  dicts and raises `tickbus.errors.QuoteRejected` with a reason for anything
  else; `parse_quote` validates one mapping, `parse_symbols` a --symbols
  list; `encode_quote_json` and `encode_quotes_msgpack` write payloads that
  decode back exactly.
* Order schema: `decode_order` reads one JSON order into a validated `Order`
  (``id``, ``algo``, ``sid``, ``side``, ``qty``, ``type``, ``ts``, and
  ``limit_price`` for limit orders) and raises `tickbus.errors.OrderRejected`
  with a reason naming the field; `parse_order` validates a mapping;
  `encode_order` writes compact JSON. Rejected orders go back on
  `rejected_orders_topic` (``orders/<algo>/rejected``) as a `rejection_notice`
  (``reason``, ``by``, ``order``); `decode_report` frames a fill or a notice
  and `rejected_order_id` reads the notice's order id.
* `PriceBand`: the bad-tick filter; a quote more than
  `DEFAULT_MAX_PRICE_JUMP_PCT` percent away from its symbol's recent price is
  suspect (the bridge and paper execution dead-letter it); `price_band_option`
  is its ``--max-price-jump-pct`` flag.
* Connection settings: `MqttSettings.from_url` parses
  ``mqtt://user:pass@host:port`` and ``mqtts://...`` (TLS, port 8883 by
  default); the entry points take the URL from a flag, `MQTT_URL_ENV` or
  `DEFAULT_MQTT_URL`. `mqtt_option` adds that flag to click commands, with
  ``--mqtt-password-file`` (`MQTT_PASSWORD_FILE_ENV`: the password comes from
  a file, not a command line; `read_password_file`) and ``--mqtt-ca``
  (`MQTT_CA_ENV`: the CAs an ``mqtts://`` connection trusts). Nothing else in
  this package reads the environment.
* `BusClient`: one component's MQTT connection (status, will, reconnects,
  dead letters, TLS); a refused login, an unverifiable broker certificate or
  a port where nothing listens is a `ConfigError` that says why, at once.
  It refuses to start a component whose kind and name a live one already
  uses; `find_live_components` is that check (`LiveComponent`), for tools
  such as `tickbus up` that look for several at once. `decode_status` reads a
  status payload. A component lost without a clean stop has the broker's
  will as its status: ``offline`` with ``"lost": true``.
* A local broker: `run_local_broker` (mosquitto, or amqtt when mosquitto is
  not installed), `broker_listening` (anything on the port), `speaks_mqtt`
  (an MQTT broker on the port), `mosquitto_config`, and `broker_command`
  (`tickbus broker`). With `LocalBrokerConfig.auth_dir` (``--auth DIR``) it
  requires a login: `create_credentials` gives each of the `ROLES` a fresh
  password in ``DIR/<role>.password`` (`role_password_file`), and the shipped
  ACL (`ACL_FILE`) confines each role to its topics.

Every other module in the package is private.
"""

from broker._auth import ACL_FILE, ROLES, BrokerAuth, create_credentials, role_password_file
from broker._band import DEFAULT_MAX_PRICE_JUMP_PCT, PriceBand, price_band_option
from broker._cli import broker_command
from broker._client import (
    BusClient,
    LiveComponent,
    decode_status,
    find_live_components,
)
from broker._codec import (
    MAX_NUMBER,
    MAX_PAYLOAD_BYTES,
    MAX_QUOTES_PER_PAYLOAD,
    MAX_SYMBOL_LENGTH,
    Quote,
    decode_quotes,
    encode_quote_json,
    encode_quotes_msgpack,
    parse_quote,
    parse_symbols,
)
from broker._launcher import (
    LocalBrokerConfig,
    broker_listening,
    find_mosquitto,
    mosquitto_config,
    run_local_broker,
    speaks_mqtt,
)
from broker._options import (
    MQTT_CA_ENV,
    MQTT_PASSWORD_FILE_ENV,
    mqtt_option,
    with_password_file,
)
from broker._orders import (
    MAX_ORDER_BYTES,
    MAX_ORDER_ID_LENGTH,
    MAX_ORDER_QTY,
    REJECTED_BY_BRIDGE,
    REJECTED_BY_EXECUTION,
    Order,
    decode_order,
    decode_report,
    encode_order,
    parse_order,
    rejected_order_id,
    rejection_notice,
)
from broker._secret_file import read_password_file, write_secret_file
from broker._topics import (
    QUOTES,
    control_topic,
    deadletter_topic,
    fills_topic,
    filter_covers,
    minimal_filters,
    orders_topic,
    quote_topic,
    rejected_orders_topic,
    status_topic,
    subscription_filters,
    topic_matches,
    validate_filter,
    validate_name,
)
from broker._url import (
    DEFAULT_MQTT_PORT,
    DEFAULT_MQTT_URL,
    DEFAULT_MQTTS_PORT,
    MQTT_URL_ENV,
    MqttSettings,
)

__all__ = [
    "ACL_FILE",
    "DEFAULT_MAX_PRICE_JUMP_PCT",
    "DEFAULT_MQTTS_PORT",
    "DEFAULT_MQTT_PORT",
    "DEFAULT_MQTT_URL",
    "MAX_NUMBER",
    "MAX_ORDER_BYTES",
    "MAX_ORDER_ID_LENGTH",
    "MAX_ORDER_QTY",
    "MAX_PAYLOAD_BYTES",
    "MAX_QUOTES_PER_PAYLOAD",
    "MAX_SYMBOL_LENGTH",
    "MQTT_CA_ENV",
    "MQTT_PASSWORD_FILE_ENV",
    "MQTT_URL_ENV",
    "QUOTES",
    "REJECTED_BY_BRIDGE",
    "REJECTED_BY_EXECUTION",
    "ROLES",
    "BrokerAuth",
    "BusClient",
    "LiveComponent",
    "LocalBrokerConfig",
    "MqttSettings",
    "Order",
    "PriceBand",
    "Quote",
    "broker_command",
    "broker_listening",
    "control_topic",
    "create_credentials",
    "deadletter_topic",
    "decode_order",
    "decode_quotes",
    "decode_report",
    "decode_status",
    "encode_order",
    "encode_quote_json",
    "encode_quotes_msgpack",
    "fills_topic",
    "filter_covers",
    "find_live_components",
    "find_mosquitto",
    "minimal_filters",
    "mosquitto_config",
    "mqtt_option",
    "orders_topic",
    "parse_order",
    "parse_quote",
    "parse_symbols",
    "price_band_option",
    "quote_topic",
    "read_password_file",
    "rejected_order_id",
    "rejected_orders_topic",
    "rejection_notice",
    "role_password_file",
    "run_local_broker",
    "speaks_mqtt",
    "status_topic",
    "subscription_filters",
    "topic_matches",
    "validate_filter",
    "validate_name",
    "with_password_file",
    "write_secret_file",
]
