"""Evaluation harness: golden questions in, metrics a reviewer can trust out (`assistant eval`)."""
