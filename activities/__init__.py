"""Activities: every side effect of aidflow (database, calendar data, notifications, bank)."""
