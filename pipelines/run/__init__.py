"""Running a plan: plan, chunks, settle, dry run, delivery, jobs, cost estimate."""
