"""The ``lexfast`` command (:mod:`.command`, its ``main``) and the JSON codec
it speaks (:mod:`.codec`). The module is not named ``main`` so that
``lexfast.cli.main`` is the function, never a module shadowed by it.

``lexfast.cli:main`` is the console-script entry point; ``python -m lexfast``
runs the same.
"""

from .command import FramedPrintSink, handle_request, main, respond, serve

__all__ = ["FramedPrintSink", "handle_request", "main", "respond", "serve"]
