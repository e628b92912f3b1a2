"""`python -m smallfirst ...` is the same as the `smallfirst` command."""

from smallfirst.cli import main

main()
