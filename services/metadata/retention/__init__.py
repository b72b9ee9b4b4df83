"""Retention in the metadata service: tenant policies, expiring invocations and audit entries."""
