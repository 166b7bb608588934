"""Training: fit each candidate model on the train split and score it on the valid split."""
