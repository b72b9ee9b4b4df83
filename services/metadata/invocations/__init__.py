"""Invocations: Bazel's build events turned into indexed tables (ingest) and the API's answers (queries).

ingest.py    InvocationStore / IngestStream: the stream protocol (claims, exactly-once, finalization)
batch.py     one append's events: decoded, redacted, turned into rows (no I/O)
store.py     writing a batch's rows in the append's transaction
derive.py    the invocation's fields with the reference's source priorities
targets.py   the target status machine; actions.py: what each event contributes to GetAction
namedsets.py resolving NamedSetOfFiles ids (bounded cache, database behind it)
queries.py   GetInvocation, GetTarget, GetAction; messages.py, paging.py, ids.py: their wire forms
"""
