"""The workflow-coordinator service: workflow records and graph evaluation (docs/architecture.md, Services)."""
