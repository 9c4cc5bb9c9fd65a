"""Consume syncd's events with plain pika (no syncd import): docs/events.md.

    python consume_events.py amqp://guest:guest@localhost:5672/%2F \
        [--exchange syncd.events] [--queue portal.syncd-events] [--bind 'catalog.#'] [--count N]

Declares a durable queue of its own, binds it to the topic exchange (declared too, with the
arguments syncd declares it with, so either may start first), and prints each event once as
a JSON line. Delivery is at least once: the same event_id can arrive twice (a relay that died
between RabbitMQ's confirm and marking the event sent), so events already seen are acked and
skipped. A real consumer keeps the seen ids in its own database, in the transaction that
handles the event; this one keeps them in memory.
"""

from __future__ import annotations

import argparse
import json
import sys

import pika


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="amqp:// URL of the RabbitMQ syncd publishes to")
    parser.add_argument("--exchange", default="syncd.events", help="SYNCD_EVENTS_EXCHANGE")
    parser.add_argument("--queue", default="portal.syncd-events", help="this consumer's queue")
    parser.add_argument(
        "--bind", action="append", help="routing key pattern, repeatable (default catalog.#)"
    )
    parser.add_argument("--count", type=int, default=0, help="stop after N new events (0: never)")
    args = parser.parse_args(argv)

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.exchange_declare(exchange=args.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(queue=args.queue, durable=True)
    for pattern in args.bind or ["catalog.#"]:
        channel.queue_bind(queue=args.queue, exchange=args.exchange, routing_key=pattern)
    channel.basic_qos(prefetch_count=50)
    print(json.dumps({"ready": args.queue}), flush=True)

    seen: set[str] = set()
    handled = 0
    for method, _properties, body in channel.consume(args.queue):
        event = json.loads(body)
        if event["event_id"] not in seen:  # at least once: skip what was handled already
            seen.add(event["event_id"])
            handled += 1
            print(json.dumps(event, sort_keys=True), flush=True)
        channel.basic_ack(method.delivery_tag)  # after handling: a crash means redelivery
        if args.count and handled >= args.count:
            break
    channel.cancel()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
