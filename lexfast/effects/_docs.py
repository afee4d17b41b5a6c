"""One description per effect-table row: its signature and a one-line doc.

``EFFECT_DOCS[(kind, op)] = (signature, doc)``. The signature names the
arguments in positional order with their Lex types and the return shape
(``Ok``/``Err``/``Some`` placement); the doc says what the op does, the scope
it consults, the ``Limits`` that bound it and the error wording users match
on (HARD: raised as ``EffectError``/``PolicyDenied``; SOFT: returned as an
``Err`` value; see docs/behaviour.md). The gate each row consults is read
from the row itself when rendered, so it cannot drift.

This mapping sits beside the effect table, never in it: ``dispatch`` does
not read it. ``docs/effects.md`` and ``lexfast help KIND.OP`` are generated
from it and from ``lexfast.builtins._docs.DOCS`` (``lexfast.cli.docs``), and a test
fails when a row has no entry or the committed page is stale.
"""

from __future__ import annotations

EFFECT_DOCS: dict[tuple[str, str], tuple[str, str]] = {
    # -- io ------------------------------------------------------------------
    ("io", "print"): (
        "io.print(line: Str) -> Unit",
        "Writes the line to the session's sink (stdout unless the handler was given one)."),
    ("io", "readline"): (
        "io.readline() -> Option[Str]",
        "The next line of the session's input without its `\\n`/`\\r\\n`; `None` at end of "
        "input. A line is bounded by `Limits.readline_bytes` (the rest of a longer one is "
        "skipped); a line that is not UTF-8 is HARD. Never reads the `lexfast` command's "
        "request stream."),
    ("io", "argv"): (
        "io.argv() -> List[Str]",
        "The program's arguments as the handler was given them (`program_args`)."),
    ("io", "read"): (
        "io.read(path: Str) -> Result[Str, Str]",
        "Reads a whole UTF-8 file. Scope `--allow-fs-read` (under `read_root` when set; `..` "
        "cannot leave it): HARD ``read of `{path}` outside --allow-fs-read``. I/O failures are "
        "SOFT `Err(\"<os error>\")`; invalid UTF-8 is `Err(\"stream did not contain valid "
        "UTF-8\")`. Bounded by `Limits.read_bytes`."),
    ("io", "write"): (
        "io.write(path: Str, contents: Str) -> Result[Unit, Str]",
        "Creates or truncates the file, atomically (the old file or the whole new one). Scope "
        "`--allow-fs-write`: HARD ``write to `{path}` outside --allow-fs-write``; I/O failures "
        "SOFT."),
    # -- time ----------------------------------------------------------------
    ("time", "now"): (
        "time.now() -> Int",
        "Unix seconds; pinned by `LEX_TEST_NOW` (seconds) when set."),
    ("time", "now_ms"): (
        "time.now_ms() -> Int",
        "Unix milliseconds; pinned by `LEX_TEST_NOW` (seconds, times 1000, saturating)."),
    ("time", "now_str"): (
        "time.now_str() -> Str",
        "The current UTC time in RFC 3339 as chrono writes it (`…+00:00`, a 0/3/6/9-digit "
        "fraction); pinned by `LEX_TEST_NOW`."),
    ("time", "mono_ns"): (
        "time.mono_ns() -> Int",
        "Nanoseconds on a monotonic clock since the module loaded; never pinned."),
    ("time", "sleep_ms"): (
        "time.sleep_ms(ms: Int) -> Unit",
        "Sleeps; zero or negative returns at once; at most 60 s, silently (the reference's cap)."),
    ("time", "sleep"): (
        "time.sleep(d: Duration) -> Unit",
        "Sleeps for a Duration (Int nanoseconds); zero or negative is a no-op; the same 60 s cap "
        "as `sleep_ms`."),
    ("datetime", "now"): (
        "datetime.now() -> Int",
        "Nanoseconds since the Unix epoch (UTC); pinned by `LEX_TEST_NOW` (seconds)."),
    # -- random --------------------------------------------------------------
    ("rand", "int_in"): (
        "rand.int_in(lo: Int, hi: Int) -> Int",
        "A uniform draw from the OS RNG over [lo, hi] (the seed returned the midpoint); an empty "
        "range is HARD `rand.int_in: empty range [lo, hi]`. Gated on `random`, not `rand`."),
    ("crypto", "random"): (
        "crypto.random(n: Int) -> Bytes",
        "n bytes from the OS RNG; n outside 0..=1048576 is HARD "
        "`crypto.random: n must be in 0..=1048576`."),
    ("crypto", "random_str_hex"): (
        "crypto.random_str_hex(n: Int) -> Str",
        "n random bytes from the OS RNG as lower-case hex (2n characters); n outside "
        "0..=1048576 is HARD `crypto.random_str_hex: n must be in 0..=1048576`."),
    ("crypto", "p256_generate"): (
        "crypto.p256_generate() -> Result[Bytes, Str]",
        "A fresh P-256 (ES256) secret key: `Ok` of the 32-byte big-endian scalar."),
    ("crypto", "secp256k1_generate"): (
        "crypto.secp256k1_generate() -> Result[Bytes, Str]",
        "A fresh secp256k1 secret key: `Ok` of the 32-byte big-endian scalar."),
    # -- env, budget ---------------------------------------------------------
    ("env", "get"): (
        "env.get(name: Str) -> Option[Str]",
        "`Some(value)` of the process environment variable; `None` when unset, not UTF-8, or "
        "the name is empty or holds `=` or NUL."),
    ("budget", "*"): (
        "budget.<any>(...) -> Unit",
        "Nominal, as in the reference: any op of kind `budget` answers `Unit` once granted. The "
        "real budget is `note_call_budget`."),
    # -- log -----------------------------------------------------------------
    ("log", "debug"): (
        "log.debug(msg: Str) -> Unit",
        "Logs at level debug; dropped below the session's level (default info). Text "
        "`[{ts}] debug: {msg}` or one JSON object per line; control characters escaped."),
    ("log", "info"): (
        "log.info(msg: Str) -> Unit",
        "Logs at level info; dropped below the session's level. Same formats as `log.debug`."),
    ("log", "warn"): (
        "log.warn(msg: Str) -> Unit",
        "Logs at level warn; dropped below the session's level. Same formats as `log.debug`."),
    ("log", "error"): (
        "log.error(msg: Str) -> Unit",
        "Logs at level error. Same formats as `log.debug`."),
    ("log", "set_level"): (
        "log.set_level(level: Str) -> Result[Unit, Str]",
        "Sets the session's level; unknown is SOFT "
        "``log.set_level: unknown level `{s}`; expected debug|info|warn|error``."),
    ("log", "set_format"): (
        "log.set_format(format: Str) -> Result[Unit, Str]",
        "`text` or `json`; else SOFT ``log.set_format: unknown format `{s}`; expected "
        "text|json``."),
    ("log", "set_sink"): (
        "log.set_sink(path: Str) -> Result[Unit, Str]",
        "Sends the session's log to a file opened for append (`\"-\"`: stderr). Scope "
        "`--allow-fs-write`, SOFT ``fs path `{p}` outside --allow-fs-write``; an open failure is "
        "SOFT ``log.set_sink `{p}`: {e}``; a file with more than one link is refused."),
    # -- fs ------------------------------------------------------------------
    ("fs", "exists"): (
        "fs.exists(path: Str) -> Bool",
        "Whether the path exists (symlinks followed). Scope `--allow-fs-read`; a denial is the "
        "SOFT ``Err(\"fs path `{p}` outside --allow-fs-read\")`` (a Result where the type says "
        "Bool, as in the reference)."),
    ("fs", "is_file"): (
        "fs.is_file(path: Str) -> Bool",
        "Whether the path is a regular file (symlinks followed). Scope and denial as "
        "`fs.exists`."),
    ("fs", "is_dir"): (
        "fs.is_dir(path: Str) -> Bool",
        "Whether the path is a directory (symlinks followed). Scope and denial as `fs.exists`."),
    ("fs", "stat"): (
        "fs.stat(path: Str) -> Result[{size: Int, mtime: Int, is_dir: Bool, is_file: Bool}, Str]",
        "Scope `--allow-fs-read` (SOFT denial); failure SOFT ``fs.stat `{p}`: {e}``."),
    ("fs", "list_dir"): (
        "fs.list_dir(path: Str) -> Result[List[Str], Str]",
        "The children as full paths, unsorted. Scope `--allow-fs-read` (SOFT denial); failure "
        "SOFT ``fs.list_dir `{p}`: {e}``; bounded by `Limits.walk_entries` and "
        "`Limits.listing_bytes`."),
    ("fs", "walk"): (
        "fs.walk(root: Str) -> Result[List[Str], Str]",
        "Every path under root, pre-order, the root first, symlinks not followed, never leaving "
        "the scope. Scope `--allow-fs-read`; failure SOFT `fs.walk: {e}`; bounded by "
        "`Limits.walk_entries` and `Limits.listing_bytes`."),
    ("fs", "glob"): (
        "fs.glob(pattern: Str) -> Result[List[Str], Str]",
        "Matching paths, sorted; `*` matches dot files but not `/`. `--allow-fs-read` filters "
        "the results; failure SOFT `fs.glob: …`; bounded as `fs.walk`."),
    ("fs", "mkdir_p"): (
        "fs.mkdir_p(path: Str) -> Result[Unit, Str]",
        "Creates the directory and its parents. Scope `--allow-fs-write` (SOFT denial); failure "
        "SOFT ``fs.mkdir_p `{p}`: {e}``."),
    ("fs", "remove"): (
        "fs.remove(path: Str) -> Result[Unit, Str]",
        "Removes a file, a directory recursively, or a symlink itself (never following it). "
        "Scope `--allow-fs-write` (SOFT denial); failure SOFT ``fs.remove `{p}`: {e}``."),
    ("fs", "copy"): (
        "fs.copy(src: Str, dst: Str) -> Result[Unit, Str]",
        "Copies a file, replacing dst atomically. src in `--allow-fs-read`, dst in "
        "`--allow-fs-write` (SOFT denials); failure SOFT `fs.copy {src} -> {dst}: {e}`."),
    # -- arrow file I/O (pyarrow: `pip install 'lexfast[arrow]'`) --------------
    ("arrow", "read_csv"): (
        "arrow.read_csv(path: Str) -> Result[Table, Str]",
        "Reads a CSV with a header row; types inferred over the whole file: Int64, Float64, "
        "Boolean (`true`/`false`), else Utf8 (dates and times stay the text they are). Only an "
        "empty cell is null (`\"\"` is the empty string). Scope `--allow-fs-read` (under "
        "`read_root` when set), opened beneath the root: HARD ``arrow.read_csv: `{path}` outside "
        "--allow-fs-read``. SOFT ``arrow.read_csv: open `{path}`: {e}`` / ``parse `{path}`: "
        "{e}``. Bounded by `Limits.arrow_max_bytes` (file, decoded data, and `/ 8` cells), "
        "`arrow_max_rows`, `arrow_max_columns`; "
        "without pyarrow SOFT `arrow.read_csv: needs pyarrow (pip install 'lexfast[arrow]')`."),
    ("arrow", "read_parquet"): (
        "arrow.read_parquet(path: Str) -> Result[Table, Str]",
        "Reads a Parquet file, every row group. Narrower ints, float16/32, large strings and "
        "dictionary-encoded columns are converted losslessly; any other type (dates, decimals, "
        "lists, structs) is SOFT ``arrow.read_parquet: column `{name}` has type {type}, …``. "
        "Scope, bounds and the missing-pyarrow err as `arrow.read_csv`; a corrupt file SOFT "
        "``arrow.read_parquet: open `{path}`: {e}`` / ``row-group decode `{path}`: {e}``."),
    ("arrow", "read_parquet_cols"): (
        "arrow.read_parquet_cols(path: Str, cols: List[Str]) -> Result[Table, Str]",
        "`arrow.read_parquet` decoding only the named top-level columns (file order, each "
        "once); a name not in the file SOFT ``arrow.read_parquet_cols: column `{name}` not in "
        "file``; cols not a List[Str] HARD."),
    ("arrow", "write_parquet"): (
        "arrow.write_parquet(t: Table, path: Str) -> Result[Unit, Str]",
        "Writes t as Parquet (snappy), atomically (the old file or the whole new one). Scope "
        "`--allow-fs-write`: SOFT ``arrow.write_parquet: fs path `{path}` outside "
        "--allow-fs-write``; a file over `Limits.arrow_max_bytes` SOFT, nothing written; t not a "
        "Table HARD `arrow.write_parquet: first arg must be arrow.Table, got …`."),
    ("arrow", "write_csv"): (
        "arrow.write_csv(t: Table, path: Str) -> Result[Unit, Str]",
        "Writes a header row and the rows, atomically: null → empty cell, `\"\"` for the empty "
        "string, Bool → `true`/`false`, Float64 always with a `.` or exponent, quotes where "
        "needed, so `arrow.read_csv` reads back the same table (every column nullable; a Utf8 "
        "column of numbers comes back as numbers: CSV has no types). Scope "
        "and errors as `arrow.write_parquet`; needs no pyarrow."),
    # -- process -------------------------------------------------------------
    ("proc", "spawn"): (
        "proc.spawn(cmd: Str, args: List[Str]) -> Result[{stdout: Str, stderr: Str, "
        "exit_code: Int}, Str]",
        "Runs cmd to completion. Argument errors HARD (`proc.spawn: missing args list`, "
        "`proc.spawn: args must be List[Str], got {:?}`); `--allow-proc` SOFT; more than 1024 "
        "arguments or one over 64 KiB SOFT; spawn failure SOFT ``spawn `{cmd}`: {e}``. Output "
        "bounded by `Limits.proc_output_bytes`."),
    ("process", "spawn"): (
        "process.spawn(cmd: Str, args: List[Str], opts: {cwd: Option[Str], env: Map[Str, Str], "
        "stdin: Option[Bytes]}) -> Result[Int, Str]",
        "Starts a child and answers its handle. The third argument is required: HARD "
        "`process.spawn: missing or invalid opts record`, `process.spawn: args must be "
        "List[Str]`. `--allow-proc` SOFT ``process.spawn: `{cmd}` not in --allow-proc {…}``; "
        "under a non-empty `--allow-proc`, `env` may set only locale, `TZ`, `TERM`, `NO_COLOR` "
        "and `Limits.child_env_allow`. `stdin: Some(b)` is written and closed."),
    ("process", "read_stdout_line"): (
        "process.read_stdout_line(h: Int) -> Option[Str]",
        "The child's next stdout line without its line break; `None` at EOF. Unknown handle "
        "HARD `process.read_stdout_line: closed or unknown ProcessHandle`; a line is bounded by "
        "`Limits.proc_line_bytes`."),
    ("process", "read_stderr_line"): (
        "process.read_stderr_line(h: Int) -> Option[Str]",
        "As `read_stdout_line`, on stderr."),
    ("process", "wait"): (
        "process.wait(h: Int) -> {code: Int, signaled: Bool}",
        "Waits for the child (a bare record, not a Result; code −1 when signalled) and drops "
        "the handle. Unknown handle HARD."),
    ("process", "kill"): (
        "process.kill(h: Int, signal: Str) -> Result[Unit, Str]",
        "Sends the named signal to the child's process group (the reference always sent "
        "SIGKILL). Unknown handle HARD; OS failure SOFT `process.kill: {e}`."),
    ("process", "run"): (
        "process.run(cmd: Str, args: List[Str]) -> Result[{stdout: Str, stderr: Str, "
        "exit_code: Int}, Str]",
        "Runs cmd to completion with empty stdin; checks and errors as `process.spawn`, prefixed "
        "`process.run`. Output bounded by `Limits.proc_output_bytes`."),
    # -- kv ------------------------------------------------------------------
    ("kv", "open"): (
        "kv.open(path: Str) -> Result[Int, Str]",
        "Opens (creating) an ordered persistent byte store (lmdb) in a directory. Scope "
        "`--allow-fs-write`: SOFT ``kv.open: `{path}` outside --allow-fs-write``; store failure "
        "SOFT `kv.open: {e}`. Sized by `Limits.kv_map_size`/`kv_map_max`."),
    ("kv", "close"): (
        "kv.close(h: Int) -> Unit",
        "Closes the store; also `Unit` for an unknown handle."),
    ("kv", "get"): (
        "kv.get(h: Int, key: Str) -> Option[Bytes]",
        "The value under key. Unknown handle HARD `kv.get: closed or unknown Kv handle`; storage "
        "errors HARD."),
    ("kv", "put"): (
        "kv.put(h: Int, key: Str, value: Bytes) -> Result[Unit, Str]",
        "Stores the value; durable once `Ok` (`Limits.kv_sync`). Unknown handle HARD; storage "
        "SOFT `kv.put: {e}`."),
    ("kv", "delete"): (
        "kv.delete(h: Int, key: Str) -> Result[Unit, Str]",
        "Removes the key; `Ok` also when absent. Unknown handle HARD; storage SOFT."),
    ("kv", "contains"): (
        "kv.contains(h: Int, key: Str) -> Bool",
        "Whether the key is present. Unknown handle HARD; storage HARD."),
    ("kv", "list_prefix"): (
        "kv.list_prefix(h: Int, prefix: Str) -> List[Str]",
        "Keys starting with prefix in byte order (`\"\"` lists all), at most "
        "`Limits.kv_list_keys`. Unknown handle HARD; storage HARD."),
    # -- sql -----------------------------------------------------------------
    ("sql", "open"): (
        "sql.open(path: Str) -> Result[Int, SqlError]",
        "Opens a SQLite database (`:memory:` exempt from the scope). Scope `--allow-fs-write`: "
        "``sql.open: `{path}` outside --allow-fs-write``; open failure `sql.open: {e}`; both as "
        "`Err(SqlError {message, code, detail})`. A `postgres://` or `postgresql://` URL "
        "(`postgres://user:password@host:port/dbname?sslmode=…`) opens a PostgreSQL "
        "connection instead (psycopg 3: `pip install lexfast[postgres]`): it also needs effect "
        "`net` (HARD) and the host in `--allow-net-host` (HARD ``sql.open: net call to host "
        "`{host}` not in --allow-net-host {…}``; stricter than the reference, which checks "
        "neither); one host, no Unix socket; query parameters only `sslmode`, "
        "`connect_timeout`, `application_name`; a host that is not loopback needs `sslmode` "
        "`require` or stricter (default `verify-full`). Connection failures "
        "`sql.open: cannot connect to {host}:{port}: {e}`, never echoing the password. The "
        "other `sql.*` ops work the same on it (`?`/`?N` placeholders, `Limits.sql_*` bounds)."),
    ("sql", "close"): (
        "sql.close(h: Int) -> Unit",
        "Closes the database; also `Unit` for an unknown handle."),
    ("sql", "exec"): (
        "sql.exec(h: Int, stmt: Str, params: List[SqlParam]) -> Result[Int, SqlError]",
        "Runs one statement that returns no rows; `Ok` of SQLite's `changes()`. A SqlParam is "
        "`PStr(s) | PInt(n) | PFloat(x) | PBool(b) | PNull`, a plain Str is `PStr`. Unknown handle "
        "HARD `sql.exec: closed or unknown Db handle`; bad params HARD (`sql.exec: expected "
        "SqlParam variant, got {:?}`); SQLite failures `Err(SqlError)` with message "
        "`sql.exec: {e}`. Bounded by `Limits.sql_timeout_s`."),
    ("sql", "query"): (
        "sql.query(h: Int, stmt: Str, params: List[SqlParam]) -> Result[List[Record], SqlError]",
        "Rows as records keyed by column name (NULL → Unit, INTEGER → Int, REAL → Float, TEXT → "
        "Str, BLOB → Bytes). Errors as `sql.exec`, prefixed `sql.query`; bounded by "
        "`Limits.sql_rows`, `sql_result_bytes`, `sql_timeout_s`. On PostgreSQL: integers → Int, "
        "float4/8 → Float, bool → Bool, bytea → Bytes, every other type (numeric, dates, json, "
        "uuid, arrays…) → Str as the server renders it; `code` is the SQLSTATE (`57014` for "
        "the statement timeout, which is the server's `statement_timeout`)."),
    ("sql", "begin"): (
        "sql.begin(db: Int) -> Result[Int, SqlError]",
        "`BEGIN` on the connection; the `SqlTx` handle is the Db handle (statements on either "
        "join the transaction)."),
    ("sql", "commit"): (
        "sql.commit(tx: Int) -> Result[Unit, SqlError]",
        "`COMMIT`; a failed commit is rolled back, leaving the database as before."),
    ("sql", "rollback"): (
        "sql.rollback(tx: Int) -> Result[Unit, SqlError]",
        "`ROLLBACK`."),
    ("sql", "exec_tx"): (
        "sql.exec_tx(tx: Int, stmt: Str, params: List[SqlParam]) -> Result[Int, SqlError]",
        "`sql.exec` inside a transaction handle; errors prefixed `sql.exec_tx`."),
    ("sql", "query_tx"): (
        "sql.query_tx(tx: Int, stmt: Str, params: List[SqlParam]) -> "
        "Result[List[Record], SqlError]",
        "`sql.query` inside a transaction handle; errors prefixed `sql.query_tx`."),
    ("sql", "query_iter"): (
        "sql.query_iter(db: Int, stmt: Str, params: List[SqlParam]) -> "
        "Result[__IterCursor(Int), SqlError]",
        "A cursor `__IterCursor(n)`: the statement runs to its first row now (a bad statement is this call's "
        "`Err`), the rest one `sql.cursor_next` at a time, never materialised. On PostgreSQL a "
        "server-side `DECLARE … WITH HOLD` cursor read in batches of 64 (a `SELECT` or "
        "`VALUES` only)."),
    ("sql", "cursor_next"): (
        "sql.cursor_next(cursor: Int) -> Option[Record]",
        "The next row of the cursor `__IterCursor(cursor)`; `None` once exhausted or for a "
        "closed, evicted or unknown cursor (at most 256 per session, least recently used "
        "evicted). A "
        "non-Int is HARD `sql.cursor_next: expected cursor handle (Int)`; a failing step raises."),
    ("sql", "get_str"): (
        "sql.get_str(row: Record, column: Str) -> Option[Str]",
        "The column as Str (an Int is rendered); `None` when absent or of another type."),
    ("sql", "get_int"): (
        "sql.get_int(row: Record, column: Str) -> Option[Int]",
        "The column as Int (a Float as Rust's `as i64`); `None` when absent or of another type."),
    ("sql", "get_float"): (
        "sql.get_float(row: Record, column: Str) -> Option[Float]",
        "The column as Float (an Int converted); `None` when absent or of another type."),
    ("sql", "get_bool"): (
        "sql.get_bool(row: Record, column: Str) -> Option[Bool]",
        "The column as Bool (an Int is `!= 0`); `None` when absent or of another type."),
    # -- net, http -----------------------------------------------------------
    ("net", "get"): (
        "net.get(url: Str) -> Result[Str, Str]",
        "GET; host in `--allow-net-host` (HARD ``net call to host `{host}` not in "
        "--allow-net-host {…}``). 2xx `Ok(body)`; other status SOFT `Err(\"status {code}: "
        "{body}\")`; transport SOFT `Err(\"transport: {e}\")`. Redirects never followed; body "
        "bounded by `Limits.http_body_bytes` (over it an `Err`), time by `Limits.http_timeout_s`."),
    ("net", "post"): (
        "net.post(url: Str, body: Str) -> Result[Str, Str]",
        "As `net.get`, POSTing the body."),
    ("http", "send"): (
        "http.send(req: {method: Str, url: Str, headers: Map[Str, Str], body: Option[Bytes], "
        "timeout_ms: Option[Int]}) -> Result[HttpResponse, HttpError]",
        "Any status is `Ok({status, headers: Map[Str, Str] (lower case), body: Bytes})`. Every "
        "failure SOFT, the host denial included: `Err(TimeoutError | TlsError(msg) | "
        "NetworkError(msg) | DecodeError(msg))`. Method upper-cased; GET, POST, PUT, PATCH, "
        "DELETE, HEAD; request-smuggling headers refused; `timeout_ms` may only shorten "
        "`Limits.http_timeout_s`."),
    ("http", "get"): (
        "http.get(url: Str) -> Result[HttpResponse, HttpError]",
        "GET; host check HARD; answers as `http.send`."),
    ("http", "post"): (
        "http.post(url: Str, body: Bytes, content_type: Str) -> Result[HttpResponse, HttpError]",
        "POST; arguments checked first, then the host (HARD); sets `content-type` when "
        "non-empty; answers as `http.send`."),
    ("http", "stream_lines"): (
        "http.stream_lines(url: Str, headers: Map[Str, Str], body: Str) -> "
        "Result[Stream[Str], Str]",
        "POSTs body and streams the response one line at a time (read with `stream.next`/"
        "`collect`); failure SOFT `http.stream_lines: …`. Bounded by "
        "`Limits.stream_line_bytes`, `stream_bytes`, `stream_timeout_s`; a failure mid-stream "
        "raises at the next pull."),
    ("stream", "next"): (
        "stream.next(s: Stream[T]) -> Option[T]",
        "The next item; `None` once exhausted (also for a closed or unknown stream)."),
    ("stream", "collect"): (
        "stream.collect(s: Stream[T]) -> List[T]",
        "Every remaining item (at most `Limits.stream_items`); `[]` for a closed or unknown "
        "stream, so a second `collect` is `[]`."),
    ("net", "serve"): (
        "net.serve(port: Int, handler_name: Str) -> Unit",
        "Blocks serving HTTP on 127.0.0.1:port; each request calls the VM's `handler_name` "
        "with `{method, path, query, body, headers, path_params}` and a returned record gives "
        "`status` (default 200), `body` (default `\"\"`; Str, Bytes, `BodyStr`, or a streamed "
        "`BodyStream`/`BodyBytes` as in `net.serve_fn`) and `headers`. Needs a `runner`. Port outside 0..=65535 HARD "
        "`net.serve(port, handler): port must be Int 0..=65535`; bind failure HARD "
        "`net.serve bind {port}: {e}`. Bounded by `Limits.serve_threads`, "
        "`request_body_bytes`, `serve_idle_s`; stops on `handler.shutdown()`."),
    ("net", "serve_tls"): (
        "net.serve_tls(port: Int, cert_path: Str, key_path: Str, handler_name: Str) -> Unit",
        "`net.serve` over TLS; cert and key are read only inside `--allow-fs-read`."),
    ("net", "serve_fn"): (
        "net.serve_fn(port: Int, handler: (Request) -> Response) -> Unit",
        "`net.serve` with a closure: each request calls `handler` through the VM's closure "
        "hook (`DefaultHandler(invoke=...)`; in `lexfast host` the peer is asked) on a fresh "
        "fork; the request's `path_params` is an empty Map. The body may be a Str, "
        "Bytes, `BodyStr(s)`, or `BodyStream(iter)` / `BodyBytes(iter)` (an `Iter` of Str / "
        "of Bytes or List[Int]; `iter.from_list`, `iter.unfold`, a stream): sent chunked, "
        "pulled one item at a time on the worker, stopped when the client leaves or reads "
        "nothing for `serve_idle_s`. Binds 127.0.0.1. Not a closure HARD "
        "`net.serve_fn(port, handler): handler must be a closure`; no hook HARD naming "
        "`DefaultHandler(invoke=...)`; otherwise as `net.serve`."),
    ("net", "serve_fn_with"): (
        "net.serve_fn_with(port: Int, handler: (Request) -> Response, opts: ServeOpts) -> Unit",
        "`net.serve_fn` with `ServeOpts` `{http2, inline_vm, host, tls?}`: `host` an IP "
        "literal, loopback always allowed, any other only when named in `--allow-net-host` "
        "(HARD PolicyDenied; an empty list does not widen a listener); `tls` a `TlsConfig` "
        "(HTTPS); `http2` is noted on stderr and served as HTTP/1.1; `inline_vm` ignored. A "
        "bad field HARD `opts.http2 must be Bool` (and so on); an unknown field HARD."),
    ("net", "serve_routed"): (
        "net.serve_routed(port: Int, routes: List[(Str, Str, (Request) -> Response)], "
        "fallback: (Request) -> Response) -> Unit",
        "`net.serve_fn` that picks the closure per request: the first route whose method "
        "(case-insensitive; `*` any) and pattern match (segment by segment, `:name` binds "
        "`path_params[name]`, the count must match: a trailing slash matters), else "
        "`fallback` with empty `path_params`. Routes are checked before binding: HARD "
        "`net.serve_routed: route #i must be a (method, pattern, handler) 3-tuple`, "
        "`... path pattern must start with '/'`, `... must have a name`; at most 1024."),
    ("net", "serve_routed_with"): (
        "net.serve_routed_with(port: Int, routes: List[(Str, Str, (Request) -> Response)], "
        "fallback: (Request) -> Response, opts: ServeOpts) -> Unit",
        "`net.serve_routed` with `ServeOpts` (as `net.serve_fn_with`)."),
    ("net", "serve_with"): (
        "net.serve_with(port: Int, handler_name: Str, opts: ServeOpts) -> Unit",
        "`net.serve` (by name, through the `runner`) with `ServeOpts` (as `net.serve_fn_with`)."),
    ("net", "default_opts"): (
        "net.default_opts() -> ServeOpts",
        "`{http2: false, inline_vm: false, host: \"127.0.0.1\"}`: pure, as in the reference, "
        "which answers host `0.0.0.0` (servers bind loopback here unless a host is named)."),
    ("tls", "from_pem_files"): (
        "tls.from_pem_files(cert_path: Str, key_path: Str) -> Result[TlsConfig, Str]",
        "Reads a PEM certificate chain and key as `net.serve_tls` does (inside "
        "`--allow-fs-read`, regular files, at most 1 MiB) and checks they pair; the value is "
        "the handle `__TlsConfig(\"tls_N\")` (the key stays in the session, never in a value, "
        "trace or log; 256 per session). Outside the scope, unreadable, invalid or encrypted "
        "SOFT `Err(\"tls.from_pem_files: ...\")`."),
    ("tls", "self_signed"): (
        "tls.self_signed(hostname: Str) -> Result[TlsConfig, Str]",
        "A fresh P-256 key and a self-signed certificate for `hostname` (DNS name or IP, in "
        "its subjectAltName; valid 90 days), as a `TlsConfig` handle. Pure. An empty or "
        "non-ASCII hostname SOFT `Err`; a non-Str HARD."),
    ("net", "serve_ws"): (
        "net.serve_ws(port: Int, on_message: Str) -> Unit",
        "Blocks serving WebSocket rooms (the path without its `/`); each text frame calls "
        "`on_message({body, conn_id, room})`. Needs a `runner`; errors as `net.serve`; at most "
        "`Limits.ws_connections`, `ws_queue_bytes` queued per connection."),
    ("net", "serve_ws_fn"): (
        "net.serve_ws_fn(port: Int, subprotocol: Str, on_message: (WsConn, WsMessage) -> "
        "WsAction) -> Unit",
        "Blocks serving WebSockets on 127.0.0.1 like `net.serve_ws`; every frame calls the "
        "closure with `{id, path, subprotocol}` and `WsText(Str)`, `WsBinary(List[Int])`, "
        "`WsPing`, and `WsClose` once at the end; `WsSend(Str)`/`WsSendBinary(List[Int])`/"
        "`WsNoOp` answers. `subprotocol` (`\"\"`: none) is echoed only to a client that "
        "offered it; not a token HARD `net.serve_ws_fn: subprotocol {s} is not a valid HTTP "
        "header value`. Needs `DefaultHandler(invoke=...)`; closure failures go to stderr. "
        "`Limits.ws_connections`, `ws_queue_bytes`; stops on `handler.shutdown()`."),
    ("net", "serve_ws_fn_auth"): (
        "net.serve_ws_fn_auth(port: Int, subprotocol: Str, auth: (Str, List[{name: Str, "
        "value: Str}]) -> Result[Unit, Str], on_message: (WsConn, WsMessage) -> WsAction) -> "
        "Unit",
        "`net.serve_ws_fn` whose `auth(path, headers)` runs before the handshake answer: "
        "`Ok(())` lets the client in, `Err(msg)` answers 401 with `msg`, anything else 500. "
        "Header names lower-cased, non-ASCII values left out."),
    ("net", "serve_ws_fn_actor"): (
        "net.serve_ws_fn_actor(port: Int, subprotocol: Str, name_of: (WsConn) -> Str, "
        "on_message: (WsConn, WsMessage) -> WsAction) -> Unit",
        "`net.serve_ws_fn` that registers each connection under `name_of(conn)` (`\"\"`: not "
        "registered) as a native actor of the session (`tell(Str)` sends a text frame) until "
        "it ends; a taken name or a non-Str closes that connection."),
    ("net", "dial_ws"): (
        "net.dial_ws(url: Str, subprotocol: Str, on_open: () -> WsAction, on_message: "
        "(WsMessage) -> WsAction) -> Result[Unit, Str]",
        "A WebSocket client (`ws://`, `wss://` verified): `on_open` once, `on_message` per "
        "frame, `WsClose` once and `Ok(())` when the server closes (or on "
        "`handler.shutdown()`). Host outside `--allow-net-host` HARD `net.dial_ws: net call "
        "to host ...`; a bad URL, connect or handshake failure (10 s), a message over 1 MiB, "
        "a closure failure SOFT `Err(\"net.dial_ws: ...\")`."),
    ("net", "dial_ws_actor"): (
        "net.dial_ws_actor(url: Str, subprotocol: Str, name: Str, on_open: () -> WsAction, "
        "on_message: (WsMessage) -> WsAction) -> Result[Unit, Str]",
        "`net.dial_ws` registered as the session's native actor `name` (`\"\"`: none) while "
        "it runs; `tell(Str)` queues a text frame (at most `Limits.ws_queue_bytes`). A taken "
        "name SOFT `Err(\"net.dial_ws_actor: conc.register(...) failed...\")`."),
    ("chat", "broadcast"): (
        "chat.broadcast(room: Str, body: Str) -> Unit",
        "Sends body to every connection in the room, the sender included. Outside a "
        "`net.serve_ws` handler HARD `chat.broadcast called outside a net.serve_ws handler`; "
        "a body with a lone surrogate HARD `chat.broadcast: body is not valid Unicode ...`."),
    ("chat", "send"): (
        "chat.send(conn_id: Int, body: Str) -> Bool",
        "Whether the connection exists (and was sent body). A negative id HARD "
        "`chat.send: conn_id must be non-negative Int`; outside a `net.serve_ws` handler HARD."),
    # -- redis (the redis extra: pip install lexfast[redis]) -----------------
    ("redis", "connect"): (
        "redis.connect(url: Str) -> Result[Int, Str]",
        "Connects to `redis://[user:pass@]host[:port][/db]` or `rediss://` (TLS, certificate and "
        "name always verified; `Limits.redis_ca_bundle` replaces the system CAs) and answers "
        "PING. Host outside `--allow-net-host` HARD ``net call to host `{host}` not in "
        "--allow-net-host [..]``; a bad URL (other schemes, query parameters, control "
        "characters, a db that is not a number), refused connection, wrong password or timeout "
        "SOFT `redis.connect: {e}` (the password never echoed), and so is a missing redis-py/hiredis "
        "(naming `pip install lexfast[redis]`). The handle pools up to `Limits.redis_connections` "
        "connections."),
    ("redis", "close"): (
        "redis.close(conn: Int) -> Unit",
        "Closes every connection of the handle (ending its subscriptions); also `Unit` for an "
        "unknown handle."),
    ("redis", "get"): (
        "redis.get(conn: Int, key: Str) -> Option[Str]",
        "GET. Every redis op: unknown handle HARD `redis.{op}: closed or unknown ConnRedis "
        "handle`; a server error (`WRONGTYPE ...`), a lost or refused connection, a timeout "
        "(`Limits.redis_timeout_s`) or a reply over `Limits.redis_reply_bytes` HARD "
        "`redis.{op}: {e}`, never retried; a stored value that is not UTF-8 HARD."),
    ("redis", "set"): (
        "redis.set(conn: Int, key: Str, value: Str) -> Unit", "SET."),
    ("redis", "set_ex"): (
        "redis.set_ex(conn: Int, key: Str, value: Str, ttl: Int) -> Unit",
        "SETEX: set with a time to live in seconds; ttl <= 0 HARD."),
    ("redis", "del"): (
        "redis.del(conn: Int, key: Str) -> Unit", "DEL; `Unit` also when absent."),
    ("redis", "exists"): (
        "redis.exists(conn: Int, key: Str) -> Bool", "Whether the key exists."),
    ("redis", "expire"): (
        "redis.expire(conn: Int, key: Str, ttl: Int) -> Unit",
        "EXPIRE in seconds (a ttl <= 0 deletes the key, as Redis does)."),
    ("redis", "publish"): (
        "redis.publish(conn: Int, channel: Str, message: Str) -> Int",
        "PUBLISH; the number of subscribers that received it."),
    ("redis", "subscribe"): (
        "redis.subscribe(conn: Int, channel: Str, handler_name: Str) -> Unit",
        "Blocks on a connection of its own; each message calls the program's function "
        "`handler_name(channel, message)` through the `runner` on a fork of this handler (the "
        "same budget). Returns `Unit` once the handle or handler is closed or "
        "`handler.shutdown()` is called; a lost connection or a failing handler HARD "
        "`redis.subscribe: handler: {e}`. Needs a program and a runner."),
    ("redis", "psubscribe"): (
        "redis.psubscribe(conn: Int, pattern: Str, handler_name: Str) -> Unit",
        "`redis.subscribe` for a glob pattern; the function gets `(pattern, channel, message)`."),
    ("redis", "lpush"): (
        "redis.lpush(conn: Int, key: Str, value: Str) -> Int", "LPUSH; the new length."),
    ("redis", "rpush"): (
        "redis.rpush(conn: Int, key: Str, value: Str) -> Int", "RPUSH; the new length."),
    ("redis", "brpop"): (
        "redis.brpop(conn: Int, key: Str, timeout: Int) -> Option[Str]",
        "BRPOP: the popped value, `None` after timeout seconds. The wait is at most "
        "`Limits.redis_block_s`, and `0` (forever upstream) means that cap; negative HARD."),
    ("redis", "llen"): (
        "redis.llen(conn: Int, key: Str) -> Int", "LLEN."),
    ("redis", "hset"): (
        "redis.hset(conn: Int, key: Str, field: Str, value: Str) -> Unit", "HSET."),
    ("redis", "hget"): (
        "redis.hget(conn: Int, key: Str, field: Str) -> Option[Str]", "HGET."),
    ("redis", "hdel"): (
        "redis.hdel(conn: Int, key: Str, field: Str) -> Unit", "HDEL; `Unit` also when absent."),
    ("redis", "hgetall"): (
        "redis.hgetall(conn: Int, key: Str) -> List[(Str, Str)]",
        "HGETALL as (field, value) pairs in the server's order (upstream's is unordered); the "
        "whole reply bounded by `Limits.redis_reply_bytes`."),
    # -- net: UDP ------------------------------------------------------------
    ("net", "udp_open"): (
        "net.udp_open(port: Int[, host: Str]) -> Result[Int, Str]",
        "A UDP socket bound to 127.0.0.1:port (0: a free port); its handle. `host` (beyond the "
        "reference, which binds 0.0.0.0) binds another IPv4 address, which a non-empty "
        "`--allow-net-host` must name unless it is loopback: SOFT ``net.udp_open to `{host}` not "
        "in --allow-net-host […]``. Port outside 0..=65535 HARD `net.udp_open(port): port must be "
        "Int 0..=65535`; bind failure SOFT `net.udp_open: {e}`. At most 256 open per session "
        "(the least recently used is closed)."),
    ("net", "udp_close"): (
        "net.udp_close(sock: Int) -> Result[Unit, Str]",
        "Closes the socket (a receive in progress on it ends with `Err`); `Ok` also for a closed "
        "or unknown handle."),
    ("net", "udp_send"): (
        "net.udp_send(sock: Int, host: Str, port: Int, data: Bytes) -> Result[Int, Str]",
        "Sends one datagram; `Ok` of the bytes sent. The host as given must be in a non-empty "
        "`--allow-net-host`: SOFT ``net.udp_send to `{host}` not in --allow-net-host […]``; "
        "`255.255.255.255`, a 224.0.0.0/4 address and any destination of a socket with broadcast "
        "on must be named there explicitly (an empty list does not grant them); a name is "
        "resolved once and that address used; a loopback-bound socket sending beyond loopback SOFT "
        "`net.udp_send: the socket is bound to 127.0.0.1 and cannot reach …`. Unknown handle SOFT `net.udp_send: no open socket "
        "with handle {N} (closed, or never opened?)`; data over `Limits.udp_datagram_bytes` SOFT."),
    ("net", "udp_recv"): (
        "net.udp_recv(sock: Int, timeout_ms: Int) -> Result[UdpDatagram, Str]",
        "The next datagram as `{data: Bytes, host: Str, port: Int}` (the sender's address; an "
        "empty datagram has empty `data`); nothing within timeout_ms is SOFT `net.udp_recv: "
        "timed out after {timeout_ms}ms` (0 polls). timeout_ms negative or over "
        "`Limits.udp_timeout_s` HARD; a datagram longer than `Limits.udp_datagram_bytes` is "
        "dropped with a SOFT `Err` naming it; unknown handle SOFT."),
    ("net", "udp_broadcast"): (
        "net.udp_broadcast(sock: Int, on: Bool) -> Result[Unit, Str]",
        "Sets SO_BROADCAST. While on, the socket sends only to hosts `--allow-net-host` names. "
        "Unknown handle SOFT."),
    ("net", "udp_join_multicast"): (
        "net.udp_join_multicast(sock: Int, group: Str) -> Result[Unit, Str]",
        "Joins an IPv4 multicast group on the socket's interface. Not an address SOFT "
        "``net.udp_join_multicast: `{group}` is not an IPv4 address``; outside 224.0.0.0/4 SOFT "
        "`… is not a multicast address (224.0.0.0/4)`; a group `--allow-net-host` does not name "
        "explicitly SOFT ``… to `{group}` not in --allow-net-host […]``."),
    # -- vcs -----------------------------------------------------------------
    ("vcs", "put_blob"): (
        "vcs.put_blob(content: Str) -> Result[Str, Str]",
        "Stores the content under `<root>/blobs/<sha>`, sha the lower-case hex SHA-256 of its "
        "UTF-8 (as `crypto.sha256_str`); `Ok(sha)`. Root `Limits.vcs_root`, else "
        "`$LEX_STORE_ROOT`, else `~/.lex/store`; it must be inside `--allow-fs-write`: SOFT "
        "``vcs.put_blob: store root `{root}` outside --allow-fs-write``. Atomic (temp file, fsync, "
        "rename); content over `Limits.vcs_blob_bytes` SOFT; other failures SOFT `vcs.put_blob: {e}`."),
    ("vcs", "get_blob"): (
        "vcs.get_blob(sha: Str) -> Result[Str, Str]",
        "The blob's content. Absent (or not a 64-digit sha) SOFT ``vcs.get_blob: unknown blob "
        "`{sha}` ``; content not hashing to its name SOFT ``vcs.get_blob: blob `{sha}` is corrupt: "
        "…``; a symlink, a non-regular file or one with several hard links is refused; scope as "
        "`vcs.put_blob`."),
    ("vcs", "has_blob"): (
        "vcs.has_blob(sha: Str) -> Bool",
        "Whether an intact blob is stored under sha; `false` for any failure (as the reference)."),
    ("vcs", "ref_set"): (
        "vcs.ref_set(ns: Str, key: Str, sha: Str) -> Result[Unit, Str]",
        "Binds `ns`/`key` to sha in `<root>/blobrefs/<ns…>/<key>` (atomic; ns may hold `/`). A "
        "component that is empty (the key), starts with `.`, holds `\\` or a control character "
        "or is over 255 bytes, a key with `/`, a name over 1024 bytes, or a sha that is not 1 to "
        "64 lower-case hex digits is SOFT `vcs.ref_set: …` naming it; scope as `vcs.put_blob`."),
    ("vcs", "ref_get"): (
        "vcs.ref_get(ns: Str, key: Str) -> Result[Str, Str]",
        "The sha bound to `ns`/`key`. Unbound SOFT ``vcs.ref_get: unknown blob ref `{ns}/{key}` ``; "
        "names checked as `vcs.ref_set`; scope as `vcs.put_blob`."),
    # -- agent ---------------------------------------------------------------
    ("agent", "call_mcp"): (
        "agent.call_mcp(server: Str, tool: Str, args_json: Str) -> Result[Str, Str]",
        "Calls an MCP tool over stdio JSON-RPC; `Ok` of the result as compact JSON. args_json "
        "is parsed first (`agent.call_mcp: args_json is not valid JSON: …`); the server command "
        "falls under `--allow-proc`; bounded by `Limits.mcp_timeout_s`, `mcp_start_timeout_s`, "
        "`mcp_reply_bytes`. Errors SOFT (`mcp.spawn …`, `mcp.rpc {method}: {error}`)."),
    ("agent", "local_complete"): (
        "agent.local_complete(prompt: Str) -> Result[Str, Str]",
        "Ollama `/api/generate` at `OLLAMA_HOST` (model `LEX_LLM_LOCAL_MODEL`, default llama3); "
        "errors SOFT (`ollama POST {url}: …`); a non-Str prompt SOFT "
        "`agent.local_complete(prompt): prompt must be Str`. Bounded by `Limits.llm_timeout_s`."),
    ("agent", "cloud_complete"): (
        "agent.cloud_complete(prompt: Str) -> Result[Str, Str]",
        "An OpenAI-compatible `{base}/chat/completions` (key `LEX_LLM_CLOUD_API_KEY` or "
        "`OPENAI_API_KEY`, base `LEX_LLM_CLOUD_BASE_URL`/`OPENAI_BASE_URL`, model "
        "`LEX_LLM_CLOUD_MODEL` default gpt-4o-mini); `Ok` of `choices[0].message.content`; "
        "errors SOFT. Bounded by `Limits.llm_timeout_s`."),
    ("agent", "cloud_stream"): (
        "agent.cloud_stream(prompt: Str) -> Result[Stream[Str], Str]",
        "A streamed chat completion from the `cloud_complete` endpoint, one `delta.content` "
        "per item; `LEX_LLM_STREAM_FIXTURE` (`a|b|c`) replaces it. Bounded as "
        "`http.stream_lines`."),
    ("agent", "send_a2a"): (
        "agent.send_a2a(url: Str, message: Str) -> Result[Str, Str]",
        "An A2A `message/send` to url (the reference's is a stub answering `Ok(\"<a2a stub>\")`); "
        "its host is checked like `net`."),
    # -- approval ------------------------------------------------------------
    ("approval", "request"): (
        "approval.request(scope: Str, reason: Str) -> Result[Str, Str]",
        "Asks the session's approval sink; `Ok(answer)` when approved, `Err(\"denied by "
        "operator\")` when refused. A scope outside a non-empty `--allow-approval` is SOFT "
        "``approval.request: scope `{scope}` not in --allow-approval […]``; no sink is SOFT."),
}
