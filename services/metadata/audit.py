"""The audit log: who did what, when (DeleteFile today), readable by the tenant's admins.

Pages are keyset-paginated on (time, id) within [start_time, end_time), newest first; the page
token pins end_time so entries written meanwhile do not shift the pages.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from services.common.db import Sessions, now_usec, reading
from services.gen.api.v1 import audit_log_pb2
from services.gen.auditlog import auditlog_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata.invocations import paging
from services.metadata.models import AuditEntry

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_ACTIONS = {"DeleteFile": auditlog_pb2.Action.DELETE}


async def record(sessions: Sessions, entry: metadata_pb2.AuditRecord) -> None:
    async with sessions.begin() as session:
        session.add(AuditEntry(tenant=entry.tenant, key_id=entry.key_id, action=entry.action,
                               resource=entry.resource, detail=entry.detail, created_at_usec=now_usec()))


async def entries(sessions: Sessions, tenant: str,
                  request: audit_log_pb2.GetAuditLogRequest) -> audit_log_pb2.GetAuditLogResponse:
    selector = request.selector
    start = selector.start_time.ToMicroseconds() if selector.HasField("start_time") else 0
    requested_end = selector.end_time.ToMicroseconds() if selector.HasField("end_time") else None
    end = now_usec() + 1 if requested_end is None else requested_end  # start >= end: a window with nothing
    size = min(request.page_size, MAX_PAGE) if request.page_size > 0 else DEFAULT_PAGE
    query_key = ("audit", tenant, str(start), "" if requested_end is None else str(requested_end))
    after = paging.decode(request.page_token, query_key, (int, int, int))
    query = select(AuditEntry).where(AuditEntry.tenant == tenant, AuditEntry.created_at_usec >= start)
    if after is not None:  # the first page's end, so entries written meanwhile do not shift the pages
        end, at, entry_id = after
        query = query.where(or_(AuditEntry.created_at_usec < at,
                                and_(AuditEntry.created_at_usec == at, AuditEntry.id < entry_id)))
    query = query.where(AuditEntry.created_at_usec < end)
    query = query.order_by(AuditEntry.created_at_usec.desc(), AuditEntry.id.desc()).limit(size + 1)
    async with reading(sessions) as session:
        rows = list(await session.scalars(query))
    more, rows = len(rows) > size, rows[:size]
    response = audit_log_pb2.GetAuditLogResponse(
        next_page_token=paging.encode(query_key, [end, rows[-1].created_at_usec, rows[-1].id]) if more else "")
    for row in rows:
        entry = response.entry.add(action=_ACTIONS.get(row.action, auditlog_pb2.Action.ACTION_UNKNOWN))
        entry.event_time.FromMicroseconds(row.created_at_usec)
        entry.authentication_info.api_key.id = row.key_id
        entry.resource.id = row.resource
        entry.resource.name = f"{row.action}: {row.detail}"
    return response
