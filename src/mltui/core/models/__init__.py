"""The model registry, promotion requests and their gates, rollback, the audit trail, checkpoints."""
