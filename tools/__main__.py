"""python -m tools ...: the same commands as the ``whistle`` script."""

from tools.cli import main

main()
