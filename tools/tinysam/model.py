"""The whole TinySAM network and its configuration."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from .prompt_decoder import MaskDecoder, PromptEncoder
from .tiny_vit import TinyViT

# SAM's pixel normalisation (RGB, 0..255 scale).
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass
class TinySamConfig:
    """Widths and depths of the network. The defaults are TinySAM / MobileSAM."""

    image_size: int = 1024
    embed_dims: list[int] = field(default_factory=lambda: [64, 128, 160, 320])
    depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    num_heads: list[int] = field(default_factory=lambda: [2, 4, 5, 10])
    window_sizes: list[int] = field(default_factory=lambda: [7, 7, 14, 7])
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    num_classes: int = 1000
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def embedding_size(self) -> int:
        return self.image_size // 16

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "TinySamConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, path) -> "TinySamConfig":
        with open(path) as f:
            return cls.from_dict(json.load(f))


class TinySam(nn.Module):
    def __init__(self, cfg: TinySamConfig):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = TinyViT(
            embed_dims=cfg.embed_dims,
            depths=cfg.depths,
            num_heads=cfg.num_heads,
            window_sizes=cfg.window_sizes,
            mlp_ratio=cfg.mlp_ratio,
            mbconv_expand_ratio=cfg.mbconv_expand_ratio,
            local_conv_size=cfg.local_conv_size,
            num_classes=cfg.num_classes,
            out_dim=cfg.prompt_embed_dim,
        )
        self.prompt_encoder = PromptEncoder(cfg.prompt_embed_dim, cfg.mask_in_chans)
        self.mask_decoder = MaskDecoder(
            dim=cfg.prompt_embed_dim,
            depth=cfg.decoder_depth,
            num_heads=cfg.decoder_heads,
            mlp_dim=cfg.decoder_mlp_dim,
            num_multimask_outputs=cfg.num_multimask_outputs,
            iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
        )

    def encode(self, image):
        """image: (B, 3, S, S) normalised -> (B, C, S/16, S/16)."""
        return self.image_encoder(image)

    def decode(self, embeddings, point_coords, point_labels, mask_input, has_mask_input):
        """One image embedding per prompt (B, C, h, w); coords in the S frame.

        Returns (low_res_masks (B, 4, 4h, 4w), iou_predictions (B, 4)).
        """
        return self.mask_decoder(embeddings, *self._prompt_inputs(embeddings, point_coords, point_labels,
                                                                  mask_input, has_mask_input))

    def decode_tokens(self, embeddings, point_coords, point_labels, mask_input, has_mask_input):
        """decode's transformer outputs (hs, src), before the mask and IoU heads
        (MaskDecoder.transform)."""
        return self.mask_decoder.transform(embeddings, *self._prompt_inputs(embeddings, point_coords, point_labels,
                                                                            mask_input, has_mask_input))

    def _prompt_inputs(self, embeddings, point_coords, point_labels, mask_input, has_mask_input):
        """(image_pe, sparse, dense) as the mask decoder takes them."""
        h, w = embeddings.shape[-2:]
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels, self.cfg.image_size)
        dense = self.prompt_encoder.embed_masks(mask_input, has_mask_input)
        image_pe = self.prompt_encoder.pe_layer.dense(h, w).unsqueeze(0)
        return image_pe, sparse, dense


def load_checkpoint(path, cfg: TinySamConfig | None = None) -> TinySam:
    """Load an official TinySAM / MobileSAM checkpoint (or one of ours) strictly."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model = TinySam(cfg or TinySamConfig())
    model.load_state_dict(state, strict=True)
    return model.eval()
