// SPDX-License-Identifier: Apache-2.0
//! Whether an INT8 model computes what it was verified to compute on this
//! CPU.
//!
//! ONNX Runtime multiplies uint8 activations by int8 weights. With VNNI
//! (`avx512_vnni` or `avx_vnni`) each product is summed in 32 bits. Without
//! it (AVX2, AVX-512 before VNNI) the kernel adds pairs of products with an
//! instruction that saturates at 16 bits: 255 x 127 x 2 overflows, so full
//! 8-bit weights lose large products. Measured on an AVX2 EPYC, full-size
//! encoder, dynamic INT8 against FP32: embeddings relative error 0.70 and mask
//! IoU 0.70 with 8-bit weights, 0.07 and 0.96 with 7-bit ones
//! (`reduce_range`, which the exporter writes since issue #13 and records in
//! `model.json`).

use crate::segment::onnx::model::ModelMetadata;

/// Whether this CPU sums ONNX Runtime's int8 products without saturating.
/// Outside x86-64 the question does not arise: it answers `true`.
pub fn products_exact_on_this_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// What to tell the user when `meta` is an INT8 model with full-range
/// weights and `products_exact` (this CPU's answer) is false; `None` when the
/// model computes here what it was verified to.
pub fn saturation_warning(meta: &ModelMetadata, products_exact: bool) -> Option<String> {
    let int8 = meta.precision.as_deref() == Some("int8");
    let reduce_range = meta.quantization.as_ref().is_some_and(|q| q.reduce_range);
    (int8 && !reduce_range && !products_exact).then(|| {
        format!(
            "model {}: its INT8 weights use the full 8-bit range, and this CPU has no VNNI \
             (avx512_vnni or avx_vnni), where ONNX Runtime's int8 products saturate and the masks \
             come out wrong (mask IoU 0.70 against FP32, measured at full size). Export it again \
             with tools/export.py --precision int8, which writes 7-bit weights that no CPU \
             saturates, or use the FP32 model",
            meta.name.as_deref().unwrap_or("(unnamed)")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn meta(extra: &str) -> ModelMetadata {
        let text =
            format!(r#"{{"format": "tinysam-model", "format_version": 1, "name": "m"{extra}}}"#);
        ModelMetadata::parse(&text, Path::new("model.json")).expect("valid metadata")
    }

    #[test]
    fn warns_only_for_full_range_int8_without_vnni() {
        let full = meta(r#", "precision": "int8", "quantization": {"encoder": "dynamic"}"#);
        let reduced = meta(r#", "precision": "int8", "quantization": {"reduce_range": true}"#);
        let older = meta(r#", "precision": "int8""#);
        let fp32 = meta(r#", "precision": "fp32""#);
        let text = saturation_warning(&full, false).expect("a warning");
        assert!(text.contains("model m") && text.contains("tools/export.py --precision int8"));
        assert!(saturation_warning(&older, false).is_some());
        assert_eq!(saturation_warning(&full, true), None);
        assert_eq!(saturation_warning(&reduced, false), None);
        assert_eq!(saturation_warning(&fp32, false), None);
    }
}
