"""Benchmarks of a running Attune (docs/architecture.md, Performance goals), driven by ``attune bench``.

:mod:`.report` holds the goals and prints figures against them; :mod:`.executions` measures
no-op latency and burst throughput; :mod:`.memory` idle RSS; :mod:`.workflows` the end-to-end
fan-out and chain; :mod:`.suite` starts the services and runs a suite. :mod:`.faults` (``attune
bench faults``) injects faults under load and counts what was lost, stuck, wrong or run twice;
its start-logging actions are the ``bench_faults`` pack in ``packs/``.
"""
