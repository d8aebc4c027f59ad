"""Small helpers shared by every part of the project, one job per module.

`files` (atomic writes, staged folders, permissions, writability), `threads` (the torch thread count: --threads,
OMP_NUM_THREADS, auto), `progress` (progress lines, durations), `provenance` (commit, runtime, device and CPU
names of a result), `devices` (the device, seeding, a scoring command's machine set-up). None imports torch at
import time: detect.py with an ONNX model runs without torch installed.
"""
