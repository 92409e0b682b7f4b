"""`python -m bassi.cli`: the same as the `bassi` command."""

from bassi.cli import main

main()
