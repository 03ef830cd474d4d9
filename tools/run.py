"""The main job: a morning of the city, end to end, on a stack of its own.

Starts a demo stack (its own broker port, HTTP ports and databases, so it never touches a stack
started with ``make up``), replays the sample morning paced and re-timed to now, plays the
departments and residents, waits until every order is accounted for, and prints the summary.
Time limits are short (seconds) so that the unanswered dispatches climb the ladder while you watch.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tools.replay import Record, publish, read_log
from tools.report import Summary, summary
from tools.simulate import Simulator
from tools.stack import ROOT, Stack

SAMPLE = ROOT / "tools" / "samples" / "morning.jsonl"
DEMO_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9192",
    "HTTP_PORT_BASE": "18180",
    "DATABASE_PREFIX": "whistle_demo",
    "TIME_LIMITS": (
        '{"emergency": {"accept": "PT8S", "resolve": "PT60S"},'
        ' "urgent": {"accept": "PT10S", "resolve": "PT90S"},'
        ' "normal": {"accept": "PT12S", "resolve": "PT120S"}}'
    ),
    # A normal order's time to resolve by its request type, as short as the normal limit above.
    "REQUEST_TYPE_TIME_LIMITS": (
        '{"inquiry": "PT120S", "help": "PT120S", "suggestion": "PT120S",'
        ' "complaint": "PT120S", "report": "PT120S"}'
    ),
    "TIMER_INTERVAL_SECONDS": "0.25",
}
console = Console()


def demo_stack() -> Stack:
    # A user's own settings (a real Kafka, another PostgreSQL) win over the demo defaults.
    env = {k: v for k, v in DEMO_ENV.items() if k not in os.environ}
    return Stack(home=ROOT / ".whistle" / "demo", env=env)


async def play(stack: Stack, records: list[Record], speed: float, wait_seconds: float) -> Summary:
    stop = asyncio.Event()
    simulator = Simulator(stack.settings)
    sim_task = asyncio.create_task(simulator.run(stop))
    expected = len({r.event["id"] for r in records if isinstance(r.event, dict)})
    console.print(f"replaying {len(records)} events of the morning at {speed:g}x ...")
    await publish(stack.settings, records, speed=speed, retime=True)
    console.print("all published; departments and residents at work ...")
    deadline = time.monotonic() + wait_seconds
    current = await summary(stack.settings)
    while time.monotonic() < deadline:
        current = await summary(stack.settings)
        done = (
            current.orders >= expected - current.dead_letters
            and current.by_status
            and not current.open_orders
        )
        if done:
            break
        await asyncio.sleep(1)  # polling the databases for the summary, with a deadline
    stop.set()
    await sim_task
    return current


def show(s: Summary, seconds: float) -> None:
    console.rule("[bold]Whistle: the morning of 2026-11-21, summary")
    console.print(
        f"{s.orders} reports: {s.orders - s.merged} work orders ({s.closed_on_site} handled on the spot by "
        f"grid workers), {s.merged} repeats merged into open orders (并单), early warnings (工单预警) for "
        f"{s.clusters_alerted} clusters, {s.dead_letters} dead letters, {seconds:.0f}s"
    )
    by_status = Table("status", "orders", title="Dispatched orders by status")
    for status, n in sorted(s.by_status.items()):
        by_status.add_row(status, str(n))
    console.print(by_status)
    by_department = Table("department", "dispatches", "resolved", title="By department")
    for department, n, resolved in s.by_department:
        by_department.add_row(department, str(n), str(resolved))
    console.print(by_department)
    escalations = Table("to level", "reason", "count", title="Escalations")
    for level, reason, n in s.escalations:
        escalations.add_row(level, reason, str(n))
    console.print(escalations)
    notifications = Table("audience", "status", "count", title="Notifications")
    for audience, status, n in s.notifications:
        notifications.add_row(audience, status, str(n))
    console.print(notifications)
    if s.open_orders:
        console.print(f"[yellow]{s.open_orders} orders still open when the run ended[/yellow]")


def show_console(stack: Stack) -> None:
    """Where the console is, with the demo's sign-in keys (development keys, in clear)."""
    keys = json.loads((stack.home / "api-keys.json").read_text(encoding="utf-8"))
    base = f"http://127.0.0.1:{stack.port('api')}"
    console.rule("[bold]The console")
    console.print(f"centre's board: {base}/console/  (sign in with the centre's key: {keys['centre']})")
    console.print(f"a department's inbox: the same page with {keys['department:heat']} (热力公司)")
    console.print(f"the public board: {base}/public/")
    console.print("the stack stays up for the console; Ctrl-C stops it")


def main(log: Path = SAMPLE, speed: float = 600, timeout: float = 240, keep: bool | None = None) -> int:
    """``keep``: leave the stack up for the console after the summary, until Ctrl-C (by default
    when run from a terminal, so that a script's ``make run`` still ends)."""
    stack = demo_stack()
    started = time.monotonic()
    try:
        console.print("starting the demo stack (broker, databases, five services) ...")
        stack.down()
        stack.reset_databases()
        stack.up()
        result = asyncio.run(play(stack, list(read_log(log)), speed, timeout))
        show(result, time.monotonic() - started)
        if keep if keep is not None else sys.stdin.isatty():
            show_console(stack)
            while True:
                time.sleep(3600)  # until Ctrl-C: the services run in their own processes
        return 0 if not result.open_orders else 1
    except KeyboardInterrupt:
        console.print("interrupted; stopping the demo stack")
        return 130
    finally:
        stack.down()
