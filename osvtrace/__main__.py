"""`python -m osvtrace ...`: the command line, for when the entry point is not on PATH
(the shell's live screen starts `record` this way, with the same interpreter)."""

import sys

from osvtrace.cli.main import main

sys.exit(main())
