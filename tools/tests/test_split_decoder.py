"""The image-side / per-prompt decoder split computes what the plain decoder does."""

import torch

from tinysam.model import TinySam, TinySamConfig
from tinysam import split_decoder
from tinysam.split_decoder import ImageSide, PromptSide


def _small_model(seed: int) -> TinySam:
    """A small random TinySam with a 16x16 embedding, in eval mode."""
    torch.manual_seed(seed)
    cfg = TinySamConfig(image_size=256, embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1],
                        num_heads=[1, 2, 3, 4], window_sizes=[8, 8, 16, 8], num_classes=0,
                        prompt_embed_dim=64, decoder_heads=4, decoder_mlp_dim=128, iou_head_hidden_dim=64)
    return TinySam(cfg).eval()


def test_split_decoder_matches_plain_decoder():
    model = _small_model(seed=0)
    emb = torch.randn(1, 64, 16, 16)
    coords = torch.rand(4, 3, 2) * 256
    labels = torch.tensor([[1.0, 0.0, -1.0], [1.0, 1.0, -1.0], [2.0, 3.0, 1.0], [0.0, 1.0, -1.0]])
    with torch.no_grad():
        plain_masks, plain_iou = model.decode(emb.expand(4, -1, -1, -1), coords, labels,
                                              torch.zeros(4, 1, 64, 64), torch.zeros(4))
        split_masks, split_iou = PromptSide(model)(*ImageSide(model)(emb), coords, labels)
    assert plain_masks.std() > 0
    assert torch.allclose(plain_masks, split_masks, atol=1e-5)
    assert torch.allclose(plain_iou, split_iou, atol=1e-5)


def test_split_decoder_with_mask_input():
    """A batch with a mask input takes the per-prompt branch; prompts without one in it stay exact."""
    model = _small_model(seed=1)
    emb = torch.randn(1, 64, 16, 16)
    coords = torch.rand(3, 2, 2) * 256
    labels = torch.tensor([[1.0, -1.0], [1.0, 0.0], [2.0, 3.0]])
    masks = torch.randn(3, 1, 64, 64) * 5
    has = torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():
        plain_masks, plain_iou = model.decode(emb.expand(3, -1, -1, -1), coords, labels, masks, has)
        split_masks, split_iou = PromptSide(model)(*ImageSide(model)(emb), coords, labels, masks, has)
        no_mask, _ = PromptSide(model)(*ImageSide(model)(emb), coords, labels, masks, torch.zeros(3))
    assert not torch.allclose(plain_masks, no_mask, atol=1e-3)
    assert torch.allclose(plain_masks, split_masks, atol=1e-4)
    assert torch.allclose(plain_iou, split_iou, atol=1e-5)


def test_split_decoder_upscales_in_chunks_of_rows_exactly(monkeypatch):
    """Uneven chunks (3 rows of the 16, the last of 1) give the plain masks."""
    model = _small_model(seed=2)
    emb = torch.randn(1, 64, 16, 16)
    coords = torch.rand(2, 2, 2) * 256
    labels = torch.tensor([[1.0, -1.0], [2.0, 3.0]])
    with torch.no_grad():
        plain_masks, _ = model.decode(emb.expand(2, -1, -1, -1), coords, labels,
                                      torch.zeros(2, 1, 64, 64), torch.zeros(2))
        whole, _ = PromptSide(model)(*ImageSide(model)(emb), coords, labels)
        monkeypatch.setattr(split_decoder, "UPSCALE_TOKENS_PER_CHUNK", 48)
        chunked, _ = PromptSide(model)(*ImageSide(model)(emb), coords, labels)
    assert plain_masks.std() > 0
    assert torch.allclose(plain_masks, chunked, atol=1e-5)
    assert torch.allclose(whole, chunked, atol=1e-6)
