"""`python -m tickbus` is `tickbus`."""

from tickbus.cli import main

main()
