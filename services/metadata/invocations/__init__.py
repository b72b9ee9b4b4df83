"""Invocations: Bazel's build events turned into indexed tables (ingest) and the API's answers (queries)."""
