"""Detection on footage without labels: score a file or a frame folder, or watch a live source.

    detection.normalise   PSNR -> anomaly score: whole mode (the paper's min-max, per scene) or stream mode
                          (z-score against a baseline that starts at the training mean)
    detection.file        score a file or folder: one pass over its frames, the report, the heatmap video
    detection.live        watch a stream URL or a camera until it ends or a signal comes
    detection.options     what detect.py's flags parse into (torch-free, read before torch loads)

detect.py is the command line over these.
"""
