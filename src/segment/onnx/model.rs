// SPDX-License-Identifier: Apache-2.0
//! Which files make a model, what `model.json` says, and whether the ONNX
//! graphs have the inputs and outputs the core drives.
//!
//! Two decoder layouts are recognised, by input names:
//! - *batched* (this project's export): `image_embeddings [1,C,h,w]`,
//!   `point_coords [B,N,2]`, `point_labels [B,N]`, `mask_input [B,1,4h,4w]`,
//!   `has_mask_input [B]` -> `iou_predictions [B,M]`, `low_res_masks [B,M,4h,4w]`;
//! - *SAM* (the public SAM ONNX export and its many followers): the same
//!   with batch 1 plus an `orig_im_size [2]` input and a `masks` output.
//!
//! Sizes come from the graphs; `model.json`, when present, must agree with
//! them and supplies what graphs leave dynamic.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::segment::error::{Error, LayoutMismatch};
use crate::segment::image::preprocess::{SAM_PIXEL_MEAN, SAM_PIXEL_STD};
use crate::segment::masks::postprocess::MaskSelection;
use crate::segment::onnx::int8;

/// Largest model input side (and embedding or low-res side) accepted.
pub const MAX_INPUT_SIZE: u32 = 8192;

/// File names inside a model directory.
pub const METADATA_FILE: &str = "model.json";
pub const DEFAULT_ENCODER_FILE: &str = "encoder.onnx";
pub const DEFAULT_DECODER_FILE: &str = "decoder.onnx";

/// The `format` and newest `format_version` of `model.json` understood here.
pub const METADATA_FORMAT: &str = "tinysam-model";
pub const METADATA_FORMAT_VERSION: u32 = 1;

/// Where to load a model from: a model directory, explicit encoder/decoder
/// files, or a directory with one or both files overridden.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelSource {
    pub directory: Option<PathBuf>,
    pub encoder: Option<PathBuf>,
    pub decoder: Option<PathBuf>,
}

impl ModelSource {
    /// A model directory (`encoder.onnx`, `decoder.onnx`, `model.json`).
    pub fn directory(path: impl Into<PathBuf>) -> Self {
        ModelSource {
            directory: Some(path.into()),
            ..Self::default()
        }
    }

    /// Two ONNX files without metadata (SAM defaults apply).
    pub fn files(encoder: impl Into<PathBuf>, decoder: impl Into<PathBuf>) -> Self {
        ModelSource {
            directory: None,
            encoder: Some(encoder.into()),
            decoder: Some(decoder.into()),
        }
    }

    /// Uses this encoder file instead of the directory's.
    #[must_use]
    pub fn with_encoder(mut self, path: impl Into<PathBuf>) -> Self {
        self.encoder = Some(path.into());
        self
    }

    /// Uses this decoder file instead of the directory's.
    #[must_use]
    pub fn with_decoder(mut self, path: impl Into<PathBuf>) -> Self {
        self.decoder = Some(path.into());
        self
    }
}

/// The embedding shape as `model.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct EmbeddingShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// The fields of `model.json` the core uses; others are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelMetadata {
    pub format: String,
    pub format_version: u32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub image_size: Option<u32>,
    #[serde(default)]
    pub embedding: Option<EmbeddingShape>,
    #[serde(default)]
    pub low_res_mask_size: Option<usize>,
    #[serde(default)]
    pub num_mask_tokens: Option<usize>,
    #[serde(default)]
    pub mask_threshold: Option<f32>,
    #[serde(default)]
    pub pixel_mean: Option<[f32; 3]>,
    #[serde(default)]
    pub pixel_std: Option<[f32; 3]>,
    #[serde(default)]
    pub mask_selection: Option<String>,
    #[serde(default)]
    pub precision: Option<String>,
    #[serde(default)]
    pub encoder: Option<String>,
    #[serde(default)]
    pub decoder: Option<String>,
    /// The decoder split into an image side and a prompt side.
    #[serde(default)]
    pub split_decoder: Option<SplitDecoderMetadata>,
    /// How an INT8 model was quantised.
    #[serde(default)]
    pub quantization: Option<QuantizationMetadata>,
}

/// `model.json`'s `quantization` (INT8 models): the core reads only whether
/// the weights were limited to 7 bits ([`crate::segment::onnx::int8`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QuantizationMetadata {
    #[serde(default)]
    pub reduce_range: bool,
}

/// `model.json`'s `split_decoder`: the same decoder as two graphs, one run
/// once per image and one per prompt batch (docs/model-format.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SplitDecoderMetadata {
    /// File of the image side, relative to the model directory.
    pub image: String,
    /// File of the prompt side.
    pub prompt: String,
    /// The image side's outputs, which the prompt side takes as inputs.
    pub image_outputs: Vec<String>,
}

impl ModelMetadata {
    /// Parses and checks `model.json` text; errors name `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let error = |reason: String| Error::Metadata {
            path: path.to_path_buf(),
            reason,
        };
        let meta: ModelMetadata = serde_json::from_str(text)
            .map_err(|e| error(format!("not valid model metadata: {e}")))?;
        if meta.format != METADATA_FORMAT {
            return Err(error(format!(
                "`format` is \"{}\", expected \"{METADATA_FORMAT}\"",
                meta.format
            )));
        }
        if meta.format_version == 0 || meta.format_version > METADATA_FORMAT_VERSION {
            return Err(error(format!(
                "`format_version` {} is not supported (this plugin reads version {METADATA_FORMAT_VERSION})",
                meta.format_version
            )));
        }
        if let Some(rule) = &meta.mask_selection {
            MaskSelection::from_rule_name(rule).ok_or_else(|| {
                error(format!(
                    "`mask_selection` \"{rule}\" is neither \"tinysam\" nor \"sam\""
                ))
            })?;
        }
        if let Some(mean) = meta.pixel_mean
            && mean.iter().any(|m| !m.is_finite())
        {
            return Err(error(format!(
                "`pixel_mean` {mean:?} has a non-finite value"
            )));
        }
        if let Some(std) = meta.pixel_std
            && std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(error(format!(
                "`pixel_std` {std:?} must hold finite values above 0 (each pixel is divided by it)"
            )));
        }
        if let Some(t) = meta.mask_threshold
            && !t.is_finite()
        {
            return Err(error("`mask_threshold` is not finite".to_owned()));
        }
        if let Some(split) = &meta.split_decoder
            && split.image_outputs.is_empty()
        {
            return Err(error("`split_decoder.image_outputs` is empty".to_owned()));
        }
        let split = meta.split_decoder.as_ref();
        for (field, name) in [
            ("encoder", meta.encoder.as_ref()),
            ("decoder", meta.decoder.as_ref()),
            ("split_decoder.image", split.map(|s| &s.image)),
            ("split_decoder.prompt", split.map(|s| &s.prompt)),
        ] {
            if let Some(why) = name.and_then(|name| outside_directory(name)) {
                return Err(error(format!(
                    "`{field}` must name a file inside the model directory, relative to it: {why}"
                )));
            }
        }
        Ok(meta)
    }
}

/// Why the `model.json` file name `name` may point outside the model
/// directory; `None` when it stays inside. (Symbolic links are followed: a
/// model directory may well be a cache snapshot of links to shared blobs.)
fn outside_directory(name: &str) -> Option<String> {
    let path = Path::new(name);
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if path.has_root() || path.is_absolute() {
        return Some(format!("\"{name}\" is an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Some(format!(
            "\"{name}\" has a `..` component, which leads out of it"
        ));
    }
    None
}

/// The files a [`ModelSource`] resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    pub encoder: PathBuf,
    pub decoder: PathBuf,
    /// The split decoder, when `model.json` names one and the decoder is
    /// not overridden (the split files belong to the directory's decoder).
    pub split_decoder: Option<SplitDecoderFiles>,
    /// `model.json` and its contents, when there is one.
    pub metadata: Option<(PathBuf, ModelMetadata)>,
}

/// The files of a split decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitDecoderFiles {
    pub image: PathBuf,
    pub prompt: PathBuf,
    pub image_outputs: Vec<String>,
}

/// Finds the files of `source`, reads `model.json`, and checks that the
/// ONNX files exist and are readable. Returns warnings for the caller to log.
pub fn resolve_files(source: &ModelSource) -> Result<(ModelFiles, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let mut metadata = None;
    if let Some(dir) = &source.directory {
        if !dir.is_dir() {
            return Err(Error::File {
                what: "model directory",
                path: dir.clone(),
                reason: if dir.exists() {
                    "not a directory".to_owned()
                } else {
                    "no such directory".to_owned()
                },
            });
        }
        let path = dir.join(METADATA_FILE);
        if path.exists() {
            let text = fs::read_to_string(&path).map_err(|e| Error::File {
                what: "model metadata",
                path: path.clone(),
                reason: e.to_string(),
            })?;
            metadata = Some((path.clone(), ModelMetadata::parse(&text, &path)?));
        } else if source.encoder.is_none() || source.decoder.is_none() {
            warnings.push(format!(
                "{} has no {METADATA_FILE}; using SAM defaults (normalisation, threshold 0, \
                 mask selection \"sam\") and the sizes the ONNX files declare",
                dir.display()
            ));
        }
    }
    let from_dir = |file: Option<&String>, default: &str| {
        source
            .directory
            .as_ref()
            .map(|dir| dir.join(file.map_or(default, String::as_str)))
    };
    let meta = metadata.as_ref().map(|(_, m)| m);
    let encoder = source
        .encoder
        .clone()
        .or_else(|| from_dir(meta.and_then(|m| m.encoder.as_ref()), DEFAULT_ENCODER_FILE));
    let decoder = source
        .decoder
        .clone()
        .or_else(|| from_dir(meta.and_then(|m| m.decoder.as_ref()), DEFAULT_DECODER_FILE));
    let (Some(encoder), Some(decoder)) = (encoder, decoder) else {
        return Err(Error::Source(
            "without a model directory, both an encoder and a decoder file are needed".to_owned(),
        ));
    };
    check_readable("encoder model", &encoder)?;
    check_readable("decoder model", &decoder)?;
    let split_decoder = match (
        &source.directory,
        meta.and_then(|m| m.split_decoder.as_ref()),
    ) {
        (Some(dir), Some(split)) if source.decoder.is_none() => {
            let files = SplitDecoderFiles {
                image: dir.join(&split.image),
                prompt: dir.join(&split.prompt),
                image_outputs: split.image_outputs.clone(),
            };
            check_readable("split decoder image part", &files.image)?;
            check_readable("split decoder prompt part", &files.prompt)?;
            Some(files)
        }
        _ => None,
    };
    Ok((
        ModelFiles {
            encoder,
            decoder,
            split_decoder,
            metadata,
        },
        warnings,
    ))
}

fn check_readable(what: &'static str, path: &Path) -> Result<(), Error> {
    let error = |reason: String| Error::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(path).map_err(|e| {
        error(if e.kind() == std::io::ErrorKind::NotFound {
            "no such file".to_owned()
        } else {
            e.to_string()
        })
    })?;
    if !meta.is_file() {
        return Err(error("not a file".to_owned()));
    }
    if meta.len() == 0 {
        return Err(error("empty file".to_owned()));
    }
    fs::File::open(path).map_err(|e| error(e.to_string()))?;
    Ok(())
}

/// One input or output of an ONNX graph, as the session reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// Element type (`f32`, `i64`, ...), or the kind of a non-tensor value.
    pub element: String,
    /// Dimensions; -1 where dynamic.
    pub dims: Vec<i64>,
    /// Symbolic names of dynamic dimensions ("" where none).
    pub symbols: Vec<String>,
}

impl TensorSpec {
    /// A spec from literal parts (tests and hand-made descriptions).
    pub fn new(name: &str, element: &str, dims: &[i64]) -> Self {
        TensorSpec {
            name: name.to_owned(),
            element: element.to_owned(),
            dims: dims.to_vec(),
            symbols: vec![String::new(); dims.len()],
        }
    }

    fn is_f32(&self) -> bool {
        self.element == "f32"
    }

    /// Dimension `i` when static.
    fn dim(&self, i: usize) -> Option<usize> {
        self.dims.get(i).and_then(|&d| usize::try_from(d).ok())
    }

    fn describe(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d >= 0 {
                    d.to_string()
                } else {
                    match self.symbols.get(i) {
                        Some(s) if !s.is_empty() => s.clone(),
                        _ => "?".to_owned(),
                    }
                }
            })
            .collect();
        format!("{} {}[{}]", self.name, self.element, dims.join(","))
    }
}

/// The inputs and outputs of one graph.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphSpec {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl GraphSpec {
    pub(crate) fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    pub(crate) fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }

    pub(crate) fn mismatch(
        &self,
        what: &'static str,
        path: &Path,
        problems: Vec<String>,
        expected: &[&str],
    ) -> LayoutMismatch {
        LayoutMismatch {
            what,
            path: path.to_path_buf(),
            problems,
            expected: expected.iter().map(|s| (*s).to_owned()).collect(),
            found_inputs: self.inputs.iter().map(TensorSpec::describe).collect(),
            found_outputs: self.outputs.iter().map(TensorSpec::describe).collect(),
        }
    }
}

/// How the decoder takes prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecoderLayout {
    /// Many prompts per call, sharing one `[1,C,h,w]` embedding.
    Batched,
    /// The SAM ONNX layout: one prompt per call, with `orig_im_size`.
    Sam,
}

/// Everything the core needs to know about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub encoder_path: PathBuf,
    pub decoder_path: PathBuf,
    /// Side `S` of the square encoder input.
    pub input_size: u32,
    /// Name of the encoder's image input and embedding output.
    pub encoder_input: String,
    pub encoder_output: String,
    /// Image embedding (channels, height, width).
    pub embedding: (usize, usize, usize),
    /// Low-resolution mask (height, width), typically 4x the embedding.
    pub low_res_size: (usize, usize),
    /// Masks per prompt when the graph or metadata says; else learned from
    /// each run's output shape.
    pub mask_count: Option<usize>,
    pub decoder_layout: DecoderLayout,
    /// Prompts per decoder call the graph allows (`None`: any).
    pub max_batch: Option<usize>,
    /// Encoded points per prompt the graph requires (`None`: any).
    pub fixed_points: Option<usize>,
    pub pixel_mean: [f32; 3],
    pub pixel_std: [f32; 3],
    pub mask_threshold: f32,
    pub mask_selection: MaskSelection,
    pub precision: Option<String>,
    /// Whether a `model.json` was read.
    pub has_metadata: bool,
    /// Whether a split decoder (image side + prompt side) is loaded too.
    pub split_decoder: bool,
    /// Set when this INT8 model's products saturate on this CPU: what to
    /// tell the user ([`int8::saturation_warning`]).
    pub int8_saturation: Option<String>,
}

const ENCODER_EXPECTED: &[&str] = &[
    "inputs:  one image f32[1,3,S,S] (normalised RGB; named `image` in this project's export)",
    "outputs: image_embeddings f32[1,C,h,w] (or a single output of that shape)",
];

const DECODER_EXPECTED: &[&str] = &[
    "batched layout:",
    "  inputs:  image_embeddings f32[1,C,h,w], point_coords f32[B,N,2], point_labels f32[B,N], \
     mask_input f32[B,1,4h,4w], has_mask_input f32[B]",
    "  outputs: iou_predictions f32[B,M], low_res_masks f32[B,M,4h,4w]",
    "or the SAM ONNX layout:",
    "  inputs:  image_embeddings f32[1,C,h,w], point_coords f32[1,N,2], point_labels f32[1,N], \
     mask_input f32[1,1,4h,4w], has_mask_input f32[1], orig_im_size f32[2]",
    "  outputs: masks, iou_predictions f32[1,M], low_res_masks f32[1,M,4h,4w]",
];

/// A dimension learned from several places, which must agree.
struct Known {
    value: Option<usize>,
    source: &'static str,
}

impl Known {
    fn new() -> Self {
        Known {
            value: None,
            source: "",
        }
    }

    fn learn(
        &mut self,
        value: Option<usize>,
        source: &'static str,
        what: &str,
        problems: &mut Vec<String>,
    ) {
        let Some(v) = value else { return };
        match self.value {
            None => {
                self.value = Some(v);
                self.source = source;
            }
            Some(known) if known != v => problems.push(format!(
                "{what} is {known} in the {} but {v} in the {source}",
                self.source
            )),
            Some(_) => {}
        }
    }
}

/// Checks the encoder's and decoder's inputs and outputs against each other
/// and `model.json`, and collects what the core needs.
pub fn validate(
    files: &ModelFiles,
    encoder: &GraphSpec,
    decoder: &GraphSpec,
) -> Result<ModelInfo, Error> {
    let meta = files.metadata.as_ref().map(|(_, m)| m);
    let (encoder_input, encoder_output, enc_size, enc_emb) =
        check_encoder(&files.encoder, encoder)?;
    let (layout, dec) = check_decoder(&files.decoder, decoder)?;

    // Sizes: graph dimensions first, metadata fills gaps; all must agree.
    let mut problems = Vec::new();
    let mut size = Known::new();
    size.learn(enc_size, "encoder input", "image size", &mut problems);
    size.learn(
        meta.and_then(|m| m.image_size.map(|s| s as usize)),
        "model.json",
        "image size",
        &mut problems,
    );
    let mut dims = [Known::new(), Known::new(), Known::new()];
    let names = ["embedding channels", "embedding height", "embedding width"];
    let from_meta = match meta.and_then(|m| m.embedding) {
        Some(e) => [Some(e.channels), Some(e.height), Some(e.width)],
        None => [None; 3],
    };
    for ((((known, name), enc), dec_dim), meta_dim) in dims
        .iter_mut()
        .zip(names)
        .zip(enc_emb)
        .zip(dec.embedding)
        .zip(from_meta)
    {
        known.learn(enc, "encoder output", name, &mut problems);
        known.learn(dec_dim, "decoder input", name, &mut problems);
        known.learn(meta_dim, "model.json", name, &mut problems);
    }
    let mut low_h = Known::new();
    let mut low_w = Known::new();
    low_h.learn(
        dec.low_res.0,
        "decoder",
        "low-res mask height",
        &mut problems,
    );
    low_w.learn(
        dec.low_res.1,
        "decoder",
        "low-res mask width",
        &mut problems,
    );
    let meta_low = meta.and_then(|m| m.low_res_mask_size);
    low_h.learn(meta_low, "model.json", "low-res mask height", &mut problems);
    low_w.learn(meta_low, "model.json", "low-res mask width", &mut problems);
    let mut masks = Known::new();
    masks.learn(
        dec.mask_count,
        "decoder outputs",
        "mask count",
        &mut problems,
    );
    // Only this project's batched export promises num_mask_tokens outputs;
    // SAM-layout exports may return one mask whatever the checkpoint has.
    if layout == DecoderLayout::Batched {
        masks.learn(
            meta.and_then(|m| m.num_mask_tokens),
            "model.json",
            "mask count",
            &mut problems,
        );
    }
    if !problems.is_empty() {
        return Err(Error::Inconsistent(problems.join("; ")));
    }

    let Some(input_size) = size.value else {
        return Err(Error::Inconsistent(
            "the encoder's input size is dynamic and there is no model.json `image_size`"
                .to_owned(),
        ));
    };
    let input_size = u32::try_from(input_size)
        .ok()
        .filter(|&s| (1..=MAX_INPUT_SIZE).contains(&s))
        .ok_or_else(|| {
            Error::Inconsistent(format!(
                "image size {input_size} is outside 1..={MAX_INPUT_SIZE}"
            ))
        })?;
    let [c, h, w] = dims.map(|d| d.value);
    let (Some(c), Some(h), Some(w)) = (c, h, w) else {
        return Err(Error::Inconsistent(
            "the embedding shape is dynamic in both graphs and there is no model.json `embedding`"
                .to_owned(),
        ));
    };
    let low_res_size = (low_h.value.unwrap_or(4 * h), low_w.value.unwrap_or(4 * w));
    // Sizes this large come from a broken file, not a model; refuse them
    // before anything is allocated from them.
    let limit = MAX_INPUT_SIZE as usize;
    if c == 0 || h == 0 || w == 0 || c > limit || h > limit || w > limit {
        return Err(Error::Inconsistent(format!(
            "embedding shape [{c}, {h}, {w}] is not usable"
        )));
    }
    if low_res_size.0 == 0
        || low_res_size.1 == 0
        || low_res_size.0 > limit
        || low_res_size.1 > limit
    {
        return Err(Error::Inconsistent(format!(
            "low-res mask size {}x{} is not usable",
            low_res_size.1, low_res_size.0
        )));
    }

    let rule = meta
        .and_then(|m| m.mask_selection.as_deref())
        .and_then(MaskSelection::from_rule_name)
        .unwrap_or(if meta.is_some() {
            MaskSelection::TinySam
        } else {
            MaskSelection::Sam
        });
    let name = meta.and_then(|m| m.name.clone()).unwrap_or_else(|| {
        files
            .encoder
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_owned())
    });
    Ok(ModelInfo {
        name,
        encoder_path: files.encoder.clone(),
        decoder_path: files.decoder.clone(),
        input_size,
        encoder_input,
        encoder_output,
        embedding: (c, h, w),
        low_res_size,
        mask_count: masks.value,
        decoder_layout: layout,
        max_batch: if layout == DecoderLayout::Sam {
            Some(1)
        } else {
            dec.batch
        },
        fixed_points: dec.points,
        pixel_mean: meta.and_then(|m| m.pixel_mean).unwrap_or(SAM_PIXEL_MEAN),
        pixel_std: meta.and_then(|m| m.pixel_std).unwrap_or(SAM_PIXEL_STD),
        mask_threshold: meta.and_then(|m| m.mask_threshold).unwrap_or(0.0),
        mask_selection: rule,
        precision: meta.and_then(|m| m.precision.clone()),
        has_metadata: meta.is_some(),
        split_decoder: files.split_decoder.is_some(),
        int8_saturation: meta
            .and_then(|m| int8::saturation_warning(m, int8::products_exact_on_this_cpu())),
    })
}

/// (input name, output name, static input size, static embedding dims).
type EncoderFacts = (String, String, Option<usize>, [Option<usize>; 3]);

fn check_encoder(path: &Path, graph: &GraphSpec) -> Result<EncoderFacts, Error> {
    let mut problems = Vec::new();
    let image = match graph.inputs.as_slice() {
        [one] => Some(one),
        [] => {
            problems.push("the encoder has no input".to_owned());
            None
        }
        many => {
            problems.push(format!(
                "the encoder has {} inputs; one image input expected",
                many.len()
            ));
            None
        }
    };
    let mut size = None;
    if let Some(image) = image {
        if !image.is_f32() {
            problems.push(format!(
                "input `{}` is {}, expected f32",
                image.name, image.element
            ));
        }
        if image.dims.len() != 4 {
            problems.push(format!(
                "input `{}` has rank {}, expected 4 [1,3,S,S]",
                image.name,
                image.dims.len()
            ));
        } else {
            if !matches!(image.dims.first(), Some(1 | -1)) {
                problems.push(format!("input `{}` batch must be 1", image.name));
            }
            if !matches!(image.dims.get(1), Some(3 | -1)) {
                problems.push(format!(
                    "input `{}` must have 3 channels (RGB, planar)",
                    image.name
                ));
            }
            match (image.dim(2), image.dim(3)) {
                (Some(a), Some(b)) if a != b => {
                    problems.push(format!(
                        "input `{}` is {a}x{b}; a square input expected",
                        image.name
                    ));
                }
                (a, b) => size = a.or(b),
            }
        }
    }
    let output = graph
        .output("image_embeddings")
        .or(match graph.outputs.as_slice() {
            [one] => Some(one),
            _ => None,
        });
    let mut emb = [None; 3];
    match output {
        None => {
            problems.push("no output `image_embeddings` (and not exactly one output)".to_owned())
        }
        Some(out) => {
            if !out.is_f32() {
                problems.push(format!(
                    "output `{}` is {}, expected f32",
                    out.name, out.element
                ));
            }
            if out.dims.len() != 4 {
                problems.push(format!(
                    "output `{}` has rank {}, expected 4 [1,C,h,w]",
                    out.name,
                    out.dims.len()
                ));
            } else {
                emb = [out.dim(1), out.dim(2), out.dim(3)];
            }
        }
    }
    match (problems.is_empty(), image, output) {
        (true, Some(image), Some(output)) => {
            Ok((image.name.clone(), output.name.clone(), size, emb))
        }
        _ => Err(graph
            .mismatch("encoder", path, problems, ENCODER_EXPECTED)
            .into()),
    }
}

/// Sizes the decoder graph declares (`None` where dynamic).
struct DecoderFacts {
    embedding: [Option<usize>; 3],
    low_res: (Option<usize>, Option<usize>),
    mask_count: Option<usize>,
    batch: Option<usize>,
    points: Option<usize>,
}

fn check_decoder(path: &Path, graph: &GraphSpec) -> Result<(DecoderLayout, DecoderFacts), Error> {
    let layout = if graph.input("orig_im_size").is_some() {
        DecoderLayout::Sam
    } else {
        DecoderLayout::Batched
    };
    let mut required_inputs = vec![
        ("image_embeddings", 4usize),
        ("point_coords", 3),
        ("point_labels", 2),
        ("mask_input", 4),
        ("has_mask_input", 1),
    ];
    if layout == DecoderLayout::Sam {
        required_inputs.push(("orig_im_size", 1));
    }
    let required_outputs = [("iou_predictions", 2usize), ("low_res_masks", 4)];

    let mut problems = Vec::new();
    let mut check = |spec: Option<&TensorSpec>, name: &str, rank: usize, kind: &str| match spec {
        None => problems.push(format!("missing {kind} `{name}`")),
        Some(t) if !t.is_f32() => {
            problems.push(format!("{kind} `{name}` is {}, expected f32", t.element))
        }
        Some(t) if t.dims.len() != rank => {
            problems.push(format!(
                "{kind} `{name}` has rank {}, expected {rank}",
                t.dims.len()
            ));
        }
        Some(_) => {}
    };
    for (name, rank) in &required_inputs {
        check(graph.input(name), name, *rank, "input");
    }
    for (name, rank) in required_outputs {
        check(graph.output(name), name, rank, "output");
    }
    for input in &graph.inputs {
        if !required_inputs.iter().any(|(name, _)| *name == input.name) {
            problems.push(format!(
                "unexpected input `{}` (the core cannot feed it)",
                input.name
            ));
        }
    }
    let dim = |t: Option<&TensorSpec>, i: usize| t.and_then(|t| t.dim(i));
    let emb = graph.input("image_embeddings");
    if problems.is_empty() {
        if !matches!(emb.and_then(|t| t.dims.first()), Some(1 | -1)) {
            problems.push(
                "input `image_embeddings` must have batch 1 (one embedding per call)".to_owned(),
            );
        }
        if dim(graph.input("point_coords"), 2).is_some_and(|d| d != 2) {
            problems.push("input `point_coords` must end in 2 (x, y)".to_owned());
        }
        if dim(graph.input("mask_input"), 1).is_some_and(|d| d != 1) {
            problems.push("input `mask_input` must have 1 channel".to_owned());
        }
        if dim(graph.input("orig_im_size"), 0).is_some_and(|d| d != 2) {
            problems.push("input `orig_im_size` must hold 2 values (height, width)".to_owned());
        }
    }
    if !problems.is_empty() {
        return Err(graph
            .mismatch("decoder", path, problems, DECODER_EXPECTED)
            .into());
    }

    // Sizes that appear in more than one place must agree.
    let mut agree = Vec::new();
    let mut pick = |what: &str, values: &[Option<usize>]| -> Option<usize> {
        let known: Vec<usize> = values.iter().flatten().copied().collect();
        if let Some(first) = known.first()
            && known.iter().any(|v| v != first)
        {
            agree.push(format!(
                "{what} differs between inputs and outputs: {known:?}"
            ));
        }
        known.first().copied()
    };
    let (coords, labels) = (graph.input("point_coords"), graph.input("point_labels"));
    let (mask_in, has_mask) = (graph.input("mask_input"), graph.input("has_mask_input"));
    let (iou, low) = (
        graph.output("iou_predictions"),
        graph.output("low_res_masks"),
    );
    let low_res = (
        pick("low-res mask height", &[dim(mask_in, 2), dim(low, 2)]),
        pick("low-res mask width", &[dim(mask_in, 3), dim(low, 3)]),
    );
    let mask_count = pick("mask count", &[dim(iou, 1), dim(low, 1)]);
    let batch = pick(
        "batch size",
        &[
            dim(coords, 0),
            dim(labels, 0),
            dim(mask_in, 0),
            dim(has_mask, 0),
            dim(iou, 0),
            dim(low, 0),
        ],
    );
    let points = pick("point count", &[dim(coords, 1), dim(labels, 1)]);
    if layout == DecoderLayout::Sam && batch.is_some_and(|b| b != 1) {
        agree.push("SAM-layout decoders take one prompt per call (batch 1)".to_owned());
    }
    if batch == Some(0) || mask_count == Some(0) || points == Some(0) {
        agree.push("a batch, point or mask dimension is 0".to_owned());
    }
    if !agree.is_empty() {
        return Err(graph
            .mismatch("decoder", path, agree, DECODER_EXPECTED)
            .into());
    }
    Ok((
        layout,
        DecoderFacts {
            embedding: [dim(emb, 1), dim(emb, 2), dim(emb, 3)],
            low_res,
            mask_count,
            batch,
            points,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(meta: Option<ModelMetadata>) -> ModelFiles {
        ModelFiles {
            encoder: PathBuf::from("/m/encoder.onnx"),
            decoder: PathBuf::from("/m/decoder.onnx"),
            split_decoder: None,
            metadata: meta.map(|m| (PathBuf::from("/m/model.json"), m)),
        }
    }

    fn encoder(size: i64, c: i64, e: i64) -> GraphSpec {
        GraphSpec {
            inputs: vec![TensorSpec::new("image", "f32", &[1, 3, size, size])],
            outputs: vec![TensorSpec::new("image_embeddings", "f32", &[1, c, e, e])],
        }
    }

    fn batched_decoder(c: i64, e: i64) -> GraphSpec {
        let l = 4 * e;
        GraphSpec {
            inputs: vec![
                TensorSpec::new("image_embeddings", "f32", &[1, c, e, e]),
                TensorSpec::new("point_coords", "f32", &[-1, -1, 2]),
                TensorSpec::new("point_labels", "f32", &[-1, -1]),
                TensorSpec::new("mask_input", "f32", &[-1, 1, l, l]),
                TensorSpec::new("has_mask_input", "f32", &[-1]),
            ],
            outputs: vec![
                TensorSpec::new("iou_predictions", "f32", &[-1, 4]),
                TensorSpec::new("low_res_masks", "f32", &[-1, 4, l, l]),
            ],
        }
    }

    fn sam_decoder(masks: i64) -> GraphSpec {
        GraphSpec {
            inputs: vec![
                TensorSpec::new("image_embeddings", "f32", &[1, 256, 64, 64]),
                TensorSpec::new("point_coords", "f32", &[1, -1, 2]),
                TensorSpec::new("point_labels", "f32", &[1, -1]),
                TensorSpec::new("mask_input", "f32", &[1, 1, 256, 256]),
                TensorSpec::new("has_mask_input", "f32", &[1]),
                TensorSpec::new("orig_im_size", "f32", &[2]),
            ],
            outputs: vec![
                TensorSpec::new("masks", "f32", &[-1, -1, -1, -1]),
                TensorSpec::new("iou_predictions", "f32", &[-1, masks]),
                TensorSpec::new("low_res_masks", "f32", &[-1, masks, -1, -1]),
            ],
        }
    }

    fn metadata(json: &str) -> ModelMetadata {
        ModelMetadata::parse(json, Path::new("/m/model.json")).unwrap()
    }

    #[test]
    fn batched_model_with_metadata() {
        let meta = metadata(
            r#"{"format": "tinysam-model", "format_version": 1, "name": "t", "image_size": 256,
                "embedding": {"channels": 128, "height": 16, "width": 16}, "low_res_mask_size": 64,
                "num_mask_tokens": 4, "mask_threshold": 0.5, "mask_selection": "sam",
                "pixel_mean": [1, 2, 3], "pixel_std": [4, 5, 6], "unknown_field": {"x": 1}}"#,
        );
        let info = validate(
            &files(Some(meta)),
            &encoder(256, 128, 16),
            &batched_decoder(128, 16),
        )
        .unwrap();
        assert_eq!(info.input_size, 256);
        assert_eq!(info.embedding, (128, 16, 16));
        assert_eq!(info.low_res_size, (64, 64));
        assert_eq!(info.mask_count, Some(4));
        assert_eq!(info.decoder_layout, DecoderLayout::Batched);
        assert_eq!(info.max_batch, None);
        assert_eq!(info.mask_selection, MaskSelection::Sam);
        assert_eq!(info.mask_threshold, 0.5);
        assert_eq!(info.pixel_std, [4.0, 5.0, 6.0]);
        assert_eq!(info.name, "t");
    }

    #[test]
    fn sam_layout_without_metadata_uses_defaults() {
        let info = validate(&files(None), &encoder(1024, 256, 64), &sam_decoder(1)).unwrap();
        assert_eq!(info.decoder_layout, DecoderLayout::Sam);
        assert_eq!(info.max_batch, Some(1));
        assert_eq!(info.mask_count, Some(1));
        assert_eq!(info.low_res_size, (256, 256));
        assert_eq!(info.mask_selection, MaskSelection::Sam);
        assert_eq!(info.pixel_mean, SAM_PIXEL_MEAN);
        assert_eq!(info.name, "encoder");
    }

    #[test]
    fn metadata_must_agree_with_the_graphs() {
        let meta =
            metadata(r#"{"format": "tinysam-model", "format_version": 1, "image_size": 512}"#);
        let err = validate(
            &files(Some(meta)),
            &encoder(256, 128, 16),
            &batched_decoder(128, 16),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("image size is 256 in the encoder input but 512 in the model.json"),
            "{text}"
        );
        let err = validate(
            &files(None),
            &encoder(256, 128, 16),
            &batched_decoder(64, 16),
        )
        .unwrap_err();
        assert!(err.to_string().contains(
            "embedding channels is 128 in the encoder output but 64 in the decoder input"
        ));
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let meta =
            metadata(r#"{"format": "tinysam-model", "format_version": 1, "image_size": 100000}"#);
        let err = validate(
            &files(Some(meta)),
            &encoder(-1, 128, 16),
            &batched_decoder(128, 16),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("image size 100000 is outside"),
            "{err}"
        );
        let err = validate(
            &files(None),
            &encoder(-1, 128, 16),
            &batched_decoder(128, 16),
        )
        .unwrap_err();
        assert!(err.to_string().contains("input size is dynamic"), "{err}");
    }

    #[test]
    fn wrong_decoder_lists_expected_and_found() {
        let graph = GraphSpec {
            inputs: vec![
                TensorSpec::new("embeddings", "f32", &[1, 32, 8, 8]),
                TensorSpec {
                    symbols: vec!["batch".into(), "points".into(), String::new()],
                    ..TensorSpec::new("point_coords", "f32", &[-1, -1, 2])
                },
            ],
            outputs: vec![TensorSpec::new("scores", "f32", &[1, 32, 8, 8])],
        };
        let Err(Error::Layout(mismatch)) = validate(&files(None), &encoder(256, 32, 8), &graph)
        else {
            panic!("expected a layout mismatch");
        };
        let text = mismatch.to_string();
        for needle in [
            "decoder model /m/decoder.onnx does not have the expected inputs and outputs",
            "missing input `image_embeddings`",
            "missing input `point_labels`",
            "missing output `low_res_masks`",
            "unexpected input `embeddings`",
            "point_coords f32[B,N,2]",
            "inputs:  embeddings f32[1,32,8,8], point_coords f32[batch,points,2]",
            "outputs: scores f32[1,32,8,8]",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn wrong_encoder_is_described() {
        let graph = GraphSpec {
            inputs: vec![TensorSpec::new("input_image", "u8", &[1024, 1024, 3])],
            outputs: vec![TensorSpec::new(
                "image_embeddings",
                "f32",
                &[1, 256, 64, 64],
            )],
        };
        let err = validate(&files(None), &graph, &sam_decoder(4)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("input `input_image` is u8, expected f32"),
            "{text}"
        );
        assert!(text.contains("rank 3"), "{text}");
        assert!(text.contains("input_image u8[1024,1024,3]"), "{text}");
    }

    #[test]
    fn metadata_errors_name_the_field() {
        let parse = |json: &str| {
            ModelMetadata::parse(json, Path::new("/m/model.json"))
                .unwrap_err()
                .to_string()
        };
        assert!(parse("{").contains("/m/model.json: not valid model metadata"));
        assert!(
            parse(r#"{"format": "other", "format_version": 1}"#).contains("`format` is \"other\"")
        );
        assert!(
            parse(r#"{"format": "tinysam-model", "format_version": 2}"#)
                .contains("`format_version` 2")
        );
        assert!(
            parse(r#"{"format": "tinysam-model", "format_version": 1, "mask_selection": "best"}"#)
                .contains("`mask_selection` \"best\"")
        );
        assert!(
            parse(r#"{"format": "tinysam-model", "format_version": 1, "pixel_std": [1, 0, 1]}"#)
                .contains("`pixel_std`")
        );
    }

    #[test]
    fn metadata_file_names_stay_inside_the_directory() {
        let parse = |fields: &str| {
            ModelMetadata::parse(
                &format!(r#"{{"format": "tinysam-model", "format_version": 1, {fields}}}"#),
                Path::new("/m/model.json"),
            )
        };
        let split = |image: &str, prompt: &str| {
            format!(
                r#""split_decoder": {{"image": "{image}", "prompt": "{prompt}", "image_outputs": ["e"]}}"#
            )
        };
        let refused = [
            (
                r#""encoder": "/etc/passwd""#.to_owned(),
                "`encoder`",
                "is an absolute path",
            ),
            (
                r#""decoder": "../other/decoder.onnx""#.to_owned(),
                "`decoder`",
                "`..`",
            ),
            (
                r#""decoder": "sub/../../decoder.onnx""#.to_owned(),
                "`decoder`",
                "`..`",
            ),
            (r#""encoder": """#.to_owned(), "`encoder`", "it is empty"),
            (
                split("/tmp/image.onnx", "p.onnx"),
                "`split_decoder.image`",
                "absolute",
            ),
            (
                split("i.onnx", "../p.onnx"),
                "`split_decoder.prompt`",
                "`..`",
            ),
        ];
        for (fields, field, why) in refused {
            let err = parse(&fields).unwrap_err();
            let Error::Metadata { path, reason } = &err else {
                panic!("{fields}: unexpected error {err:?}");
            };
            assert_eq!(path, Path::new("/m/model.json"));
            assert!(reason.starts_with(field), "{fields}: {reason}");
            assert!(reason.contains("inside the model directory"), "{reason}");
            assert!(reason.contains(why), "{fields}: {reason}");
        }
        let meta = parse(&format!(
            r#""encoder": "./onnx/encoder.onnx", "decoder": "decoder..v2.onnx", {}"#,
            split("split/image.onnx", "split/prompt.onnx")
        ))
        .unwrap();
        assert_eq!(meta.encoder.as_deref(), Some("./onnx/encoder.onnx"));
        assert_eq!(meta.decoder.as_deref(), Some("decoder..v2.onnx"));
    }

    #[test]
    fn normalisation_must_be_usable() {
        let parse = |fields: &str| {
            ModelMetadata::parse(
                &format!(r#"{{"format": "tinysam-model", "format_version": 1, {fields}}}"#),
                Path::new("/m/model.json"),
            )
        };
        for std in [
            "[1, 0, 1]",
            "[58.4, -57.1, 57.4]",
            "[1, 1e39, 1]",
            "[-0.0, 1, 1]",
        ] {
            let err = parse(&format!(r#""pixel_std": {std}"#)).unwrap_err();
            assert!(matches!(err, Error::Metadata { .. }), "{std}: {err:?}");
            let text = err.to_string();
            assert!(text.contains("`pixel_std`"), "{std}: {text}");
            assert!(text.contains("finite values above 0"), "{std}: {text}");
        }
        let err = parse(r#""pixel_mean": [1e39, 0, 0]"#).unwrap_err();
        assert!(matches!(err, Error::Metadata { .. }), "{err:?}");
        assert!(err.to_string().contains("`pixel_mean`"), "{err}");
        assert!(err.to_string().contains("non-finite"), "{err}");
        let meta = parse(r#""pixel_mean": [-1, 0, 255], "pixel_std": [0.001, 1, 300]"#).unwrap();
        assert_eq!(meta.pixel_mean, Some([-1.0, 0.0, 255.0]));
        assert_eq!(meta.pixel_std, Some([0.001, 1.0, 300.0]));
    }

    #[test]
    fn resolving_names_missing_files() {
        let dir =
            std::env::temp_dir().join(format!("tinysam-model-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let err = resolve_files(&ModelSource::directory(&dir)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "encoder model {}: no such file",
                dir.join("encoder.onnx").display()
            )
        );
        fs::write(dir.join("encoder.onnx"), b"x").unwrap();
        fs::write(dir.join("decoder.onnx"), b"").unwrap();
        let err = resolve_files(&ModelSource::directory(&dir)).unwrap_err();
        assert!(
            err.to_string().contains("decoder.onnx: empty file"),
            "{err}"
        );
        fs::write(dir.join("decoder.onnx"), b"x").unwrap();
        let (resolved, warnings) = resolve_files(&ModelSource::directory(&dir)).unwrap();
        assert!(resolved.metadata.is_none());
        assert_eq!(warnings.len(), 1);
        fs::write(dir.join("model.json"), b"{\"format\": 1}").unwrap();
        let err = resolve_files(&ModelSource::directory(&dir)).unwrap_err();
        assert!(
            err.to_string()
                .contains("model.json: not valid model metadata"),
            "{err}"
        );
        let err = resolve_files(&ModelSource::directory(dir.join("nope"))).unwrap_err();
        assert!(err.to_string().contains("no such directory"), "{err}");
        let err = resolve_files(&ModelSource {
            encoder: Some(dir.join("encoder.onnx")),
            ..ModelSource::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::Source(_)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
