import sys

from popgrad.cli import main

sys.exit(main())
