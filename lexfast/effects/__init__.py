"""The effect families, one module or package each, each ending in its
``ROWS`` (``lexfast.table.family_rows`` lists them in table order).

Small families are modules (io, clock, rand, env, budget, log, kv, sql);
larger ones are packages: ``fs`` (ops, glob), ``proc`` (ops, children: the
child lifecycle), ``net`` (http, serve, ws), ``agent`` (ops, mcp_client).
Every open beneath a scope root goes through ``lexfast.scope``.
"""
