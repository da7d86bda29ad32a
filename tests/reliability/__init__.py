"""Reliability and security suite (issue 8): faults, bad input, security and load against the real
processes. Run: ``.venv/bin/python -m pytest tests/reliability -q`` (about 10 minutes on two busy
cores; ``-m "not slow"`` leaves out the kill loop, the corpus and the load scenario)."""
