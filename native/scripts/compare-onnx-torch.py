#!/usr/bin/env python3
"""Raw-output check of the two model files behind the parity figures: the ONNX export (what
onnxruntime-cpu runs) against the CUDA-traced TorchScript (what the torch engine runs), on the same
letterboxed coco128 images. Usage: compare-onnx-torch.py model.onnx model.torchscript images_dir."""
import glob
import sys

import cv2
import numpy as np
import onnxruntime as ort
import torch


def letterbox(img, size=640):
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


onnx_path, ts_path, images = sys.argv[1:4]
files = sorted(glob.glob(images + "/*.jpg"))[:16]
x = np.stack([letterbox(cv2.imread(f)[:, :, ::-1]) for f in files]).transpose(0, 3, 1, 2)
x = np.ascontiguousarray(x, dtype=np.float32) / 255.0
cpu = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
m = torch.jit.load(ts_path, map_location="cuda").eval()
with torch.inference_mode():
    out = m(torch.from_numpy(x).cuda())
gpu = (out[0] if isinstance(out, (tuple, list)) else out).float().cpu().numpy()
boxes = np.abs(cpu[:, :4] - gpu[:, :4])
scores = np.abs(cpu[:, 4:] - gpu[:, 4:])
live = cpu[:, 4:].max(1) > 0.001
argmax_diff = (cpu[:, 4:].argmax(1) != gpu[:, 4:].argmax(1)) & live
print(f"shapes {cpu.shape} {gpu.shape}")
print(f"box max|diff| {boxes.max():.4f} px, mean {boxes.mean():.5f}; score max|diff| {scores.max():.5f}, mean {scores.mean():.7f}")
print(f"anchors with best score > 0.001: {live.sum()}, best class differs on {argmax_diff.sum()}")
