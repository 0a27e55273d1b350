"""`python -m penctl` is the `pen` command."""

from .cli import main

main()
