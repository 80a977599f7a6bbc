import sys

from xraymunit.cli import main

sys.exit(main())
