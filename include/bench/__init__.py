"""Benchmark of the medscribe engine: dictation corpus, synthetic audio, systems, scoring."""
