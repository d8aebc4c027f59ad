"""Running a trained generator over frames: the interface every consumer calls (runtime: Predictor, ModelInfo,
NumPy out), PyTorch behind it (predict: streaming batched prediction, training PSNR statistics), ONNX Runtime
behind it (onnx_model, torch-free) and the export to ONNX (onnx_export). This file imports nothing, so that
detect.py with an ONNX model never loads torch."""
