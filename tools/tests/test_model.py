"""The PyTorch network: state-dict layout of the official checkpoints,
parameter counts, and that it runs at several input sizes.

The expected key list is written out from the published description of the
network (TinyViT-5M encoder with its SAM neck, SAM's prompt encoder and mask
decoder), not read back from our own modules, so a naming slip in the model
code fails here instead of at the first official checkpoint.
"""

from __future__ import annotations

import pytest
import torch

from tinysam.model import TinySam, TinySamConfig, load_checkpoint

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv_bn(prefix, out_ch, in_per_group, k):
    """Conv2d_BN: bias-free conv `c` followed by BatchNorm2d `bn`."""
    keys = {f"{prefix}.c.weight": (out_ch, in_per_group, k, k)}
    for name in BN:
        keys[f"{prefix}.bn.{name}"] = () if name == "num_batches_tracked" else (out_ch,)
    return keys


def _linear(prefix, out_f, in_f, bias=True):
    keys = {f"{prefix}.weight": (out_f, in_f)}
    if bias:
        keys[f"{prefix}.bias"] = (out_f,)
    return keys


def _norm(prefix, dim):
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def expected_state_dict_shapes():
    """Key -> shape of tinysam_42.3.pth / mobile_sam.pt, from the architecture:

    encoder  TinyViT-5M: dims 64/128/160/320, depths 2/2/6/2, heads 2/4/5/10,
             windows 7/7/14/7, MBConv expansion 4, MLP ratio 4, local conv 3,
             1000-class head (unused by SAM, kept in the checkpoints), neck
             1x1 conv 320->256, LayerNorm2d, 3x3 conv, LayerNorm2d.
    prompt   random-Fourier PE (2 x 128 Gaussian matrix), 4 point embeddings,
             not-a-point, mask downscaler 1->4->16->256 channels, no-mask.
    decoder  two-way transformer depth 2, dim 256, 8 heads, MLP 2048,
             cross-attention at half width; IoU token + 4 mask tokens; 2x2
             transposed-conv upscaling 256->64->32; 4 hypernetwork MLPs and an
             IoU head, 3 layers each.
    """
    k = {}
    dims, depths, windows, heads = (64, 128, 160, 320), (2, 2, 6, 2), (7, 7, 14, 7), (2, 4, 5, 10)
    e = "image_encoder"
    # patch embedding: two stride-2 3x3 Conv2d_BN (Sequential indices 0 and 2; 1 is GELU)
    k.update(_conv_bn(f"{e}.patch_embed.seq.0", dims[0] // 2, 3, 3))
    k.update(_conv_bn(f"{e}.patch_embed.seq.2", dims[0], dims[0] // 2, 3))
    for i in range(4):
        d = dims[i]
        for b in range(depths[i]):
            p = f"{e}.layers.{i}.blocks.{b}"
            if i == 0:  # MBConv: 1x1 expand, 3x3 depthwise, 1x1 project
                hidden = 4 * d
                k.update(_conv_bn(f"{p}.conv1", hidden, d, 1))
                k.update(_conv_bn(f"{p}.conv2", hidden, 1, 3))
                k.update(_conv_bn(f"{p}.conv3", d, hidden, 1))
            else:  # TinyViT block: window attention, depthwise local conv, MLP
                k[f"{p}.attn.attention_biases"] = (heads[i], windows[i] * windows[i])
                k.update(_norm(f"{p}.attn.norm", d))
                k.update(_linear(f"{p}.attn.qkv", 3 * d, d))
                k.update(_linear(f"{p}.attn.proj", d, d))
                k.update(_norm(f"{p}.mlp.norm", d))
                k.update(_linear(f"{p}.mlp.fc1", 4 * d, d))
                k.update(_linear(f"{p}.mlp.fc2", d, 4 * d))
                k.update(_conv_bn(f"{p}.local_conv", d, 1, 3))
        if i < 3:  # patch merging: 1x1, depthwise 3x3, 1x1
            out = dims[i + 1]
            p = f"{e}.layers.{i}.downsample"
            k.update(_conv_bn(f"{p}.conv1", out, d, 1))
            k.update(_conv_bn(f"{p}.conv2", out, 1, 3))
            k.update(_conv_bn(f"{p}.conv3", out, out, 1))
    k.update(_norm(f"{e}.norm_head", dims[3]))
    k.update(_linear(f"{e}.head", 1000, dims[3]))
    k[f"{e}.neck.0.weight"] = (256, dims[3], 1, 1)
    k.update(_norm(f"{e}.neck.1", 256))
    k[f"{e}.neck.2.weight"] = (256, 256, 3, 3)
    k.update(_norm(f"{e}.neck.3", 256))

    p = "prompt_encoder"
    k[f"{p}.pe_layer.positional_encoding_gaussian_matrix"] = (2, 128)
    for i in range(4):
        k[f"{p}.point_embeddings.{i}.weight"] = (1, 256)
    k[f"{p}.not_a_point_embed.weight"] = (1, 256)
    # mask downscaling: conv 1->4 (k2 s2), LN2d, GELU, conv 4->16 (k2 s2), LN2d, GELU, conv 16->256 (k1)
    k.update({f"{p}.mask_downscaling.0.weight": (4, 1, 2, 2), f"{p}.mask_downscaling.0.bias": (4,)})
    k.update(_norm(f"{p}.mask_downscaling.1", 4))
    k.update({f"{p}.mask_downscaling.3.weight": (16, 4, 2, 2), f"{p}.mask_downscaling.3.bias": (16,)})
    k.update(_norm(f"{p}.mask_downscaling.4", 16))
    k.update({f"{p}.mask_downscaling.6.weight": (256, 16, 1, 1), f"{p}.mask_downscaling.6.bias": (256,)})
    k[f"{p}.no_mask_embed.weight"] = (1, 256)

    m = "mask_decoder"

    def attention(prefix, internal):
        for proj in ("q_proj", "k_proj", "v_proj"):
            k.update(_linear(f"{prefix}.{proj}", internal, 256))
        k.update(_linear(f"{prefix}.out_proj", 256, internal))

    for layer in range(2):
        t = f"{m}.transformer.layers.{layer}"
        attention(f"{t}.self_attn", 256)
        attention(f"{t}.cross_attn_token_to_image", 128)
        attention(f"{t}.cross_attn_image_to_token", 128)
        k.update(_linear(f"{t}.mlp.lin1", 2048, 256))
        k.update(_linear(f"{t}.mlp.lin2", 256, 2048))
        for n in range(1, 5):
            k.update(_norm(f"{t}.norm{n}", 256))
    attention(f"{m}.transformer.final_attn_token_to_image", 128)
    k.update(_norm(f"{m}.transformer.norm_final_attn", 256))
    k[f"{m}.iou_token.weight"] = (1, 256)
    k[f"{m}.mask_tokens.weight"] = (4, 256)
    # ConvTranspose2d weights are (in, out, kh, kw)
    k.update({f"{m}.output_upscaling.0.weight": (256, 64, 2, 2), f"{m}.output_upscaling.0.bias": (64,)})
    k.update(_norm(f"{m}.output_upscaling.1", 64))
    k.update({f"{m}.output_upscaling.3.weight": (64, 32, 2, 2), f"{m}.output_upscaling.3.bias": (32,)})
    for i in range(4):
        h = f"{m}.output_hypernetworks_mlps.{i}.layers"
        k.update(_linear(f"{h}.0", 256, 256))
        k.update(_linear(f"{h}.1", 256, 256))
        k.update(_linear(f"{h}.2", 32, 256))
    h = f"{m}.iou_prediction_head.layers"
    k.update(_linear(f"{h}.0", 256, 256))
    k.update(_linear(f"{h}.1", 256, 256))
    k.update(_linear(f"{h}.2", 4, 256))
    return k


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return TinySam(TinySamConfig()).eval()


def test_state_dict_matches_the_published_layout(full_model):
    expected = expected_state_dict_shapes()
    actual = {name: tuple(t.shape) for name, t in full_model.state_dict().items()}
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    assert not missing and not unexpected, f"missing {missing[:10]}, unexpected {unexpected[:10]}"
    wrong = {n: (actual[n], s) for n, s in expected.items() if actual[n] != tuple(s)}
    assert not wrong, f"shape mismatches (actual, expected): {wrong}"
    assert len(actual) == 439


def test_parameter_counts(full_model):
    enc = sum(p.numel() for n, p in full_model.image_encoder.named_parameters()
              if not n.startswith(("head.", "norm_head.")))
    dec = sum(p.numel() for p in full_model.prompt_encoder.parameters()) + \
        sum(p.numel() for p in full_model.mask_decoder.parameters())
    # published: encoder 5.75 M, prompt encoder + decoder 4.06 M (rounded; we
    # count 5,743,892 without the classification head, which SAM never runs)
    assert abs(enc - 5.75e6) <= 0.01e6, enc
    assert abs(dec - 4.06e6) <= 0.01e6, dec


def test_checkpoint_wrappers_load_strictly(tmp_path, full_model):
    state = full_model.state_dict()
    torch.save(state, tmp_path / "plain.pth")
    torch.save({"model": state}, tmp_path / "wrapped.pth")
    for name in ("plain.pth", "wrapped.pth"):
        loaded = load_checkpoint(tmp_path / name, TinySamConfig())
        assert torch.equal(loaded.mask_decoder.iou_token.weight, full_model.mask_decoder.iou_token.weight)
    bad = dict(state)
    bad.pop("mask_decoder.iou_token.weight")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError):
        load_checkpoint(tmp_path / "bad.pth", TinySamConfig())


@pytest.mark.parametrize("size", [1024, 512])
def test_network_runs(full_model, size):
    full_model.cfg.image_size = size
    try:
        with torch.no_grad():
            emb = full_model.encode(torch.randn(1, 3, size, size))
            assert emb.shape == (1, 256, size // 16, size // 16)
            b, low = 3, size // 4
            coords = torch.rand(b, 3, 2) * size
            labels = torch.tensor([[1.0, 0.0, -1.0], [2.0, 3.0, 1.0], [1.0, -1.0, -1.0]])
            masks, iou = full_model.decode(emb.expand(b, -1, -1, -1), coords, labels, torch.zeros(b, 1, low, low),
                                           torch.tensor([0.0, 1.0, 0.0]))
    finally:
        full_model.cfg.image_size = 1024
    assert masks.shape == (b, 4, low, low) and iou.shape == (b, 4)
    assert torch.isfinite(masks).all() and torch.isfinite(iou).all()
