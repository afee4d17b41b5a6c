"""The network families: ``net.get/post``, ``http.*`` (:mod:`.http`),
``net.serve``/``net.serve_tls`` (:mod:`.serve`), ``net.serve_ws``/``chat.*``
(:mod:`.ws`). Each module ends in its ``ROWS``; this package imports none of
them (pycurl loads when the table is built; websockets and uvloop when a
server starts)."""
