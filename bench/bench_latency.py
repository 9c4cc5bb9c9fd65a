"""Benchmark of queue latency, publish to actor start: `python -m bench.bench_latency`.

In one run, on a RabbitMQ vhost of its own (created with rabbitmqctl, deleted at the end):
  syncd     syncd.publish.publish_update on the broker of syncd.broker.make_broker
            (publisher confirms, syncd's URL defaults) in this process; in a worker
            subprocess, the same broker kind with syncd's middleware stack, its validating
            consumer and the worker setup of syncd.worker (_start_worker: resources opened,
            process_boot, prefetch = threads), running an instrumented `update_catalog` actor
  bare      a bare RabbitmqBroker (Dramatiq's defaults: no confirms, default middleware) in
            this process sending with `actor.send`; in a worker subprocess of its own a bare
            RabbitmqBroker, process_boot and dramatiq.Worker, running an instrumented actor
  confirm   as bare, but both brokers with confirm_delivery=True (what syncd's broker sets):
            tells the cost of publisher confirms apart from the cost of syncd's own code
All workers run the same number of threads (syncd's default, 4) and stay up for the whole
run; the kinds take turns, in a rotated order each round.

What is measured, per message: t0 = time.monotonic_ns() in the producer immediately before
the publish call (publish_update / actor.send: building the message is included) and t1 =
time.monotonic_ns() at the first statement of the actor's body in the worker thread (after
the delivery was received, decoded and, for syncd, checked against the message contract,
handed to a worker thread and through every before_process_message hook). CLOCK_MONOTONIC
is one clock for all processes of the machine. Messages go one at a time: the next is
published after the worker reported t1 and a pause (--gap-ms) that lets it ack, so the
figure is the unloaded latency, not queueing. Also printed: how long the publish call
itself took (syncd's and confirm's return only after RabbitMQ confirmed the message; the
bare one does not wait for a confirm).

Budget (DESIGN.md "Budgets"): the syncd median within 2 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

THREADS = 4  # syncd's default SYNCD_WORKER_THREADS, used for both workers
QUEUES = {"bare": "bench_bare", "confirm": "bench_confirm"}
KINDS = ("bare", "confirm", "syncd")
BUDGET_MEDIAN_MS = 2.0


def _settings(url: str, workdir: str) -> Any:
    from syncd.config import Settings

    # The worker's engine is built (never connected: the actor does not use it) on a file
    # of the run's own, not on the embedded default in the working directory.
    return Settings(
        broker_url=url, database_url=f"sqlite:///{workdir}/unused.db", log_level="WARNING"
    )


# ---------------------------------------------------------------------------------------
# Worker subprocess
# ---------------------------------------------------------------------------------------
def worker(kind: str, url: str, workdir: str) -> int:
    """Run a worker until stdin closes; for each message, write "<seq> <t1>" to stdout."""
    import dramatiq

    # stdout is the protocol channel: keep it for us, send everything else to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def report(seq: int, t1: int) -> None:
        out.write(f"{seq} {t1}\n")

    broker: Any
    if kind == "syncd":
        from syncd.broker import make_broker
        from syncd.logging import configure_logging
        from syncd.worker import _start_worker

        settings = _settings(url, workdir)
        configure_logging(settings, "worker")
        broker = make_broker(settings)

        def update_catalog(catalog_uuid: str) -> None:
            t1 = time.monotonic_ns()
            report(uuid.UUID(catalog_uuid).int, t1)

        dramatiq.actor(broker=broker, actor_name="update_catalog", queue_name=settings.queue_name)(
            update_catalog
        )
        running = _start_worker(broker, settings, THREADS)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=kind == "confirm")

        def bare_actor(seq: int) -> None:
            t1 = time.monotonic_ns()
            report(seq, t1)

        dramatiq.actor(broker=broker, actor_name="bare_actor", queue_name=QUEUES[kind])(bare_actor)
        broker.emit_after("process_boot")  # as the dramatiq CLI does
        running = dramatiq.Worker(broker, worker_threads=THREADS, worker_timeout=1000)
        running.start()
    out.write("ready\n")
    sys.stdin.read()  # until the parent closes stdin
    running.stop(timeout=10_000)
    broker.close()
    return 0


# ---------------------------------------------------------------------------------------
# Producer side
# ---------------------------------------------------------------------------------------
class Target:
    """A worker subprocess and this process's publisher for it."""

    def __init__(self, kind: str, url: str, workdir: str) -> None:
        import dramatiq

        self.kind = kind
        self.log = open(Path(workdir) / f"{kind}.log", "wb")  # noqa: SIM115 (closed in close)
        cmd = [sys.executable, "-m", "bench.bench_latency", "--worker", kind, url, workdir]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        assert self.proc.stdout is not None
        self.lines: IO[str] = self.proc.stdout
        if kind == "syncd":
            from syncd.broker import make_broker

            self.settings = _settings(url, workdir)
            self.broker = make_broker(self.settings)
        else:
            from dramatiq.brokers.rabbitmq import RabbitmqBroker

            self.broker = RabbitmqBroker(url=url, confirm_delivery=kind == "confirm")
            self.actor = dramatiq.actor(
                broker=self.broker, actor_name="bare_actor", queue_name=QUEUES[kind]
            )(lambda seq: None)

    def wait_ready(self) -> None:
        line = self.lines.readline()
        if line.strip() != "ready":
            self.fail(f"worker did not start (said {line!r})")

    def fail(self, what: str) -> None:
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.kind}: {what}\n{tail}")

    def send(self, seq: int) -> tuple[int, int]:
        """Publish message `seq`; wait for the actor's start; return (latency, publish) ns."""
        if self.kind == "syncd":
            from syncd.publish import publish_update

            t0 = time.monotonic_ns()
            publish_update(self.broker, self.settings, catalog_uuid=str(uuid.UUID(int=seq)))
        else:
            t0 = time.monotonic_ns()
            self.actor.send(seq=seq)
        published = time.monotonic_ns()
        line = self.lines.readline()
        if not line:
            self.fail("worker exited")
        got, t1 = (int(x) for x in line.split())
        if got != seq:
            self.fail(f"expected message {seq}, got {got}")
        return t1 - t0, published - t0

    def close(self) -> None:
        self.broker.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    rank = max(1, round(fraction * len(values) + 0.5))
    return values[min(rank, len(values)) - 1]


def describe(values_ns: list[int]) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in values_ns)
    return {
        "median": statistics.median(ms),
        "p90": percentile(ms, 0.90),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "n": len(ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URL", "WORKDIR"))
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs both kinds")
    parser.add_argument("--messages", type=int, default=500, help="messages per kind per round")
    parser.add_argument("--warmup", type=int, default=50, help="untimed messages per kind first")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="pause between messages")
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)

    from tests.support.services import rabbitmq_vhost

    python = sys.version.split()[0]
    print(f"syncd queue latency benchmark, {os.cpu_count()} CPUs, RabbitMQ, Python {python}")
    print(
        f"publish -> actor start, one message at a time ({args.gap_ms:g} ms apart), "
        f"{args.rounds} rounds x {args.messages} messages per kind, alternating; "
        f"{THREADS} worker threads each"
    )
    print(
        "NOTE: producer, RabbitMQ and both workers share the machine's "
        f"{os.cpu_count()} cores: compare the kinds of the same run"
    )
    gap = args.gap_ms / 1000
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-latency-") as workdir,
        rabbitmq_vhost("syncd_bench") as url,
    ):
        targets = [Target(kind, url, workdir) for kind in KINDS]
        try:
            for target in targets:
                target.wait_ready()
            seq = 0
            for target in targets:
                for _ in range(args.warmup):
                    seq += 1
                    target.send(seq)
                    time.sleep(gap)
            latency: dict[str, list[int]] = {t.kind: [] for t in targets}
            publish: dict[str, list[int]] = {t.kind: [] for t in targets}
            for rnd in range(args.rounds):
                order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
                line = []
                for target in order:
                    got: list[int] = []
                    for _ in range(args.messages):
                        seq += 1
                        lat, pub = target.send(seq)
                        got.append(lat)
                        publish[target.kind].append(pub)
                        time.sleep(gap)
                    latency[target.kind].extend(got)
                    line.append(f"{target.kind} median {describe(got)['median']:.3f} ms")
                print(f"round {rnd + 1}: " + "; ".join(line))
        finally:
            for target in targets:
                target.close()
    report(latency, publish)
    return 0


def report(latency: dict[str, list[int]], publish: dict[str, list[int]]) -> None:
    print(f"\n{'ms':<32} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8} {'messages':>9}")
    for kind in KINDS:
        for what, values in (("publish -> actor start", latency), ("publish call", publish)):
            d = describe(values[kind])
            print(
                f"{kind + ' ' + what:<32} {d['median']:>8.3f} {d['p90']:>8.3f} "
                f"{d['p99']:>8.3f} {d['max']:>8.2f} {d['n']:>9}"
            )
    syncd, bare = describe(latency["syncd"]), describe(latency["bare"])
    ok = "ok" if syncd["median"] <= BUDGET_MEDIAN_MS else "OVER BUDGET"
    print(
        f"\nsyncd vs bare, publish -> actor start: median {syncd['median']:.3f} vs "
        f"{bare['median']:.3f} ms (+{syncd['median'] - bare['median']:.3f} ms, "
        f"{syncd['median'] / bare['median']:.2f}x); p99 {syncd['p99']:.3f} vs "
        f"{bare['p99']:.3f} ms ({syncd['p99'] / bare['p99']:.2f}x)"
    )
    print(f"budget: syncd median <= {BUDGET_MEDIAN_MS:g} ms: {ok}")
    confirm = describe(latency["confirm"])
    print(
        f"bare with publisher confirms (the setting syncd uses), publish -> actor start: "
        f"median {confirm['median']:.3f} ms; syncd vs it: "
        f"+{syncd['median'] - confirm['median']:.3f} ms"
    )
    print("(the publish calls of syncd and `confirm` wait for RabbitMQ's confirm; bare's not)")


if __name__ == "__main__":
    raise SystemExit(main())
