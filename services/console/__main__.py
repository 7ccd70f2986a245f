"""`python -m attune_services.console`."""

from attune_services.console.main import main

main()
