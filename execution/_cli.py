"""`tickbus execution paper`."""

from __future__ import annotations

import click

from broker import MqttSettings, mqtt_option, price_band_option, validate_name
from execution._config import PaperConfig
from execution._options import pricing_options
from execution._service import run_paper
from tickbus.errors import ConfigError
from tickbus.metrics import metrics_endpoint, metrics_options


@click.group(name="execution")
def execution_group() -> None:
    """Fill the orders on orders/<algo> and publish fills on fills/<algo>."""


@execution_group.command(name="paper")
@mqtt_option
@pricing_options
@price_band_option("paper execution")
@click.option("--name", default="paper", show_default=True, help="Name on status/execution/NAME.")
@metrics_options
def paper_command(
    mqtt: MqttSettings,
    slippage_bps: float,
    fee_bps: float,
    quote_timeout: float,
    max_price_jump_pct: float,
    name: str,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Fill every algorithm's orders on paper, against the latest quote of their symbol.

    Reads orders on orders/+ and quotes on quotes and quotes/#. A market order
    fills at once: a buy at the ask (the price when the quote has no ask) plus
    slippage, a sell at the bid (or price) minus slippage. A limit order fills
    when the market reaches its limit_price, at that market price with
    slippage but never worse than the limit; until then it waits, with no
    expiry. An order for a symbol without a quote yet waits for one (market
    orders at most --quote-timeout seconds). Each fill goes to fills/ALGO
    (QoS 1); an order id seen again is filled once.

    Invalid orders, timed-out market orders and orders still waiting at
    shutdown are sent back on orders/ALGO/rejected with the reason. Bad quotes,
    and suspect ones (beyond --max-price-jump-pct), go to deadletter/execution:
    nothing fills at them. Runs until SIGTERM or Ctrl-C; announces itself
    on status/execution/NAME with counters every second, and with
    --metrics-port serves them as Prometheus metrics.
    """
    try:
        config = PaperConfig(
            mqtt=mqtt,
            name=validate_name(name),
            slippage_bps=slippage_bps,
            fee_bps=fee_bps,
            quote_timeout=quote_timeout,
            max_price_jump_pct=max_price_jump_pct,
            metrics=metrics_endpoint(metrics_port, metrics_addr),
        )
        run_paper(config)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
