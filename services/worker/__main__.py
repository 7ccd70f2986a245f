"""`python -m attune_services.worker`."""

from attune_services.worker.main import main

main()
