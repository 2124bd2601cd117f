"""``python -m convlab`` runs the command line (also under ``torchrun -m convlab``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
