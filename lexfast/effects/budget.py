"""budget.* (gated ``budget``): nominal, as in the reference; the budget that
counts is ``note_call_budget``."""


def budget_any(h, args):
    return None


ROWS = [
    ("budget", "*", "budget", budget_any),
]
