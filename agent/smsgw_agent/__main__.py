import sys

from smsgw_agent.cli import main

sys.exit(main())
