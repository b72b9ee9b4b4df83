"""bbapi.api.v1.InsightsService over the invocation tables: questions across invocations.

Each method is one domain function `(sessions, tenant, request) -> response`, registered by name in
services.metadata.insights.methods; the gateway forwards every call there (one internal RPC, Insight).
"""
