"""Sample data: the synthetic TLC-like generator (`python -m data.generate`) and the committed sample."""
