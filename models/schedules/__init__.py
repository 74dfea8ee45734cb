"""Shipped State Council holiday schedules, one file per year (``cn-YYYY.txt``)."""
