#!/usr/bin/env python3
"""Train the fixture: a small TinySAM (same architecture, reduced widths) on
synthetic scenes, with SAM's prompt mix (boxes, single and multiple points
with negatives, box + points) and one round of mask-input refinement.

Seeded and deterministic for a given thread count. Writes the state dict and
its configuration to --out; checkpoints along the way so a run can be
inspected (or resumed from) before it ends.

    .venv/bin/python tools/train_fixture.py --out /tmp/fixture --steps 3000

tools/fixture/train.sh reproduces the committed fixture exactly.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tinysam.model import PIXEL_MEAN, PIXEL_STD, TinySam, TinySamConfig  # noqa: E402
from tinysam.prompts import NEGATIVE, PADDING, POSITIVE, Prompt, random_prompt, sample_in  # noqa: E402
from tinysam.scenes import make_scene, object_map  # noqa: E402

FIXTURE_CONFIG = TinySamConfig(
    image_size=256,
    embed_dims=[32, 64, 128, 160],
    depths=[1, 2, 2, 1],
    num_heads=[1, 2, 4, 5],
    window_sizes=[8, 8, 16, 8],
    num_classes=0,
    prompt_embed_dim=128,
    decoder_heads=4,
    decoder_mlp_dim=512,
    iou_head_hidden_dim=128,
)

PROMPT_KINDS = ["box", "point", "points", "box+points"]
PROMPT_WEIGHTS = [0.35, 0.35, 0.15, 0.15]
MAX_OBJECTS = 6


def normalise(image: np.ndarray, size: int) -> torch.Tensor:
    x = (image.astype(np.float32) - np.array(PIXEL_MEAN, np.float32)) / np.array(PIXEL_STD, np.float32)
    out = torch.zeros(3, size, size)
    out[:, : image.shape[0], : image.shape[1]] = torch.from_numpy(x).permute(2, 0, 1)
    return out


def pack(prompts: list[Prompt]):
    """Stack prompts with padding points so they share one decoder call."""
    enc = [p.encode(1.0) for p in prompts]
    n = max(len(c) for c, _ in enc)
    coords = np.zeros((len(enc), n, 2), np.float32)
    labels = np.full((len(enc), n), PADDING, np.float32)
    for i, (c, lab) in enumerate(enc):
        coords[i, : len(c)] = c
        labels[i, : len(lab)] = lab
    return torch.from_numpy(coords), torch.from_numpy(labels)


def make_batch(rng, n_images: int, size: int, loss_res: int, background: float = 0.0, anywhere_points: int = 0):
    """Scenes and prompts for one step. With probability `background` per
    image, the background (what no object covers) is one more object, with
    point prompts: SAM segments such regions too, and everything mode relies
    on it to mark them as explained. `anywhere_points` single points per
    image fall anywhere, as everything mode's grid does (on an object's edge,
    on a thin part, on the background), each with the region under it as its
    object: the IoU head then learns how good the masks of such points are,
    which `pred-iou-thresh` compares."""
    images, img_idx, prompts, gts, gts_full = [], [], [], [], []

    def add(prompt, b, mask, h, w):
        """One prompt of image b, its target mask padded to the input square."""
        padded = np.zeros((size, size), np.float32)
        padded[:h, :w] = mask
        prompts.append(prompt)
        img_idx.append(b)
        gts.append(padded.reshape(loss_res, size // loss_res, loss_res, size // loss_res).mean(axis=(1, 3)))
        gts_full.append(padded)

    for b in range(n_images):
        long_side, short_side = size, int(rng.integers(size // 2, size + 1))
        w, h = (long_side, short_side) if rng.random() < 0.6 else (short_side, long_side)
        scene = make_scene(rng, w, h, n_objects=(2, 8))
        images.append(normalise(scene.image, size))
        order = rng.permutation(len(scene.masks))[:MAX_OBJECTS]
        targets = [(scene.masks[k], PROMPT_KINDS, PROMPT_WEIGHTS) for k in order]
        if background > 0 and rng.random() < background:
            rest = ~np.any(scene.masks, axis=0) if len(scene.masks) else np.ones((h, w), bool)
            if rest.any():
                targets.append((rest, ["point", "points"], [0.7, 0.3]))
        for mask, kinds, weights in targets:
            for kind in rng.choice(kinds, size=2, p=weights):
                add(random_prompt(rng, mask, str(kind)), b, mask, h, w)
        if anywhere_points:
            where = object_map(scene.masks)
            regions = list(scene.masks) + [where < 0]
            for _ in range(anywhere_points):
                x, y = int(rng.integers(w)), int(rng.integers(h))
                add(Prompt([(x + 0.5, y + 0.5)], [POSITIVE]), b, regions[where[y, x]], h, w)  # -1: the background
    return (torch.stack(images), torch.tensor(img_idx), prompts,
            torch.from_numpy(np.stack(gts)), np.stack(gts_full) > 0.5)


def mask_losses(logits, gt, loss_res):
    """Per prompt and output: BCE + dice at loss_res, and the IoU achieved."""
    up = F.interpolate(logits, size=(loss_res, loss_res), mode="bilinear", align_corners=False)
    g = gt[:, None].expand_as(up)
    bce = F.binary_cross_entropy_with_logits(up, g, reduction="none").mean(dim=(2, 3))
    p = torch.sigmoid(up)
    dice = 1 - (2 * (p * g).sum(dim=(2, 3)) + 1) / (p.sum(dim=(2, 3)) + g.sum(dim=(2, 3)) + 1)
    with torch.no_grad():
        pred, true = up > 0, g > 0.5
        inter = (pred & true).sum(dim=(2, 3)).float()
        union = (pred | true).sum(dim=(2, 3)).float()
        iou = inter / union.clamp(min=1)
    return bce + dice, iou


def correction_prompts(rng, prompts, chosen_logits, gts_full, size):
    """SAM's iterative training: add a point in the largest error region."""
    up = F.interpolate(chosen_logits[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    pred = (up > 0).numpy()
    out = []
    for p, pm, gt in zip(prompts, pred, gts_full):
        fn, fp = gt & ~pm, pm & ~gt
        q = Prompt(list(p.points), list(p.labels), p.box)
        region, label = (fn, POSITIVE) if fn.sum() >= fp.sum() else (fp, NEGATIVE)
        pt = sample_in(rng, region)
        if pt is not None:
            q.points.append(pt)
            q.labels.append(label)
        out.append(q)
    return out


def train_mode(model, frozen_encoder: bool):
    """Training mode, except a frozen encoder, whose BatchNorms must keep
    their running statistics."""
    model.train()
    if frozen_encoder:
        model.image_encoder.eval()


def lr_at(step, total, base, warmup=150):
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def quick_eval(model, cfg, n_scenes=48, seed=12345):
    """Box and one-point mIoU on fixed held-out scenes at the model's input
    scale (the full evaluation with frame-size post-processing is evaluate.py)."""
    model.eval()
    rng = np.random.default_rng(seed)
    size, res = cfg.image_size, cfg.image_size
    res_box, res_pt = [], []
    for _ in range(n_scenes):
        w, h = size, int(rng.integers(size // 2, size + 1))
        scene = make_scene(rng, w, h)
        if len(scene.masks) == 0:
            continue
        emb = model.encode(normalise(scene.image, size)[None])
        for kind, acc in (("box", res_box), ("point", res_pt)):
            prompts = [random_prompt(rng, m, kind) for m in scene.masks]
            coords, labels = pack(prompts)
            n = len(prompts)
            logits, iou_pred = model.decode(emb.expand(n, -1, -1, -1), coords, labels,
                                            torch.zeros(n, 1, 4 * cfg.embedding_size, 4 * cfg.embedding_size),
                                            torch.zeros(n))
            best = iou_pred[:, 1:].argmax(dim=1) + 1
            sel = logits[torch.arange(n), best]
            up = F.interpolate(sel[:, None], size=(res, res), mode="bilinear", align_corners=False)[:, 0, :h, :w] > 0
            gt = torch.from_numpy(scene.masks)
            inter = (up & gt).sum(dim=(1, 2)).float()
            union = (up | gt).sum(dim=(1, 2)).float().clamp(min=1)
            acc.extend((inter / union).tolist())
    return float(np.mean(res_box)), float(np.mean(res_pt))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--images-per-step", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--resume", help="checkpoint written by an earlier run")
    ap.add_argument("--init", help="start from these weights (a fixture.pth) with a fresh optimiser, "
                    "e.g. to fine-tune at another --image-size")
    ap.add_argument("--background", type=float, default=0.0,
                    help="probability per scene of also prompting its background (default 0)")
    ap.add_argument("--anywhere-points", type=int, default=0, metavar="K",
                    help="K single points per image anywhere, as everything mode's grid falls (see make_batch)")
    ap.add_argument("--keep-masks", type=float, default=0.0, metavar="W",
                    help="calibrate the IoU predictions only: the encoders, the mask upscaling and the "
                         "hypernetworks are frozen, the decoder transformer's outputs that the masks read are held "
                         "to the --init weights' (mean squared difference, weight W) instead of learning from the "
                         "ground truth, and the IoU predictions learn every output's true IoU")
    ap.add_argument("--image-size", type=int, help="input size S (default: the fixture config's); "
                    "TinyViT's windowed attention makes the weights size-independent")
    ap.add_argument("--stop-at", type=int, help="stop after this step (a checkpoint is written there) "
                    "while keeping the learning-rate schedule of --steps")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = FIXTURE_CONFIG
    if args.image_size:
        cfg = dataclasses.replace(cfg, image_size=args.image_size)
    size = cfg.image_size
    low = 4 * cfg.embedding_size
    loss_res = 2 * low
    model = TinySam(cfg)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "attention_biases" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "attention_biases" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr)
    start = 0
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
    teacher = None
    if args.keep_masks:
        if not args.init:
            ap.error("--keep-masks holds the masks to those of the --init weights: give --init")
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        # only the decoder learns (the IoU token, the transformer, the heads);
        # the optimiser skips parameters that never get a gradient
        model.image_encoder.requires_grad_(False)
        model.prompt_encoder.requires_grad_(False)
        model.mask_decoder.output_upscaling.requires_grad_(False)
        model.mask_decoder.output_hypernetworks_mlps.requires_grad_(False)
    if args.resume:
        ck = torch.load(args.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        rng = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        start = ck["step"]
    os.makedirs(args.out, exist_ok=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"fixture: {n_params / 1e6:.2f} M parameters, input {size}, embedding {cfg.embedding_size}", flush=True)

    train_mode(model, teacher is not None)
    t0 = time.time()
    hist = []
    stop_at = min(args.stop_at or args.steps, args.steps)
    for step in range(start, stop_at):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, warmup=min(150, args.steps // 10))
        images, img_idx, prompts, gt, gt_full = make_batch(rng, args.images_per_step, size, loss_res, args.background,
                                                           args.anywhere_points)
        with torch.set_grad_enabled(teacher is None):
            emb = model.encode(images)
        emb_p = emb[img_idx]
        n = len(prompts)

        def decode_loss(coords, labels, mask_input, has_mask_input):
            """Logits, per-output mask losses and true IoUs, and the loss."""
            if teacher is None:
                logits, iou_pred = model.decode(emb_p, coords, labels, mask_input, has_mask_input)
                per, iou = mask_losses(logits, gt, loss_res)
                mask_loss = per[:, 1:].min(dim=1).values.mean() + per[:, 0].mean()
                iou_loss = F.mse_loss(iou_pred, iou)
                return logits, per, iou, mask_loss + iou_loss, iou_loss
            # The masks are the teacher's, and the student's transformer outputs
            # are held to the teacher's where the masks read them (the mask
            # tokens and the image tokens; the upscaling and hypernetworks are
            # frozen), so its masks stay the teacher's while the IoU token
            # learns the true IoUs.
            with torch.no_grad():
                kept_hs, kept_src = teacher.decode_tokens(emb_p, coords, labels, mask_input, has_mask_input)
                logits = teacher.mask_decoder.predict_masks(kept_hs, kept_src, *emb_p.shape[-2:])
                per, iou = mask_losses(logits, gt, loss_res)
            hs, src = model.decode_tokens(emb_p, coords, labels, mask_input, has_mask_input)
            masks_read = slice(1, 1 + model.mask_decoder.num_mask_tokens)
            drift = F.mse_loss(hs[:, masks_read], kept_hs[:, masks_read]) + F.mse_loss(src, kept_src)
            iou_loss = F.mse_loss(model.mask_decoder.predict_iou(hs), iou)
            return logits, per, iou, args.keep_masks * drift + iou_loss, iou_loss

        coords, labels = pack(prompts)
        logits, per, iou, loss, iou_loss = decode_loss(coords, labels, torch.zeros(n, 1, low, low), torch.zeros(n))
        best = per[:, 1:].argmin(dim=1) + 1

        # refinement round: previous best logits as mask input plus a correction point
        chosen = logits[torch.arange(n), best].detach()
        refined = correction_prompts(rng, prompts, chosen, gt_full, size)
        coords2, labels2 = pack(refined)
        _, _, iou2, loss2, iou_loss2 = decode_loss(coords2, labels2, chosen[:, None], torch.ones(n))
        loss = loss + loss2

        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append((loss.item(), iou[torch.arange(n), best].mean().item(), iou2[:, 0].mean().item(),
                     (iou_loss + iou_loss2).item() / 2))
        if (step + 1) % 25 == 0:
            h = np.mean(hist[-25:], axis=0)
            el = time.time() - t0
            print(f"step {step + 1}/{args.steps} loss {h[0]:.3f} train-iou {h[1]:.3f} refined-iou {h[2]:.3f} "
                  f"iou-mse {h[3]:.4f} prompts {n} {el / (step + 1 - start):.2f}s/step elapsed {el / 60:.1f}min",
                  flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == stop_at:
            box, pt = quick_eval(model, cfg)
            train_mode(model, teacher is not None)
            print(f"eval step {step + 1}: box mIoU {box:.3f} point mIoU {pt:.3f}", flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng,
                        "torch_rng": torch.get_rng_state(), "step": step + 1},
                       os.path.join(args.out, "train_state.pt"))
            info = {"steps": step + 1, "seed": args.seed, "image_size": size,
                    "quick_eval": {"box": box, "point": pt}}
            if args.init:
                info["initial_weights"] = args.init
            if args.background:
                info["background"] = args.background
            if args.anywhere_points:
                info["anywhere_points"] = args.anywhere_points
            if args.keep_masks:
                info["keep_masks"] = args.keep_masks
            save_weights(model, cfg, args.out, info)


def save_weights(model, cfg, out, info):
    torch.save(model.state_dict(), os.path.join(out, "fixture.pth"))
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(cfg.to_json())
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
