"""`python -m tracker` is the `hkma-tracker` command."""

from tracker.cli import main

main()
