"""`python -m bot` is the same as the `carrybot` command."""

from bot.cli import main

if __name__ == "__main__":
    main()
