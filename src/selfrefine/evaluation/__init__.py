"""Evaluation: classification and separation metrics, and the chunked separation of test songs."""
