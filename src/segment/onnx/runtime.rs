// SPDX-License-Identifier: Apache-2.0
//! Locating and loading ONNX Runtime.
//!
//! The plugin does not link against ONNX Runtime; it opens `libonnxruntime.so`
//! the first time a model is needed. The library is looked for in this order:
//!
//! 1. `ORT_DYLIB_PATH`, when set and not empty. A value containing a `/` is a
//!    file path (relative paths are taken from the current directory); a bare
//!    file name is handed to the dynamic linker. An explicitly set variable is
//!    final: when it points nowhere, that is an error and nothing else is tried.
//! 2. The project-local virtual environment of the source tree this plugin was
//!    built from: `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`
//!    (what `make setup` installs from the `onnxruntime` package on PyPI).
//! 3. The system's library path (`libonnxruntime.so`, then `libonnxruntime.so.1`).
//!
//! The first library that loads wins. The result, success or error, is cached
//! for the life of the process: only one ONNX Runtime can be loaded per process.
//!
//! Nothing here panics on a missing or broken library; every failure becomes a
//! [`RuntimeError`] whose message says where we looked and how to fix it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::SessionBuilder;

/// Environment variable naming the ONNX Runtime library to load (shared with
/// the `ort` crate and other ONNX Runtime users).
pub const ORT_DYLIB_PATH_VAR: &str = "ORT_DYLIB_PATH";

/// The `onnxruntime` version the project pins and tests against.
pub const ONNXRUNTIME_PIN: &str = "1.31.1";

/// Library names tried through the system's dynamic linker, in order.
const SYSTEM_LIBRARY_NAMES: &[&str] = &["libonnxruntime.so", "libonnxruntime.so.1"];

/// The source tree the plugin was compiled from; its `.venv` is searched.
const SOURCE_TREE: &str = env!("CARGO_MANIFEST_DIR");

/// Where the loaded library came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The source tree's `.venv`.
    SourceTree,
    /// The system's library search path.
    System,
}

/// A loaded ONNX Runtime and the process-wide environment sessions share.
pub struct Runtime {
    library: PathBuf,
    source: LibrarySource,
    environment: Environment,
}

impl Runtime {
    /// The library that was loaded (a bare name when found on the system path).
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Which step of the search order found the library.
    pub fn source(&self) -> LibrarySource {
        self.source
    }

    /// The ONNX Runtime environment; pass it to `Session::builder` if
    /// [`session_builder`] does not fit.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// One place that was searched and what was found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The place, e.g. a path or a library name.
    pub place: String,
    /// Why nothing usable was there.
    pub outcome: String,
}

/// Why ONNX Runtime, or a session on it, is not available.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeError {
    /// `ORT_DYLIB_PATH` is set but does not name a loadable library.
    EnvPath { value: PathBuf, reason: String },
    /// No place in the search order held a loadable library.
    NotFound { attempts: Vec<Attempt> },
    /// ONNX Runtime is loaded but reported an error.
    Ort { context: String, reason: String },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::EnvPath { value, reason } => write!(
                f,
                "ONNX Runtime could not be loaded from {ORT_DYLIB_PATH_VAR}={}: {reason}\n\
                 To fix: set {ORT_DYLIB_PATH_VAR} to the full path of libonnxruntime.so \
                 (the PyPI package onnxruntime=={ONNXRUNTIME_PIN} ships it as \
                 site-packages/onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_PIN}), \
                 or unset {ORT_DYLIB_PATH_VAR} to search the default places.",
                value.display()
            ),
            RuntimeError::NotFound { attempts } => {
                writeln!(
                    f,
                    "ONNX Runtime (libonnxruntime.so) was not found. Looked in:"
                )?;
                for attempt in attempts {
                    writeln!(f, "  - {}: {}", attempt.place, attempt.outcome)?;
                }
                write!(
                    f,
                    "To fix: run `make setup` in the gst-tinysam source tree (installs \
                     onnxruntime=={ONNXRUNTIME_PIN} into .venv), or install the PyPI package \
                     onnxruntime=={ONNXRUNTIME_PIN} anywhere and set \
                     {ORT_DYLIB_PATH_VAR}=/path/to/site-packages/onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_PIN}"
                )
            }
            RuntimeError::Ort { context, reason } => {
                write!(f, "ONNX Runtime error while {context}: {reason}")
            }
        }
    }
}

impl std::error::Error for RuntimeError {}

/// Loads ONNX Runtime if that has not happened yet and returns it.
///
/// Thread-safe; the search runs once per process and later calls return the
/// cached runtime or the cached error.
pub fn ensure_loaded() -> Result<&'static Runtime, RuntimeError> {
    static RUNTIME: OnceLock<Result<Runtime, RuntimeError>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| load(&Search::from_process()))
        .as_ref()
        .map_err(Clone::clone)
}

/// A session builder on the loaded runtime, set up for use inside a media
/// pipeline: `n_threads` intra-op threads (0 lets ONNX Runtime choose, one per
/// physical core), a single inter-op thread, and no spin-waiting between runs.
pub fn session_builder(n_threads: usize) -> Result<SessionBuilder, RuntimeError> {
    let runtime = ensure_loaded()?;
    let context = "creating session options";
    Session::builder(runtime.environment())
        .map_err(|e| ort_error(context, e))?
        .with_intra_threads(n_threads)
        .map_err(|e| ort_error(context, e))?
        .with_inter_threads(1)
        .map_err(|e| ort_error(context, e))?
        .with_intra_op_spinning(false)
        .map_err(|e| ort_error(context, e))?
        .with_inter_op_spinning(false)
        .map_err(|e| ort_error(context, e))
}

/// Loads the ONNX model at `model` into a session built by [`session_builder`].
pub fn load_session(model: &Path, n_threads: usize) -> Result<Session, RuntimeError> {
    session_builder(n_threads)?
        .commit_from_file(model)
        .map_err(|e| ort_error(&format!("loading model {}", model.display()), e))
}

fn ort_error(context: &str, error: impl fmt::Display) -> RuntimeError {
    RuntimeError::Ort {
        context: context.to_owned(),
        reason: error.to_string(),
    }
}

/// The inputs of the search, separated from the process so tests can vary them.
#[derive(Debug, Clone)]
struct Search {
    env_value: Option<OsString>,
    venv: PathBuf,
    system_names: Vec<String>,
}

impl Search {
    fn from_process() -> Self {
        Search {
            env_value: std::env::var_os(ORT_DYLIB_PATH_VAR).filter(|v| !v.is_empty()),
            venv: Path::new(SOURCE_TREE).join(".venv"),
            system_names: SYSTEM_LIBRARY_NAMES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn load(search: &Search) -> Result<Runtime, RuntimeError> {
    let (library, source, builder) = locate(search)?;
    let environment = guarded(|| {
        builder
            .with_name("gst-tinysam")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    })
    .map_err(|reason| RuntimeError::Ort {
        context: format!("creating the environment ({})", library.display()),
        reason,
    })?;
    Ok(Runtime {
        library,
        source,
        environment,
    })
}

fn locate(
    search: &Search,
) -> Result<(PathBuf, LibrarySource, ort::environment::EnvironmentBuilder), RuntimeError> {
    if let Some(value) = &search.env_value {
        let value = PathBuf::from(value);
        return explicit_candidate(&value)
            .and_then(|path| open(&path).map(|builder| (path, builder)))
            .map(|(path, builder)| (path, LibrarySource::EnvVar, builder))
            .map_err(|reason| RuntimeError::EnvPath { value, reason });
    }

    let mut attempts = vec![Attempt {
        place: ORT_DYLIB_PATH_VAR.to_owned(),
        outcome: "not set".to_owned(),
    }];

    let venv_place = format!(
        "{}/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*",
        search.venv.display()
    );
    let venv_libraries = venv_libraries(&search.venv);
    if venv_libraries.is_empty() {
        attempts.push(Attempt {
            place: venv_place,
            outcome: "no match (the source tree's Python environment is not set up)".to_owned(),
        });
    }
    for path in venv_libraries {
        match open(&path) {
            Ok(builder) => return Ok((path, LibrarySource::SourceTree, builder)),
            Err(outcome) => attempts.push(Attempt {
                place: path.display().to_string(),
                outcome,
            }),
        }
    }

    for name in &search.system_names {
        let path = PathBuf::from(name);
        match open(&path) {
            Ok(builder) => return Ok((path, LibrarySource::System, builder)),
            Err(outcome) => attempts.push(Attempt {
                place: format!("system library path ({name})"),
                outcome,
            }),
        }
    }

    Err(RuntimeError::NotFound { attempts })
}

/// Checks an explicitly given library and makes a path with a directory part
/// absolute, so that `ort` never resolves it against the executable's folder.
fn explicit_candidate(value: &Path) -> Result<PathBuf, String> {
    let has_directory = value.components().count() > 1 || value.is_absolute();
    if !has_directory {
        return Ok(value.to_path_buf());
    }
    let path = std::path::absolute(value).map_err(|e| e.to_string())?;
    if !path.exists() {
        return Err("no such file".to_owned());
    }
    if !path.is_file() {
        return Err("not a file".to_owned());
    }
    Ok(path)
}

/// Every `libonnxruntime.so*` in the virtual environment, in reverse name
/// order (a versioned file before a plain `.so`; one version per venv in practice).
fn venv_libraries(venv: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(lib_dirs) = std::fs::read_dir(venv.join("lib")) else {
        return found;
    };
    for python in lib_dirs.flatten() {
        if !python.file_name().to_string_lossy().starts_with("python3") {
            continue;
        }
        let capi = python.path().join("site-packages/onnxruntime/capi");
        let Ok(files) = std::fs::read_dir(&capi) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            if is_library_name(&name) && file.path().is_file() {
                found.push(file.path());
            }
        }
    }
    found.sort();
    found.reverse();
    found
}

fn is_library_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
}

/// Hands one candidate to `ort`. On failure nothing is kept, so the next
/// candidate can be tried.
fn open(path: &Path) -> Result<ort::environment::EnvironmentBuilder, String> {
    // `ort` resolves a relative name against the executable's folder and
    // panics if that folder cannot be determined; refuse instead.
    if path.is_relative() && std::env::current_exe().is_err() {
        return Err("the executable's location is unknown, so a bare library name cannot be used; give a full path".to_owned());
    }
    guarded(|| ort::init_from(path).map_err(|e| describe_load_error(&e)))
}

fn describe_load_error(error: &ort::LoadDynamicError) -> String {
    match error {
        // The dynamic linker's own words ("cannot open shared object file",
        // "invalid ELF header") are in the cause, which `ort` does not chain.
        ort::LoadDynamicError::Dlopen { error, .. } => with_sources(error),
        other => other.to_string(),
    }
}

/// An error and its causes on one line.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Runs `f`, turning a panic inside `ort` into an error: a last resort so that
/// a broken library can never take the host process down.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the ONNX Runtime loader panicked".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder unique to this test process and name.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tinysam-runtime-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn search(env_value: Option<&str>, venv: &Path) -> Search {
        Search {
            env_value: env_value.map(OsString::from),
            venv: venv.to_path_buf(),
            system_names: vec!["libtinysam-test-no-such-library.so".to_owned()],
        }
    }

    #[test]
    fn explicit_variable_pointing_nowhere_is_final() {
        let dir = scratch("explicit");
        let missing = dir.join("nope/libonnxruntime.so");
        let err = locate(&search(missing.to_str(), &dir)).err().unwrap();
        assert_eq!(
            err,
            RuntimeError::EnvPath {
                value: missing.clone(),
                reason: "no such file".to_owned()
            }
        );
        let message = err.to_string();
        assert!(message.contains(&format!("ORT_DYLIB_PATH={}", missing.display())));
        assert!(message.contains("To fix"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nothing_found_lists_every_place_and_the_fix() {
        let dir = scratch("nothing");
        let err = locate(&search(None, &dir.join(".venv"))).err().unwrap();
        let RuntimeError::NotFound { attempts } = &err else {
            panic!("unexpected error {err:?}");
        };
        let places: Vec<&str> = attempts.iter().map(|a| a.place.as_str()).collect();
        assert_eq!(places.len(), 3, "{places:?}");
        assert_eq!(places[0], "ORT_DYLIB_PATH");
        assert!(places[1].contains(".venv/lib/python3*/site-packages/onnxruntime/capi"));
        assert!(places[2].contains("libtinysam-test-no-such-library.so"));
        let message = err.to_string();
        assert!(message.contains("make setup"));
        assert!(message.contains("ORT_DYLIB_PATH=/path/to/"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn broken_library_in_venv_is_reported_not_fatal() {
        let dir = scratch("broken");
        let capi = dir.join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"not an ELF file").unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();

        let err = locate(&search(None, &dir.join(".venv"))).err().unwrap();
        let RuntimeError::NotFound { attempts } = &err else {
            panic!("unexpected error {err:?}");
        };
        assert_eq!(attempts.len(), 3, "{attempts:?}");
        assert!(attempts[1].place.ends_with("capi/libonnxruntime.so.1.31.1"));
        assert!(!attempts[1].outcome.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn venv_libraries_are_found_in_every_python_folder() {
        let dir = scratch("order");
        for python in ["python3.11", "python3.12"] {
            let capi = dir.join(format!("lib/{python}/site-packages/onnxruntime/capi"));
            std::fs::create_dir_all(&capi).unwrap();
        }
        let capi = |python: &str| dir.join(format!("lib/{python}/site-packages/onnxruntime/capi"));
        std::fs::write(capi("python3.11").join("libonnxruntime.so.1.31.1"), b"").unwrap();
        std::fs::write(
            capi("python3.11").join("libonnxruntime_providers_shared.so"),
            b"",
        )
        .unwrap();
        std::fs::write(capi("python3.12").join("libonnxruntime.so.1.20.0"), b"").unwrap();
        let found = venv_libraries(&dir);
        let names: Vec<_> = found
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["libonnxruntime.so.1.20.0", "libonnxruntime.so.1.31.1"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bare_names_go_to_the_dynamic_linker() {
        let name = Path::new("libonnxruntime.so.1");
        assert_eq!(explicit_candidate(name), Ok(name.to_path_buf()));
    }
}
