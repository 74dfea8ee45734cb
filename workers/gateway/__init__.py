"""The HTTP gateway (R10): ``create_app`` builds the ASGI app that ``aidflow serve`` runs."""

from workers.gateway.app import create_app

__all__ = ["create_app"]
