"""Paper B (optimization trajectories and multi-task transfer): its study and report."""
