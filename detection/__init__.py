"""Detection on footage without labels: score a file or a frame folder, or watch a live source.

    detection.normalise   PSNR -> anomaly score: whole mode (the paper's min-max, per scene) or stream mode
                          (z-score against a baseline that starts at the training mean)
    detection.scenes      scene changes (lights, a bumped camera) told from anomalies by the background error
    detection.events      alarm frames -> events (merged across short gaps, flicker dropped)
    detection.file        score a file or folder: one pass over its frames, the heatmap video
    detection.report      detect.py's result folder: scores.csv, events, the page
    detection.live        watch a stream URL or a camera with detect.py's flags until it ends or a signal comes
    detection.watch       the live loop: reader, scoring, events.jsonl, snapshots, --on_event, the video
    detection.options     what detect.py's flags parse into (torch-free, read before torch loads)

detect.py is the command line over these.
"""
