"""`python -m attune_services.scheduler`."""

from attune_services.scheduler.main import main

main()
