"""Predictive model of a re-login wave (docs/login-model.md)."""
