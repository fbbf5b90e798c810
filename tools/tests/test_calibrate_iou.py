"""tools/calibrate_iou.py: the IoU-head fine-tune and the logit scale leave
the masks exactly as they were; the port of the Rust tests' scenes."""

from __future__ import annotations

import numpy as np
import torch

import calibrate_iou as cal
from conftest import TINY_CONFIG
from tinysam.model import TinySam, TinySamConfig


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return TinySam(TinySamConfig.from_dict(TINY_CONFIG)).eval()


def decode(model, emb, coords, labels, mask_input=None):
    b = coords.shape[0]
    low = 4 * model.cfg.embedding_size
    has = torch.zeros(b) if mask_input is None else torch.ones(b)
    if mask_input is None:
        mask_input = torch.zeros(b, 1, low, low)
    with torch.no_grad():
        return model.decode(emb.expand(b, -1, -1, -1), coords, labels, mask_input, has)


def prompts(size, seed=1):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(5, 3, 2, generator=g) * size
    labels = torch.tensor([[1.0, 0.0, -1.0], [1.0, 1.0, -1.0], [2.0, 3.0, -1.0], [1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    return coords, labels


def test_head_only_and_logit_scale_keep_the_masks():
    model = tiny_model()
    size = model.cfg.image_size
    emb = torch.randn(1, model.cfg.prompt_embed_dim, model.cfg.embedding_size, model.cfg.embedding_size)
    coords, labels = prompts(size)
    old_low, old_iou = decode(model, emb, coords, labels)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    # a changed IoU head: only the IoU predictions change, and the cached
    # token it reads is what decode_with_token returns
    head = model.mask_decoder.iou_prediction_head
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn_like(p))
    new = cal.calibrated_state(state, head)
    changed = [k for k in state if not torch.equal(state[k], new[k])]
    assert changed and all(k.startswith(cal.HEAD) for k in changed)
    model.load_state_dict(new)
    low, iou = decode(model, emb, coords, labels)
    assert torch.equal(low, old_low) and not torch.equal(iou, old_iou)
    low2, iou2, token = cal.decode_with_token(model, emb, coords, labels)
    assert torch.allclose(low2, low, atol=1e-5) and torch.allclose(head(token), iou2, atol=1e-6)

    # the logit scale: logits exactly x2, the same masks, the same IoUs; the
    # doubled logits fed back as mask input give what the old ones gave
    model.load_state_dict(cal.scaled_logits_state(new, 2, model.mask_decoder.num_mask_tokens))
    low_x2, iou_x2 = decode(model, emb, coords, labels)
    assert torch.equal(low_x2, 2 * low) and torch.equal(low_x2 > 0, old_low > 0) and torch.equal(iou_x2, iou)
    model.load_state_dict(new)
    refined, refined_iou = decode(model, emb, coords, labels, low[:, 1:2])
    model.load_state_dict(cal.scaled_logits_state(new, 2, model.mask_decoder.num_mask_tokens))
    refined_x2, refined_iou_x2 = decode(model, emb, coords, labels, low_x2[:, 1:2])
    assert torch.equal(refined_x2, 2 * refined) and torch.equal(refined_iou_x2, refined_iou)


def test_stability_at_a_logit_scale():
    rng = np.random.default_rng(0)
    low = rng.normal(0, 3, size=(6, 4, 16, 16)).astype(np.float32)
    for k in cal.LOGIT_SCALES:
        assert np.array_equal(cal.low_res_stability(low * k, (12, 16)), cal.low_res_stability(low, (12, 16), 1.0 / k))


def test_held_out_scenes_are_the_rust_tests():
    scenes = cal.test_scenes()
    assert [m.shape[0] for _, m in scenes] == [2 + i % 7 for i in range(12)]  # every object placed: 55
    assert [rgb.shape[:2] for rgb, _ in scenes[:4]] == [(240, 320), (256, 256), (320, 240), (225, 400)]
    # disjoint visible masks, painted in distinct colours
    for rgb, masks in scenes:
        assert masks.sum(axis=0).max() == 1
        colours = {tuple(rgb[m][0]) for m in masks}
        assert len(colours) == len(masks)
    # training renders never reuse a held-out seed
    assert cal.TRAIN_RENDER_SEED > max(cal.TEST_RENDER_SEEDS)


def test_point_grid_matches_the_element():
    g = cal.point_grid(4, 320, 240)
    assert g.shape == (16, 2) and tuple(g[0]) == (40.0, 30.0) and tuple(g[5]) == (120.0, 90.0)


def test_point_weight_changes_the_fit():
    rng = np.random.default_rng(0)
    n = 64
    kind = np.array(["grid"] * 32 + ["point"] * 32)
    data = {"tokens": rng.normal(size=(n, 64)).astype(np.float32),
            "true": rng.uniform(size=(n, 4)).astype(np.float32), "kind": kind}
    heads = []
    for w in (1.0, 16.0):
        head = tiny_model().mask_decoder.iou_prediction_head
        head.load_state_dict(tiny_model().mask_decoder.iou_prediction_head.state_dict())
        cal.fine_tune(head, data, data, 2, 1e-3, 16, 0, 0.5, log=None, point_weight=w)
        heads.append(cal.head_predict(head, data["tokens"]))
    assert not np.allclose(heads[0], heads[1])


def test_keep_order_keeps_every_prompts_choice():
    """OrderKeepingHead, folded back into the head: each prompt's multimask
    outputs keep their order (prompted mode's choice), their levels move."""
    rng = np.random.default_rng(1)
    n = 96
    data = {"tokens": rng.normal(size=(n, 64)).astype(np.float32),
            "true": rng.uniform(size=(n, 4)).astype(np.float32), "kind": np.array(["grid"] * n)}
    head = tiny_model().mask_decoder.iou_prediction_head
    before = cal.head_predict(head, data["tokens"])
    trained = cal.OrderKeepingHead(head)
    cal.fine_tune(trained, data, data, 3, 1e-2, 16, 0, 1.0, log=None)
    expected = cal.head_predict(trained, data["tokens"])
    folded = cal.head_predict(trained.fold(), data["tokens"])
    np.testing.assert_allclose(folded, expected, atol=1e-5)
    assert not np.allclose(folded, before, atol=1e-3)
    assert (np.argsort(folded[:, 1:], axis=1) == np.argsort(before[:, 1:], axis=1)).all()


def test_keep_box_choice_holds_the_input_heads_choice():
    rng = np.random.default_rng(2)
    n = 64
    head = tiny_model().mask_decoder.iou_prediction_head
    tokens = rng.normal(size=(n, 64)).astype(np.float32)
    data = {"tokens": tokens, "true": rng.uniform(size=(n, 4)).astype(np.float32),
            "kind": np.array(["box"] * n), "pred": cal.head_predict(head, tokens)}
    kept = []
    for weight in (0.0, 50.0):
        h = tiny_model().mask_decoder.iou_prediction_head
        h.load_state_dict(head.state_dict())
        cal.fine_tune(h, data, data, 20, 3e-3, 16, 0, 1.0, log=None, keep_box_choice=weight)
        kept.append((np.argmax(cal.head_predict(h, tokens)[:, 1:], axis=1)
                     == np.argmax(data["pred"][:, 1:], axis=1)).mean())
    assert kept[1] > kept[0] and kept[1] >= 0.95


def test_large_training_scenes_come_at_the_evaluation_sizes_and_join_the_others():
    scenes = list(cal.large_training_scenes(3, 2)())
    assert [rgb.shape[:2] for rgb, _ in scenes] == [(h, w) for w, h in cal.EVALUATION_SIZES[:2]]
    assert all(m.shape[1:] == rgb.shape[:2] and m.any(axis=(1, 2)).all() for rgb, m in scenes)
    a = {"tokens": np.zeros((3, 2)), "scene": np.array([0, 0, 1])}
    b = {"tokens": np.ones((2, 2)), "scene": np.array([0, 1])}
    joined = cal.concatenated(a, b)
    assert joined["scene"].tolist() == [0, 0, 1, 2, 3] and joined["tokens"][3:].tolist() == [[1, 1], [1, 1]]
