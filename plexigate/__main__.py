import sys

from plexigate.cli import main

sys.exit(main())
