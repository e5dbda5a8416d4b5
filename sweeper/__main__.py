"""``python -m sweeper``: the same as the ``sweeper`` command."""

from sweeper.cli import main

if __name__ == "__main__":
    main()
