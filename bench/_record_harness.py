"""Child roles and parent-side helpers for bench/record.py.

The child side, run as ``python bench/record.py --role ROLE ...`` (see `run_role`):

* ``publish``: a paho publisher of packed quotes (msgpack arrays of `--batch`
  quotes of one symbol, symbols round robin), paced with absolute deadlines
  (``--rate`` quotes/s) or as fast as it can (``--rate 0``), for ``--seconds``.
  Every message is full, so the quotes sent are exactly messages x batch.
  Each message is new: prices walk in whole cents (bid < price < ask), sizes
  are round lots, ``ts`` is the send time less the time the pack took to fill,
  so a recording of it compresses as a real feed's would (no repeated pool).
  The bytes are those `broker.encode_quotes_msgpack` makes, built with numpy
  so the publisher leaves the CPU to the recorder (`PackEncoder`).
* ``read``: one pass over a dataset with one API (`READERS`): the tape's
  ``read_batches`` / ``read_quotes`` (ts order), or pyarrow.dataset's
  ``to_table`` / ``to_batches`` (no order); it reports its peak RSS (VmHWM)
  and the RSS before reading (the imports).

A role prints ``ready`` when it is about to start and one JSON line with its
figures at the end; it ignores Ctrl-C (the parent stops it) and dies by SIGALRM
after `CHILD_LIMIT_S`.

The parent side: `StatusWatcher` (the retained statuses of recorders and feeds),
`build_dataset` (a generated dataset of an exact number of quotes), `vm_hwm_mb`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker import quote_topic

CHILD_LIMIT_S = 900
START_TIMEOUT_S = 30.0


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"bench/record.py: {message}", file=sys.stderr, flush=True)


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory of `pid` in MiB (VmHWM of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def _vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# --- MQTT ----------------------------------------------------------------------------------


def paho_client() -> mqtt.Client:
    """A paho 2.x MQTT 5 client without a limit on queued QoS 0 messages."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_queued_messages_set(0)
    return client


def connect(client: mqtt.Client, port: int) -> None:
    """Connect to 127.0.0.1:`port`, start paho's network thread, wait for the CONNACK."""
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(START_TIMEOUT_S):
        raise RuntimeError(f"no MQTT connection to port {port}")


class StatusWatcher:
    """Keeps every retained status on ``status/+/+`` (recorders, feeds), by topic, in order."""

    def __init__(self, port: int) -> None:
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = paho_client()
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        connect(self._client, port)
        self._client.subscribe("status/+/+", qos=1)
        if not subscribed.wait(START_TIMEOUT_S):
            raise RuntimeError("the status watcher could not subscribe")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            with self._lock:
                self._history.setdefault(msg.topic, []).append(json.loads(msg.payload))

    def history(self, topic: str) -> list[dict[str, Any]]:
        """Every status received on `topic` so far, oldest first."""
        with self._lock:
            return list(self._history.get(topic, []))

    def wait_for(
        self, topic: str, condition: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The first status on `topic` that meets `condition`; None after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for status in self.history(topic):
                if condition(status):
                    return status
            time.sleep(0.05)
        return None

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


# --- packed quotes, encoded with numpy -------------------------------------------------------


class PackEncoder:
    """Packs of one symbol's quotes as `broker.encode_quotes_msgpack` encodes them.

    A quote ``{"sid", "price", "ts", "bid", "ask", "size"}`` (that key order,
    float numbers) is a msgpack map of fixed size for a given symbol, so a pack
    is an array header and a numpy structured array of such records; only the
    float fields change (big-endian float64 after 0xcb).
    """

    def __init__(self, sid: str, batch: int) -> None:
        key = sid.encode()
        if len(key) > 31 or batch > 0xFFFF:
            raise ValueError("symbols up to 31 bytes, packs up to 65,535 quotes")
        fields: list[tuple[str, Any]] = [("head", f"S{len(key) + 6}")]
        consts = {"head": b"\x86\xa3sid" + bytes([0xA0 | len(key)]) + key}
        for name in ("price", "ts", "bid", "ask", "size"):
            fields += [(f"k_{name}", f"S{len(name) + 2}"), (name, ">f8")]
            consts[f"k_{name}"] = bytes([0xA0 | len(name)]) + name.encode() + b"\xcb"
        self._template = np.zeros(batch, np.dtype(fields))
        for field, value in consts.items():
            self._template[field] = value
        self._header = bytes([0x90 | batch]) if batch <= 15 else b"\xdc" + batch.to_bytes(2, "big")

    def encode(self, columns: dict[str, np.ndarray[Any, Any]]) -> bytes:
        """The msgpack bytes of the quotes whose columns (price, ts, bid, ask, size) are given."""
        records = self._template.copy()
        for name, values in columns.items():
            records[name] = values
        return self._header + records.tobytes()


class PackedFeed:
    """Fresh packs for symbols in turn: a random walk in cents per symbol, `PackEncoder` bytes."""

    def __init__(self, symbols: Sequence[str], batch: int, rate: float, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._symbols = list(symbols)
        self._topics = [quote_topic(sid) for sid in symbols]
        self._encoders = [PackEncoder(sid, batch) for sid in symbols]
        self._mids = self._rng.uniform(20.0, 500.0, len(symbols))
        gap = len(symbols) / rate if rate else 1e-6  # time between two quotes of one symbol
        self._ts_offsets = (np.arange(batch) - (batch - 1)) * gap
        self._batch = batch

    def message(self, i: int) -> tuple[str, bytes]:
        """Message `i`: a pack of symbol ``i % len(symbols)``, its last quote stamped now."""
        k = i % len(self._symbols)
        rng, n = self._rng, self._batch
        mids = self._mids[k] * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
        self._mids[k] = mids[-1]
        cents = mids * 100.0
        half = np.maximum(1.0, np.round(cents * 1e-4))
        bid = np.floor(cents) - half
        ask = np.ceil(cents) + half
        price = bid + 1.0 + np.floor(rng.uniform(0.0, 1.0, n) * (ask - bid - 1.0))
        columns = {
            "price": price / 100.0,
            "ts": time.time() + self._ts_offsets,
            "bid": bid / 100.0,
            "ask": ask / 100.0,
            "size": 100.0 * rng.geometric(0.4, n),
        }
        return self._topics[k], self._encoders[k].encode(columns)


# --- child roles -----------------------------------------------------------------------------


def publish_role(args: argparse.Namespace) -> dict[str, Any]:
    """Publish packs (QoS 0) for `args.seconds`, paced at `args.rate` quotes/s (0: flat out).

    Paced: message i is due at start + i * batch / rate; each wake-up sends every
    message due, then sleeps until the next. Waits until the last one is written.
    """
    feed = PackedFeed(args.symbols.split(","), args.batch, args.rate, args.seed)
    client = paho_client()
    connect(client, args.port)
    print("ready", flush=True)
    cpu0, start, start_wall = time.process_time(), time.perf_counter(), time.time()
    sent, late = _publish(client, feed, args)
    elapsed = time.perf_counter() - start
    end_wall = time.time()
    client.disconnect()
    client.loop_stop()
    return {
        "messages": sent,
        "quotes": sent * args.batch,
        "elapsed_s": elapsed,
        "quotes_per_s": sent * args.batch / elapsed,
        "cpu": (time.process_time() - cpu0) / elapsed,
        "max_late_ms": late * 1e3,
        "start_wall": start_wall,
        "end_wall": end_wall,
    }


def _publish(client: mqtt.Client, feed: PackedFeed, args: argparse.Namespace) -> tuple[int, float]:
    """Send messages until `args.seconds` pass; (messages sent, most a wake-up came late)."""
    publish, clock = client.publish, time.perf_counter
    per_s = args.rate / args.batch
    start = clock()
    end, sent, late, info = start + args.seconds, 0, 0.0, None
    while (now := clock()) < end:
        due = int((now - start) * per_s) + 1 if per_s else sent + 16
        if per_s:
            late = max(late, now - (start + sent / per_s))
        for i in range(sent, due):
            info = publish(*feed.message(i))
        sent = due
        if per_s:
            time.sleep(max(0.0, start + sent / per_s - clock()))
    if info is not None:
        info.wait_for_publish(START_TIMEOUT_S)
    return sent, late


def _read_tape_batches(directory: Path) -> Iterator[int]:
    import tape

    last = float("-inf")
    for batch in tape.read_batches(directory):
        if batch[0]["ts"] < last:
            raise RuntimeError("read_batches: out of ts order")
        last = batch[-1]["ts"]
        yield len(batch)


def _read_tape_quotes(directory: Path) -> Iterator[int]:
    import tape

    count = 0
    for _quote in tape.read_quotes(directory):
        count += 1
    yield count


def _read_pyarrow_table(directory: Path) -> Iterator[int]:
    import pyarrow.dataset as ds

    yield ds.dataset(directory, format="parquet", partitioning="hive").to_table().num_rows


def _read_pyarrow_batches(directory: Path) -> Iterator[int]:
    import pyarrow.dataset as ds

    for batch in ds.dataset(directory, format="parquet", partitioning="hive").to_batches():
        yield batch.num_rows


def _read_pyarrow_dicts(directory: Path) -> Iterator[int]:
    """The plain way to quote dicts with pyarrow: `to_batches`, then one dict a row.

    The same keys and value types as the tape's quotes, built by one
    comprehension per batch, each symbol one string shared by its rows (as
    the tape's reader does); no time order, no merge, no filter.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as ds

    keys = ["sid", "price", "ts", "bid", "ask", "size"]
    dataset = ds.dataset(directory, format="parquet", partitioning="hive")
    for batch in dataset.to_batches(columns=keys):
        symbols = batch.column("sid").dictionary_encode()
        names = np.array(symbols.dictionary.to_pylist(), dtype=object)
        sids = names[symbols.indices.to_numpy()].tolist()
        seconds = (batch.column("ts").cast(pa.int64()).to_numpy() / 1e9).tolist()
        prices, bids, asks, sizes = (
            batch.column(key).to_numpy().tolist() for key in ("price", "bid", "ask", "size")
        )
        quotes = [
            {"sid": sid, "price": price, "ts": ts, "bid": bid, "ask": ask, "size": size}
            for sid, price, ts, bid, ask, size in zip(
                sids, prices, seconds, bids, asks, sizes, strict=True
            )
        ]
        yield len(quotes)


READERS: dict[str, Callable[[Path], Iterator[int]]] = {
    "read_batches": _read_tape_batches,
    "read_quotes": _read_tape_quotes,
    "pyarrow_to_table": _read_pyarrow_table,
    "pyarrow_to_batches": _read_pyarrow_batches,
    "pyarrow_dicts": _read_pyarrow_dicts,
}
"""Reader name: a pass over a dataset that yields row counts as it goes."""


def read_role(args: argparse.Namespace) -> dict[str, Any]:
    """One pass of reader `args.api` over `args.dir`: quotes, time, peak RSS."""
    import pyarrow as pa
    import pyarrow.dataset  # imports before the RSS baseline, for every reader

    import tape  # noqa: F401

    # pyarrow imports pandas on its first conversion to numpy (0.2 s); the
    # baselines convert, the tape's reader does not: import it for all alike.
    pa.array([0.0]).to_numpy()

    rss_imports = _vm_rss_mb()
    print("ready", flush=True)
    start = time.perf_counter()
    quotes = sum(READERS[args.api](Path(args.dir)))
    elapsed = time.perf_counter() - start
    return {
        "quotes": quotes,
        "elapsed_s": elapsed,
        "quotes_per_s": quotes / elapsed,
        "peak_rss_mb": vm_hwm_mb(),
        "rss_after_imports_mb": rss_imports,
    }


ROLES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "publish": publish_role,
    "read": read_role,
}


def _role_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="record.py --role", description="a bench child")
    parser.add_argument("role", choices=list(ROLES))
    parser.add_argument("--port", type=int, help="publish: the broker's MQTT port")
    parser.add_argument("--symbols", default="A", help="publish: comma-separated")
    parser.add_argument("--batch", type=int, default=100, help="publish: quotes per message")
    parser.add_argument("--rate", type=float, default=0.0, help="publish: quotes/s (0: no pacing)")
    parser.add_argument("--seconds", type=float, default=5.0, help="publish: for this long")
    parser.add_argument("--seed", type=int, default=0, help="publish: of the random walks")
    parser.add_argument("--dir", help="read: the dataset")
    parser.add_argument("--api", choices=list(READERS), help="read: which reader")
    return parser


def run_role(argv: Sequence[str]) -> None:
    """Run one child role and print its figures as one JSON line."""
    args = _role_parser().parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.alarm(CHILD_LIMIT_S)
    print(json.dumps(ROLES[args.role](args)), flush=True)


# --- the dataset to read ------------------------------------------------------------------------


def build_dataset(directory: Path, quotes: int, symbols: int, days: int) -> dict[str, Any]:
    """A `tape.write_sample` dataset of exactly `quotes` rows; what was built.

    Half the symbols are written as one writer, half as another, into the same
    partitions: every day has two files whose times interleave, as two
    recorders sharing a dataset would leave it, so a reader in ts order merges.
    """
    import tape
    from tape._sample import SESSION_S

    per_symbol_day, rest = divmod(quotes, symbols * days)
    if rest or symbols < 2:
        raise ValueError(f"{quotes} quotes do not split over {symbols} symbols x {days} days")
    rate = (per_symbol_day + 0.5) / SESSION_S  # int(SESSION_S * rate) == per_symbol_day
    names = tuple(f"S{i:02d}" for i in range(symbols))
    groups = {"sample-a": names[: symbols // 2], "sample-b": names[symbols // 2 :]}
    rows = 0
    for writer, group in groups.items():
        part = directory.parent / f"{directory.name}.{writer}"
        config = tape.SampleConfig(
            directory=part, symbols=group, days=days, rate=rate, seed=1, writer=writer
        )
        rows += tape.write_sample(config).rows
        _move_files(part, directory)
    if rows != quotes:
        raise RuntimeError(f"built {rows} rows, not {quotes}")
    return {"quotes": rows, "symbols": symbols, "days": days, "writers": len(groups)}


def _move_files(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*.parquet")):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.rename(destination)
    shutil.rmtree(source)
