"""Training: losses, the G/D step, checkpoint I/O. The loop itself lives in train.py."""
