"""The paper's protocol: PSNR and scores (scores), metrics (metrics), eval.py's report (report, pages), heatmap
videos (video). Running a model is the inference package; detection on unlabelled footage the detection package."""
