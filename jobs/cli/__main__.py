"""``python -m jobs.cli``: how ``conveyor dev`` and the tests start each process."""

from jobs.cli.main import main

main()
