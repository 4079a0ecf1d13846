"""The `weir` console script: the binary's command line, run in this Python process."""

import sys

from weir import _native


def main() -> int:
    return _native.cli(["weir", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
