"""Activities: every side effect a workflow causes, each idempotent (the trail and read
model, funds requests and payout batches, reports and reminders, calendar answers)."""
