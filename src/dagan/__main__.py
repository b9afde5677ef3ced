import sys

from dagan.cli.main import main

sys.exit(main())
