// SPDX-License-Identifier: Apache-2.0
//! ONNX Runtime's internal C++ exceptions come back as clean errors whatever
//! order the host loaded its unwinders in (issue #9).
//!
//! libgstreamer links `libunwind.so.8`, which exports the same `_Unwind_*`
//! names as libgcc_s. If libstdc++, libgcc_s and ONNX Runtime do not all
//! bind them to the same library, every exception ONNX Runtime throws (and
//! catches again) aborts or crashes the process. Each scenario runs in a child
//! process, so that a crash fails the test instead of killing the test runner:
//!
//! - this test binary again (`TINYSAM_UNWIND_CHILD` names the scenario),
//!   where ONNX Runtime throws [`THROWS`] times per kind: a tensor shape whose
//!   size overflows (SafeInt), a tensor too large to allocate
//!   (`std::bad_alloc`), and a graph that fails ONNX shape inference while a
//!   session is created (tests/data/shape_error.onnx);
//! - Python with PyGObject, the host where the crash was seen: the `tinysam`
//!   element is started [`THROWS`] times on that graph, with numpy (which
//!   binds libstdc++ to libgcc_s as it loads) imported before GStreamer,
//!   after it, or not at all.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gsttinysam::segment::onnx::runtime;
use ort::memory::Allocator;
use ort::value::Tensor;

const CHILD_VAR: &str = "TINYSAM_UNWIND_CHILD";
const THROWS: usize = 200;
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);
const LIBUNWIND: &str = "libunwind.so.8";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Paths of the mapped files of this process whose name contains `needle`.
fn mapped(needle: &str) -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found: Vec<PathBuf> = Vec::new();
    for path in maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
    {
        let path = PathBuf::from(path);
        let matches = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().contains(needle));
        if matches && !found.contains(&path) {
            found.push(path);
        }
    }
    found
}

/// libunwind as GStreamer loads it into this process, if it does.
fn gstreamer_libunwind() -> Option<PathBuf> {
    gst::init().expect("gst::init");
    assert!(
        !mapped("libgstreamer-1.0.so").is_empty(),
        "the test binary should have libgstreamer loaded"
    );
    mapped(LIBUNWIND).into_iter().next()
}

/// The child's side: make ONNX Runtime throw, report how it went.
fn child() {
    let libunwind = gstreamer_libunwind().is_some();
    let runtime = runtime::ensure_loaded().expect("ONNX Runtime is required for this test");
    let allocator = Allocator::default();
    let mut clean = 0;
    let mut first_errors = Vec::new();
    for i in 0..THROWS {
        let results = [
            Tensor::<f32>::new(&allocator, vec![i64::MAX / 2, 4]).map(drop),
            Tensor::<f32>::new(&allocator, vec![1i64 << 60]).map(drop),
            runtime::load_session(&data("shape_error.onnx"), 1)
                .map(drop)
                .map_err(|e| ort::Error::new(e.to_string())),
        ];
        for result in results {
            match result {
                Err(e) => {
                    clean += 1;
                    if i == 0 {
                        first_errors.push(e.to_string());
                    }
                }
                Ok(()) => eprintln!("an ONNX Runtime call that should fail succeeded"),
            }
        }
    }
    for error in first_errors {
        eprintln!("error: {error}");
    }
    println!(
        "\nRESULT clean={clean} total={} own_scope={} libunwind={libunwind}",
        3 * THROWS,
        runtime.own_scope()
    );
}

/// Does nothing unless started as a child by the other tests.
#[test]
fn child_entry() {
    if std::env::var_os(CHILD_VAR).is_some() {
        child();
    }
}

/// A scratch folder unique to this test process and name.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinysam-unwind-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `command` to the end (killed after [`CHILD_TIMEOUT`]); returns its
/// stdout, or fails the test with its status and stderr.
fn run_child(what: &str, mut command: Command) -> String {
    let dir = scratch(what);
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    match status {
        Some(status) if status.success() => stdout,
        Some(status) => panic!(
            "{what}: the process died ({status}) while ONNX Runtime threw\n{}",
            tail(&stderr)
        ),
        None => panic!(
            "{what}: no result within {CHILD_TIMEOUT:?}\n{}",
            tail(&stderr)
        ),
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The `key=value` of the child's RESULT line.
fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stdout}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// Runs this binary as a child with `env` added; checks that every throw
/// was a clean error and returns whether ONNX Runtime was opened with its own
/// scope.
fn run_rust_child(what: &str, env: &[(&str, &Path)]) -> bool {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let stdout = run_child(what, command);
    assert_eq!(
        field(&stdout, "clean"),
        field(&stdout, "total"),
        "{what}: not every ONNX Runtime exception became an error\n{stdout}"
    );
    assert_eq!(
        field(&stdout, "libunwind"),
        "true",
        "{what}: {LIBUNWIND} was not loaded"
    );
    field(&stdout, "own_scope") == "true"
}

#[test]
fn rust_host_keeps_the_usual_scope() {
    if gstreamer_libunwind().is_none() {
        eprintln!("GStreamer does not load {LIBUNWIND} here; nothing to check");
        return;
    }
    // This binary links libgcc_s, so it comes before libunwind anyway.
    assert!(!run_rust_child("as-is", &[]));
}

#[test]
fn libunwind_ahead_of_libgcc() {
    let Some(libunwind) = gstreamer_libunwind() else {
        eprintln!("GStreamer does not load {LIBUNWIND} here; nothing to check");
        return;
    };
    // libstdc++ is not loaded yet, so it and ONNX Runtime both bind to
    // libunwind. Opened with its own scope, ONNX Runtime and libstdc++ would
    // bind to libgcc_s while libgcc_s calls libunwind's `_Unwind_GetCFA`.
    assert!(!run_rust_child(
        "libunwind-first",
        &[("LD_PRELOAD", &libunwind)]
    ));
}

/// Starts the element on a graph ONNX Runtime refuses, THROWS times.
const PYGOBJECT_CHILD: &str = r#"
import sys
plugin, encoder, decoder, count, numpy_order = sys.argv[1:]
if numpy_order == "before":
    import numpy
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
if numpy_order == "after":
    import numpy
if Gst.Plugin.load_file(plugin) is None:
    sys.exit(f"cannot load {plugin}")
clean = 0
first = None
for _ in range(int(count)):
    element = Gst.ElementFactory.make("tinysam")
    element.set_property("encoder-model", encoder)
    element.set_property("decoder-model", decoder)
    bus = Gst.Bus()
    element.set_bus(bus)
    result = element.set_state(Gst.State.PAUSED)
    message = bus.pop_filtered(Gst.MessageType.ERROR)
    text = message.parse_error()[0].message if message else ""
    # ONNX Runtime's own words: it did load, and threw while checking.
    if result == Gst.StateChangeReturn.FAILURE and "ShapeInferenceError" in text:
        clean += 1
    first = first or text
    element.set_state(Gst.State.NULL)
print(f"first error: {first}", file=sys.stderr)
print(f"\nRESULT clean={clean} total={count}")
"#;

/// Runs [`PYGOBJECT_CHILD`] with numpy imported `numpy_order` ("before",
/// "after" or "never") and `env` added; checks every start failed cleanly.
fn run_pygobject_child(what: &str, numpy_order: &str, env: &[(&str, &Path)]) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    // The cdylib built with the library this test links.
    let plugin = std::env::current_exe()
        .unwrap()
        .with_file_name("libgsttinysam.so");
    assert!(
        python.exists(),
        "{} is missing; run `make setup`",
        python.display()
    );
    assert!(plugin.exists(), "{} is missing", plugin.display());
    let registry = scratch(&format!("{what}-registry"));
    let mut command = Command::new(&python);
    command
        .arg("-c")
        .arg(PYGOBJECT_CHILD)
        .arg(&plugin)
        .arg(data("shape_error.onnx"))
        .arg(data("tiny/decoder.onnx"))
        .arg(THROWS.to_string())
        .arg(numpy_order)
        .env("GST_REGISTRY_1_0", registry.join("registry.bin"))
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", "")
        .env("GST_PLUGIN_PATH_1_0", "")
        .env_remove("LD_PRELOAD");
    for (key, value) in env {
        command.env(key, value);
    }
    let stdout = run_child(what, command);
    std::fs::remove_dir_all(registry).unwrap();
    assert_eq!(
        field(&stdout, "clean"),
        field(&stdout, "total"),
        "{what}: not every start failed with ONNX Runtime's error message\n{stdout}"
    );
}

#[test]
fn pygobject_host() {
    run_pygobject_child("pygobject", "never", &[]);
}

#[test]
fn pygobject_host_with_numpy_before_gstreamer() {
    run_pygobject_child("pygobject-numpy-before", "before", &[]);
}

#[test]
fn pygobject_host_with_numpy_after_gstreamer() {
    run_pygobject_child("pygobject-numpy-after", "after", &[]);
}

#[test]
fn pygobject_host_with_a_bare_library_name() {
    let library = runtime::ensure_loaded()
        .expect("ONNX Runtime is required for this test")
        .library()
        .to_path_buf();
    let (Some(dir), Some(name)) = (library.parent(), library.file_name()) else {
        panic!("unexpected library path {}", library.display());
    };
    // Found by the dynamic linker, with numpy first so that it is opened
    // with its own scope.
    run_pygobject_child(
        "pygobject-bare-name",
        "before",
        &[
            (runtime::ORT_DYLIB_PATH_VAR, Path::new(name)),
            ("LD_LIBRARY_PATH", dir),
        ],
    );
}
