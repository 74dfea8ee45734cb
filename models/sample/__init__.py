"""A small sample county (Funan, 阜南县) for the demo and the tests. Codes are illustrative."""
