"""Export a TinySAM network to a model directory and verify it.

The library behind tools/export.py: ONNX export of the two graphs (plus the
decoder split into an image side and a prompt side), the opset-17 rewrite,
INT8 post-training quantisation, verification against PyTorch (FP32) or
against the FP32 export (INT8), and model.json.
See docs/model-format.md for the contract and docs/tools.md for usage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import tempfile
import warnings

import numpy as np
import onnx
import torch
from onnx import AttributeProto, helper, numpy_helper
from torch import nn

from . import sam_io
from .images import list_images, load_rgb  # noqa: F401 (re-exported)
from .model import PIXEL_MEAN, PIXEL_STD, TinySam, TinySamConfig, load_checkpoint
from .onnx_model import MODEL_FORMAT, MODEL_FORMAT_VERSION, session
from .split_decoder import IMAGE_SIDE_OUTPUTS, ImageSide, PromptSide

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
ENCODER_INPUTS = ["image"]
ENCODER_OUTPUTS = ["image_embeddings"]
DECODER_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
DECODER_OUTPUTS = ["iou_predictions", "low_res_masks"]
NUM_MASK_TOKENS = 4
# The decoder split in two (split_decoder.py): the image side runs once per
# frame, the prompt side per prompt batch on its outputs.
DECODER_IMAGE_FILE = "decoder_image.onnx"
DECODER_PROMPT_FILE = "decoder_prompt.onnx"
DECODER_IMAGE_INPUTS = ["image_embeddings"]
DECODER_IMAGE_OUTPUTS = list(IMAGE_SIDE_OUTPUTS)
DECODER_PROMPT_INPUTS = DECODER_IMAGE_OUTPUTS + DECODER_INPUTS[1:] + ["mask_iou_floor"]
# low_res_masks holds the rows listed in mask_rows only (split_decoder.py)
DECODER_PROMPT_OUTPUTS = DECODER_OUTPUTS + ["mask_rows"]

# FP32: ONNX Runtime against PyTorch, max abs difference of every output.
FP32_TOLERANCE = 1e-3
# Split vs plain ONNX decoder (FP32), max abs difference of both outputs: the
# same arithmetic in another order.
SPLIT_TOLERANCE = 1e-4
# INT8 against the FP32 export on the same inputs (see docs/tools.md for why
# INT8 is held to agreement of the masks rather than to 1e-3 on the logits).
INT8_TOLERANCE = {
    "embeddings_rel_rms": 0.5,  # ||e8 - e32|| / ||e32||: a guard against a broken quantisation
    "mask_iou_mean": 0.85,  # IoU of (logits > 0), INT8 vs FP32, averaged over prompts and tokens
    "iou_predictions": 0.10,  # max |iou8 - iou32|
}

# Ops whose signature changed between opsets 17 and 18 (besides ReduceMean &
# co. and Split, which are rewritten); refuse to downgrade graphs holding them.
_CHANGED_IN_18 = {"Resize", "ScatterElements", "ScatterND", "CenterCropPad", "Col2Im", "BitwiseAnd",
                  "BitwiseNot", "BitwiseOr", "BitwiseXor", "GroupNormalization", "LpPool",
                  "OptionalGetElement", "OptionalHasElement"}
_REDUCE_AXES_INPUT_18 = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                         "ReduceMin", "ReduceProd", "ReduceSumSquare"}
# Lowest ONNX IR version that can carry each default-domain opset, so older
# ONNX Runtime builds load the files.
_IR_FOR_OPSET = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


# --------------------------------------------------------------------------- graphs


class EncoderGraph(nn.Module):
    def __init__(self, model: TinySam):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.encode(image)


class DecoderGraph(nn.Module):
    """One image embedding (1, C, h, w), broadcast to the B prompts."""

    def __init__(self, model: TinySam):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        b = point_coords.shape[0]
        emb = image_embeddings.expand(b, -1, -1, -1)
        low_res_masks, iou_predictions = self.model.decode(emb, point_coords, point_labels, mask_input,
                                                            has_mask_input)
        return iou_predictions, low_res_masks


class DecoderPromptGraph(nn.Module):
    """PromptSide with the plain decoder's output order."""

    def __init__(self, model: TinySam):
        super().__init__()
        self.prompt_side = PromptSide(model)

    def forward(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, block_offsets, final_offsets,
                point_coords, point_labels, mask_input, has_mask_input, mask_iou_floor):
        low_res_masks, iou_predictions, mask_rows = self.prompt_side(
            image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, block_offsets, final_offsets, point_coords,
            point_labels, mask_input, has_mask_input, mask_iou_floor)
        return iou_predictions, low_res_masks, mask_rows


# --------------------------------------------------------------------------- model


def build_model(checkpoint: str | None, cfg: TinySamConfig, seed: int = 0) -> tuple[TinySam, str]:
    """A TinySam in eval mode and a description of where its weights came from.

    Checkpoints: a plain state dict or a {"model": state_dict} wrapper, loaded
    strictly (the official tinysam_42.3.pth and mobile_sam.pt load with the
    default configuration)."""
    if checkpoint:
        model = load_checkpoint(checkpoint, cfg)
        source = os.path.basename(checkpoint)
    else:
        torch.manual_seed(seed)
        model = TinySam(cfg)
        source = f"random-init (seed {seed})"
    return model.eval(), source


def check_image_size(size: int):
    if size < 32 or size % 16:
        raise ValueError(f"image size {size} must be a multiple of 16 (and at least 32)")


# --------------------------------------------------------------------------- ONNX export


def _graphs(graph: onnx.GraphProto):
    """The graph and, recursively, the subgraphs of its If/Loop/Scan nodes."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                yield from _graphs(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _graphs(g)


def _downgrade_to_17(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite an opset-18 graph (subgraphs included) as opset 17: reduce ops
    take `axes` as an attribute again, Split loses `num_outputs` (opset 13-17
    split equally into as many parts as it has outputs)."""
    if len(model.functions):
        raise ValueError("cannot downgrade a graph with local functions to opset 17")
    graphs = list(_graphs(model.graph))
    nodes = [n for g in graphs for n in g.node]
    inits = {t.name: t for g in graphs for t in g.initializer}
    consts = {n.output[0]: n for n in nodes if n.op_type == "Constant"}
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type in _REDUCE_AXES_INPUT_18:
            if len(node.input) > 1 and node.input[1]:
                name = node.input[1]
                if name in inits:
                    axes = numpy_helper.to_array(inits[name])
                elif name in consts:
                    axes = numpy_helper.to_array(consts[name].attribute[0].t)
                else:
                    raise ValueError(f"{node.op_type} {node.name}: axes are not constant, cannot use opset 17")
                del node.input[1:]
                node.attribute.append(helper.make_attribute("axes", [int(a) for a in np.atleast_1d(axes)]))
            # attribute added in 18; with axes given it changes nothing
            kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
            del node.attribute[:]
            node.attribute.extend(kept)
        elif node.op_type == "Split":
            kept = [a for a in node.attribute if a.name != "num_outputs"]
            del node.attribute[:]
            node.attribute.extend(kept)
        elif node.op_type == "Pad":
            # opset 18 only added the optional `axes` input
            if len(node.input) > 3 and node.input[3]:
                raise ValueError(f"Pad {node.name} uses `axes` (opset 18); export with --opset 18")
        elif node.op_type in _CHANGED_IN_18:
            raise ValueError(f"op {node.op_type} changed in opset 18; export with --opset 18")
    # subgraphs may read the main graph's initializers, even as their outputs
    used = {i for n in nodes for i in n.input} | {o.name for g in graphs[1:] for o in g.output}
    unused = [t for t in model.graph.initializer if t.name not in used]
    for t in unused:
        model.graph.initializer.remove(t)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = 17
    return model


def _finish(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    if opset == 17:
        model = _downgrade_to_17(model)
    if opset in _IR_FOR_OPSET:
        model.ir_version = min(model.ir_version, _IR_FOR_OPSET[opset])
    model.producer_name = "gst-tinysam tools/export.py"
    onnx.checker.check_model(model, full_check=True)
    return model


def _torch_export(module, args, opset, dynamic_shapes, input_names, output_names, verbose) -> onnx.ModelProto:
    export_opset = 18 if opset == 17 else opset
    module.eval()
    quiet = contextlib.ExitStack()
    if not verbose:
        quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        quiet.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        # torch.export logs the data-dependent row selection (mask_rows) as an error it then handles
        logging.getLogger("torch.export").setLevel(logging.CRITICAL)
    with quiet, torch.no_grad():
        program = torch.onnx.export(module, args, input_names=input_names, output_names=output_names,
                                    opset_version=export_opset, dynamo=True, external_data=False,
                                    dynamic_shapes=dynamic_shapes, optimize=True, verbose=verbose)
    return program.model_proto


def _save_fused(fused, path: str) -> None:
    """Write an onnxruntime.transformers OnnxModel back to `path` as this
    exporter's file (the save adds the com.microsoft opset import)."""
    fused.save_model_to_file(path)
    model = onnx.load(path)
    model.producer_name = "gst-tinysam tools/export.py"
    onnx.checker.check_model(model)
    onnx.save(model, path)


def fuse_encoder(path: str) -> None:
    """Rewrite the encoder at `path` with ONNX Runtime's transformer optimizer
    (its own graph tooling): GELU's Erf/Mul/Add/Div pattern becomes one Gelu
    (or BiasGelu with the preceding bias) node, and ONNX Runtime's fusions
    then need no layout round-trips. Its LayerNorm fusion stays off: the
    graph already has LayerNormalization nodes, and the fusion rewrites
    LayerNorm2d (which normalises axis 1) as a last-axis RMS norm. The
    result holds com.microsoft ops, so it needs ONNX Runtime (any version
    with the contrib ops, i.e. every standard build)."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("vit")
    options.enable_layer_norm = False
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        fused = optimizer.optimize_model(path, model_type="vit", num_heads=0, hidden_size=0, opt_level=0,
                                         optimization_options=options)
    finally:
        quiet.setLevel(level)
    _save_fused(fused, path)


def fuse_decoder_gelus(path: str) -> None:
    """Fuse the GELUs of the decoder graph at `path` (the mask upscaling's
    and the mask-input downscaling's) into com.microsoft Gelu / BiasGelu
    with ONNX Runtime's transformer tooling. Its whole optimizer cannot run
    here: its topological sort breaks the prompt graph's If branches, so
    only these two fusions are applied."""
    from onnxruntime.transformers.fusion_biasgelu import FusionBiasGelu
    from onnxruntime.transformers.fusion_gelu import FusionGelu
    from onnxruntime.transformers.onnx_model import OnnxModel

    fused = OnnxModel(onnx.load(path))
    FusionGelu(fused).apply()
    FusionBiasGelu(fused, is_fastgelu=False).apply()
    fused.prune_graph()
    _save_fused(fused, path)


def export_onnx(model: TinySam, out_dir: str, opset: int = 17, verbose: bool = False,
                encoder: bool = True, fuse: bool = True) -> None:
    """Write encoder.onnx (unless not `encoder`), decoder.onnx,
    decoder_image.onnx and decoder_prompt.onnx for `model` (eval mode) to
    out_dir; unless not `fuse`, with the encoder rewritten by `fuse_encoder`
    and the decoders' GELUs by `fuse_decoder_gelus`."""
    if opset < 17:
        raise ValueError("opset must be at least 17 (LayerNormalization)")
    cfg = model.cfg
    s, c, e = cfg.image_size, cfg.prompt_embed_dim, cfg.embedding_size
    os.makedirs(out_dir, exist_ok=True)
    if encoder:
        enc = _torch_export(EncoderGraph(model), (torch.zeros(1, 3, s, s),), opset, None,
                            ENCODER_INPUTS, ENCODER_OUTPUTS, verbose)
        path = os.path.join(out_dir, ENCODER_FILE)
        onnx.save(_finish(enc, opset), path)
        if fuse:
            fuse_encoder(path)

    b = torch.export.Dim("B", min=1, max=65536)
    n = torch.export.Dim("N", min=1, max=65536)
    args = (torch.zeros(1, c, e, e), torch.zeros(2, 3, 2), torch.tensor([[1.0, 0.0, -1.0], [2.0, 3.0, 1.0]]),
            torch.zeros(2, 1, 4 * e, 4 * e), torch.zeros(2))
    dyn = {"image_embeddings": None, "point_coords": {0: b, 1: n}, "point_labels": {0: b, 1: n},
           "mask_input": {0: b}, "has_mask_input": {0: b}}
    dec = _torch_export(DecoderGraph(model), args, opset, dyn, DECODER_INPUTS, DECODER_OUTPUTS, verbose)
    onnx.save(_finish(dec, opset), os.path.join(out_dir, DECODER_FILE))
    if fuse:
        fuse_decoder_gelus(os.path.join(out_dir, DECODER_FILE))

    image_side = ImageSide(model)
    dec_img = _torch_export(image_side, args[:1], opset, None, DECODER_IMAGE_INPUTS, DECODER_IMAGE_OUTPUTS,
                            verbose)
    onnx.save(_finish(dec_img, opset), os.path.join(out_dir, DECODER_IMAGE_FILE))
    with torch.no_grad():
        image_args = tuple(image_side(args[0]))
    # the image-side tensors keep batch 1: the graph broadcasts them over B
    dyn = {**{name: None for name in DECODER_IMAGE_OUTPUTS}, **dyn, "mask_iou_floor": None}
    del dyn["image_embeddings"]
    floor = torch.full((NUM_MASK_TOKENS,), -torch.inf)
    dec_prompt = _torch_export(DecoderPromptGraph(model), image_args + args[1:] + (floor,), opset, dyn,
                               DECODER_PROMPT_INPUTS, DECODER_PROMPT_OUTPUTS, verbose)
    # name the data-dependent row count (torch.export calls it u0)
    for output in dec_prompt.graph.output:
        if output.name in ("low_res_masks", "mask_rows"):
            output.type.tensor_type.shape.dim[0].dim_param = "K"
    onnx.save(_finish(dec_prompt, opset), os.path.join(out_dir, DECODER_PROMPT_FILE))
    if fuse:
        fuse_decoder_gelus(os.path.join(out_dir, DECODER_PROMPT_FILE))


# --------------------------------------------------------------------------- verification inputs


def _random_scene_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A pre-processed synthetic scene (random content, landscape, so the
    input has zero padding at the bottom)."""
    from .scenes import make_scene

    w = int(rng.integers(320, 641))
    h = int(w * rng.uniform(0.55, 0.8))
    scene = make_scene(rng, w, h, n_objects=(3, 6))
    x, _, _ = sam_io.preprocess(scene.image, size)
    return x


def _random_box(rng, size):
    x0, y0 = rng.uniform(0, 0.7 * size, 2)
    w, h = rng.uniform(0.05 * size, 0.3 * size, 2)
    return [(x0, y0), (min(x0 + w, size - 1), min(y0 + h, size - 1))]


def verification_batches(size: int, seed: int) -> list[dict]:
    """Decoder batches in the S-scaled input frame covering the interface:
    boxes, single points with padding, points with negatives and a box, padding
    in the middle, N = 1, B > 1. The last batch gets, as mask_input, output 0
    of the first batch's prompts, with has_mask_input 1, 0, 1."""
    rng = np.random.default_rng(seed)

    def pt():
        return tuple(rng.uniform(0, size - 1, 2))

    batches = []
    coords = np.array([_random_box(rng, size) for _ in range(3)], np.float32)  # B=3, N=2 boxes
    batches.append({"coords": coords, "labels": np.tile(np.float32([2, 3]), (3, 1))})
    coords = np.array([[pt(), (0, 0)] for _ in range(2)], np.float32)  # B=2: one point + padding
    batches.append({"coords": coords, "labels": np.float32([[1, -1], [1, -1]])})
    rows = [[pt(), pt(), pt()] + _random_box(rng, size), [pt(), pt(), (0, 0), (0, 0), (0, 0)]]
    batches.append({"coords": np.array(rows, np.float32),  # B=2, N=5
                    "labels": np.float32([[1, 0, 1, 2, 3], [0, 1, -1, -1, -1]])})
    batches.append({"coords": np.array([[pt()]], np.float32), "labels": np.float32([[1]])})  # N=1
    coords = np.array([[pt(), pt(), (0, 0)] for _ in range(3)], np.float32)  # mask input, B=3
    batches.append({"coords": coords, "labels": np.float32([[1, 1, -1], [1, 0, -1], [1, -1, -1]]),
                    "mask_from": 0, "has_mask": np.float32([1, 0, 1])})
    return batches


def _batch_inputs(batch, low_res, previous):
    b = batch["coords"].shape[0]
    if "fixed_mask" in batch:
        mask, has = batch["fixed_mask"], batch["has_mask"]
    elif "mask_from" in batch:
        mask = previous[batch["mask_from"]][:b, :1].astype(np.float32)  # low-res logits of earlier prompts
        has = batch["has_mask"]
    else:
        mask = np.zeros((b, 1, low_res, low_res), np.float32)
        has = np.zeros(b, np.float32)
    return batch["coords"], batch["labels"], mask, has


# --------------------------------------------------------------------------- verification


def run_torch(model: TinySam, image: np.ndarray, batches: list[dict]):
    low_res = 4 * model.cfg.embedding_size
    with torch.no_grad():
        emb = model.encode(torch.from_numpy(image))
        outs = []
        lows = []
        for batch in batches:
            c, lab, m, h = _batch_inputs(batch, low_res, lows)
            b = c.shape[0]
            low, iou = model.decode(emb.expand(b, -1, -1, -1), torch.from_numpy(c), torch.from_numpy(lab),
                                    torch.from_numpy(m), torch.from_numpy(h))
            lows.append(low.numpy())
            outs.append((iou.numpy(), low.numpy()))
    return emb.numpy(), outs


def run_onnx(model_dir: str, image: np.ndarray, batches: list[dict], low_res: int, threads: int | None = None,
             embeddings: np.ndarray | None = None):
    """Encoder on `image` (or the given embeddings), then every batch.
    Mask inputs come from the same model's own earlier outputs."""
    enc = session(os.path.join(model_dir, ENCODER_FILE), threads)
    (emb,) = enc.run(ENCODER_OUTPUTS, {"image": image})
    return emb, run_onnx_decoder(model_dir, emb if embeddings is None else embeddings, batches, low_res, threads)


def run_onnx_decoder(model_dir: str, embeddings: np.ndarray, batches: list[dict], low_res: int,
                     threads: int | None = None, split: bool = False, mask_iou_floor=None):
    """Every batch through decoder.onnx, or with `split` through
    decoder_image.onnx (once) and decoder_prompt.onnx. The split decoder
    gets `mask_iou_floor` (default -inf: masks for every prompt) and its
    outputs carry mask_rows as a third element."""
    floor = {}
    if split:
        floor = {"mask_iou_floor": np.full(NUM_MASK_TOKENS, -np.inf, np.float32) if mask_iou_floor is None
                 else np.asarray(mask_iou_floor, np.float32)}
        image = session(os.path.join(model_dir, DECODER_IMAGE_FILE), threads)
        image_side = image.run(DECODER_IMAGE_OUTPUTS, {"image_embeddings": embeddings})
        fixed = dict(zip(DECODER_IMAGE_OUTPUTS, image_side))
        dec = session(os.path.join(model_dir, DECODER_PROMPT_FILE), threads)
    else:
        fixed = {"image_embeddings": embeddings}
        dec = session(os.path.join(model_dir, DECODER_FILE), threads)
    outs, lows = [], []
    for batch in batches:
        c, lab, m, h = _batch_inputs(batch, low_res, lows)
        out = dec.run(DECODER_PROMPT_OUTPUTS if split else DECODER_OUTPUTS,
                      {**fixed, "point_coords": c, "point_labels": lab, "mask_input": m, "has_mask_input": h,
                       **floor})
        lows.append(out[1])
        outs.append(tuple(out))
    return outs


def _max_diff(a_outs, b_outs, k):
    return max(float(np.abs(a[k] - b[k]).max()) for a, b in zip(a_outs, b_outs))


def verify_fp32(model: TinySam, model_dir: str, seed: int = 0, threads: int | None = None) -> dict:
    """ONNX Runtime vs PyTorch on a random scene and random prompts. The
    decoder gets PyTorch's embedding, so its figure is the decoder's own
    error. Returns the max abs differences."""
    size = model.cfg.image_size
    rng = np.random.default_rng(seed)
    image = _random_scene_image(rng, size)
    batches = verification_batches(size, seed + 1)
    emb_t, outs_t = run_torch(model, image, batches)
    # mask inputs for the ONNX run are PyTorch's logits, so both see the same inputs
    batches_fixed = _with_fixed_masks(batches, outs_t)
    emb_o, outs_o = run_onnx(model_dir, image, batches_fixed, 4 * model.cfg.embedding_size, threads,
                             embeddings=emb_t)
    return {"embeddings": float(np.abs(emb_t - emb_o).max()),
            "iou_predictions": _max_diff(outs_t, outs_o, 0),
            "low_res_masks": _max_diff(outs_t, outs_o, 1)}


def verify_split(model_dir: str, cfg: TinySamConfig, seed: int = 0, threads: int | None = None) -> dict:
    """Split vs plain ONNX decoder on a random embedding and the verification
    prompts (a mask input included, both fed the plain decoder's logits).
    Returns the max abs differences."""
    rng = np.random.default_rng(seed)
    e = cfg.embedding_size
    emb = rng.standard_normal((1, cfg.prompt_embed_dim, e, e)).astype(np.float32)
    low_res = 4 * e
    batches = verification_batches(cfg.image_size, seed + 1)
    plain = run_onnx_decoder(model_dir, emb, batches, low_res, threads)
    fixed = _with_fixed_masks(batches, plain)
    split = run_onnx_decoder(model_dir, emb, fixed, low_res, threads, split=True)
    # With a floor between the predictions, only the prompts with an output
    # above it get masks: the same rows as the plain decoder's, in order.
    floor = mask_iou_floor_between(plain)
    filtered = run_onnx_decoder(model_dir, emb, fixed, low_res, threads, split=True, mask_iou_floor=floor)
    masks_of_kept = 0.0
    for (_, low), (iou_f, low_f, rows) in zip(plain, filtered):
        if not np.array_equal(rows, np.flatnonzero((iou_f > floor).any(axis=1))):
            masks_of_kept = float("inf")
            break
        if len(rows):
            masks_of_kept = max(masks_of_kept, float(np.abs(low[rows] - low_f).max()))
    return {"iou_predictions": _max_diff(plain, split, 0), "low_res_masks": _max_diff(plain, split, 1),
            "low_res_masks_kept_rows": masks_of_kept}


def mask_iou_floor_between(outs) -> np.ndarray:
    """A mask_iou_floor that keeps about half of the prompts of `outs`:
    output 0 never counts, outputs 1.. count above the midpoint between two
    prompts' best predictions (never at one, so rounding cannot decide)."""
    best = np.unique(np.concatenate([o[0][:, 1:].max(axis=1) for o in outs]))
    k = max(1, len(best) // 2)
    floor = np.full(NUM_MASK_TOKENS, np.inf, np.float32)
    floor[1:] = (best[k - 1] + best[k]) / 2 if len(best) > 1 else best[0]
    return floor


def _with_fixed_masks(batches, outs):
    fixed = []
    for batch in batches:
        batch = dict(batch)
        if "mask_from" in batch:
            b = batch["coords"].shape[0]
            batch["fixed_mask"] = outs[batch["mask_from"]][1][:b, :1].astype(np.float32)
        fixed.append(batch)
    return fixed


def _mask_iou(a, b):
    inter = np.logical_and(a, b).sum(axis=(-2, -1))
    union = np.logical_or(a, b).sum(axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def compare_onnx(reference_dir: str, candidate_dir: str, seed: int = 0, threads: int | None = None,
                 size: int | None = None) -> dict:
    """Candidate (INT8) vs reference (FP32) export on the verification inputs,
    end to end: each decoder gets its own encoder's embedding and its own
    earlier logits as mask input."""
    with open(os.path.join(reference_dir, "model.json")) as f:
        meta = json.load(f)
    size = size or meta["image_size"]
    low_res = meta["low_res_mask_size"]
    rng = np.random.default_rng(seed)
    image = _random_scene_image(rng, size)
    batches = verification_batches(size, seed + 1)
    emb_r, outs_r = run_onnx(reference_dir, image, batches, low_res, threads)
    emb_c, outs_c = run_onnx(candidate_dir, image, batches, low_res, threads)
    ious = np.concatenate([_mask_iou(r[1] > 0, c[1] > 0).ravel() for r, c in zip(outs_r, outs_c)])
    return {"embeddings": float(np.abs(emb_r - emb_c).max()),
            "iou_predictions": _max_diff(outs_r, outs_c, 0),
            "low_res_masks": _max_diff(outs_r, outs_c, 1),
            "embeddings_rel_rms": float(np.linalg.norm(emb_r - emb_c) / max(np.linalg.norm(emb_r), 1e-12)),
            "mask_iou_mean": float(ious.mean()),
            "mask_iou_min": float(ious.min())}


def check_fp32(diffs: dict, tolerance: float = FP32_TOLERANCE, what: str = "") -> list[str]:
    return [f"{what}{k} max abs diff {v:.3g} > {tolerance:g}" for k, v in diffs.items() if not v <= tolerance]


def check_int8(stats: dict, tol: dict = INT8_TOLERANCE) -> list[str]:
    bad = []
    if not stats["embeddings_rel_rms"] <= tol["embeddings_rel_rms"]:
        bad.append(f"embeddings relative RMS error {stats['embeddings_rel_rms']:.3g} > {tol['embeddings_rel_rms']}")
    if not stats["mask_iou_mean"] >= tol["mask_iou_mean"]:
        bad.append(f"mean mask IoU vs FP32 {stats['mask_iou_mean']:.3g} < {tol['mask_iou_mean']}")
    if not stats["iou_predictions"] <= tol["iou_predictions"]:
        bad.append(f"IoU-prediction max abs diff {stats['iou_predictions']:.3g} > {tol['iou_predictions']}")
    return bad


# --------------------------------------------------------------------------- INT8


class ImageCalibrationReader:
    """Feeds the encoder SAM-pre-processed user images, one at a time."""

    def __init__(self, paths: list[str], size: int):
        self.paths = list(paths)
        self.size = size
        self.i = 0

    def get_next(self):
        if self.i >= len(self.paths):
            return None
        x, _, _ = sam_io.preprocess(load_rgb(self.paths[self.i]), self.size)
        self.i += 1
        return {"image": x}

    def rewind(self):
        self.i = 0

    def __len__(self):
        return len(self.paths)


# Dynamic quantisation (for ONNX Runtime's CPU provider) quantises only the
# matrix products with constant weights: the transformer stages, about three
# quarters of the encoder's MACs.
DYNAMIC_QUANTIZED_OPS = ["MatMul"]
# Static quantisation is for the OpenVINO provider, whose int8 kernels (AMX,
# VNNI) take the convolutions too: with them the full-size encoder ran
# 1.50-1.69x faster than OpenVINO's FP32 on an AMX Xeon, without them
# 1.28-1.37x. Their per-tensor activations cost agreement with FP32 (the
# fixture's embedding error 0.017 -> 0.053, box masks 0.97 -> 0.90 IoU with
# FP32's on grid boxes), not accuracy: on 200 held-out scenes box mIoU 0.8727
# -> 0.8709, point 0.8211 -> 0.8203 (docs/tools.md, "INT8"). LayerNorm,
# Softmax, GELU and the residual adds stay float.
STATIC_QUANTIZED_OPS = ["MatMul", "Gemm", "Conv"]

# Weights are quantised to 7 bits (ONNX Runtime's reduce_range). Without VNNI
# (AVX2, or AVX-512 before Cascade Lake) ONNX Runtime multiplies uint8
# activations by int8 weights with an instruction that saturates each pair's
# sum at 16 bits; with full 8-bit weights the full-size encoder's embeddings
# then came out with a relative error of 0.70 against FP32 (mask IoU 0.70,
# failing the verification) on an AVX2 EPYC, where 7-bit weights gave 0.07
# (0.96). A model directory must be right on every CPU it is copied to.
REDUCE_RANGE = True


def _preprocess_for_quant(src: str, dst: str):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(src, dst, skip_symbolic_shape=False)


def _drop_unused_domains(path: str):
    """quant_pre_process declares every opset ONNX Runtime knows; keep only
    the ones the graph uses."""
    model = onnx.load(path)
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def quantize_static_encoder(src: str, dst: str, images: list[str], size: int, work: str):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    pre = os.path.join(work, "encoder-pre.onnx")
    _preprocess_for_quant(src, pre)
    quantize_static(pre, dst, ImageCalibrationReader(images, size), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=STATIC_QUANTIZED_OPS, per_channel=True, reduce_range=REDUCE_RANGE,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"MatMulConstBOnly": True})
    _drop_unused_domains(dst)


def quantize_dynamic_graph(src: str, dst: str, work: str, name: str):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre = os.path.join(work, f"{name}-pre.onnx")
    _preprocess_for_quant(src, pre)
    quantize_dynamic(pre, dst, op_types_to_quantize=DYNAMIC_QUANTIZED_OPS, per_channel=True,
                     reduce_range=REDUCE_RANGE, weight_type=QuantType.QInt8)
    _drop_unused_domains(dst)


# --------------------------------------------------------------------------- model.json


def metadata(cfg: TinySamConfig, name: str, source: str, precision: str, opset: int, mask_selection: str,
             verification: dict, extra: dict | None = None) -> dict:
    e = cfg.embedding_size
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "name": name,
        "architecture": "tinysam",
        "image_size": cfg.image_size,
        "embedding": {"channels": cfg.prompt_embed_dim, "height": e, "width": e},
        "low_res_mask_size": 4 * e,
        "num_mask_tokens": NUM_MASK_TOKENS,
        "mask_threshold": sam_io.MASK_THRESHOLD,
        "pixel_mean": list(PIXEL_MEAN),
        "pixel_std": list(PIXEL_STD),
        "mask_selection": mask_selection,
        "source_checkpoint": source,
        "precision": precision,
        "encoder": ENCODER_FILE,
        "decoder": DECODER_FILE,
        "opset": opset,
        "config": dataclasses.asdict(cfg),
        "verification": {k: verification[k] for k in ("embeddings", "iou_predictions", "low_res_masks")},
    }
    meta["split_decoder"] = {"image": DECODER_IMAGE_FILE, "prompt": DECODER_PROMPT_FILE,
                             "image_outputs": DECODER_IMAGE_OUTPUTS}
    if extra:
        meta.update(extra)
    return meta


def write_metadata(out_dir: str, meta: dict):
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


# --------------------------------------------------------------------------- the whole export


@dataclasses.dataclass
class ExportResult:
    out_dir: str
    meta: dict
    fp32_diffs: dict
    int8_stats: dict | None = None
    failures: list[str] = dataclasses.field(default_factory=list)


def export_model_dir(model: TinySam, out_dir: str, *, name: str, source: str, opset: int = 17,
                     precision: str = "fp32", mask_selection: str = "tinysam",
                     calibration_images: list[str] | None = None, seed: int = 0, threads: int | None = None,
                     verbose: bool = False, fp32_copy: str | None = None, fuse: bool = True,
                     log=print) -> ExportResult:
    """Export, verify and describe one model directory. INT8 exports the FP32
    graphs first (verified against PyTorch), quantises them, and verifies the
    result against those FP32 graphs. Both get the split decoder, verified
    against the plain one; INT8 quantises only the encoder. Failures are
    listed in the result (the files are still written, so a failing export
    can be inspected).
    `fp32_copy`: for INT8, a directory that receives the intermediate FP32
    model directory too."""
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
    if mask_selection not in sam_io.MASK_SELECTION_RULES:
        raise ValueError(f"mask selection must be one of {sam_io.MASK_SELECTION_RULES}")
    cfg = model.cfg
    check_image_size(cfg.image_size)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinysam-export-") as work:
        fp32_dir = out_dir if precision == "fp32" else os.path.join(work, "fp32")
        export_onnx(model, fp32_dir, opset, verbose, fuse=fuse)
        meta = metadata(cfg, name, source, "fp32", opset, mask_selection,
                        {"embeddings": 0.0, "iou_predictions": 0.0, "low_res_masks": 0.0})
        write_metadata(fp32_dir, meta)
        diffs = verify_fp32(model, fp32_dir, seed, threads)
        log("FP32 ONNX vs PyTorch, max abs diff: "
            f"embeddings {diffs['embeddings']:.3g}, iou_predictions {diffs['iou_predictions']:.3g}, "
            f"low_res_masks {diffs['low_res_masks']:.3g} (tolerance {FP32_TOLERANCE:g})")
        failures = check_fp32(diffs)
        split_diffs = verify_split(fp32_dir, cfg, seed, threads)
        log("split decoder vs plain decoder (ONNX Runtime), max abs diff: "
            f"iou_predictions {split_diffs['iou_predictions']:.3g}, "
            f"low_res_masks {split_diffs['low_res_masks']:.3g}, masks of the prompts kept by a mask_iou_floor "
            f"{split_diffs['low_res_masks_kept_rows']:.3g} (tolerance {SPLIT_TOLERANCE:g})")
        failures += check_fp32(split_diffs, SPLIT_TOLERANCE, "split decoder vs plain: ")
        # INT8 directories carry the same FP32 split decoder, so the same record
        split_verification = {**split_diffs, "reference": "decoder.onnx", "tolerance": SPLIT_TOLERANCE}
        meta["verification"] = {**diffs, "reference": "pytorch", "tolerance": FP32_TOLERANCE,
                                "split_decoder": split_verification}
        write_metadata(fp32_dir, meta)
        if precision == "fp32":
            return ExportResult(out_dir, meta, diffs, None, failures)
        if fp32_copy:
            shutil.copytree(fp32_dir, fp32_copy, dirs_exist_ok=True)

        if calibration_images:
            log(f"INT8: static quantisation of the encoder, calibrated on {len(calibration_images)} images")
            quantize_static_encoder(os.path.join(fp32_dir, ENCODER_FILE), os.path.join(out_dir, ENCODER_FILE),
                                    calibration_images, cfg.image_size, work)
            enc_mode = f"static QDQ of the MatMul/Gemm/Conv, per-channel int8 weights, uint8 activations, " \
                       f"MinMax on {len(calibration_images)} images"
        else:
            log("INT8: dynamic quantisation of the encoder (no calibration images given)")
            quantize_dynamic_graph(os.path.join(fp32_dir, ENCODER_FILE), os.path.join(out_dir, ENCODER_FILE),
                                   work, "encoder")
            enc_mode = "dynamic, per-channel int8 MatMul weights"
        # The decoder stays FP32: its split form, verified above, runs faster
        # than the int8 plain decoder and computes exactly what FP32 does.
        for f in (DECODER_FILE, DECODER_IMAGE_FILE, DECODER_PROMPT_FILE):
            shutil.copyfile(os.path.join(fp32_dir, f), os.path.join(out_dir, f))
        meta = metadata(cfg, name, source, "int8", opset, mask_selection, diffs, {
            "quantization": {"encoder": enc_mode, "decoder": "not quantised (FP32, with the split decoder)",
                             "reduce_range": REDUCE_RANGE}})
        write_metadata(out_dir, meta)
        stats = compare_onnx(fp32_dir, out_dir, seed, threads)
        log("INT8 vs FP32 export, max abs diff: "
            f"embeddings {stats['embeddings']:.3g}, iou_predictions {stats['iou_predictions']:.3g}, "
            f"low_res_masks {stats['low_res_masks']:.3g}")
        log(f"INT8 vs FP32 export: embeddings relative RMS {stats['embeddings_rel_rms']:.3g} "
            f"(<= {INT8_TOLERANCE['embeddings_rel_rms']}), mask IoU mean {stats['mask_iou_mean']:.4f} "
            f"(>= {INT8_TOLERANCE['mask_iou_mean']}) min {stats['mask_iou_min']:.4f}, "
            f"iou_predictions max diff {stats['iou_predictions']:.3g} (<= {INT8_TOLERANCE['iou_predictions']})")
        failures += check_int8(stats)
        meta["verification"] = {**{k: stats[k] for k in ("embeddings", "iou_predictions", "low_res_masks")},
                                "reference": "fp32-onnx",
                                **{k: stats[k] for k in ("embeddings_rel_rms", "mask_iou_mean", "mask_iou_min")},
                                "tolerance": INT8_TOLERANCE,
                                "fp32_vs_pytorch": {k: diffs[k] for k in
                                                    ("embeddings", "iou_predictions", "low_res_masks")},
                                "split_decoder": split_verification}
        write_metadata(out_dir, meta)
        return ExportResult(out_dir, meta, diffs, stats, failures)
