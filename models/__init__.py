"""Pure domain code: pydantic models, enums, programme definitions and rules.

Nothing in this package does I/O at import or call time (apart from explicit
``parse``/``load`` helpers that take text), so workflows can import it inside
the Temporal sandbox.
"""
