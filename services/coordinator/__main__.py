"""`python -m attune_services.coordinator`."""

from attune_services.coordinator.main import main

main()
