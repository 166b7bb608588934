"""The MLflow side: logging a run, registering one model, the promotion gate, aliases."""
