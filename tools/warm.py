"""A service's process started ahead of need: ``python -m tools.warm SERVICE`` imports the service
and builds its app (what most of a start costs: a second or more of imports, and intake's
classifiers), then waits for a line on stdin, and only then serves, as ``python -m
services.SERVICE`` would. The local supervisor keeps one ready per part, so that a part that
exits is replaced in well under the time a cold start takes. End of input (the supervisor gone,
or stopping) ends it without serving."""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    service = sys.argv[1]
    module = importlib.import_module(f"services.{service}.app")
    from shared.service import run
    from shared.settings import get_settings

    settings = get_settings()
    # Building the app touches no network: the database engine and the Kafka clients connect at
    # start-up, which begins only once this process is told to take over.
    app, _ = module.create_app(settings)
    if not sys.stdin.readline():
        return
    run(app, module.NAME, settings)


if __name__ == "__main__":
    main()
