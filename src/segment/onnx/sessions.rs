// SPDX-License-Identifier: Apache-2.0
//! The ONNX Runtime sessions of a model, shared by every engine of the
//! process that loads the same files with the same options.
//!
//! Analytics applications run one pipeline per camera in one process. With
//! [`EngineOptions::share_sessions`] (the default), [`load`] hands every
//! engine asking for the same model files (canonical paths, sizes and
//! modification times: an overwritten model is loaded again), thread count
//! and execution provider the same [`ModelSessions`]: one copy of the
//! weights and one thread pool per session, however many streams. Engines
//! take [`Turns`] at each session and keep their own run options, so one
//! engine's cancel stops only its own run or wait.
//!
//! The cache holds the sessions weakly: they are freed when the last engine
//! using them drops, and dead entries are pruned on the next load.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use ort::ep::ExecutionProviderDispatch;
use ort::session::Session;
use ort::value::ValueType;

use crate::segment::error::Error;
use crate::segment::onnx::cancel::Canceller;
use crate::segment::onnx::engine::{EngineOptions, ExecutionProviderKind};
use crate::segment::onnx::model::{GraphSpec, ModelFiles, TensorSpec};
use crate::segment::onnx::runtime;
use crate::segment::onnx::turns::{Turn, Turns};

/// Sessions alive in the process.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many ONNX Runtime sessions the process holds (each model has two to
/// four); for diagnostics and benchmarks.
pub fn live_sessions() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// One session and its inputs and outputs; engines take turns running it.
pub(crate) struct SharedSession {
    session: Turns<Session>,
    graph: GraphSpec,
}

impl SharedSession {
    fn new(session: Session) -> Self {
        LIVE.fetch_add(1, Ordering::SeqCst);
        SharedSession {
            graph: graph_spec(&session),
            session: Turns::new(session),
        }
    }

    /// Waits for the session; gives up with `Cancelled` when `cancel` fires.
    pub(crate) fn take(&self, cancel: &Canceller) -> Result<Turn<'_, Session>, Error> {
        self.session.take(cancel)
    }

    pub(crate) fn graph(&self) -> &GraphSpec {
        &self.graph
    }
}

impl Drop for SharedSession {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The sessions of one model loaded with one set of options.
pub(crate) struct ModelSessions {
    pub encoder: SharedSession,
    pub decoder: SharedSession,
    /// The split decoder's image and prompt parts, when the model has them.
    pub split: Option<(Arc<SharedSession>, Arc<SharedSession>)>,
    /// The execution provider the encoder actually runs on.
    pub provider: ExecutionProviderKind,
    /// What creating the sessions had to say (provider fallback), for every
    /// engine that gets them.
    pub warnings: Vec<String>,
}

/// What makes two loads the same model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    files: Vec<FileStamp>,
    n_threads: usize,
    provider: ExecutionProviderKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl Key {
    /// `None` when a file cannot be looked at: that load is not shared.
    fn of(files: &ModelFiles, options: &EngineOptions) -> Option<Key> {
        let mut paths = vec![&files.encoder, &files.decoder];
        if let Some(split) = &files.split_decoder {
            paths.extend([&split.image, &split.prompt]);
        }
        let files = paths
            .into_iter()
            .map(|path| FileStamp::of(path))
            .collect::<Option<Vec<_>>>()?;
        Some(Key {
            files,
            n_threads: options.n_threads,
            provider: options.execution_provider,
        })
    }
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let path = fs::canonicalize(path).ok()?;
        let meta = fs::metadata(&path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            path,
        })
    }
}

/// A model's sessions while some engine uses them; locked while they are
/// created, so that engines loading the same model at once create them once.
type Slot = Arc<Mutex<Weak<ModelSessions>>>;

static CACHE: LazyLock<Mutex<HashMap<Key, Slot>>> = LazyLock::new(Default::default);

/// The sessions of `files` with `options`: those another engine already
/// uses when sharing is on and they match, else new ones.
pub(crate) fn load(
    files: &ModelFiles,
    options: &EngineOptions,
) -> Result<Arc<ModelSessions>, Error> {
    let key = options
        .share_sessions
        .then(|| Key::of(files, options))
        .flatten();
    let Some(key) = key else {
        return create(files, options).map(Arc::new);
    };
    let slot = {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        // A slot nobody else holds is not being filled: its lock is free.
        cache.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .map_or(true, |sessions| sessions.strong_count() > 0)
        });
        Arc::clone(cache.entry(key).or_default())
    };
    // Only loads of this model wait here, not those of others.
    let mut shared = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sessions) = shared.upgrade() {
        return Ok(sessions);
    }
    let sessions = Arc::new(create(files, options)?);
    *shared = Arc::downgrade(&sessions);
    Ok(sessions)
}

/// Creates the sessions, on the requested execution provider where the
/// loaded ONNX Runtime has it and it works, else on the CPU (with warnings).
fn create(files: &ModelFiles, options: &EngineOptions) -> Result<ModelSessions, Error> {
    let mut warnings = Vec::new();
    let mut provider = options.execution_provider;
    let eps = usable_providers(provider, options.n_threads, &mut warnings);
    if eps.is_empty() {
        provider = ExecutionProviderKind::Cpu;
    }
    let n_threads = options.n_threads;
    let (encoder, enc_fell_back) = create_session(
        "encoder model",
        &files.encoder,
        n_threads,
        &eps,
        &mut warnings,
    )?;
    // When the provider failed for the encoder, do not try it again.
    let eps = if enc_fell_back { Vec::new() } else { eps };
    let (decoder, dec_fell_back) = create_session(
        "decoder model",
        &files.decoder,
        n_threads,
        &eps,
        &mut warnings,
    )?;
    if enc_fell_back {
        provider = ExecutionProviderKind::Cpu;
    } else if dec_fell_back && provider != ExecutionProviderKind::Cpu {
        warnings.push(format!(
            "the decoder runs on the CPU, the encoder on {provider}"
        ));
    }
    let split = match &files.split_decoder {
        Some(split) => {
            let (image, _) = create_session(
                "split decoder image part",
                &split.image,
                n_threads,
                &eps,
                &mut warnings,
            )?;
            let (prompt, _) = create_session(
                "split decoder prompt part",
                &split.prompt,
                n_threads,
                &eps,
                &mut warnings,
            )?;
            Some((
                Arc::new(SharedSession::new(image)),
                Arc::new(SharedSession::new(prompt)),
            ))
        }
        None => None,
    };
    Ok(ModelSessions {
        encoder: SharedSession::new(encoder),
        decoder: SharedSession::new(decoder),
        split,
        provider,
        warnings,
    })
}

/// The providers of `kind` that the loaded library has; warns about the rest.
fn usable_providers(
    kind: ExecutionProviderKind,
    n_threads: usize,
    warnings: &mut Vec<String>,
) -> Vec<ExecutionProviderDispatch> {
    let mut usable = Vec::new();
    for (name, available, dispatch) in kind.dispatchers(n_threads) {
        match available {
            Ok(true) => usable.push(dispatch),
            Ok(false) => warnings.push(format!(
                "execution provider {name} (requested: {kind}) is not in the loaded ONNX Runtime"
            )),
            Err(e) => warnings.push(format!("could not query execution provider {name}: {e}")),
        }
    }
    if usable.is_empty() && kind != ExecutionProviderKind::Cpu {
        warnings.push(format!(
            "execution provider {kind} is unavailable; running on the CPU"
        ));
    }
    usable
}

/// Creates a session on `eps` (CPU when empty). When the providers fail,
/// retries on the CPU and says so; returns whether it fell back.
fn create_session(
    what: &'static str,
    path: &Path,
    n_threads: usize,
    eps: &[ExecutionProviderDispatch],
    warnings: &mut Vec<String>,
) -> Result<(Session, bool), Error> {
    let onnx_error = |e: ort::Error| Error::Onnx {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !eps.is_empty() {
        let attempt = runtime::session_builder(n_threads)?
            .with_execution_providers(eps)
            .map_err(|e| e.to_string())
            .and_then(|mut b| b.commit_from_file(path).map_err(|e| e.to_string()));
        match attempt {
            Ok(session) => return Ok((session, false)),
            Err(reason) => warnings.push(format!(
                "{what} {}: the requested execution provider failed ({reason}); running on the CPU",
                path.display()
            )),
        }
    }
    let session = runtime::session_builder(n_threads)?
        .commit_from_file(path)
        .map_err(onnx_error)?;
    Ok((session, !eps.is_empty()))
}

/// The inputs and outputs a session reports.
fn graph_spec(session: &Session) -> GraphSpec {
    let spec = |name: &str, dtype: &ValueType| match dtype {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => TensorSpec {
            name: name.to_owned(),
            element: ty.to_string(),
            dims: shape.to_vec(),
            symbols: dimension_symbols.to_vec(),
        },
        ValueType::Sequence(_) => TensorSpec::new(name, "sequence", &[]),
        ValueType::Map { .. } => TensorSpec::new(name, "map", &[]),
        ValueType::Optional(_) => TensorSpec::new(name, "optional", &[]),
    };
    GraphSpec {
        inputs: session
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect(),
        outputs: session
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect(),
    }
}
