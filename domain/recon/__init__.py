"""Reconciliation: external records as events, matching rules, and the exceptions a run finds."""
