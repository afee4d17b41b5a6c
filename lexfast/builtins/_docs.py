"""One description per pure builtin: ``DOCS[(kind, op)] = (signature, doc)``.

The signature names the arguments in positional order with their Lex types
and the return shape (``Ok``/``Err``/``Some`` placement); the doc says what
the op answers and the error wording users match on. Builtins are never
gated and never counted against the budget. An argument of the wrong type is
HARD (``EffectError``: ``expected Str, got Int(5)``) unless the doc says the
op answers ``Err``.

Not imported by ``lexfast.builtins`` (dispatch never reads it): the
generator (``lexfast.cli.docs``) and ``lexfast help`` do. Types used below:
``Instant`` and ``Duration`` are Int nanoseconds; ``Decimal`` is the record
``{coefficient: Int, exponent: Int}``; ``Matrix`` is ``{rows: Int, cols: Int,
data: List[Float]}``; ``Rng`` is ``{state: Int}``; ``Table`` is an Arrow
table (``lexfast.Table``); ``Match`` is ``{text, start, end, groups}`` with
UTF-8 byte offsets.
"""

from __future__ import annotations

DOCS: dict[tuple[str, str], tuple[str, str]] = {
    # -- str -----------------------------------------------------------------
    ("str", "is_empty"): ("str.is_empty(s: Str) -> Bool", "Whether s is empty."),
    ("str", "len"): ("str.len(s: Str) -> Int", "The UTF-8 byte length (not code points)."),
    ("str", "char_at"): (
        "str.char_at(s: Str, i: Int) -> Str",
        "The byte at UTF-8 index i as a one-character Str when it is ASCII; `\"\"` for a "
        "non-ASCII byte or an index out of range (total, never an error)."),
    ("str", "concat"): ("str.concat(a: Str, b: Str) -> Str", "a followed by b."),
    ("str", "to_int"): (
        "str.to_int(s: Str) -> Option[Int]",
        "Rust's `i64` parse: `Some(n)`, or `None` (no spaces, no `_`; `+5` accepted)."),
    ("str", "split"): (
        "str.split(s: Str, sep: Str) -> List[Str]",
        "The pieces between occurrences of sep; an empty sep splits into characters."),
    ("str", "join"): (
        "str.join(parts: List[Str], sep: Str) -> Str",
        "The parts joined by sep; a non-Str element is HARD `str.join element must be Str, "
        "got {:?}`; a result over 2^26 code points is refused (lexfast)."),
    ("str", "starts_with"): ("str.starts_with(s: Str, prefix: Str) -> Bool", "Whether s starts with prefix."),
    ("str", "ends_with"): ("str.ends_with(s: Str, suffix: Str) -> Bool", "Whether s ends with suffix."),
    ("str", "contains"): ("str.contains(s: Str, needle: Str) -> Bool", "Whether needle occurs in s."),
    ("str", "cmp"): ("str.cmp(a: Str, b: Str) -> Int", "-1, 0 or 1 by code point order."),
    ("str", "replace"): (
        "str.replace(s: Str, from: Str, to: Str) -> Str",
        "Every occurrence of from replaced by to; a result over 2^26 code points is refused "
        "(lexfast)."),
    ("str", "trim"): ("str.trim(s: Str) -> Str", "s without leading and trailing Unicode White_Space."),
    ("str", "to_upper"): ("str.to_upper(s: Str) -> Str", "Upper case, as Rust's `to_uppercase`."),
    ("str", "to_lower"): ("str.to_lower(s: Str) -> Str", "Lower case, as Rust's `to_lowercase`."),
    ("str", "strip_prefix"): (
        "str.strip_prefix(s: Str, prefix: Str) -> Option[Str]",
        "`Some(rest)` when s starts with prefix, else `None`."),
    ("str", "strip_suffix"): (
        "str.strip_suffix(s: Str, suffix: Str) -> Option[Str]",
        "`Some(rest)` when s ends with suffix, else `None`."),
    ("str", "slice"): (
        "str.slice(s: Str, lo: Int, hi: Int) -> Str",
        "Code points [lo, hi): negative indices clamp to 0, past-the-end ones to the end; a "
        "reversed range is HARD `str.slice: reversed range [lo..hi]`."),
    ("str", "to_float"): (
        "str.to_float(s: Str) -> Option[Float]",
        "Rust's `f64` parse (`1e3`, `.5`, `inf`, `nan` in any case); `None` otherwise."),
    # -- int, float ----------------------------------------------------------
    ("int", "to_str"): ("int.to_str(n: Int) -> Str", "Decimal digits."),
    ("int", "to_float"): ("int.to_float(n: Int) -> Float", "The nearest Float."),
    ("int", "abs"): ("int.abs(n: Int) -> Int", "Absolute value; `abs` of the minimum Int wraps to itself."),
    ("int", "min"): ("int.min(a: Int, b: Int) -> Int", "The smaller."),
    ("int", "max"): ("int.max(a: Int, b: Int) -> Int", "The larger."),
    ("float", "to_int"): (
        "float.to_int(x: Float) -> Int",
        "Rust's `as i64`: toward zero, saturating, NaN is 0."),
    ("float", "to_str"): (
        "float.to_str(x: Float) -> Str",
        "Rust's `f64` Display: shortest round-trip digits, never an exponent (`1`, `-0`, `inf`, "
        "`NaN`)."),
    # -- list ----------------------------------------------------------------
    ("list", "len"): ("list.len(xs: List[T]) -> Int", "The number of elements."),
    ("list", "is_empty"): ("list.is_empty(xs: List[T]) -> Bool", "Whether xs has no element."),
    ("list", "head"): ("list.head(xs: List[T]) -> Option[T]", "`Some(first)`, or `None` for `[]`."),
    ("list", "tail"): ("list.tail(xs: List[T]) -> List[T]", "All but the first; `[]` for `[]`."),
    ("list", "range"): (
        "list.range(lo: Int, hi: Int) -> List[Int]",
        "lo, lo+1, …, hi-1 (empty when hi ≤ lo); more than `RANGE_MAX` elements is HARD "
        "(lexfast: the reference allocates them all)."),
    ("list", "concat"): ("list.concat(a: List[T], b: List[T]) -> List[T]", "a followed by b."),
    ("list", "reverse"): ("list.reverse(xs: List[T]) -> List[T]", "The elements in reverse order."),
    ("list", "cons"): ("list.cons(x: T, xs: List[T]) -> List[T]", "x prepended to xs."),
    ("list", "enumerate"): (
        "list.enumerate(xs: List[T]) -> List[(Int, T)]",
        "Each element paired with its index from 0."),
    # -- tuple ---------------------------------------------------------------
    ("tuple", "fst"): ("tuple.fst(t: Tuple) -> T", "Element 0; HARD `tuple index 0 out of range (len=N)` when absent."),
    ("tuple", "snd"): ("tuple.snd(t: Tuple) -> T", "Element 1; HARD when absent."),
    ("tuple", "third"): ("tuple.third(t: Tuple) -> T", "Element 2; HARD `tuple index 2 out of range (len=2)` on a pair."),
    ("tuple", "len"): ("tuple.len(t: Tuple) -> Int", "The arity; a non-Tuple is HARD `tuple.len: expected Tuple, got {:?}`."),
    # -- option, result ------------------------------------------------------
    ("option", "unwrap_or"): (
        "option.unwrap_or(o: Option[T], default: T) -> T",
        "The payload of `Some`, else default; a non-Option is HARD `option.unwrap_or expected "
        "Option, got {:?}`."),
    ("option", "unwrap_or_else"): (
        "option.unwrap_or_else(o: Option[T], default: T) -> T",
        "As `unwrap_or`: the VM evaluates the thunk and passes its value (a builtin cannot call "
        "a closure)."),
    ("option", "is_some"): ("option.is_some(o: Option[T]) -> Bool", "Whether o is `Some`."),
    ("option", "is_none"): ("option.is_none(o: Option[T]) -> Bool", "Whether o is `None`."),
    ("option", "ok_or"): (
        "option.ok_or(o: Option[T], e: E) -> Result[T, E]",
        "`Ok(x)` for `Some(x)`, `Err(e)` for `None`."),
    ("result", "is_ok"): ("result.is_ok(r: Result[T, E]) -> Bool", "Whether r is `Ok`."),
    ("result", "is_err"): ("result.is_err(r: Result[T, E]) -> Bool", "Whether r is `Err`."),
    ("result", "unwrap_or"): (
        "result.unwrap_or(r: Result[T, E], default: T) -> T",
        "The payload of `Ok`, else default; a non-Result is HARD `result.unwrap_or expected "
        "Result, got {:?}`."),
    ("result", "unwrap_or_else"): (
        "result.unwrap_or_else(r: Result[T, E], default: T) -> T",
        "As `unwrap_or`, the VM passing the thunk's value."),
    # -- test ----------------------------------------------------------------
    ("test", "assert_eq"): (
        "test.assert_eq(a: T, b: T) -> Result[Unit, Str]",
        "`Ok(())` when equal (Lex equality), else `Err(\"assert_eq: lhs {a} != rhs {b}\")` "
        "(values as JSON)."),
    ("test", "assert_ne"): (
        "test.assert_ne(a: T, b: T) -> Result[Unit, Str]",
        "`Ok(())` when different, else `Err(\"assert_ne: both sides are {a}\")`."),
    ("test", "assert_true"): (
        "test.assert_true(b: Bool) -> Result[Unit, Str]",
        "`Ok(())` or `Err(\"assert_true: was false\")`; a non-Bool is HARD."),
    ("test", "assert_false"): (
        "test.assert_false(b: Bool) -> Result[Unit, Str]",
        "`Ok(())` or `Err(\"assert_false: was true\")`; a non-Bool is HARD."),
    # -- bytes ---------------------------------------------------------------
    ("bytes", "len"): ("bytes.len(b: Bytes) -> Int", "The number of bytes."),
    ("bytes", "eq"): ("bytes.eq(a: Bytes, b: Bytes) -> Bool", "Whether a and b are equal (not constant time)."),
    ("bytes", "from_str"): ("bytes.from_str(s: Str) -> Bytes", "The UTF-8 encoding of s."),
    ("bytes", "to_str"): (
        "bytes.to_str(b: Bytes) -> Result[Str, Str]",
        "`Ok` of the UTF-8 text; `Err` with Rust's message "
        "(`invalid utf-8 sequence of 1 bytes from index 0`)."),
    ("bytes", "slice"): (
        "bytes.slice(b: Bytes, lo: Int, hi: Int) -> Bytes",
        "Bytes [lo, hi); out of range is HARD `bytes.slice: out of range [lo..hi] of N` (a "
        "negative index prints as the huge usize it becomes)."),
    ("bytes", "is_empty"): ("bytes.is_empty(b: Bytes) -> Bool", "Whether b is empty."),
    ("bytes", "concat"): ("bytes.concat(a: Bytes, b: Bytes) -> Bytes", "a followed by b."),
    ("bytes", "concat_all"): (
        "bytes.concat_all(items: List[Bytes]) -> Bytes",
        "All items joined; HARD `bytes.concat_all: list element is not Bytes, got {:?}`."),
    ("bytes", "u8"): ("bytes.u8(n: Int) -> Bytes", "One byte: n's low 8 bits (`u8(-1)` is `[255]`)."),
    ("bytes", "u16_le"): ("bytes.u16_le(n: Int) -> Bytes", "n's low 16 bits, little-endian."),
    ("bytes", "u32_le"): ("bytes.u32_le(n: Int) -> Bytes", "n's low 32 bits, little-endian."),
    ("bytes", "u64_le"): ("bytes.u64_le(n: Int) -> Bytes", "n's 64 bits, little-endian."),
    ("bytes", "u8_at"): (
        "bytes.u8_at(b: Bytes, off: Int) -> Result[Int, Str]",
        "The byte at off; `Err(\"bytes.u8_at: offset {off} out of range of N bytes\")`."),
    ("bytes", "u16_le_at"): (
        "bytes.u16_le_at(b: Bytes, off: Int) -> Result[Int, Str]",
        "The little-endian u16 at off; `Err` out of range, as `u8_at`."),
    ("bytes", "u32_le_at"): (
        "bytes.u32_le_at(b: Bytes, off: Int) -> Result[Int, Str]",
        "The little-endian u32 at off; `Err` out of range, as `u8_at`."),
    ("bytes", "u64_le_at"): (
        "bytes.u64_le_at(b: Bytes, off: Int) -> Result[Int, Str]",
        "The little-endian u64 at off, as the Int of the same bits; `Err` out of range."),
}

_MAP_SET_DEQUE = {
    ("map", "new"): ("map.new() -> Map[K, V]", "An empty Map (keys Str or Int)."),
    ("map", "size"): ("map.size(m: Map[K, V]) -> Int", "The number of entries."),
    ("map", "has"): ("map.has(m: Map[K, V], k: K) -> Bool", "Whether k is a key."),
    ("map", "get"): ("map.get(m: Map[K, V], k: K) -> Option[V]", "`Some(value)` or `None`."),
    ("map", "set"): ("map.set(m: Map[K, V], k: K, v: V) -> Map[K, V]", "A new Map with k set to v."),
    ("map", "delete"): ("map.delete(m: Map[K, V], k: K) -> Map[K, V]", "A new Map without k."),
    ("map", "keys"): ("map.keys(m: Map[K, V]) -> List[K]", "The keys in key order (every Str before every Int)."),
    ("map", "values"): ("map.values(m: Map[K, V]) -> List[V]", "The values in key order."),
    ("map", "entries"): ("map.entries(m: Map[K, V]) -> List[(K, V)]", "(key, value) pairs in key order."),
    ("map", "from_list"): (
        "map.from_list(pairs: List[(K, V)]) -> Map[K, V]",
        "A Map of the pairs, a later pair winning; a non-pair is HARD `map.from_list element "
        "must be a 2-tuple, got {:?}`."),
    ("map", "merge"): ("map.merge(a: Map[K, V], b: Map[K, V]) -> Map[K, V]", "a's entries overridden by b's."),
    ("map", "is_empty"): ("map.is_empty(m: Map[K, V]) -> Bool", "Whether m has no entry."),
    ("set", "new"): ("set.new() -> Set[K]", "An empty Set (elements Str or Int)."),
    ("set", "size"): ("set.size(s: Set[K]) -> Int", "The number of elements."),
    ("set", "has"): ("set.has(s: Set[K], x: K) -> Bool", "Whether x is an element."),
    ("set", "add"): ("set.add(s: Set[K], x: K) -> Set[K]", "s with x."),
    ("set", "delete"): ("set.delete(s: Set[K], x: K) -> Set[K]", "s without x."),
    ("set", "to_list"): ("set.to_list(s: Set[K]) -> List[K]", "The elements in key order."),
    ("set", "from_list"): ("set.from_list(xs: List[K]) -> Set[K]", "The distinct elements of xs."),
    ("set", "union"): ("set.union(a: Set[K], b: Set[K]) -> Set[K]", "Elements of either."),
    ("set", "intersect"): ("set.intersect(a: Set[K], b: Set[K]) -> Set[K]", "Elements of both."),
    ("set", "diff"): ("set.diff(a: Set[K], b: Set[K]) -> Set[K]", "Elements of a not in b."),
    ("set", "is_empty"): ("set.is_empty(s: Set[K]) -> Bool", "Whether s has no element."),
    ("set", "is_subset"): ("set.is_subset(a: Set[K], b: Set[K]) -> Bool", "Whether every element of a is in b."),
    ("deque", "new"): ("deque.new() -> Deque[T]", "An empty Deque."),
    ("deque", "size"): ("deque.size(d: Deque[T]) -> Int", "The number of elements."),
    ("deque", "is_empty"): ("deque.is_empty(d: Deque[T]) -> Bool", "Whether d has no element."),
    ("deque", "push_back"): ("deque.push_back(d: Deque[T], x: T) -> Deque[T]", "A new Deque with x at the back."),
    ("deque", "push_front"): ("deque.push_front(d: Deque[T], x: T) -> Deque[T]", "A new Deque with x at the front."),
    ("deque", "pop_back"): (
        "deque.pop_back(d: Deque[T]) -> Option[(T, Deque[T])]",
        "`Some((last, rest))`, or `None` when empty."),
    ("deque", "pop_front"): (
        "deque.pop_front(d: Deque[T]) -> Option[(T, Deque[T])]",
        "`Some((first, rest))`, or `None` when empty."),
    ("deque", "peek_back"): ("deque.peek_back(d: Deque[T]) -> Option[T]", "`Some(last)` or `None`."),
    ("deque", "peek_front"): ("deque.peek_front(d: Deque[T]) -> Option[T]", "`Some(first)` or `None`."),
    ("deque", "from_list"): ("deque.from_list(xs: List[T]) -> Deque[T]", "A Deque of xs in order."),
    ("deque", "to_list"): ("deque.to_list(d: Deque[T]) -> List[T]", "The elements front to back."),
}
DOCS.update(_MAP_SET_DEQUE)

_UNARY_MATH = {
    "exp": "e^x", "log": "Natural logarithm", "log2": "Base-2 logarithm",
    "log10": "Base-10 logarithm", "sqrt": "Square root", "abs": "Absolute value",
    "sin": "Sine (radians)", "cos": "Cosine (radians)", "tan": "Tangent (radians)",
    "asin": "Arcsine", "acos": "Arccosine", "atan": "Arctangent",
    "floor": "Largest integral Float ≤ x", "ceil": "Smallest integral Float ≥ x",
    "round": "Nearest integral Float, half away from zero", "trunc": "x toward zero",
}
for _op, _what in _UNARY_MATH.items():
    DOCS[("math", _op)] = (f"math.{_op}(x: Float) -> Float",
                           f"{_what}; Rust `f64` semantics (NaN or an infinity where Python "
                           "would raise).")

DOCS.update({
    ("math", "pow"): ("math.pow(a: Float, b: Float) -> Float", "a raised to b (Rust's `powf`)."),
    ("math", "atan2"): ("math.atan2(y: Float, x: Float) -> Float", "The angle of (x, y)."),
    ("math", "min"): ("math.min(a: Float, b: Float) -> Float", "The smaller (a NaN loses, as Rust's `f64::min`)."),
    ("math", "max"): ("math.max(a: Float, b: Float) -> Float", "The larger (a NaN loses)."),
    ("math", "zeros"): (
        "math.zeros(rows: Int, cols: Int) -> Matrix",
        "A rows×cols matrix of 0.0; HARD `math.zeros: negative dim {r}x{c}`."),
    ("math", "ones"): (
        "math.ones(rows: Int, cols: Int) -> Matrix",
        "A rows×cols matrix of 1.0; HARD `math.ones: negative dim {r}x{c}`."),
    ("math", "from_lists"): (
        "math.from_lists(rows: List[List[Float]]) -> Matrix",
        "A matrix from rows of Int or Float; ragged rows are HARD `math.from_lists: row {i} "
        "has {n} cols, expected {c}`."),
    ("math", "from_flat"): (
        "math.from_flat(rows: Int, cols: Int, data: List[Float]) -> Matrix",
        "A matrix from row-major data; HARD `math.from_flat: list len {n} != {r}*{c}`."),
    ("math", "rows"): ("math.rows(m: Matrix) -> Int", "The row count."),
    ("math", "cols"): ("math.cols(m: Matrix) -> Int", "The column count."),
    ("math", "get"): (
        "math.get(m: Matrix, i: Int, j: Int) -> Float",
        "Element (i, j); HARD `math.get: ({i},{j}) out of {r}x{c}`."),
    ("math", "to_flat"): ("math.to_flat(m: Matrix) -> List[Float]", "The data, row-major."),
    ("math", "transpose"): ("math.transpose(m: Matrix) -> Matrix", "The transpose."),
    ("math", "matmul"): (
        "math.matmul(a: Matrix, b: Matrix) -> Matrix",
        "The product; HARD `math.matmul: dim mismatch {m}x{k1} · {k2}x{n}`."),
    ("math", "scale"): ("math.scale(s: Float, m: Matrix) -> Matrix", "Every element times s."),
    ("math", "add"): (
        "math.add(a: Matrix, b: Matrix) -> Matrix",
        "Element-wise sum; HARD `math.add: shape mismatch {ar}x{ac} vs {br}x{bc}`."),
    ("math", "sub"): (
        "math.sub(a: Matrix, b: Matrix) -> Matrix",
        "Element-wise difference; HARD `math.sub: shape mismatch …`."),
    ("math", "sigmoid"): ("math.sigmoid(m: Matrix) -> Matrix", "1 / (1 + e^-x) element-wise."),
    # -- decimal -------------------------------------------------------------
    ("decimal", "decimal"): (
        "decimal.decimal(coefficient: Int, exponent: Int) -> Decimal",
        "coefficient × 10^exponent."),
    ("decimal", "zero"): ("decimal.zero() -> Decimal", "0."),
    ("decimal", "one"): ("decimal.one() -> Decimal", "1."),
    ("decimal", "from_int"): ("decimal.from_int(n: Int) -> Decimal", "n with exponent 0."),
    ("decimal", "pow10"): (
        "decimal.pow10(n: Int) -> Int",
        "10^n for n in 0..=18; HARD `decimal.pow10: negative exponent {n}` / `exponent {n} "
        "exceeds max (18)`."),
    ("decimal", "add"): ("decimal.add(a: Decimal, b: Decimal) -> Decimal", "a + b at the smaller exponent (i64 arithmetic)."),
    ("decimal", "sub"): ("decimal.sub(a: Decimal, b: Decimal) -> Decimal", "a − b at the smaller exponent."),
    ("decimal", "mul"): ("decimal.mul(a: Decimal, b: Decimal) -> Decimal", "a × b (coefficients multiplied, exponents added)."),
    ("decimal", "compare"): ("decimal.compare(a: Decimal, b: Decimal) -> Int", "-1, 0 or 1 by value."),
    ("decimal", "is_zero"): ("decimal.is_zero(d: Decimal) -> Bool", "Whether the coefficient is 0."),
    ("decimal", "is_positive"): ("decimal.is_positive(d: Decimal) -> Bool", "Whether the coefficient is > 0."),
    ("decimal", "is_negative"): ("decimal.is_negative(d: Decimal) -> Bool", "Whether the coefficient is < 0."),
    ("decimal", "negate"): ("decimal.negate(d: Decimal) -> Decimal", "−d."),
    ("decimal", "abs"): ("decimal.abs(d: Decimal) -> Decimal", "|d|."),
    ("decimal", "normalize"): (
        "decimal.normalize(d: Decimal) -> Decimal",
        "Trailing zeros of the coefficient moved into the exponent (`150e-2` → `15e-1`)."),
    ("decimal", "round_to"): (
        "decimal.round_to(d: Decimal, exponent: Int, mode: Str) -> Decimal",
        "d rounded to the exponent; mode one of HalfUp HalfDown HalfEven Down Up Ceiling Floor, "
        "else HARD `decimal.round_to: unknown rounding mode …`."),
    ("decimal", "to_str"): ("decimal.to_str(d: Decimal) -> Str", "Plain decimal notation (`1.5`)."),
    # -- datetime, duration --------------------------------------------------
    ("datetime", "parse_iso"): (
        "datetime.parse_iso(s: Str) -> Result[Instant, Str]",
        "chrono's RFC 3339 parse; `Err(\"parse_iso: {chrono's error}\")`."),
    ("datetime", "format_iso"): (
        "datetime.format_iso(t: Instant) -> Str",
        "RFC 3339 as chrono writes it (`+00:00`, 0/3/6/9 fraction digits)."),
    ("datetime", "format"): (
        "datetime.format(t: Instant, fmt: Str) -> Str",
        "chrono's strftime in UTC; a format chrono rejects is HARD `datetime.format: bad or "
        "unsupported format string …` (the reference panics)."),
    ("datetime", "parse"): (
        "datetime.parse(s: Str, fmt: Str) -> Result[Instant, Str]",
        "chrono's `NaiveDateTime::parse_from_str` read as UTC; `Err(\"parse: {e}\")`."),
    ("datetime", "to_components"): (
        "datetime.to_components(t: Instant, tz: Tz) -> Result[{year, month, day, hour, minute, "
        "second, nano, tz_offset_minutes}, Str]",
        "The civil time in tz = `Utc | Local | Offset(minutes) | Iana(name)`; `Err` for a "
        "missing or bad Tz."),
    ("datetime", "from_components"): (
        "datetime.from_components(c: {year, month, day, hour, minute, second, nano, "
        "tz_offset_minutes}) -> Result[Instant, Str]",
        "The instant of the civil time; `Err(\"from_components: missing or non-int field "
        "`{k}`: …\")`."),
    ("datetime", "add"): ("datetime.add(t: Instant, d: Duration) -> Instant", "t + d, saturating."),
    ("datetime", "diff"): ("datetime.diff(a: Instant, b: Instant) -> Duration", "a − b, saturating."),
    ("datetime", "duration_seconds"): (
        "datetime.duration_seconds(s: Float) -> Duration",
        "s seconds in nanoseconds (Rust's `as i64`: saturating, NaN is 0)."),
    ("datetime", "duration_minutes"): ("datetime.duration_minutes(m: Int) -> Duration", "m minutes in nanoseconds."),
    ("datetime", "duration_days"): ("datetime.duration_days(d: Int) -> Duration", "d days in nanoseconds."),
    ("datetime", "before"): ("datetime.before(a: Instant, b: Instant) -> Bool", "Whether a < b."),
    ("datetime", "after"): ("datetime.after(a: Instant, b: Instant) -> Bool", "Whether a > b."),
    ("datetime", "compare"): ("datetime.compare(a: Instant, b: Instant) -> Int", "-1, 0 or 1."),
    ("duration", "millis"): ("duration.millis(d: Duration) -> Int", "Whole milliseconds (toward zero)."),
    ("duration", "seconds"): ("duration.seconds(d: Duration) -> Int", "Whole seconds."),
    ("duration", "minutes"): ("duration.minutes(d: Duration) -> Int", "Whole minutes."),
    ("duration", "hours"): ("duration.hours(d: Duration) -> Int", "Whole hours."),
    ("duration", "days"): ("duration.days(d: Duration) -> Int", "Whole days."),
    # -- random (seeded, pure) -----------------------------------------------
    ("random", "seed"): ("random.seed(s: Int) -> Rng", "A SplitMix64 generator seeded with s (deterministic, not secret)."),
    ("random", "int"): (
        "random.int(rng: Rng, lo: Int, hi: Int) -> (Int, Rng)",
        "A draw in [lo, hi] and the next generator; HARD `random.int: hi ({hi}) must be >= lo "
        "({lo})`."),
    ("random", "float"): ("random.float(rng: Rng) -> (Float, Rng)", "A draw in [0, 1) and the next generator."),
    ("random", "choose"): (
        "random.choose(rng: Rng, xs: List[T]) -> Option[(T, Rng)]",
        "`Some((element, next))`, or `None` for `[]`."),
})

_HASH = {"sha256": "SHA-256 (32 bytes)", "sha512": "SHA-512 (64 bytes)", "md5": "MD5 (16 bytes)",
         "blake2b": "BLAKE2b-512 (64 bytes, no key)", "keccak256": "Keccak-256 (Ethereum's, 32 bytes)"}
for _op, _what in _HASH.items():
    DOCS[("crypto", _op)] = (f"crypto.{_op}(data: Bytes) -> Bytes", f"The {_what} digest.")

DOCS.update({
    ("crypto", "sha256_str"): ("crypto.sha256_str(s: Str) -> Str", "SHA-256 of s's UTF-8 bytes, lower-case hex."),
    ("crypto", "sha512_str"): ("crypto.sha512_str(s: Str) -> Str", "SHA-512 of s's UTF-8 bytes, lower-case hex."),
    ("crypto", "hmac_sha256"): ("crypto.hmac_sha256(key: Bytes, data: Bytes) -> Bytes", "HMAC-SHA-256 (32 bytes)."),
    ("crypto", "hmac_sha512"): ("crypto.hmac_sha512(key: Bytes, data: Bytes) -> Bytes", "HMAC-SHA-512 (64 bytes)."),
    ("crypto", "ed25519_public_key"): (
        "crypto.ed25519_public_key(secret: Bytes) -> Result[Bytes, Str]",
        "The 32-byte public key of a 32-byte seed; `Err(\"ed25519_public_key: secret must be 32 "
        "bytes\")`."),
    ("crypto", "ed25519_sign"): (
        "crypto.ed25519_sign(secret: Bytes, message: Bytes) -> Result[Bytes, Str]",
        "The 64-byte signature; `Err` for a bad secret."),
    ("crypto", "ed25519_verify"): (
        "crypto.ed25519_verify(public: Bytes, message: Bytes, sig: Bytes) -> Bool",
        "Whether sig is valid; false for malformed keys or signatures."),
    ("crypto", "ed25519_is_valid_point"): (
        "crypto.ed25519_is_valid_point(candidate: Bytes) -> Bool",
        "Whether 32 bytes decompress to a curve point."),
    ("crypto", "p256_public_key"): (
        "crypto.p256_public_key(secret: Bytes) -> Result[Bytes, Str]",
        "The compressed SEC1 public point (33 bytes) of a 32-byte P-256 scalar; `Err` for an "
        "invalid scalar."),
    ("crypto", "p256_sign"): (
        "crypto.p256_sign(secret: Bytes, message: Bytes) -> Result[Bytes, Str]",
        "A deterministic (RFC 6979) ECDSA-SHA-256 signature, DER-encoded, byte for byte the "
        "reference's."),
    ("crypto", "p256_verify"): (
        "crypto.p256_verify(public: Bytes, message: Bytes, sig: Bytes) -> Bool",
        "Whether the DER signature is valid for the message."),
    ("crypto", "secp256k1_public_key"): (
        "crypto.secp256k1_public_key(secret: Bytes) -> Result[Bytes, Str]",
        "The uncompressed SEC1 public point (65 bytes) of a 32-byte secp256k1 scalar."),
    ("crypto", "secp256k1_sign_digest"): (
        "crypto.secp256k1_sign_digest(secret: Bytes, digest: Bytes) -> Result[Bytes, Str]",
        "A 65-byte recoverable signature r‖s‖v (low-S) over a 32-byte digest; `Err(\""
        "secp256k1_sign_digest: digest must be exactly 32 bytes\")`."),
    ("crypto", "secp256k1_recover"): (
        "crypto.secp256k1_recover(digest: Bytes, sig: Bytes) -> Result[Bytes, Str]",
        "The public key that made the 65-byte signature (v 0..3 or 27..30); `Err` for bad "
        "lengths or values."),
    ("crypto", "secp256k1_verify"): (
        "crypto.secp256k1_verify(public: Bytes, digest: Bytes, sig: Bytes) -> Bool",
        "Whether the signature is valid over the digest."),
    ("crypto", "base64_encode"): ("crypto.base64_encode(data: Bytes) -> Str", "Standard base64 with padding."),
    ("crypto", "base64_decode"): ("crypto.base64_decode(s: Str) -> Result[Bytes, Str]", "`Err(\"base64: {e}\")` when malformed."),
    ("crypto", "base64url_encode"): ("crypto.base64url_encode(data: Bytes) -> Str", "URL-safe base64 without padding."),
    ("crypto", "base64url_decode"): ("crypto.base64url_decode(s: Str) -> Result[Bytes, Str]", "`Err(\"base64url: {e}\")` when malformed."),
    ("crypto", "hex_encode"): ("crypto.hex_encode(data: Bytes) -> Str", "Lower-case hex."),
    ("crypto", "hex_decode"): ("crypto.hex_decode(s: Str) -> Result[Bytes, Str]", "`Err(\"hex: {e}\")` when malformed."),
    ("crypto", "base58_encode"): ("crypto.base58_encode(data: Bytes) -> Str", "Bitcoin-alphabet base58; long inputs refused (quadratic)."),
    ("crypto", "base58_decode"): (
        "crypto.base58_decode(s: Str) -> Result[Bytes, Str]",
        "`Err(\"base58: provided string contained invalid character …\")` when malformed."),
    ("crypto", "constant_time_eq"): ("crypto.constant_time_eq(a: Bytes, b: Bytes) -> Bool", "Equality in time independent of the contents."),
    ("crypto", "eq"): ("crypto.eq(a: Bytes, b: Bytes) -> Bool", "The same as `constant_time_eq`."),
    ("crypto", "eq_str"): ("crypto.eq_str(a: Str, b: Str) -> Bool", "Constant-time equality of the UTF-8 bytes."),
    ("crypto", "aes_gcm_seal"): (
        "crypto.aes_gcm_seal(key: Bytes, nonce: Bytes, aad: Bytes, plaintext: Bytes) -> "
        "Result[{ciphertext: Bytes, tag: Bytes}, Str]",
        "AES-GCM (16- or 32-byte key, 12-byte nonce); argument errors are `Err` "
        "(`aes_gcm_seal: nonce must be exactly 12 bytes, got N`)."),
    ("crypto", "aes_gcm_open"): (
        "crypto.aes_gcm_open(key: Bytes, nonce: Bytes, aad: Bytes, ciphertext: Bytes, tag: "
        "Bytes) -> Result[Bytes, Str]",
        "The plaintext; `Err` for a bad tag, key, nonce or tag length."),
    ("crypto", "chacha20_poly1305_seal"): (
        "crypto.chacha20_poly1305_seal(key: Bytes, nonce: Bytes, aad: Bytes, plaintext: Bytes) "
        "-> Result[{ciphertext: Bytes, tag: Bytes}, Str]",
        "ChaCha20-Poly1305 (32-byte key, 12-byte nonce); argument errors are `Err`."),
    ("crypto", "chacha20_poly1305_open"): (
        "crypto.chacha20_poly1305_open(key: Bytes, nonce: Bytes, aad: Bytes, ciphertext: Bytes, "
        "tag: Bytes) -> Result[Bytes, Str]",
        "The plaintext; `Err` for a bad tag or lengths."),
    ("crypto", "pbkdf2_sha256"): (
        "crypto.pbkdf2_sha256(password: Bytes, salt: Bytes, iterations: Int, len: Int) -> "
        "Result[Bytes, Str]",
        "PBKDF2-HMAC-SHA-256; iterations > 0, len > 0; more than about a second of work is "
        "refused (lexfast: the reference runs any u32 count)."),
    ("crypto", "hkdf_sha256"): (
        "crypto.hkdf_sha256(ikm: Bytes, salt: Bytes, info: Bytes, len: Int) -> Result[Bytes, Str]",
        "HKDF-SHA-256; len at most 255×32 (`hkdf_sha256: invalid number of blocks, too large "
        "output`)."),
    ("crypto", "argon2id"): (
        "crypto.argon2id(password: Bytes, salt: Bytes, t_cost: Int, m_cost: Int, len: Int) -> "
        "Result[Bytes, Str]",
        "Argon2id (version 0x13, m_cost in KiB, parallelism 1); m_cost above 1 GiB or too much work is "
        "refused (lexfast)."),
})

_STRICT = ("Parses like `{k}.parse`, then checks that every name in required is a field "
           "(`Err(\"missing required field(s): a, b\")`)")
for _k, _what in (("json", "JSON"), ("toml", "TOML"), ("yaml", "YAML")):
    DOCS[(_k, "parse")] = (
        f"{_k}.parse(s: Str) -> Result[T, Str]",
        f"{_what} to a Lex value (objects as Records with sorted fields, `$variant`/`$bytes` "
        "decoded); `Err` of the parser's message" + (
            " (serde_json's: `expected value at line 1 column 1`)." if _k == "json" else "."))
    DOCS[(_k, "parse_strict")] = (
        f"{_k}.parse_strict(s: Str, required: List[Str], schema?) -> Result[T, Str]",
        _STRICT.format(k=_k) + "; Option-typed fields in the schema are wrapped in "
        "`Some`/`None`.")
    DOCS[(_k, "parse_strict_typed")] = (
        f"{_k}.parse_strict_typed(s: Str, required: List[Str], schema: List[(Str, Str)]) -> "
        "Result[T, Str]",
        _STRICT.format(k=_k) + " and that each schema field has its type "
        "(`Err(\"field `a`: expected Int, got Str\")`).")

DOCS.update({
    ("json", "stringify"): (
        "json.stringify(v: T) -> Str",
        "Compact JSON with sorted keys (serde_json's `to_string`): Bytes as `{\"$bytes\": hex}`, "
        "a Variant as `{\"$variant\", \"args\"}`, NaN/inf as `null`."),
    ("toml", "stringify"): ("toml.stringify(v: T) -> Result[Str, Str]", "TOML text; `Err(\"toml.stringify: {e}\")` for a value TOML cannot hold."),
    ("yaml", "stringify"): ("yaml.stringify(v: T) -> Result[Str, Str]", "YAML text; `Err(\"yaml.stringify: {e}\")`."),
    ("dotenv", "parse"): (
        "dotenv.parse(s: Str) -> Result[Map[Str, Str], Str]",
        "`KEY=value` lines; `Err(\"dotenv.parse line N: missing `=`\")` / `empty key`."),
    ("csv", "parse"): (
        "csv.parse(s: Str) -> Result[List[List[Str]], Str]",
        "Rows of fields, no header handling, ragged rows allowed; `Err(\"csv.parse: {e}\")`."),
    ("csv", "stringify"): (
        "csv.stringify(rows: List[List[Str]]) -> Result[Str, Str]",
        "CSV text (non-Str cells as JSON); `Err(\"csv.stringify expects List[List[Str]]\")`."),
    # -- regex ---------------------------------------------------------------
    ("regex", "compile"): (
        "regex.compile(pattern: Str) -> Result[Str, Str]",
        "`Ok(pattern)` when it compiles (a compiled regex is its pattern); `Err(\"invalid regex: "
        "…\")`. RE2 semantics: linear time, no backreferences or look-around."),
    ("regex", "is_match"): ("regex.is_match(re: Str, s: Str) -> Bool", "Whether re matches anywhere in s; a bad pattern is HARD."),
    ("regex", "is_match_str"): ("regex.is_match_str(pattern: Str, s: Str) -> Bool", "As `is_match`, from a pattern Str."),
    ("regex", "find"): (
        "regex.find(re: Str, s: Str) -> Option[Match]",
        "`Some({text, start, end, groups})` of the leftmost match (byte offsets), or `None`."),
    ("regex", "find_all"): ("regex.find_all(re: Str, s: Str) -> List[Match]", "Every non-overlapping match."),
    ("regex", "replace"): (
        "regex.replace(re: Str, s: Str, rep: Str) -> Str",
        "The first match replaced (`$1`, `$name`, `${name}`, `$$` in rep)."),
    ("regex", "replace_all"): ("regex.replace_all(re: Str, s: Str, rep: Str) -> Str", "Every match replaced."),
    ("regex", "split"): ("regex.split(re: Str, s: Str) -> List[Str]", "The pieces between matches."),
    # -- http (pure builders and decoders) -----------------------------------
    ("http", "with_header"): (
        "http.with_header(req: HttpRequest, name: Str, value: Str) -> HttpRequest",
        "req with the header set (names lower-cased, an older entry replaced)."),
    ("http", "with_auth"): (
        "http.with_auth(req: HttpRequest, scheme: Str, token: Str) -> HttpRequest",
        "req with `authorization: {scheme} {token}`."),
    ("http", "with_query"): (
        "http.with_query(req: HttpRequest, params: Map[Str, Str]) -> HttpRequest",
        "req's url with `k=v` pairs appended in key order, percent-encoded."),
    ("http", "with_timeout_ms"): (
        "http.with_timeout_ms(req: HttpRequest, ms: Int) -> HttpRequest",
        "req with `timeout_ms: Some(ms)`."),
    ("http", "json_body"): (
        "http.json_body(resp: HttpResponse) -> Result[T, HttpError]",
        "The body parsed as JSON; `Err(DecodeError(\"json parse: …\"))` or `body not UTF-8`."),
    ("http", "json_body_typed"): (
        "http.json_body_typed(resp: HttpResponse, required: List[Str], schema) -> "
        "Result[T, HttpError]",
        "`json_body` then the checks of `json.parse_strict_typed`, failures as `DecodeError`."),
    ("http", "text_body"): (
        "http.text_body(resp: HttpResponse) -> Result[Str, HttpError]",
        "The body as UTF-8 text; `Err(DecodeError(\"body not UTF-8: …\"))`."),
    # -- parser --------------------------------------------------------------
    ("parser", "char"): ("parser.char(c: Str) -> Parser", "A parser of the one character c (`{kind: \"Char\", ch}`)."),
    ("parser", "string"): ("parser.string(s: Str) -> Parser", "A parser of the literal s."),
    ("parser", "digit"): ("parser.digit() -> Parser", "A parser of one ASCII digit."),
    ("parser", "alpha"): ("parser.alpha() -> Parser", "A parser of one letter."),
    ("parser", "whitespace"): ("parser.whitespace() -> Parser", "A parser of whitespace."),
    ("parser", "eof"): ("parser.eof() -> Parser", "A parser of the end of input."),
    ("parser", "seq"): ("parser.seq(a: Parser, b: Parser) -> Parser", "a then b."),
    ("parser", "alt"): ("parser.alt(a: Parser, b: Parser) -> Parser", "a, else b."),
    ("parser", "many"): ("parser.many(p: Parser) -> Parser", "p zero or more times."),
    ("parser", "optional"): ("parser.optional(p: Parser) -> Parser", "p or nothing."),
    ("parser", "map"): (
        "parser.map(p: Parser, f: Closure) -> Parser",
        "p's result through f. Running a parser (`parser.run`) is the VM's: it calls closures."),
    ("parser", "and_then"): ("parser.and_then(p: Parser, f: Closure) -> Parser", "p, then the parser f returns."),
    # -- cli -----------------------------------------------------------------
    ("cli", "flag"): (
        "cli.flag(name: Str, short: Option[Str], help: Str) -> ArgSpec",
        "A boolean flag spec `{help, kind: \"flag\", name, short}`."),
    ("cli", "option"): (
        "cli.option(name: Str, short: Option[Str], help: Str, default: Option[Str]) -> ArgSpec",
        "A valued option spec `{default, help, kind: \"option\", name, short}`."),
    ("cli", "positional"): (
        "cli.positional(name: Str, help: Str, required: Bool) -> ArgSpec",
        "A positional argument spec."),
    ("cli", "spec"): (
        "cli.spec(name: Str, help: Str, args: List[ArgSpec], subcommands: List[Spec]) -> Spec",
        "A command spec `{args, help, kind: \"spec\", name, subcommands}`."),
    ("cli", "parse"): (
        "cli.parse(spec: Spec, argv: List[Str]) -> Result[{command, flags, options, "
        "positionals, remaining}, Str]",
        "argv parsed against spec; `Err` with the reason; a non-Str argv element is HARD."),
    ("cli", "envelope"): (
        "cli.envelope(ok: Bool, command: Str, data: T) -> {command, data, ok}",
        "The JSON envelope a CLI prints."),
    ("cli", "describe"): ("cli.describe(spec: Spec) -> Record", "A machine-readable description of the spec."),
    ("cli", "help"): ("cli.help(spec: Spec) -> Str", "The help text of the spec."),
    # -- arrow ---------------------------------------------------------------
    ("arrow", "from_int_columns"): (
        "arrow.from_int_columns(cols: List[(Str, List[Option[Int]])]) -> Result[Table, Str]",
        "A table of Int64 columns; `Err(\"from_*_columns: column #i …\")` for a bad column."),
    ("arrow", "from_float_columns"): (
        "arrow.from_float_columns(cols: List[(Str, List[Float])]) -> Result[Table, Str]",
        "A table of Float64 columns."),
    ("arrow", "from_str_columns"): (
        "arrow.from_str_columns(cols: List[(Str, List[Str])]) -> Result[Table, Str]",
        "A table of Utf8 columns."),
    ("arrow", "col_sum_int"): ("arrow.col_sum_int(t: Table, col: Str) -> Result[Int, Str]", "The sum of an Int64 column (nulls skipped)."),
    ("arrow", "col_sum_float"): ("arrow.col_sum_float(t: Table, col: Str) -> Result[Float, Str]", "The sum of a numeric column as Float."),
    ("arrow", "col_mean"): (
        "arrow.col_mean(t: Table, col: Str) -> Result[Option[Float], Str]",
        "The mean; `None` when the column has no non-null value."),
    ("arrow", "col_min_int"): ("arrow.col_min_int(t: Table, col: Str) -> Result[Option[Int], Str]", "The minimum of an Int64 column."),
    ("arrow", "col_max_int"): ("arrow.col_max_int(t: Table, col: Str) -> Result[Option[Int], Str]", "The maximum of an Int64 column."),
    ("arrow", "col_count"): ("arrow.col_count(t: Table, col: Str) -> Result[Int, Str]", "The non-null values."),
    ("arrow", "select_cols"): ("arrow.select_cols(t: Table, cols: List[Str]) -> Result[Table, Str]", "Those columns, in that order."),
    ("arrow", "drop_col"): ("arrow.drop_col(t: Table, col: Str) -> Result[Table, Str]", "t without the column."),
    ("arrow", "rename_col"): ("arrow.rename_col(t: Table, old: Str, new: Str) -> Result[Table, Str]", "t with the column renamed."),
    ("arrow", "nrows"): ("arrow.nrows(t: Table) -> Int", "The row count."),
    ("arrow", "ncols"): ("arrow.ncols(t: Table) -> Int", "The column count."),
    ("arrow", "col_names"): ("arrow.col_names(t: Table) -> List[Str]", "The column names in order."),
    ("arrow", "col_type"): (
        "arrow.col_type(t: Table, col: Str) -> Option[Str]",
        "Arrow's type name (`Int64`, `Float64`, `Utf8`, `Boolean`), or `None`."),
    ("arrow", "head"): ("arrow.head(t: Table, n: Int) -> Table", "The first n rows (n < 0 is 0)."),
    ("arrow", "tail"): ("arrow.tail(t: Table, n: Int) -> Table", "The last n rows."),
    ("arrow", "slice"): (
        "arrow.slice(t: Table, start: Int, stop: Int) -> Table",
        "Rows start..stop clamped to 0..nrows; stop < start is empty."),
    # -- df ------------------------------------------------------------------
    ("df", "filter_eq_int"): ("df.filter_eq_int(t: Table, col: Str, x: Int) -> Result[Table, Str]", "Rows whose column equals x, in order."),
    ("df", "filter_gt_int"): ("df.filter_gt_int(t: Table, col: Str, x: Int) -> Result[Table, Str]", "Rows whose column is > x."),
    ("df", "filter_lt_int"): ("df.filter_lt_int(t: Table, col: Str, x: Int) -> Result[Table, Str]", "Rows whose column is < x."),
    ("df", "filter_eq_str"): ("df.filter_eq_str(t: Table, col: Str, s: Str) -> Result[Table, Str]", "Rows whose column equals s."),
    ("df", "filter_in_str"): ("df.filter_in_str(t: Table, col: Str, xs: List[Str]) -> Result[Table, Str]", "Rows whose column is one of xs."),
    ("df", "filter_eq_float"): ("df.filter_eq_float(t: Table, col: Str, x: Float) -> Result[Table, Str]", "Rows whose column equals x."),
    ("df", "filter_lt_float"): ("df.filter_lt_float(t: Table, col: Str, x: Float) -> Result[Table, Str]", "Rows whose column is < x."),
    ("df", "filter_gt_float"): ("df.filter_gt_float(t: Table, col: Str, x: Float) -> Result[Table, Str]", "Rows whose column is > x."),
    ("df", "filter_isnull"): (
        "df.filter_isnull(t: Table, col: Str) -> Result[Table, Str]",
        "Rows where the column is null; `Err(\"df.filter_isnull: column `c` not found\")`."),
    ("df", "filter_notnull"): ("df.filter_notnull(t: Table, col: Str) -> Result[Table, Str]", "Rows where the column is not null."),
    ("df", "drop_nulls"): (
        "df.drop_nulls(t: Table, cols: List[Str]) -> Result[Table, Str]",
        "Rows with no null in the named columns; `[]` returns t unchanged."),
    ("df", "sort_by"): (
        "df.sort_by(t: Table, col: Str, ascending: Bool) -> Result[Table, Str]",
        "Stable sort, nulls first either way."),
    ("df", "group_by_agg"): (
        "df.group_by_agg(t: Table, keys: List[Str], aggs: List[(Str, Str, Str)]) -> "
        "Result[Table, Str]",
        "Each agg `(out_name, in_name, op)`, op one of sum, mean, min, max, count, n_distinct; "
        "groups in the order of their first row."),
    ("df", "inner_join"): (
        "df.inner_join(left: Table, right: Table, on: Str) -> Result[Table, Str]",
        "Rows whose key is in both; a right name the left has gets `_right`."),
    ("df", "left_join"): (
        "df.left_join(left: Table, right: Table, on: Str) -> Result[Table, Str]",
        "Every left row, right columns null where nothing matched."),
    ("df", "cross_join"): ("df.cross_join(left: Table, right: Table) -> Result[Table, Str]", "Every pair of rows, left-major."),
})
