"""`python -m attune_services.completion`."""

from attune_services.completion.main import main

main()
