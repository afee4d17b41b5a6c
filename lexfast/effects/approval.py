"""approval.request(scope, reason): the human-in-the-loop boundary (gated
``approval``; the scope checked against ``--allow-approval``, empty = any).

The handler's approval sink answers (``DefaultHandler.with_approval_sink``);
without one every request is refused, as in the reference: a sink that
silently approved would defeat the effect.
"""

from __future__ import annotations

from ..kernel import Variant, err, expect_str, ok
from ..values import one_line, rust_str_debug

#: The reference's refusal when no sink is configured.
NO_APPROVAL_SINK = "no ApprovalSink configured — call DefaultHandler::with_approval_sink"

#: scope and reason are shown to a person: bounded, like any argument rendered
MAX_SCOPE_CHARS = 1024
MAX_REASON_CHARS = 64 * 1024


def approval_request(h, args):
    scope = expect_str(args, 0)
    reason = expect_str(args, 1)
    allowed = h.policy.allow_approval
    if allowed and scope not in allowed:
        listed = "[" + ", ".join(rust_str_debug(a) for a in allowed) + "]"
        return err(f"approval.request: scope `{one_line(scope[:MAX_SCOPE_CHARS])}` "
                   f"not in --allow-approval {listed}")
    if len(scope) > MAX_SCOPE_CHARS:
        return err(f"approval.request: scope longer than {MAX_SCOPE_CHARS} characters")
    if len(reason) > MAX_REASON_CHARS:
        return err(f"approval.request: reason longer than {MAX_REASON_CHARS} characters")
    sink = h.session.approval_sink
    if sink is None:
        return err(NO_APPROVAL_SINK)
    try:
        answer = sink(scope, reason)
    except Exception as e:  # the sink's failure is a refusal, never an approval
        return err(f"approval.request: the approval sink failed: {one_line(str(e))[:200]}")
    if answer is None:
        return err("denied by operator")
    if isinstance(answer, str):
        return ok(answer)
    if (isinstance(answer, Variant) and answer.name in ("Ok", "Err")
            and len(answer.args) == 1 and isinstance(answer.args[0], str)):
        return answer
    return err(f"approval.request: the approval sink answered {type(answer).__name__}, "
               "not Str, None or Ok/Err(Str)")


ROWS = [
    ("approval", "request", "approval", approval_request),
]
