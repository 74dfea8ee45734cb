"""The database and the data around it: engines and migrations, tables, importers, the
registry reader, the audit log's chain and its checks, sealing keys, calendar data.

Plain code, no Temporal: activities, workers and commands use it; it uses only models.
"""
