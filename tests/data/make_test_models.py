#!/usr/bin/env python3
"""Generate the ONNX files the segmentation-core tests load.

Random-init TinySAM networks (the architecture of tools/tinysam, tiny widths)
in the layouts the core reads, plus a graph with the wrong inputs:

    tiny/                 encoder.onnx, decoder.onnx (batched layout), model.json
    tiny-sam-layout/      decoder.onnx in the SAM ONNX layout (batch 1,
                          orig_im_size input, `masks` output, 4 masks)
    tiny-sam-single/      the same with a single mask output
    wrong_inputs.onnx     a decoder-like graph whose inputs do not match
    tiny_reference.json   SAM's reference pipeline (Pillow resize, torch
                          interpolate, one prompt per decoder call) on the
                          tiny model, for the end-to-end test to compare with
    pillow_bilinear_13x8_to_8x5.txt
                          Pillow's bilinear resize of a small pattern (the
                          pre-processing test compares against it)

Weights are random (seeded): the tests check shapes, layouts, determinism and
error paths, not segmentation quality.

    .venv/bin/python tests/data/make_test_models.py            # writes tests/data
    .venv/bin/python tests/data/make_test_models.py --out /tmp/m --config tinysam
                                                  # full-size TinySAM, random weights
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

from tinysam.model import PIXEL_MEAN, PIXEL_STD, TinySam, TinySamConfig  # noqa: E402
from train_fixture import FIXTURE_CONFIG  # noqa: E402

CONFIGS = {
    "tiny": TinySamConfig(
        image_size=128,
        embed_dims=[8, 16, 16, 24],
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 2, 2],
        window_sizes=[4, 4, 4, 4],
        num_classes=0,
        prompt_embed_dim=32,
        decoder_heads=2,
        decoder_mlp_dim=64,
        iou_head_hidden_dim=32,
    ),
    "fixture": FIXTURE_CONFIG,
    "tinysam": TinySamConfig(num_classes=0),
}
OPSET = 17


class Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.encode(image)


class BatchedDecoder(torch.nn.Module):
    """One image embedding [1,C,h,w] shared by B prompts."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        b = point_coords.shape[0]
        emb = image_embeddings.expand(b, -1, -1, -1)
        masks, iou = self.model.decode(emb, point_coords, point_labels, mask_input, has_mask_input)
        return iou, masks


class SamLayoutDecoder(torch.nn.Module):
    """The public SAM ONNX interface: batch 1, masks upscaled to orig_im_size."""

    def __init__(self, model, single_mask):
        super().__init__()
        self.model = model
        self.single_mask = single_mask

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
        masks, iou = self.model.decode(image_embeddings, point_coords, point_labels, mask_input, has_mask_input)
        if self.single_mask:
            masks, iou = masks[:, :1], iou[:, :1]
        s = self.model.cfg.image_size
        up = F.interpolate(masks, size=(s, s), mode="bilinear", align_corners=False)
        h = orig_im_size[0].to(torch.int64)
        w = orig_im_size[1].to(torch.int64)
        up = F.interpolate(up, size=(h, w), mode="bilinear", align_corners=False)
        return up, iou, masks


def export(module, args, path, input_names, output_names, dynamic_axes):
    torch.onnx.export(
        module,
        args,
        path,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=OPSET,
        dynamo=False,
    )
    # Source-location doc strings make up most of a small graph's bytes.
    model = onnx.load(path)
    for node in model.graph.node:
        node.doc_string = ""
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_model(name: str, seed: int) -> TinySam:
    torch.manual_seed(seed)
    model = TinySam(CONFIGS[name]).eval()
    # Random-init norms/biases are near zero, which makes every logit tiny;
    # spread the mask logits so thresholding has something to bite on.
    with torch.no_grad():
        for p in model.mask_decoder.output_hypernetworks_mlps.parameters():
            p.mul_(4.0)
    return model


def export_batched(model: TinySam, out: str, config_name: str):
    cfg = model.cfg
    s, e = cfg.image_size, cfg.embedding_size
    c = cfg.prompt_embed_dim
    os.makedirs(out, exist_ok=True)
    export(
        Encoder(model),
        (torch.zeros(1, 3, s, s),),
        os.path.join(out, "encoder.onnx"),
        ["image"],
        ["image_embeddings"],
        None,
    )
    export(
        BatchedDecoder(model),
        (
            torch.zeros(1, c, e, e),
            torch.zeros(2, 3, 2),
            torch.zeros(2, 3),
            torch.zeros(2, 1, 4 * e, 4 * e),
            torch.zeros(2),
        ),
        os.path.join(out, "decoder.onnx"),
        ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"],
        ["iou_predictions", "low_res_masks"],
        {
            "point_coords": {0: "batch", 1: "points"},
            "point_labels": {0: "batch", 1: "points"},
            "mask_input": {0: "batch"},
            "has_mask_input": {0: "batch"},
            "iou_predictions": {0: "batch"},
            "low_res_masks": {0: "batch"},
        },
    )
    meta = {
        "format": "tinysam-model",
        "format_version": 1,
        "name": f"random-{config_name}",
        "architecture": "tinysam",
        "image_size": s,
        "embedding": {"channels": c, "height": e, "width": e},
        "low_res_mask_size": 4 * e,
        "num_mask_tokens": 4,
        "mask_threshold": 0.0,
        "pixel_mean": list(PIXEL_MEAN),
        "pixel_std": list(PIXEL_STD),
        "mask_selection": "tinysam",
        "source_checkpoint": None,
        "precision": "fp32",
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
        "opset": OPSET,
        "config": dataclasses.asdict(cfg),
        "verification": {"note": "random weights, not verified"},
    }
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def export_sam_layout(model: TinySam, out: str, single_mask: bool):
    cfg = model.cfg
    e, c = cfg.embedding_size, cfg.prompt_embed_dim
    os.makedirs(out, exist_ok=True)
    export(
        SamLayoutDecoder(model, single_mask),
        (
            torch.zeros(1, c, e, e),
            torch.zeros(1, 2, 2),
            torch.zeros(1, 2),
            torch.zeros(1, 1, 4 * e, 4 * e),
            torch.zeros(1),
            torch.tensor([480.0, 640.0]),
        ),
        os.path.join(out, "decoder.onnx"),
        ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"],
        ["masks", "iou_predictions", "low_res_masks"],
        {"point_coords": {1: "points"}, "point_labels": {1: "points"}, "masks": {2: "height", 3: "width"}},
    )


def make_wrong_inputs(path: str):
    """A valid ONNX graph that is not a SAM decoder: it has an `embeddings`
    input instead of `image_embeddings` and no `point_labels`."""
    emb = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, 32, 8, 8])
    coords = helper.make_tensor_value_info("point_coords", TensorProto.FLOAT, ["batch", "points", 2])
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 32, 8, 8])
    node = helper.make_node("Identity", ["embeddings"], ["scores"])
    unused = helper.make_node("Identity", ["point_coords"], ["coords_copy"])
    coords_out = helper.make_tensor_value_info("coords_copy", TensorProto.FLOAT, ["batch", "points", 2])
    graph = helper.make_graph([node, unused], "wrong_inputs", [emb, coords], [out, coords_out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="make_test_models")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_pillow_reference(path: str):
    """Pillow's BILINEAR resize (SAM's reference resampling) of a 13x8 pattern
    to 8x5, as a Rust array literal of RGB bytes."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:8, 0:13]
    rgb = np.stack([(x * 37 + y * 11) % 256, (x * 5 + y * 53) % 256, (x * y * 7) % 256], axis=-1)
    out = np.asarray(Image.fromarray(rgb.astype(np.uint8)).resize((8, 5), Image.BILINEAR))
    with open(path, "w") as f:
        f.write("[" + ", ".join(str(v) for v in out.reshape(-1)) + "]\n")


REFERENCE_FRAME = (200, 150)
REFERENCE_PROMPTS = (
    "point=60,60; box=120,75,180,128; point=150,105 neg=60,60; box=20,30,100,90 point=60,60; point=20,15"
)


def scene(w: int, h: int):
    """The test scene of tests/segment_core.rs (integer arithmetic, same pixels)."""
    import numpy as np

    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    dx, dy = 10 * x - 3 * w, 10 * y - 4 * h
    disc = dx * dx * h * h + dy * dy * w * w < 4 * w * w * h * h
    rect = (10 * x >= 6 * w) & (10 * x < 9 * w) & (20 * y >= 10 * h) & (20 * y < 17 * h)
    img = np.stack([80 + 60 * x // w, 90 + 50 * y // h, np.full_like(x, 100)], axis=-1)
    img[rect] = [20, 40, 210]
    img[disc] = [220, 30, 40]
    return img.astype(np.uint8)


def parse_prompts(text: str):
    """(points [(x, y, label)], box or None) per `;`-separated object."""
    objects = []
    for part in text.split(";"):
        points, box = [], None
        for token in part.split():
            key, values = token.split("=")
            nums = [float(v) for v in values.split(",")]
            if key == "box":
                box = nums
            else:
                points.append((nums[0], nums[1], 1.0 if key == "point" else 0.0))
        objects.append((points, box))
    return objects


def make_reference(model_dir: str, path: str):
    """SAM's predictor and postprocess_masks, step by step, one prompt per call."""
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    with open(os.path.join(model_dir, "model.json")) as f:
        meta = json.load(f)
    s = meta["image_size"]
    w, h = REFERENCE_FRAME
    image = scene(w, h)
    scale = s * 1.0 / max(h, w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    resized = np.array(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    x = torch.as_tensor(resized).permute(2, 0, 1).float()
    mean = torch.tensor(meta["pixel_mean"]).view(-1, 1, 1)
    std = torch.tensor(meta["pixel_std"]).view(-1, 1, 1)
    x = F.pad((x - mean) / std, (0, s - nw, 0, s - nh))[None]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    enc = ort.InferenceSession(os.path.join(model_dir, "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(os.path.join(model_dir, "decoder.onnx"), opts, providers=["CPUExecutionProvider"])
    emb = enc.run(None, {"image": x.numpy()})[0]
    low = 4 * emb.shape[-1]
    objects = []
    for points, box in parse_prompts(REFERENCE_PROMPTS):
        coords = [(px, py) for px, py, _ in points]
        labels = [lab for _, _, lab in points]
        if box is not None:
            coords += [(box[0], box[1]), (box[2], box[3])]
            labels += [2.0, 3.0]
        else:
            coords.append((0.0, 0.0))
            labels.append(-1.0)
        coords = np.asarray(coords, dtype=np.float64)
        n_real = len(coords) - (0 if box is not None else 1)
        # One factor for both axes, as tools/tinysam/sam_io.py.
        coords[:n_real] *= scale
        iou, masks = dec.run(
            ["iou_predictions", "low_res_masks"],
            {
                "image_embeddings": emb,
                "point_coords": coords[None].astype(np.float32),
                "point_labels": np.asarray([labels], dtype=np.float32),
                "mask_input": np.zeros((1, 1, low, low), np.float32),
                "has_mask_input": np.zeros(1, np.float32),
            },
        )
        index = 1 + int(np.argmax(iou[0, 1:]))  # the TinySAM rule
        logits = torch.from_numpy(masks[:, index : index + 1])
        up = F.interpolate(logits, (s, s), mode="bilinear", align_corners=False)[..., :nh, :nw]
        up = F.interpolate(up, (h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        mask = up > 0.0
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
        crop = mask[y0 : y1 + 1, x0 : x1 + 1]
        objects.append(
            {
                "mask_index": index,
                "iou": float(iou[0, index]),
                "area": int(mask.sum()),
                "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                "stability": float((up > 1.0).sum() / (up > -1.0).sum()),
                "bits": np.packbits(crop.reshape(-1)).tobytes().hex(),
            }
        )
    with open(path, "w") as f:
        json.dump({"frame": REFERENCE_FRAME, "prompts": REFERENCE_PROMPTS, "objects": objects}, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE, help="output folder (default: tests/data)")
    ap.add_argument("--config", default=None, choices=sorted(CONFIGS), help="export only this config's batched model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.config:
        export_batched(make_model(args.config, 0), args.out, args.config)
        return
    model = make_model("tiny", 0)
    export_batched(model, os.path.join(args.out, "tiny"), "tiny")
    export_sam_layout(model, os.path.join(args.out, "tiny-sam-layout"), single_mask=False)
    export_sam_layout(model, os.path.join(args.out, "tiny-sam-single"), single_mask=True)
    make_wrong_inputs(os.path.join(args.out, "wrong_inputs.onnx"))
    make_pillow_reference(os.path.join(args.out, "pillow_bilinear_13x8_to_8x5.txt"))
    make_reference(os.path.join(args.out, "tiny"), os.path.join(args.out, "tiny_reference.json"))


if __name__ == "__main__":
    main()
