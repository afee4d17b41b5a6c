"""The ``lexfast`` command (``main``) and the JSON codec it speaks (``codec``).

``lexfast.cli:main`` is the console-script entry point; ``python -m lexfast``
runs the same.
"""

from .main import FramedPrintSink, handle_request, main, respond, serve

__all__ = ["FramedPrintSink", "handle_request", "main", "respond", "serve"]
