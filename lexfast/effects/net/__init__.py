"""The network families: ``net.get/post``, ``http.*`` (:mod:`.http`),
``net.serve``/``net.serve_tls`` (:mod:`.serve`), ``net.serve_ws``/``chat.*``
(:mod:`.ws`), ``net.serve_ws_fn``/``_auth``/``_actor`` (:mod:`.ws_fn`) and the
WebSocket client ``net.dial_ws``/``dial_ws_actor`` (:mod:`.ws_dial`). Each
module ends in its ``ROWS``; this package imports none of them (pycurl loads
when the table is built; websockets and uvloop when a server starts or a
client dials)."""
