"""Researcher tools on trained models: search, ONNX export, embedding analysis, Grad-CAM."""
