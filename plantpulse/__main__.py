import sys

from plantpulse.cli import main

sys.exit(main())
