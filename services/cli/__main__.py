"""``python -m attune_services.cli``."""

from attune_services.cli.main import main

main()
