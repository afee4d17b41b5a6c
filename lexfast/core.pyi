"""The selector as type checkers see it: the compiled core's stub
(``_core.pyi``). At run time ``lexfast.core`` may hold the pure-Python twin
instead, which has the same surface."""

from types import ModuleType

from ._core import (
    NONE as NONE,
)
from ._core import (
    BudgetPool as BudgetPool,
)
from ._core import (
    HandlerCore as HandlerCore,
)
from ._core import (
    LRURegistry as LRURegistry,
)
from ._core import (
    Row as Row,
)
from ._core import (
    Stats as Stats,
)
from ._core import (
    Variant as Variant,
)
from ._core import (
    err as err,
)
from ._core import (
    expect_bytes as expect_bytes,
)
from ._core import (
    expect_handle as expect_handle,
)
from ._core import (
    expect_int as expect_int,
)
from ._core import (
    expect_record as expect_record,
)
from ._core import (
    expect_str as expect_str,
)
from ._core import (
    expect_str_list as expect_str_list,
)
from ._core import (
    next_handle as next_handle,
)
from ._core import (
    ok as ok,
)
from ._core import (
    openat2 as openat2,
)
from ._core import (
    some as some,
)

COMPILED: bool
impl: ModuleType
