"""Row actions: one dispatcher for every trigger type (`dispatcher.py`)."""
