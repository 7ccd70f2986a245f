"""The scheduler service: the front door (docs/architecture.md, Services).

- `app` wires everything into the ServiceApp the bootstrap serves.
- `registry` / `actions`: packs and actions (RegistryService) and the action cache;
  `pack_files`: the workers' PackFilesService.
- `requests` / `executions_service` / `views` / `cancel`: ExecutionService;
  `child_executions`: the coordinator's ChildExecutionService.
- `request_log`: a retried RegisterPack, UpdateAction or CancelExecution (same request_id) gets
  the original response.
- `watchers`: WatchExecution wake-ups from this scheduler's transitions and the completion feed.
- `dispatch` / `sessions` / `workers`: executions to workers over their bidirectional streams
  (WorkerService).
- `handoff`: workflow executions to the coordinator, never to a worker.
- `sweeper`: recovery scans, schedule timeouts and lost workers; `giveups` sends what the
  scheduler gives up on to the completion service, the only writer of terminal states.
- `workflow_forward`: WorkflowService queries and cancels forwarded to the coordinator's
  CoordinatorService.
"""
