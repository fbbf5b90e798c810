"""tools/export.py: the model directory contract, FP32 verification, INT8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
import pytest

import export
from conftest import REPO, TOOLS
from tinysam import exporting, sam_io
from tinysam.model import TinySamConfig
from tinysam.onnx_model import OnnxTinySam
from tinysam.prompts import Prompt

MODEL_JSON_KEYS = {"format", "format_version", "name", "architecture", "image_size", "embedding",
                   "low_res_mask_size", "num_mask_tokens", "mask_threshold", "pixel_mean", "pixel_std",
                   "mask_selection", "source_checkpoint", "precision", "encoder", "decoder", "opset", "config",
                   "verification"}


def _meta(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def _shape(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_model_json(tiny_model_dir):
    meta = _meta(tiny_model_dir)
    assert MODEL_JSON_KEYS <= set(meta)
    assert meta["format"] == "tinysam-model" and meta["format_version"] == 1
    assert meta["name"] == "tiny" and meta["architecture"] == "tinysam"
    assert meta["image_size"] == 192
    assert meta["embedding"] == {"channels": 64, "height": 12, "width": 12}
    assert meta["low_res_mask_size"] == 48 and meta["num_mask_tokens"] == 4
    assert meta["mask_threshold"] == 0.0
    assert meta["pixel_mean"] == [123.675, 116.28, 103.53] and meta["pixel_std"] == [58.395, 57.12, 57.375]
    assert meta["mask_selection"] == "tinysam"
    assert meta["source_checkpoint"] == "random-init (seed 3)"
    assert meta["precision"] == "fp32" and meta["opset"] == 17
    assert meta["encoder"] == "encoder.onnx" and meta["decoder"] == "decoder.onnx"
    assert TinySamConfig.from_dict(meta["config"]).image_size == 192
    for k in ("embeddings", "iou_predictions", "low_res_masks"):
        assert 0.0 <= meta["verification"][k] <= 1e-3


def test_onnx_interface(tiny_model_dir):
    enc = onnx.load(os.path.join(tiny_model_dir, "encoder.onnx"))
    dec = onnx.load(os.path.join(tiny_model_dir, "decoder.onnx"))
    for m in (enc, dec):
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert m.ir_version == 8
        onnx.checker.check_model(m, full_check=True)
    f32 = onnx.TensorProto.FLOAT
    ins = {i.name: (i.type.tensor_type.elem_type, _shape(i)) for i in enc.graph.input}
    outs = {o.name: (o.type.tensor_type.elem_type, _shape(o)) for o in enc.graph.output}
    assert ins == {"image": (f32, [1, 3, 192, 192])}
    assert outs == {"image_embeddings": (f32, [1, 64, 12, 12])}
    ins = {i.name: (i.type.tensor_type.elem_type, _shape(i)) for i in dec.graph.input}
    outs = {o.name: (o.type.tensor_type.elem_type, _shape(o)) for o in dec.graph.output}
    assert ins == {"image_embeddings": (f32, [1, 64, 12, 12]), "point_coords": (f32, ["B", "N", 2]),
                   "point_labels": (f32, ["B", "N"]), "mask_input": (f32, ["B", 1, 48, 48]),
                   "has_mask_input": (f32, ["B"])}
    assert outs == {"iou_predictions": (f32, ["B", 4]), "low_res_masks": (f32, ["B", 4, 48, 48])}
    # no full-resolution upscaling inside the graph
    assert not any(n.op_type == "Resize" for n in dec.graph.node)
    # the encoder's GELUs are fused (ONNX Runtime's transformer optimizer)
    ops = {(n.domain, n.op_type) for n in enc.graph.node}
    assert ("com.microsoft", "Gelu") in ops or ("com.microsoft", "BiasGelu") in ops
    assert ("", "Erf") not in ops


def test_split_decoder_interface(tiny_model_dir):
    meta = _meta(tiny_model_dir)
    assert meta["split_decoder"] == {"image": "decoder_image.onnx", "prompt": "decoder_prompt.onnx",
                                     "image_outputs": ["image_tokens", "image_pe", "t2i_keys", "t2i_values",
                                                       "i2t_queries", "block_offsets", "final_offsets"]}
    v = meta["verification"]["split_decoder"]
    assert v["iou_predictions"] <= 1e-4 and v["low_res_masks"] <= 1e-4
    img = onnx.load(os.path.join(tiny_model_dir, "decoder_image.onnx"))
    prm = onnx.load(os.path.join(tiny_model_dir, "decoder_prompt.onnx"))
    for m in (img, prm):
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert m.ir_version == 8
    f32 = onnx.TensorProto.FLOAT
    image_side = {"image_tokens": (f32, [1, 144, 64]), "image_pe": (f32, [1, 144, 64]),
                  "t2i_keys": (f32, [1, 144, 32]), "t2i_values": (f32, [1, 144, 32]),
                  "i2t_queries": (f32, [1, 144, 32]), "block_offsets": (f32, [1, 144, 64]),
                  "final_offsets": (f32, [1, 144, 32])}
    assert {i.name: (i.type.tensor_type.elem_type, _shape(i)) for i in img.graph.input} == \
        {"image_embeddings": (f32, [1, 64, 12, 12])}
    assert {o.name: (o.type.tensor_type.elem_type, _shape(o)) for o in img.graph.output} == image_side
    assert [o.name for o in img.graph.output] == meta["split_decoder"]["image_outputs"]
    assert {i.name: (i.type.tensor_type.elem_type, _shape(i)) for i in prm.graph.input} == {
        **image_side, "point_coords": (f32, ["B", "N", 2]), "point_labels": (f32, ["B", "N"]),
        "mask_input": (f32, ["B", 1, 48, 48]), "has_mask_input": (f32, ["B"]), "mask_iou_floor": (f32, [4])}
    assert {o.name: (o.type.tensor_type.elem_type, _shape(o)) for o in prm.graph.output} == \
        {"iou_predictions": (f32, ["B", 4]), "low_res_masks": (f32, ["K", 4, 48, 48]),
         "mask_rows": (onnx.TensorProto.INT64, ["K"])}
    assert v["low_res_masks_kept_rows"] <= 1e-4
    # the GELUs of the mask upscaling (and of the mask-input branch) are fused
    ops = {(n.domain, n.op_type) for g in exporting._graphs(prm.graph) for n in g.node}
    assert ("", "Erf") not in ops and ("com.microsoft", "Gelu") in ops


def test_split_decoder_matches_plain_onnx(tiny_model_dir):
    """B > 1, N > 1, with and without mask inputs, through ONNX Runtime."""
    rng = np.random.default_rng(11)
    emb = rng.standard_normal((1, 64, 12, 12)).astype(np.float32)
    coords = rng.uniform(0, 191, (4, 3, 2)).astype(np.float32)
    labels = np.float32([[1, 0, -1], [1, 1, -1], [2, 3, 1], [0, 1, -1]])
    batches = [{"coords": coords, "labels": labels},
               {"coords": coords[:3], "labels": labels[:3], "mask_from": 0, "has_mask": np.float32([1, 0, 1])}]
    plain = exporting.run_onnx_decoder(tiny_model_dir, emb, batches, 48, threads=1)
    fixed = [batches[0], {**batches[1], "fixed_mask": plain[0][1][:3, :1].astype(np.float32)}]
    split = exporting.run_onnx_decoder(tiny_model_dir, emb, fixed, 48, threads=1, split=True)
    assert np.abs(plain[1][1] - plain[0][1][:3]).max() > 1e-3  # the mask input is used
    for (iou_p, low_p), (iou_s, low_s, rows) in zip(plain, split):
        np.testing.assert_allclose(low_s, low_p, atol=1e-4, rtol=0)
        np.testing.assert_allclose(iou_s, iou_p, atol=1e-4, rtol=0)
        assert rows.tolist() == list(range(len(iou_p)))  # a floor of -inf keeps every prompt

    # A floor between the predictions: masks only for the prompts with an output above it.
    floor = exporting.mask_iou_floor_between(plain)
    filtered = exporting.run_onnx_decoder(tiny_model_dir, emb, fixed, 48, threads=1, split=True,
                                          mask_iou_floor=floor)
    kept = 0
    for (iou_p, low_p), (iou_f, low_f, rows) in zip(plain, filtered):
        expected = np.flatnonzero((iou_f > floor).any(axis=1))
        assert rows.tolist() == expected.tolist()
        np.testing.assert_allclose(iou_f, iou_p, atol=1e-4, rtol=0)
        np.testing.assert_allclose(low_f, low_p[expected], atol=1e-4, rtol=0)
        kept += len(rows)
    assert 0 < kept < sum(len(p[0]) for p in plain)


def test_onnx_model_reference(tiny_model_dir):
    """Batched decoding equals one prompt per call; segment() returns frame-size masks."""
    from tinysam.scenes import make_scene

    model = OnnxTinySam(tiny_model_dir, threads=1)
    scene = make_scene(np.random.default_rng(5), 300, 200, n_objects=(3, 3))
    emb = model.embed(scene.image)
    assert emb.embeddings.shape == (1, 64, 12, 12) and emb.resized_hw == (128, 192)
    prompts = [Prompt(box=(10, 20, 120, 150)), Prompt([(50.0, 60.0)], [1.0]), Prompt([(80.0, 90.0)], [1.0]),
               Prompt([(30.0, 40.0), (200.0, 100.0)], [1.0, 0.0], (5, 5, 250, 190))]
    low1, iou1 = model.decode(emb, prompts)
    low2, iou2 = model.decode_grouped(emb, prompts)
    assert low1.shape == (4, 4, 48, 48) and iou1.shape == (4, 4)
    np.testing.assert_allclose(low1, low2, atol=1e-4)
    np.testing.assert_allclose(iou1, iou2, atol=1e-5)
    segs = model.segment(scene.image, prompts)
    assert len(segs) == 4
    for s, iou in zip(segs, iou1):
        assert s.mask.shape == (200, 300) and s.mask.dtype == bool
        assert s.token == int(np.argmax(iou[1:]) + 1) and s.iou_prediction == pytest.approx(float(iou[s.token]))
        ref = sam_io.postprocess(s.logits, emb.resized_hw, emb.frame_hw, 192) > 0
        np.testing.assert_array_equal(s.mask, ref)
    # mask input: feeding the previous logits back changes the result
    low3, _ = model.decode(emb, prompts[:1], mask_inputs=[low1[0, segs[0].token]])
    assert not np.allclose(low3, low1[:1])


def test_export_opset18_image_size_and_sam_rule(tmp_path, tiny_config_path):
    out = str(tmp_path / "m")
    rc = export.main(["--random-init", "--config", tiny_config_path, "--image-size", "160", "--opset", "18",
                      "--mask-selection", "sam", "--plain-onnx", "--name", "t160", "--out", out])
    assert rc == 0
    meta = _meta(out)
    assert meta["image_size"] == 160 and meta["embedding"]["height"] == 10 and meta["low_res_mask_size"] == 40
    assert meta["opset"] == 18 and meta["mask_selection"] == "sam"
    for f in ("encoder.onnx", "decoder.onnx", "decoder_image.onnx", "decoder_prompt.onnx"):
        m = onnx.load(os.path.join(out, f))
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [18]
    # --plain-onnx: every graph keeps the default domain only
    for f in ("encoder.onnx", "decoder.onnx", "decoder_image.onnx", "decoder_prompt.onnx"):
        assert [o.domain for o in onnx.load(os.path.join(out, f)).opset_import] == [""], f


def test_image_size_must_be_a_multiple_of_16(tmp_path):
    with pytest.raises(ValueError):
        export.main(["--random-init", "--image-size", "1000", "--name", "x", "--out", str(tmp_path / "x")])


def test_checkpoint_export(tmp_path, tiny_config_path):
    import torch

    from tinysam.model import TinySam

    torch.manual_seed(1)
    model = TinySam(TinySamConfig.load(tiny_config_path))
    torch.save({"model": model.state_dict()}, tmp_path / "ck.pth")
    out = str(tmp_path / "m")
    assert export.main(["--checkpoint", str(tmp_path / "ck.pth"), "--config", tiny_config_path, "--name", "ck",
                        "--out", out]) == 0
    assert _meta(out)["source_checkpoint"] == "ck.pth"


def test_verification_fails_loudly(tiny_model_dir, tiny_config_path):
    """A graph that does not match its weights is caught."""
    model, _ = exporting.build_model(None, TinySamConfig.load(tiny_config_path), seed=4)  # other weights
    diffs = exporting.verify_fp32(model, tiny_model_dir)
    assert exporting.check_fp32(diffs)
    model, _ = exporting.build_model(None, TinySamConfig.load(tiny_config_path), seed=3)
    assert not exporting.check_fp32(exporting.verify_fp32(model, tiny_model_dir))


def test_help():
    out = subprocess.run([sys.executable, os.path.join(TOOLS, "export.py"), "--help"], capture_output=True,
                         text=True, cwd=REPO, check=True).stdout
    for opt in ("--checkpoint", "--random-init", "--config", "--image-size", "--opset", "--precision",
                "--calibration-images", "--check-int8", "--mask-selection", "--plain-onnx", "--name", "--seed", "--out"):
        assert opt in out


def _int8_weight_range(model: onnx.ModelProto) -> int:
    """The largest |value| of the graph's int8 weights. 7-bit ones (at most
    64) keep every pair of u8 x s8 products inside 16 bits, where CPUs
    without VNNI saturate."""
    weights = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and t.dims]
    assert weights
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


def test_int8_dynamic(tmp_path, tiny_config_path, image_dir, capsys):
    out = str(tmp_path / "int8")
    rc = export.main(["--random-init", "--config", tiny_config_path, "--precision", "int8", "--check-int8",
                      image_dir, "--name", "tiny-int8", "--seed", "3", "--out", out])
    text = capsys.readouterr().out
    assert rc == 0, text
    meta = _meta(out)
    assert meta["precision"] == "int8" and meta["verification"]["reference"] == "fp32-onnx"
    assert meta["quantization"]["encoder"].startswith("dynamic") and meta["quantization"]["reduce_range"] is True
    assert meta["verification"]["mask_iou_mean"] >= exporting.INT8_TOLERANCE["mask_iou_mean"]
    assert "max abs diff: embeddings" in text and "point_mask_iou_mean" in text
    enc = onnx.load(os.path.join(out, "encoder.onnx"))
    assert any(n.op_type == "MatMulInteger" for n in enc.graph.node) and _int8_weight_range(enc) <= 64
    # only the opsets it uses: ONNX and, for the fused GELUs, com.microsoft
    assert sorted(o.domain for o in enc.opset_import) == ["", "com.microsoft"]
    # the decoder stays FP32, split decoder included
    assert meta["split_decoder"]["prompt"] == "decoder_prompt.onnx"
    assert meta["verification"]["split_decoder"]["low_res_masks"] <= exporting.SPLIT_TOLERANCE
    for f in ("decoder.onnx", "decoder_image.onnx", "decoder_prompt.onnx"):
        graph = onnx.load(os.path.join(out, f)).graph
        assert not any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in graph.node), f


def test_compare_models_identical(tiny_model_dir, image_dir, capsys):
    import compare_models

    assert compare_models.main(["--reference", tiny_model_dir, "--candidate", tiny_model_dir, "--images", image_dir,
                                "--threads", "1"]) == 0
    text = capsys.readouterr().out
    r = json.loads(text[text.index("\n{") + 1:])
    assert r["images"] == 4 and r["prompts_per_image"] == 26
    assert r["point_mask_iou_mean"] == 1.0 and r["box_mask_iou_mean"] == 1.0
    assert r["iou_prediction_abs_diff_max"] == 0.0 and r["embeddings_rel_rms_mean"] == 0.0


def test_int8_static(tmp_path, tiny_config_path, image_dir):
    out = str(tmp_path / "int8s")
    rc = export.main(["--random-init", "--config", tiny_config_path, "--precision", "int8", "--calibration-images",
                      image_dir, "--name", "tiny-int8s", "--seed", "3", "--out", out])
    assert rc == 0
    meta = _meta(out)
    assert meta["quantization"]["encoder"].startswith("static") and meta["quantization"]["reduce_range"] is True
    enc = onnx.load(os.path.join(out, "encoder.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in enc.graph.node) > 10
    assert _int8_weight_range(enc) <= 64
    # ONNX plus the fused GELUs' com.microsoft domain (exporting.fuse_encoder)
    assert sorted(o.domain for o in enc.opset_import) == ["", "com.microsoft"] and enc.ir_version == 8
    # and the element-side reference runs it
    segs = OnnxTinySam(out, threads=1).segment(exporting.load_rgb(exporting.list_images(image_dir)[0]),
                                               [Prompt(box=(20, 20, 200, 150))])
    assert segs[0].mask.shape == (240, 320)


@pytest.mark.fullsize
def test_full_size_fp32(tmp_path):
    t0 = time.time()
    out = str(tmp_path / "full")
    assert export.main(["--random-init", "--name", "tinysam-random", "--out", out]) == 0
    meta = _meta(out)
    assert meta["image_size"] == 1024 and meta["embedding"] == {"channels": 256, "height": 64, "width": 64}
    assert meta["low_res_mask_size"] == 256
    v = meta["verification"]
    print(f"full-size FP32 export + verification {time.time() - t0:.0f}s: embeddings {v['embeddings']:.3g}, "
          f"iou_predictions {v['iou_predictions']:.3g}, low_res_masks {v['low_res_masks']:.3g}")
    assert v["low_res_masks"] <= 1e-3 and v["iou_predictions"] <= 1e-3 and v["embeddings"] <= 1e-3


@pytest.mark.fullsize
def test_full_size_int8_dynamic(tmp_path):
    t0 = time.time()
    out = str(tmp_path / "full-int8")
    assert export.main(["--random-init", "--precision", "int8", "--name", "tinysam-random-int8", "--out", out]) == 0
    v = _meta(out)["verification"]
    print(f"full-size INT8 export + verification {time.time() - t0:.0f}s: mask IoU vs FP32 {v['mask_iou_mean']:.4f}, "
          f"embeddings relative RMS {v['embeddings_rel_rms']:.3g}, iou_predictions {v['iou_predictions']:.3g}")
