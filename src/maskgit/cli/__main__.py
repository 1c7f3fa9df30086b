"""`python -m maskgit.cli ...` (and `accelerate launch -m maskgit.cli ...`): the `maskgit` command."""

import sys

from . import main

sys.exit(main())
