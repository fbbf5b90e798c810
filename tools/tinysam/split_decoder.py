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
anyway, and the upscaling and hypernetwork are about half of a prompt's
time. It returns those prompts' indices as `mask_rows`; a floor of
-inf keeps every prompt.

The prompt side computes the same function in another order, to keep the
per-prompt work on the HW image tokens small (ONNX Runtime spends most of
it on passes over (B, HW, C) tensors):
  * the later blocks never project the image tokens: attention with T token
    queries is done through the T-row products q Wk and P keys
    (`_tokens_to_image_tokens`), and the image-side queries through
    keys (Wq^T k) (`PromptSide._transform`); the positional-encoding terms
    come from the image side (`block_offsets`, `final_offsets`);
  * all heads attend in one product, the token side made block-diagonal
    over the heads (`_block_diagonal`), so no image-sized head transposes;
  * the masks are upscaled channels-last (`upscale_masks`): a 2x2 stride-2
    transposed convolution is a MatMul per token, LayerNorm2d a last-axis
    LayerNormalization, and the 2x2 blocks are put in place only on the
    mask logits, which have 4 channels instead of 64 or 32; a few embedding
    rows at a time, so that the upscaled features stay in the caches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .model import TinySam

IMAGE_SIDE_OUTPUTS = ("image_tokens", "image_pe", "t2i_keys", "t2i_values", "i2t_queries", "block_offsets",
                      "final_offsets")


def _later_offsets(model: TinySam, image_pe):
    """What the positional encoding and the biases add to the projections of
    the image tokens after the first block, in the order PromptSide reads
    them: per later block the token->image keys and the image->token
    queries (both projections of tokens + pe), then the final attention's
    keys. They depend on the image size and the weights alone."""
    tr = model.mask_decoder.transformer
    blocks = [torch.cat([layer.cross_attn_token_to_image.k_proj(image_pe),
                         layer.cross_attn_image_to_token.q_proj(image_pe)], dim=-1) for layer in tr.layers[1:]]
    return torch.cat(blocks, dim=-1), tr.final_attn_token_to_image.k_proj(image_pe)


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
        return (tokens, pe, t2i.k_proj(keyed), t2i.v_proj(tokens), i2t.q_proj(keyed),
                *_later_offsets(self.model, pe))


def _block_diagonal(x, num_heads):
    """(B, T, C) -> (B, heads * T, C): row (h, t) holds head h's channels of
    token t and zeros elsewhere, so that one product with all heads'
    channels gives every head's attention at once, with no head transposes
    of the image-sized tensors."""
    b, t, c = x.shape
    eye = torch.eye(num_heads, dtype=x.dtype).reshape(1, num_heads, 1, num_heads, 1)
    return (x.reshape(b, 1, t, num_heads, c // num_heads) * eye).reshape(b, num_heads * t, c)


def _diagonal_blocks(x, num_heads):
    """(B, heads * T, C) -> (B, T, C): the channels of head h from row (h, t)."""
    b, ht, c = x.shape
    t = ht // num_heads
    eye = torch.eye(num_heads, dtype=x.dtype).reshape(1, num_heads, 1, num_heads, 1)
    return (x.reshape(b, num_heads, t, num_heads, c // num_heads) * eye).sum(dim=1).reshape(b, t, c)


def _tokens_to_image(q, k, v, num_heads):
    """Multi-head attention of T token queries (B, T, C) over projected
    image keys and values (B or 1, N, C); (B, T, C)."""
    d = q.shape[-1] // num_heads
    attn = (_block_diagonal(q, num_heads) / math.sqrt(d)) @ k.transpose(1, 2)  # (B, heads T, N)
    return _diagonal_blocks(attn.softmax(dim=-1) @ v, num_heads)


def _tokens_to_image_tokens(q, keys, attn: nn.Module, k_offset):
    """`_tokens_to_image` with the keys `attn.k_proj(keys + pe)` (k_offset is
    `k_proj(pe)`) and values `attn.v_proj(keys)` never computed: q k^T is
    (q Wk) keys^T + q k_offset^T, and as each row of the attention sums to
    one, P v_proj(keys) = (P keys) Wv^T + bv. Products with the N image
    tokens then have T rows instead of N."""
    num_heads = attn.num_heads
    qb = _block_diagonal(q, num_heads) / math.sqrt(q.shape[-1] // num_heads)  # (B, heads T, C)
    scores = (qb @ attn.k_proj.weight) @ keys.transpose(1, 2) + qb @ k_offset.transpose(1, 2)
    out = (scores.softmax(dim=-1) @ keys) @ attn.v_proj.weight.t() + attn.v_proj.bias
    return _diagonal_blocks(out, num_heads)


def _image_to_tokens(scores, v, out_proj, num_heads):
    """`out_proj` of the multi-head attention of N image queries over T
    tokens, from its scores (B, N, heads T) and the projected token values
    (B, T, C); (B, N, dim). The output projection is applied to the values
    (T rows, not N), and its bias too: each head's attention sums to one."""
    b, n, _ = scores.shape
    t = v.shape[1]
    attn = scores.reshape(b, n, num_heads, t).softmax(dim=-1).reshape(b, n, num_heads * t)
    return attn @ (_block_diagonal(v, num_heads) @ out_proj.weight.t() + out_proj.bias / num_heads)


def _scaled_keys(k, num_heads):
    """(B, C, heads T): the block-diagonal token keys, transposed, with the
    attention's 1/sqrt(head dim)."""
    return (_block_diagonal(k, num_heads) / math.sqrt(k.shape[-1] // num_heads)).transpose(1, 2)


def _add_norm_rows(x, residual, norm):
    """norm(x + residual) as (B N, C) rows: the 2-D LayerNormalization keeps
    ONNX Runtime from fusing a broadcast residual into its slower
    SkipLayerNorm."""
    b, n, c = x.shape
    return F.layer_norm((x + residual).reshape(b * n, c), (c,), norm.weight, norm.bias, norm.eps)


def _as_matmul(conv: nn.ConvTranspose2d):
    """A kernel-2, stride-2 ConvTranspose2d as (C_in, 4 * C_out) weights and
    bias, output columns ordered (di, dj, c_out) for block offset (di, dj)."""
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out)
    return weight, conv.bias.repeat(4)


# The upscaling runs over whole embedding rows of about this many image tokens
# at a time. Each token becomes 16 pixels of 32 channels for every prompt, and
# in chunks that work stays in the caches between the products, the LayerNorm
# and the GELUs instead of going through memory: the full-size prompt part took
# 1.12-1.30x less time per prompt at batch 64 in chunks of 512 tokens (8 rows)
# than in one piece, and 1.04-1.11x less in calls of 4 (an AMX Xeon, 2026-12-03).
UPSCALE_TOKENS_PER_CHUNK = 512


def upscale_masks(dec, hs, keys, h, w):
    """Exactly `MaskDecoder.predict_masks(hs, keys, h, w)`, channels-last.

    Token (i, j) of keys becomes the 4x4 block of pixels (4i + 2a + c,
    4j + 2b + d) after the two transposed convolutions, with (a, b) the first
    one's block offset and (c, d) the second's. Tokens are independent here,
    so the rows are upscaled in chunks (UPSCALE_TOKENS_PER_CHUNK) and joined."""
    up1, norm, _, up2, _ = dec.output_upscaling
    for conv in (up1, up2):
        if conv.kernel_size != (2, 2) or conv.stride != (2, 2) or conv.padding != (0, 0):
            raise ValueError("upscale_masks needs kernel-2, stride-2 transposed convolutions")
    b, n, c = keys.shape
    c1, c2 = up1.out_channels, up2.out_channels
    w1, b1 = _as_matmul(up1)
    w2, b2 = _as_matmul(up2)
    mask_out = hs[:, 1 : 1 + dec.num_mask_tokens]
    hyper = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1)
    m = hyper.shape[1]
    chunks = -(-n // UPSCALE_TOKENS_PER_CHUNK)
    rows = -(-h // chunks)  # embedding rows a chunk
    parts = []
    for i0 in range(0, h, rows):
        r = min(rows, h - i0)
        k = keys[:, i0 * w : (i0 + r) * w]
        # 2-D products so that the biases fold into them (Gemm, BiasGelu)
        x = (k.reshape(b * r * w, c) @ w1 + b1).reshape(b * r * w * 4, c1)  # rows (B, i, j, a, b)
        x = F.gelu(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps))
        x = F.gelu(x @ w2 + b2).reshape(b, r * w * 16, c2)  # rows (B, i, j, a, b, c, d)
        parts.append((hyper @ x.transpose(1, 2)).reshape(b * m, r, w, 2, 2, 2, 2))  # (B M, i, j, a, b, c, d)
    masks = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return masks.permute(0, 1, 3, 5, 2, 4, 6).reshape(b, m, 4 * h, 4 * w)


class PromptSide(nn.Module):
    def __init__(self, model: TinySam):
        super().__init__()
        self.model = model

    def forward(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, block_offsets, final_offsets,
                point_coords, point_labels, mask_input=None, has_mask_input=None, mask_iou_floor=None):
        """(low_res_masks, iou_predictions) for every prompt; with
        `mask_iou_floor` (M,), (low_res_masks of the kept prompts,
        iou_predictions of all, mask_rows: the kept prompts' indices)."""
        image = (image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, block_offsets, final_offsets)
        if mask_input is None:
            queries, keys = self._transform_without_masks(*image, point_coords, point_labels, None, None)
        else:
            # torch.cond exports as an ONNX If: only batches with a mask input pay for it
            queries, keys = torch.cond(has_mask_input.max() > 0, self._transform_with_masks,
                                       self._transform_without_masks,
                                       (*image, point_coords, point_labels, mask_input, has_mask_input))
        dec = self.model.mask_decoder
        iou_predictions = dec.predict_iou(queries)
        h, w = self.model.cfg.embedding_size, self.model.cfg.embedding_size
        keys = keys.reshape(queries.shape[0], h * w, keys.shape[-1])
        if mask_iou_floor is None:
            return upscale_masks(dec, queries, keys, h, w), iou_predictions
        rows = torch.nonzero((iou_predictions > mask_iou_floor).any(dim=1)).reshape(-1)
        masks = upscale_masks(dec, queries.index_select(0, rows), keys.index_select(0, rows), h, w)
        return masks, iou_predictions, rows

    def _transform_without_masks(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, block_offsets,
                                 final_offsets, point_coords, point_labels, mask_input, has_mask_input):
        return self._transform(image_tokens, t2i_keys, t2i_values, i2t_queries, block_offsets, final_offsets,
                               point_coords, point_labels)

    def _transform_with_masks(self, image_tokens, image_pe, t2i_keys, t2i_values, i2t_queries, block_offsets,
                              final_offsets, point_coords, point_labels, mask_input, has_mask_input):
        """Per-prompt image tokens: image_tokens already hold the no-mask
        embedding, so add (mask embedding - no-mask embedding) where a prompt
        has a mask, and redo the first block's image-side projections (the
        offsets do not depend on the tokens)."""
        pe = self.model.prompt_encoder
        first = self.model.mask_decoder.transformer.layers[0]
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        delta = (has * (pe.mask_downscaling(mask_input) - no_mask)).flatten(2).transpose(1, 2)
        tokens = image_tokens + delta
        keyed = tokens + image_pe
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        return self._transform(tokens, t2i.k_proj(keyed), t2i.v_proj(tokens), i2t.q_proj(keyed), block_offsets,
                               final_offsets, point_coords, point_labels)

    def _transform(self, image_tokens, t2i_keys, t2i_values, i2t_queries, block_offsets, final_offsets,
                   point_coords, point_labels):
        """The two-way transformer; the positional encoding enters only
        through the image side's precomputed projections and offsets."""
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
        queries = first.norm2(queries + t2i.out_proj(_tokens_to_image(q, t2i_keys, t2i_values, t2i.num_heads)))
        queries = first.norm3(queries + first.mlp(queries))
        i2t = first.cross_attn_image_to_token
        k, v = _scaled_keys(i2t.k_proj(queries + point_tokens), i2t.num_heads), i2t.v_proj(queries)
        rows = _add_norm_rows(_image_to_tokens(i2t_queries @ k, v, i2t.out_proj, i2t.num_heads), image_tokens,
                              first.norm4)

        # later blocks: TwoWayAttentionBlock without projecting the image
        # tokens (keys); block_offsets hold their pe terms (_later_offsets)
        for layer, offsets in zip(tr.layers[1:], block_offsets.chunk(len(tr.layers) - 1, dim=-1)):
            t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            keys = rows.reshape(b, -1, rows.shape[-1])
            k_offset, q_offset = offsets.split([t2i.k_proj.out_features, i2t.q_proj.out_features], dim=-1)
            q = queries + point_tokens
            queries = layer.norm1(queries + layer.self_attn(q, q, queries))
            q = t2i.q_proj(queries + point_tokens)
            queries = layer.norm2(queries + t2i.out_proj(_tokens_to_image_tokens(q, keys, t2i, k_offset)))
            queries = layer.norm3(queries + layer.mlp(queries))
            k, v = _scaled_keys(i2t.k_proj(queries + point_tokens), i2t.num_heads), i2t.v_proj(queries)
            # the image queries (keys + pe) Wq^T + bq, never computed either
            scores = keys @ (i2t.q_proj.weight.t() @ k) + q_offset @ k
            rows = _add_norm_rows(_image_to_tokens(scores, v, i2t.out_proj, i2t.num_heads), keys, layer.norm4)

        keys = rows.reshape(b, -1, rows.shape[-1])
        attn = tr.final_attn_token_to_image
        q = attn.q_proj(queries + point_tokens)
        queries = tr.norm_final_attn(queries + attn.out_proj(_tokens_to_image_tokens(q, keys, attn, final_offsets)))
        # the keys as rows: reshaped inside an ONNX If branch, they would be copied out
        return queries, rows
