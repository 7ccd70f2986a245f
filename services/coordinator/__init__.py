"""The workflow-coordinator service: workflow records and graph evaluation (DESIGN §2)."""
