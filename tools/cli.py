"""``whistle``: run, test and inspect the stack. Each command says what it does in --help."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer

from tools.stack import SERVICES

if TYPE_CHECKING:
    from rich.progress import Progress

    from tools.stack import Stack

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def makemigration(service: str, message: str) -> None:
    """Autogenerate a migration for SERVICE from its tables (the database must be at head)."""
    from alembic import command

    from shared.db import alembic_config, create_database_if_missing
    from shared.settings import get_settings

    url = get_settings().database_url_for(service)
    asyncio.run(create_database_if_missing(url))
    command.revision(alembic_config(service, url), message=message, autogenerate=True)


@app.command()
def migrate(service: str = typer.Argument(None, help="one service; every one when left out")) -> None:
    """Create the databases if missing and apply the migrations (services also do this on start)."""
    from shared.db import migrate as run_migrations
    from shared.settings import get_settings

    settings = get_settings()
    for name in [service] if service else SERVICES:
        asyncio.run(run_migrations(name, settings.database_url_for(name)))
        typer.echo(f"{name}: at head")


@app.command()
def topics() -> None:
    """Create every topic of the system with its partition count (skips those that exist)."""
    from shared.reference import load_jurisdiction
    from shared.settings import get_settings
    from shared.topics import all_topics, ensure_topics

    settings = get_settings()
    names = all_topics(load_jurisdiction(settings.jurisdiction_file))
    created = asyncio.run(ensure_topics(settings, names))
    typer.echo(f"{len(names)} topics, {len(created)} created")


def _stack() -> Stack:
    """The stack of `make up`: under WHISTLE_HOME (default .whistle/), so that a second stack with
    its own HTTP_PORT_BASE, broker and DATABASE_PREFIX keeps its processes apart."""
    from tools.stack import ROOT, Stack

    return Stack(home=Path(os.environ.get("WHISTLE_HOME") or ROOT / ".whistle"), supervised=True)


def _progress(transient: bool = True) -> Progress:
    """A progress bar on stderr (stdout stays the command's output), gone when done."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the broker (Tansu, unless KAFKA_BOOTSTRAP_SERVERS points elsewhere), every topic, and
    the five services under a supervisor that starts again any that exits; wait until every
    /readyz is green. Safe to run again: after a broker restart, every topic comes back before
    the services start again."""
    from tools.stack import StackError

    stack = _stack()
    try:
        stack.up()
    except StackError as exc:
        _fail(exc)
    status()


@app.command()
def down() -> None:
    """Stop what `up` started."""
    _stack().down()
    typer.echo("stopped")


@app.command()
def status() -> None:
    """Show each part of the local stack, and how often the supervisor restarted each service."""
    from rich.console import Console
    from rich.table import Table

    table = Table("part", "pid", "state", "restarts")
    for row in _stack().status():
        table.add_row(*row)
    Console().print(table)


@app.command()
def replay(
    log: Path = typer.Argument(..., exists=True, dir_okay=False, help="a JSONL event log"),
    speed: float = typer.Option(0, help="keep the events' rhythm, this many times faster (0: no pacing)"),
) -> None:
    """Publish a JSONL event log ({topic, key, event} a line) to the broker, in order."""
    from shared.settings import get_settings
    from tools.replay import LogError, publish, read_log

    try:
        records = list(read_log(log))
    except LogError as exc:
        _fail(exc)
    with _progress() as progress:
        task = progress.add_task(f"replaying {log.name}", total=len(records))
        sent = asyncio.run(
            publish(
                get_settings(), records, speed or None, progress=lambda n: progress.update(task, completed=n)
            )
        )
    typer.echo(f"published {sent} events from {log}")


@app.command()
def run(
    speed: float = typer.Option(600, help="how many times faster than the morning itself"),
    timeout: float = typer.Option(240, help="seconds to wait for every order to be accounted for"),
    keep: bool | None = typer.Option(
        None, help="keep the stack up for the console after the summary (default: from a terminal)"
    ),
) -> None:
    """The main job: a demo stack, the sample morning replayed, departments and residents played,
    and a summary; then the console's address and keys, up until Ctrl-C. Ctrl-C stops it cleanly."""
    from tools.run import main as run_main
    from tools.stack import StackError

    try:
        code = run_main(speed=speed, timeout=timeout, keep=keep)
    except StackError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def timeline(work_order_id: str) -> None:
    """Print a work order's full history with the cause of each change."""
    from rich.console import Console
    from rich.table import Table

    from shared.settings import get_settings
    from tools.report import timeline as load

    table = Table("business time", "event", "status", "level", "caused by", "detail")
    for at, event, status, level, caused_by, detail in asyncio.run(load(get_settings(), work_order_id)):
        table.add_row(at.isoformat(), event, status, level, caused_by, str(detail or ""))
    Console().print(table)


@app.command()
def report(
    month: str = typer.Option(..., help="the month, YYYY-MM"),
    format: str = typer.Option("table", help="table (the terminal), csv, html or json"),
    out: Path = typer.Option(None, help="write it to this file instead of the terminal", dir_okay=False),
) -> None:
    """月度报告: the month's figures from the api's read model, as GET /v1/reports/{month} gives them
    (docs/reports.md says what each means)."""
    from rich.console import Console

    from shared.settings import get_settings
    from tools.monthly import load, table

    if format not in ("table", "csv", "html", "json"):
        _fail(ValueError("format: one of table, csv, html, json"))
    try:
        found = asyncio.run(load(get_settings(), month))
    except ValueError as exc:
        _fail(exc)
    if format == "table":
        console = Console(record=out is not None, width=160 if out else None)
        for part in table(found):
            console.print(part)
        if out:
            out.write_text(console.export_text(), encoding="utf-8")
        return
    from services.api.monthly import render

    text = render(found, format)  # type: ignore[arg-type]
    if out:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


@app.command()
def trace(work_order_id: str) -> None:
    """Print an order's path across the services, read from the topics: each event with its topic,
    service, time, span and parent, as a tree per trace."""
    from shared import tracing
    from shared.settings import get_settings
    from tools.trace import order_events, render

    events = asyncio.run(order_events(get_settings(), work_order_id))
    if not events:
        _fail(LookupError(f"no event about {work_order_id} on the topics"))
    for line in render(events):
        typer.echo(line)
    if tracing.exporting_configured():
        typer.echo("spans are exported (OTEL_EXPORTER_OTLP_ENDPOINT): look these traces up in the collector")


@app.command()
def bench(
    calls: int = typer.Option(50_000, help="calls in the burst"),
    steady_rate: float = typer.Option(200, help="calls per second in the latency phase"),
    steady_seconds: float = typer.Option(15, help="length of the latency phase"),
    intake_calls: int = typer.Option(20000, help="calls in the intake-alone burst"),
    copies: int = typer.Option(12, help="copies of the sample districts in the bench's jurisdiction"),
    notifications: int = typer.Option(10_000, help="notifications to the 100-200 ms sink (0: none)"),
    preload_year: bool = typer.Option(
        False, help="then the burst and the steady rate again over a year of history (tools/preload.py)"
    ),
    preload_orders: int = typer.Option(1_000_000, help="orders in the preloaded year"),
) -> None:
    """Synthetic calls through a fresh stack of the bench's own: throughput and latency from call to
    outcome, intake alone, beside the raw broker produce rate; JSON under reports/."""
    from tools.bench import main as run_bench
    from tools.bench import write_report
    from tools.stack import StackError

    with _progress(transient=False) as progress:  # the phases stay on screen, with their times

        def step(description: str, total: int | None) -> Callable[[int], None]:
            task = progress.add_task(description, total=total)

            def advance(done: int) -> None:
                # A phase that cannot be counted pulses until it says it is done.
                progress.update(task, completed=done, total=total if total is not None or not done else done)

            return advance

        try:
            result = run_bench(
                calls,
                steady_rate,
                steady_seconds,
                intake_calls,
                copies,
                step,
                notifications,
                preload_orders * preload_year,
            )
        except StackError as exc:
            _fail(exc)
    path = write_report(result)
    typer.echo(orjson.dumps(result.report, option=orjson.OPT_INDENT_2).decode())
    typer.echo(f"report: {path} (and {path.with_suffix('.png').name})")


@app.command()
def chaos(
    seconds: float = typer.Option(None, help="how long calls are sent (default: 150; --short: 60)"),
    rate: float = typer.Option(None, help="calls per second (default: 20; --short: 4)"),
    short: bool = typer.Option(
        False, "--short", help="the integration test's run: fewer calls, its own ports"
    ),
    broker_restart: bool = typer.Option(
        None, help="restart the broker (empty) once during the run (default: yes; --short: no)"
    ),
    postgres_crash: bool = typer.Option(True, help="crash the run's PostgreSQL once during the run"),
    fuzz: int = typer.Option(
        None, help="fuzzed messages sent once the faults are over (default: 10,000; --short: 0)"
    ),
    out: Path = typer.Option(None, help="the report's folder (default: reports/)", file_okay=False),
) -> None:
    """Fault injection on a stack of its own (two replicas of every service, its own PostgreSQL and
    broker): calls with departments and residents playing, random SIGKILLs, a PostgreSQL crash, a
    broker restart; then lost, doubled, repeats, order, recovery and latency counted from the
    topics. JSON under reports/; fails when anything was lost or doubled, or an order broken."""
    import dataclasses

    from tools.chaos import FULL, REPORTS, SHORT, main, passed, summary
    from tools.stack import StackError

    plan = SHORT if short else FULL
    changes: dict[str, object] = {"postgres_crash": postgres_crash}
    if broker_restart is not None:
        changes["broker_restart"] = broker_restart
    if seconds is not None:
        changes["seconds"] = seconds
    if rate is not None:
        changes["rate"] = rate
    if fuzz is not None:
        changes["fuzz_messages"] = fuzz
    try:
        report, path = main(dataclasses.replace(plan, **changes), out or REPORTS, typer.echo)  # type: ignore[arg-type]
    except StackError as exc:
        _fail(exc)
    typer.echo(f"report: {path}")
    typer.echo(summary(report))
    raise typer.Exit(0 if passed(report) else 1)


@app.command("deploy-render", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def deploy_render(ctx: typer.Context) -> None:
    """Write deploy/k8s's generated manifests from the code and the jurisdiction (--check: fail on
    drift; --jurisdiction FILE); see tools/deploy_render.py."""
    from tools.deploy_render import main as render

    raise typer.Exit(render(ctx.args))


deadletters_app = typer.Typer(
    no_args_is_help=True,
    help="Dead letters (deadletter.v1): list, show, redrive. Names and phones are masked unless --raw.",
)
app.add_typer(deadletters_app, name="deadletters")


def _logs_to_stderr() -> None:
    """Log lines (a database created, a broker's warning) to stderr, masked as the services' are:
    these commands' stdout is data (JSON lines, a log) that a script reads."""
    import sys

    import structlog

    from shared.logs import scrub_personal_data

    structlog.configure(
        processors=[
            scrub_personal_data,
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@deadletters_app.callback()
def _deadletters() -> None:
    _logs_to_stderr()


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container: the record says so
        return "unknown"


@deadletters_app.command("list")
def deadletters_list(
    topic: str = typer.Option(None, help="only those from this original topic"),
    key: str = typer.Option(None, help="only those with this original key"),
    last: int = typer.Option(50, help="the newest this many (0: all)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object a line, for scripts"),
) -> None:
    """The dead letters, newest last: where each is in deadletter.v1 (PARTITION:OFFSET, the name the
    other commands take), its original topic, key and place, the error, and how often it was
    redriven. Masked: a key or an error may hold a phone."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from shared.settings import get_settings
    from tools.deadletters import letters, redrives_of
    from tools.topiclog import TopicError

    settings = get_settings()
    try:
        found = asyncio.run(letters(settings))
    except TopicError as exc:
        _fail(exc)
    found = [
        f
        for f in found
        if (topic is None or f.data.original_topic == topic) and (key is None or f.data.original_key == key)
    ]
    found = found[-last:] if last else found
    redriven = asyncio.run(redrives_of(settings, found))
    if as_json:
        for f in found:
            typer.echo(orjson.dumps(f.summary() | {"redrives": len(redriven[f.position])}).decode())
        return
    table = Table("dead letter", "time", "from", "original", "key", "error", "redriven")
    for f in found:
        s = f.summary()
        where = f"{s['original_topic']} {s['original_partition']}:{s['original_offset']}"
        cells = [f.position, s["time"], s["source"], where, s["original_key"] or "", s["error"]]
        # Text, not markup: an error may hold brackets ("expected one of ['…']").
        table.add_row(*map(Text, cells), str(len(redriven[f.position]) or ""))
    Console().print(table)


@deadletters_app.command("show")
def deadletters_show(
    position: str = typer.Argument(..., help="PARTITION:OFFSET in deadletter.v1, as `list` names it"),
    raw: bool = typer.Option(
        False, "--raw", help="the original key, error and bytes in clear (personal data)"
    ),
) -> None:
    """One dead letter whole: the original message's bytes masked (names, phones) unless --raw, and
    its redrives."""
    from rich.console import Console
    from rich.markup import escape

    from shared.settings import get_settings
    from tools.deadletters import DeadLetterError, letter_at, redrives_of
    from tools.topiclog import TopicError

    settings = get_settings()
    try:
        letter = asyncio.run(letter_at(settings, position))
    except (DeadLetterError, TopicError) as exc:
        _fail(exc)
    console = Console(highlight=False, soft_wrap=True)  # a long line stays one line in a pipe
    shown = letter.shown(raw)
    body = shown.pop("raw")
    for name, value in shown.items():
        console.print(f"[bold]{name}[/bold]: {escape(str(value))}", markup=True)
    with contextlib.suppress(orjson.JSONDecodeError):  # JSON shown indented, anything else as it is
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    console.print("[bold]raw[/bold]:", markup=True)
    console.print(body, markup=False)
    for r in asyncio.run(redrives_of(settings, [letter]))[letter.position]:
        corrected = ", with corrected data" if r.corrected else ""
        console.print(
            f"redrive {r.ordinal}: {r.at.isoformat()} by {r.operator}, event id {r.event_id}{corrected}",
            markup=False,
        )


@deadletters_app.command("redrive")
def deadletters_redrive(
    positions: list[str] = typer.Argument(..., help="PARTITION:OFFSET of each dead letter to redrive"),
    again: bool = typer.Option(False, "--again", help="redrive one that was redriven before"),
    with_data: Path = typer.Option(
        None, exists=True, dir_okay=False, help="a JSON object to publish as the event's data instead"
    ),
    operator: str = typer.Option(None, help="who redrives (recorded; default: the user's login name)"),
) -> None:
    """Republish each dead letter's original message to its original topic with its original key,
    once its cause is fixed, and record who did it. Refused for one redriven before unless --again.
    A message the service's handler refused goes with a new event id (its old one is in the
    service's inbox) and `redriveof` naming the old one; --with-data corrects a message whose cause
    is in its own data."""
    from shared.settings import get_settings
    from tools.deadletters import DeadLetterError, redrive
    from tools.topiclog import TopicError

    data = None
    if with_data is not None:
        if len(positions) != 1:
            _fail(ValueError("--with-data corrects one dead letter: name exactly one"))
        data = orjson.loads(with_data.read_bytes())
        if not isinstance(data, dict):
            _fail(ValueError(f"{with_data}: the event's data is a JSON object"))
    settings = get_settings()
    failed = 0
    for position in positions:
        try:
            done = asyncio.run(redrive(settings, position, operator or _operator(), again, data))
        except (DeadLetterError, TopicError) as exc:
            typer.secho(f"{position}: {exc}", fg=typer.colors.RED, err=True)
            failed += 1
            continue
        corrected = " with corrected data" if done.corrected else ""
        typer.echo(f"{position}: redriven{corrected} (redrive {done.ordinal}), event id {done.event_id}")
    if failed:
        raise typer.Exit(1)


@app.command()
def export(
    topic: str,
    out: Path = typer.Option(None, "--out", dir_okay=False, help="the file to write (default: stdout)"),
    raw: bool = typer.Option(False, "--raw", help="names and phones in clear (personal data)"),
) -> None:
    """Write a topic, as it is now, as a JSONL log `whistle replay` reads ({topic, key, event} a
    line; partitions merged by time). Names and phones masked unless --raw."""
    import sys

    from shared.settings import get_settings
    from tools.topiclog import TopicError, log_lines, read_topic

    _logs_to_stderr()
    with _progress() as progress:
        task = progress.add_task(f"reading {topic}", total=None)
        try:
            records = asyncio.run(
                read_topic(
                    get_settings(),
                    topic,
                    lambda done, total: progress.update(task, completed=done, total=total),
                )
            )
        except TopicError as exc:
            _fail(exc)
    written = skipped = 0
    with out.open("w", encoding="utf-8") if out else contextlib.nullcontext(sys.stdout) as sink:
        for line in log_lines(topic, records, raw):
            if line is None:
                skipped += 1
                continue
            sink.write(line + "\n")
            written += 1
    note = f" ({skipped} skipped: not UTF-8, or tombstones)" if skipped else ""
    typer.echo(f"{written} records of {topic} written to {out or 'stdout'}{note}", err=True)


def main() -> None:
    app()
