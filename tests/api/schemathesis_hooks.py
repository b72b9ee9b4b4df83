"""Schemathesis hooks for the OpenAPI suite (loaded through tests/api/schemathesis.toml).

The document marks page tokens with the format `page-token`: a token is the next_page_token of
an earlier answer, so the only one a client can make up is the empty one (the first page).
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format("page-token", st.just(""))
