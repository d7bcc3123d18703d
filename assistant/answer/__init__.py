"""Stage 3, answer: hybrid retrieval, the answerers (the trained reader, sentence scoring, an LLM) and checked citations."""
