"""`python -m emulator --estate FILE ...`: run the Azure stand-in (see README.md)."""

from emulator.server import main

raise SystemExit(main())
