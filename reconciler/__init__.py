"""The reconciler: load desired state, observe, plan, execute, watch; and the CLI."""
