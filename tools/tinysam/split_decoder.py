"""The mask decoder split into an image-side part and a per-prompt part.

The plain decoder recomputes, for every prompt, work that depends only on the
image: adding the no-mask dense embedding, flattening the embedding and its
positional encoding, and the first block's image-side projections (keys and
values of the token->image attention, queries of the image->token attention).
Exported as one graph it also copies the embedding once per prompt.

`ImageSide` runs once per frame; `PromptSide` runs per prompt batch and
broadcasts the image-side tensors instead of copying them. Together they
compute what `MaskDecoder` computes. A mask input changes the image tokens of
its prompt, so a batch holding one (`has_mask_input` > 0 anywhere) takes a
second branch that redoes the image-side work per prompt, as the plain
decoder does; batches without (everything mode's case) never pay for it.
The exporter writes the two parts as decoder_image.onnx and
decoder_prompt.onnx (docs/model-format.md).

The prompt side also takes `mask_iou_floor` (one value per output mask) and
upscales masks only for the prompts with some output whose predicted IoU is
above its floor: everything mode drops candidates that fail `pred-iou-thresh`
anyway, and the upscaling and hypernetwork are about a quarter of a prompt's
arithmetic. It returns those prompts' indices as `mask_rows`; a floor of
-inf keeps every prompt.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .model import TinySam

IMAGE_SIDE_OUTPUTS = ("image_tokens", "image_pe", "t2i_keys", "t2i_values", "i2t_queries")


class ImageSide(nn.Module):
    def __init__(self, model: TinySam):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings):
        pe_layer = self.model.prompt_encoder.pe_layer
        h, w = image_embeddings.shape[-2:]
        dense = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        tokens = (image_embeddings + dense).flatten(2).transpose(1, 2)
        pe = pe_layer.dense(h, w).unsqueeze(0).flatten(2).transpose(1, 2)
        first = self.model.mask_decoder.transformer.layers[0]
        keyed = tokens + pe
        t2i = first.cross_attn_token_to_image
        i2t = first.cross_attn_image_to_token
        return tokens, pe, t2i.k_proj(keyed), t2i.v_proj(tokens), i2t.q_proj(keyed)


def _heads(x, num_heads):
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def _attend(q, k, v, num_heads):
    """Attention on already-projected tensors; batch dims broadcast (1 vs B)."""
    q, k, v = _heads(q, num_heads), _heads(k, num_heads), _heads(v, num_heads)
    attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    out = attn.softmax(dim=-1) @ v
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)


class PromptSide(nn.Module):
    def __init__(self, model: TinySam):
        super().__init__()
        self.model = model

    def forward(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, point_coords, point_labels,
                mask_input=None, has_mask_input=None, mask_iou_floor=None):
        """(low_res_masks, iou_predictions) for every prompt; with
        `mask_iou_floor` (M,), (low_res_masks of the kept prompts,
        iou_predictions of all, mask_rows: the kept prompts' indices)."""
        image = (image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries)
        if mask_input is None:
            queries, keys = self._transform(*image, point_coords, point_labels)
        else:
            # torch.cond exports as an ONNX If: only batches with a mask input pay for it
            queries, keys = torch.cond(has_mask_input.max() > 0, self._transform_with_masks,
                                       self._transform_without_masks,
                                       (*image, point_coords, point_labels, mask_input, has_mask_input))
        dec = self.model.mask_decoder
        iou_predictions = dec.predict_iou(queries)
        if mask_iou_floor is None:
            return dec.predict_masks(queries, keys), iou_predictions
        rows = torch.nonzero((iou_predictions > mask_iou_floor).any(dim=1)).reshape(-1)
        masks = dec.predict_masks(queries.index_select(0, rows), keys.index_select(0, rows))
        return masks, iou_predictions, rows

    def _transform_without_masks(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, point_coords,
                                 point_labels, mask_input, has_mask_input):
        return self._transform(image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, point_coords,
                               point_labels)

    def _transform_with_masks(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, point_coords,
                           point_labels, mask_input, has_mask_input):
        """Per-prompt image tokens: image_tokens already hold the no-mask
        embedding, so add (mask embedding - no-mask embedding) where a prompt
        has a mask, and redo the first block's image-side projections."""
        pe = self.model.prompt_encoder
        first = self.model.mask_decoder.transformer.layers[0]
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        delta = (has * (pe.mask_downscaling(mask_input) - no_mask)).flatten(2).transpose(1, 2)
        tokens = image_tokens + delta
        keyed = tokens + image_pe
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        return self._transform(tokens, image_pe, t2i.k_proj(keyed), t2i.v_proj(tokens), i2t.q_proj(keyed),
                               point_coords, point_labels)

    def _transform(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, point_coords, point_labels):
        model = self.model
        dec = model.mask_decoder
        tr = dec.transformer
        sparse = model.prompt_encoder.embed_points(point_coords, point_labels, model.cfg.image_size)
        b = sparse.shape[0]
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        point_tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)

        # first block, with the image-side projections precomputed
        first = tr.layers[0]
        queries = first.norm1(first.self_attn(point_tokens, point_tokens, point_tokens))
        t2i = first.cross_attn_token_to_image
        q = t2i.q_proj(queries + point_tokens)
        queries = first.norm2(queries + t2i.out_proj(_attend(q, t2i_keys, t2i_values, t2i.num_heads)))
        queries = first.norm3(queries + first.mlp(queries))
        i2t = first.cross_attn_image_to_token
        q_tokens = queries + point_tokens
        k = i2t.k_proj(q_tokens)
        v = i2t.v_proj(queries)
        keys = first.norm4(image_tokens + i2t.out_proj(_attend(i2t_queries, k, v, i2t.num_heads)))

        for layer in tr.layers[1:]:
            queries, keys = layer(queries, keys, point_tokens, image_pe)
        q, k = queries + point_tokens, keys + image_pe
        queries = tr.norm_final_attn(queries + tr.final_attn_token_to_image(q, k, keys))
        return queries, keys
