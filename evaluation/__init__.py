"""Evaluation: batched prediction (predict), PSNR and scores (scores), metrics (metrics), reports (report),
heatmap videos (video)."""
