"""``whistle``: run, test and inspect the stack. Each command says what it does in --help."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tools.stack import Stack

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
SERVICES = ("intake", "dispatch", "escalation", "notify")


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
def migrate(service: str = typer.Argument(None, help="one service; all four when left out")) -> None:
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
    from tools.stack import Stack

    return Stack()


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the broker (Tansu, unless KAFKA_BOOTSTRAP_SERVERS points elsewhere) and the four
    services in the background; wait until every /readyz is green. Safe to run again."""
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
    """Show each part of the local stack."""
    from rich.console import Console
    from rich.table import Table

    table = Table("part", "pid", "state")
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
    sent = asyncio.run(publish(get_settings(), records, speed or None))
    typer.echo(f"published {sent} events from {log}")


@app.command()
def run(
    speed: float = typer.Option(600, help="how many times faster than the morning itself"),
    timeout: float = typer.Option(240, help="seconds to wait for every order to be accounted for"),
) -> None:
    """The main job: a demo stack, the sample morning replayed, departments and residents played,
    and a summary. Ctrl-C stops it cleanly."""
    from tools.run import main as run_main
    from tools.stack import StackError

    try:
        code = run_main(speed=speed, timeout=timeout)
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
def bench(
    calls: int = typer.Option(5000, help="calls in the burst"),
    steady_rate: float = typer.Option(100, help="calls per second in the latency phase"),
    steady_seconds: float = typer.Option(15, help="length of the latency phase"),
    intake_calls: int = typer.Option(20000, help="calls in the intake-alone burst"),
    copies: int = typer.Option(12, help="copies of the sample districts in the bench's jurisdiction"),
) -> None:
    """Synthetic calls through a fresh stack of the bench's own: throughput and latency from call to
    outcome, intake alone, beside the raw broker produce rate; JSON under reports/."""
    from tools.bench import main as run_bench
    from tools.bench import write_report
    from tools.stack import StackError

    try:
        report = run_bench(calls, steady_rate, steady_seconds, intake_calls, copies)
    except StackError as exc:
        _fail(exc)
    path = write_report(report)
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    typer.echo(f"report: {path}")


def main() -> None:
    app()
