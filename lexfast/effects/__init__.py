"""One module per effect family; each ends in its ``ROWS``.

``FAMILIES`` lists them in the order the table is assembled. A new family is
one module here plus its name in this list.
"""

FAMILIES = (
    "io",      # io.print/read/write
    "clock",   # time.now/sleep_ms, datetime.now
    "rand",    # rand.int_in, crypto.random
    "env",     # env.get
    "budget",  # budget.*
    "log",     # log.*
    "fs",      # fs.*                      (issue 3)
    "proc",    # proc.spawn, process.*     (issue 3)
    "kv",      # kv.* on lmdb              (issue 4)
    "sql",     # sql.* on sqlite3          (issue 4)
    "http",    # net.get/post, http.*      (issue 5)
    "serve",   # net.serve, net.serve_tls  (issue 6)
    "ws",      # net.serve_ws, chat.*      (issue 6)
    "agent",   # agent.*                   (issue 7)
)
