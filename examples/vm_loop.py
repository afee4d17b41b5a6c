"""A tiny VM loop: the contract a VM keeps with lexfast, in one page.

A "program" here is a list of instructions for a toy stack machine. Before
each costed call the VM calls ``handler.note_call_budget(cost)``; for every
effect or builtin it calls ``handler.dispatch(kind, op, args)``. Effects are
checked against the policy; a denial, a bad argument or an exhausted budget
is an exception the VM turns into its own error.

    python examples/vm_loop.py
"""

from __future__ import annotations

from lexfast import BudgetExceeded, DefaultHandler, EffectError, Policy, PolicyDenied

# (instruction, operand...): push a value, call kind.op on the top n values
# (costing `cost` budget units), or print the top of the stack.
PROGRAM = [
    ("push", "hello from a tiny VM"),
    ("call", 1, "io", "print", 1),           # an effect, gated on `io`
    ("push", "  Lex  "),
    ("call", 1, "str", "trim", 1),           # a pure builtin: never gated
    ("call", 1, "vm", "shout", 1),           # the VM's own pure builtin
    ("call", 1, "io", "print", 1),
    ("call", 1, "time", "now", 0),           # gated on `time`, granted
    ("pop",),
    ("call", 5, "proc", "spawn", 0),         # gated on `proc`: not granted
    ("call", 50, "io", "print", 0),          # over the budget
]


def shout(args):
    """A VM's pure builtin is ``fn(args)``; an effect row's function is
    ``fn(handler, args)``."""
    return args[0].upper() + "!"


def run(program, handler) -> list[str]:
    stack: list = []
    errors: list[str] = []
    for ins in program:
        if ins[0] == "push":
            stack.append(ins[1])
        elif ins[0] == "pop":
            stack.pop()
        elif ins[0] == "call":
            _, cost, kind, op, argc = ins
            args = [stack.pop() for _ in range(argc)][::-1]
            try:
                handler.note_call_budget(cost)
                stack.append(handler.dispatch(kind, op, args))
            except BudgetExceeded as e:
                errors.append(f"budget: {e}")
                break  # the run is over
            except PolicyDenied as e:
                errors.append(f"denied: {e}")
            except EffectError as e:
                errors.append(f"error: {e}")
    return errors


def main() -> int:
    policy = Policy(allow_effects=["io", "time"], budget=20)
    with DefaultHandler(policy, pure={("vm", "shout"): shout}) as handler:
        errors = run(PROGRAM, handler)
        for line in errors:
            print(line)
        print(f"budget left: {handler.budget_remaining} of {handler.budget_ceiling}")
        # An unknown kind is said as such, whatever the policy grants:
        try:
            handler.dispatch("frob", "x", [])
        except EffectError as e:
            print(f"error: {e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
