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
//! Where the process needs it, the library is first opened with its own
//! dependencies searched first, so that the C++ exceptions it throws and
//! catches internally stay on one unwinder (see `unwinder`, issue #9).
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
    own_scope: bool,
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

    /// Whether the library was opened with its own dependencies searched
    /// first (`RTLD_DEEPBIND`), so that its C++ exceptions use the same
    /// unwinder as libstdc++ in this process.
    pub fn own_scope(&self) -> bool {
        self.own_scope
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
            .field("own_scope", &self.own_scope)
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// `ORT_DYLIB_PATH` is set but does not name a loadable library.
    #[error(
        "ONNX Runtime could not be loaded from {ORT_DYLIB_PATH_VAR}={}: {reason}\n\
         To fix: set {ORT_DYLIB_PATH_VAR} to the full path of libonnxruntime.so \
         (the PyPI package onnxruntime=={ONNXRUNTIME_PIN} ships it as \
         site-packages/onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_PIN}), \
         or unset {ORT_DYLIB_PATH_VAR} to search the default places.",
        value.display()
    )]
    EnvPath { value: PathBuf, reason: String },
    /// No place in the search order held a loadable library.
    #[error(
        "ONNX Runtime (libonnxruntime.so) was not found. Looked in:\n{}\
         To fix: run `make setup` in the gst-tinysam source tree (installs \
         onnxruntime=={ONNXRUNTIME_PIN} into .venv), or install the PyPI package \
         onnxruntime=={ONNXRUNTIME_PIN} anywhere and set \
         {ORT_DYLIB_PATH_VAR}=/path/to/site-packages/onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_PIN}",
        list_attempts(attempts)
    )]
    NotFound { attempts: Vec<Attempt> },
    /// ONNX Runtime is loaded but reported an error.
    #[error("ONNX Runtime error while {context}: {reason}")]
    Ort { context: String, reason: String },
}

/// One line per attempt, each ending in a newline.
fn list_attempts(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|attempt| format!("  - {}: {}\n", attempt.place, attempt.outcome))
        .collect()
}

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
    let (library, source, opened) = locate(search)?;
    let environment = guarded(|| {
        opened
            .builder
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
        own_scope: opened.own_scope,
        environment,
    })
}

fn locate(search: &Search) -> Result<(PathBuf, LibrarySource, Opened), RuntimeError> {
    if let Some(value) = &search.env_value {
        let value = PathBuf::from(value);
        return explicit_candidate(&value)
            .and_then(|path| open(&path).map(|opened| (path, LibrarySource::EnvVar, opened)))
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
            Ok(opened) => return Ok((path, LibrarySource::SourceTree, opened)),
            Err(outcome) => attempts.push(Attempt {
                place: path.display().to_string(),
                outcome,
            }),
        }
    }

    for name in &search.system_names {
        let path = PathBuf::from(name);
        match open(&path) {
            Ok(opened) => return Ok((path, LibrarySource::System, opened)),
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

/// A candidate `ort` accepted.
struct Opened {
    builder: ort::environment::EnvironmentBuilder,
    own_scope: bool,
}

/// Hands one candidate to `ort`. On failure nothing is kept, so the next
/// candidate can be tried.
fn open(path: &Path) -> Result<Opened, String> {
    // `ort` resolves a relative name against the executable's folder and
    // panics if that folder cannot be determined; refuse instead.
    if path.is_relative() && std::env::current_exe().is_err() {
        return Err("the executable's location is unknown, so a bare library name cannot be used; give a full path".to_owned());
    }
    let own_scope = unwinder::open_in_own_scope_if_needed(&ort_resolved_path(path));
    let result = guarded(|| ort::init_from(path).map_err(|e| describe_load_error(&e)));
    let opened = own_scope.is_some();
    match (&result, own_scope) {
        (Ok(_), Some(handle)) => handle.keep_for_process(),
        (Err(_), Some(handle)) => handle.close(),
        (_, None) => {}
    }
    result.map(|builder| Opened {
        builder,
        own_scope: opened,
    })
}

/// The name `ort` hands to `dlopen` for `path` (its `load_library`): a
/// relative path is taken from the executable's folder when a file is there,
/// else passed on as it is, for the dynamic linker to search.
fn ort_resolved_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(path)))
        .filter(|candidate| candidate.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// Keeps ONNX Runtime's C++ exceptions on one unwinder (issue #9).
///
/// ONNX Runtime throws and catches C++ exceptions internally: libstdc++
/// raises them, ONNX Runtime's cleanups call `_Unwind_Resume`, libgcc_s calls
/// its own exported `_Unwind_*` through its PLT. libgstreamer brings
/// `libunwind.so.8`, which exports the same names unversioned; wherever it
/// comes before libgcc_s in the global scope, it wins every lookup resolved
/// after it arrived. Any split between the two aborts on the first throw.
/// Measured (`LD_DEBUG=bindings`, 200 throws per process, tests/unwind.rs):
/// - PyGObject, libstdc++ not loaded yet: opened as usual, everything binds
///   to libunwind and each throw is a clean error. With `RTLD_DEEPBIND`,
///   libstdc++ and ONNX Runtime bind to libgcc_s, but libgcc_s (loaded
///   lazily by this plugin, after libunwind) still calls libunwind's
///   `_Unwind_RaiseException`/`_Unwind_GetCFA`: abort every time. Loading
///   libgcc_s `RTLD_GLOBAL` first does not help: it lands behind libunwind.
/// - Python that imported numpy before GStreamer: libstdc++ and libgcc_s
///   were bound `RTLD_NOW` to libgcc_s before libunwind arrived. Opened as
///   usual, ONNX Runtime's `_Unwind_Resume` binds to libunwind: abort every
///   time. With `RTLD_DEEPBIND` it binds to libgcc_s, like libstdc++.
///
/// So ONNX Runtime must follow libstdc++: it is opened with `RTLD_DEEPBIND`
/// (its own dependencies, libgcc_s among them, searched before the global
/// scope) exactly when libstdc++'s `_Unwind_RaiseException` slot already
/// holds libgcc_s's while the global scope would give another one. `ort`'s
/// own `dlopen` of the same name then returns this handle.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod unwinder {
    use std::ffi::{CStr, CString, c_char, c_int, c_void};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const RTLD_LAZY: c_int = 0x1;
    const RTLD_NOW: c_int = 0x2;
    const RTLD_NOLOAD: c_int = 0x4;
    const RTLD_DEEPBIND: c_int = 0x8;
    const RTLD_LOCAL: c_int = 0;
    const RTLD_DI_LINKMAP: c_int = 2;

    const DT_NULL: i64 = 0;
    const DT_PLTRELSZ: i64 = 2;
    const DT_STRTAB: i64 = 5;
    const DT_SYMTAB: i64 = 6;
    const DT_RELA: i64 = 7;
    const DT_RELASZ: i64 = 8;
    const DT_PLTREL: i64 = 20;
    const DT_JMPREL: i64 = 23;

    #[cfg(target_arch = "x86_64")]
    const SLOT_RELOCATIONS: [u32; 2] = [6, 7]; // R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT
    #[cfg(target_arch = "aarch64")]
    const SLOT_RELOCATIONS: [u32; 2] = [1025, 1026]; // R_AARCH64_GLOB_DAT, R_AARCH64_JUMP_SLOT

    const RAISE: &CStr = c"_Unwind_RaiseException";

    /// The public head of glibc's `struct link_map`.
    #[repr(C)]
    struct LinkMap {
        addr: usize,
        name: *const c_char,
        dynamic: *const Dyn,
    }

    #[repr(C)]
    struct Dyn {
        tag: i64,
        value: u64,
    }

    #[repr(C)]
    struct Rela {
        offset: u64,
        info: u64,
        addend: i64,
    }

    #[repr(C)]
    struct Sym {
        name: u32,
        info: u8,
        other: u8,
        section: u16,
        value: u64,
        size: u64,
    }

    unsafe extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        fn dlclose(handle: *mut c_void) -> c_int;
        fn dlinfo(handle: *mut c_void, request: c_int, info: *mut c_void) -> c_int;
    }

    /// A `dlopen` handle.
    pub(super) struct Handle(*mut c_void);

    impl Handle {
        /// A library that is already loaded; `None` if it is not.
        fn existing(name: &CStr) -> Option<Handle> {
            // SAFETY: with RTLD_NOLOAD nothing is loaded or initialised.
            let handle = unsafe { dlopen(name.as_ptr(), RTLD_LAZY | RTLD_NOLOAD) };
            (!handle.is_null()).then(|| Handle(handle))
        }

        fn symbol(&self, name: &CStr) -> usize {
            // SAFETY: a valid handle and C string; the address is only compared.
            unsafe { dlsym(self.0, name.as_ptr()) as usize }
        }

        /// Leaves the library loaded, as it is, for the rest of the process.
        pub(super) fn keep_for_process(self) {
            std::mem::forget(self);
        }

        pub(super) fn close(self) {}
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from `dlopen` and is closed once.
            unsafe { dlclose(self.0) };
        }
    }

    /// Opens `path` with `RTLD_DEEPBIND` when the process needs it (see the
    /// module documentation); `None` when it is opened the usual way, by
    /// `ort` alone (which also reports any failure in its own words).
    pub(super) fn open_in_own_scope_if_needed(path: &Path) -> Option<Handle> {
        let name = CString::new(path.as_os_str().as_bytes()).ok()?;
        if Handle::existing(&name).is_some() || !libstdcxx_bound_to_libgcc_only() {
            return None;
        }
        // SAFETY: loading runs the library's initialisers, as `ort`'s own
        // `dlopen` would.
        let handle = unsafe { dlopen(name.as_ptr(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) };
        (!handle.is_null()).then(|| Handle(handle))
    }

    /// Whether libstdc++ already raises exceptions through libgcc_s while
    /// the global scope would give another `_Unwind_RaiseException`.
    fn libstdcxx_bound_to_libgcc_only() -> bool {
        let (Some(libgcc), Some(libstdcxx)) = (
            Handle::existing(c"libgcc_s.so.1"),
            Handle::existing(c"libstdc++.so.6"),
        ) else {
            return false;
        };
        let libgcc_raise = libgcc.symbol(RAISE);
        // SAFETY: RTLD_DEFAULT (null) is a valid pseudo-handle.
        let global_raise = unsafe { dlsym(std::ptr::null_mut(), RAISE.as_ptr()) as usize };
        if libgcc_raise == 0 || global_raise == libgcc_raise {
            return false;
        }
        // SAFETY: the handle keeps libstdc++ loaded while its tables are read.
        unsafe { bound_address(&libstdcxx, RAISE) == Some(libgcc_raise) }
    }

    /// The address in the GOT slot through which `library` calls `symbol`
    /// (the PLT stub inside `library` while a lazy slot is unresolved).
    ///
    /// # Safety
    /// `library` must be a loaded ELF object of the target's class whose
    /// dynamic section glibc has relocated.
    unsafe fn bound_address(library: &Handle, symbol: &CStr) -> Option<usize> {
        let mut map: *const LinkMap = std::ptr::null();
        // SAFETY: RTLD_DI_LINKMAP stores a `struct link_map *`.
        if unsafe { dlinfo(library.0, RTLD_DI_LINKMAP, (&raw mut map).cast()) } != 0
            || map.is_null()
        {
            return None;
        }
        // SAFETY: glibc's link map of a loaded object.
        let (base, mut dynamic) = unsafe { ((*map).addr, (*map).dynamic) };
        // glibc rewrites these entries to run-time addresses in place on
        // x86_64 and aarch64; an offset below the base is relocated here.
        let address = |value: u64| {
            let value = value as usize;
            if value < base { base + value } else { value }
        };
        let (mut strtab, mut symtab) = (0, 0);
        let (mut rela, mut rela_size, mut jmprel, mut jmprel_size) = (0, 0, 0, 0);
        let mut plt_is_rela = true;
        // SAFETY: the dynamic section ends with DT_NULL.
        unsafe {
            while (*dynamic).tag != DT_NULL {
                let value = (*dynamic).value;
                match (*dynamic).tag {
                    DT_STRTAB => strtab = address(value),
                    DT_SYMTAB => symtab = address(value),
                    DT_RELA => rela = address(value),
                    DT_RELASZ => rela_size = value as usize,
                    DT_JMPREL => jmprel = address(value),
                    DT_PLTRELSZ => jmprel_size = value as usize,
                    DT_PLTREL => plt_is_rela = value == DT_RELA as u64,
                    _ => {}
                }
                dynamic = dynamic.add(1);
            }
        }
        if strtab == 0 || symtab == 0 || !plt_is_rela {
            return None;
        }
        let tables = [(jmprel, jmprel_size), (rela, rela_size)];
        for (table, size) in tables {
            if table == 0 {
                continue;
            }
            let count = size / size_of::<Rela>();
            // SAFETY: DT_*RELA and their sizes describe arrays of Rela.
            let relocations = unsafe { std::slice::from_raw_parts(table as *const Rela, count) };
            for relocation in relocations {
                if !SLOT_RELOCATIONS.contains(&(relocation.info as u32)) {
                    continue;
                }
                let index = (relocation.info >> 32) as usize;
                // SAFETY: the index and name offset come from the object's
                // own relocation and symbol tables.
                let name = unsafe {
                    let sym = &*(symtab as *const Sym).add(index);
                    CStr::from_ptr((strtab + sym.name as usize) as *const c_char)
                };
                if name == symbol {
                    // SAFETY: the slot is an aligned pointer-sized word of the
                    // object, which the dynamic linker may be writing.
                    let slot =
                        unsafe { &*((base + relocation.offset as usize) as *const AtomicUsize) };
                    return Some(slot.load(Ordering::Relaxed));
                }
            }
        }
        None
    }
}

#[cfg(not(all(
    target_os = "linux",
    target_env = "gnu",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod unwinder {
    use std::path::Path;

    pub(super) enum Handle {}

    impl Handle {
        pub(super) fn keep_for_process(self) {}
        pub(super) fn close(self) {}
    }

    pub(super) fn open_in_own_scope_if_needed(_path: &Path) -> Option<Handle> {
        None
    }
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
    fn messages_are_exactly_as_documented() {
        let env = RuntimeError::EnvPath {
            value: PathBuf::from("/x/lib.so"),
            reason: "no such file".to_owned(),
        };
        assert_eq!(
            env.to_string(),
            "ONNX Runtime could not be loaded from ORT_DYLIB_PATH=/x/lib.so: no such file\n\
             To fix: set ORT_DYLIB_PATH to the full path of libonnxruntime.so (the PyPI package \
             onnxruntime==1.31.1 ships it as site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1), \
             or unset ORT_DYLIB_PATH to search the default places."
        );
        let attempt = |place: &str, outcome: &str| Attempt {
            place: place.to_owned(),
            outcome: outcome.to_owned(),
        };
        let fix = "To fix: run `make setup` in the gst-tinysam source tree (installs \
                   onnxruntime==1.31.1 into .venv), or install the PyPI package onnxruntime==1.31.1 \
                   anywhere and set \
                   ORT_DYLIB_PATH=/path/to/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1";
        let not_found = RuntimeError::NotFound {
            attempts: vec![attempt("A", "a"), attempt("B", "b")],
        };
        assert_eq!(
            not_found.to_string(),
            format!(
                "ONNX Runtime (libonnxruntime.so) was not found. Looked in:\n  - A: a\n  - B: b\n{fix}"
            )
        );
        let none = RuntimeError::NotFound { attempts: vec![] };
        assert_eq!(
            none.to_string(),
            format!("ONNX Runtime (libonnxruntime.so) was not found. Looked in:\n{fix}")
        );
        let ort = ort_error("c", "r");
        assert_eq!(ort.to_string(), "ONNX Runtime error while c: r");
        let _: &dyn std::error::Error = &ort;
    }

    #[test]
    fn relative_names_resolve_like_ort() {
        let name = Path::new("libtinysam-test-no-such-library.so");
        assert_eq!(ort_resolved_path(name), name);
        let exe = std::env::current_exe().unwrap();
        let beside = Path::new(exe.file_name().unwrap());
        assert_eq!(ort_resolved_path(beside), exe);
        assert_eq!(ort_resolved_path(&exe), exe);
    }

    #[test]
    fn bare_names_go_to_the_dynamic_linker() {
        let name = Path::new("libonnxruntime.so.1");
        assert_eq!(explicit_candidate(name), Ok(name.to_path_buf()));
    }
}
