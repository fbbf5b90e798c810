// SPDX-License-Identifier: Apache-2.0
//! Drives the built plugin (`libgsttinysam.so`) through the GStreamer command
//! line tools, as a user would: `gst-inspect-1.0` and `gst-launch-1.0`.
//!
//! Each test copies the plugin into its own folder and uses its own registry
//! file, so the user's registry is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PLUGIN_FILE: &str = "libgsttinysam.so";
/// The element needs a model to start.
const MODEL_PROPERTY: &str = concat!(
    "model=",
    env!("CARGO_MANIFEST_DIR"),
    "/models/tinysam-fixture"
);

/// The cdylib built with this test: `cargo test` leaves it in
/// `target/<profile>/deps`, next to the test executable; `cargo build` puts it
/// one folder up.
fn built_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    [deps.join(PLUGIN_FILE), deps.join("..").join(PLUGIN_FILE)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{PLUGIN_FILE} not found next to {}", exe.display()))
}

/// A fresh folder holding only the plugin, for GST_PLUGIN_PATH.
fn plugin_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gst-tinysam-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).expect("create plugin folder");
    std::fs::copy(built_plugin(), dir.join("plugins").join(PLUGIN_FILE)).expect("copy plugin");
    dir
}

fn gst_tool(tool: &str, dir: &Path, ort_dylib_path: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .env("GST_PLUGIN_PATH", dir.join("plugins"))
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env_remove("GST_DEBUG");
    match ort_dylib_path {
        Some(path) => cmd.env("ORT_DYLIB_PATH", path),
        None => cmd.env_remove("ORT_DYLIB_PATH"),
    };
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}); install gstreamer1.0-tools (`make setup` does)")
    })
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_inspect_lists_tinysam(output: &Output) {
    let text = text(output);
    assert!(output.status.success(), "gst-inspect-1.0 failed:\n{text}");
    assert!(text.contains("TinySAM segmentation"), "{text}");
    assert!(text.contains("Filter/Analyzer/Video"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_DESCRIPTION")), "{text}");
    let version_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Version"))
        .unwrap_or_else(|| panic!("no Version line:\n{text}"));
    assert!(
        version_line.contains(env!("CARGO_PKG_VERSION")),
        "{version_line}"
    );
}

/// `videotestsrc num-buffers=N ! tinysam model=<fixture> ! fakesink`.
fn launch_tinysam(dir: &Path, ort_dylib: Option<&str>, buffers: u32) -> Output {
    let buffers = format!("num-buffers={buffers}");
    gst_tool(
        "gst-launch-1.0",
        dir,
        ort_dylib,
        &[
            "videotestsrc",
            &buffers,
            "!",
            "tinysam",
            MODEL_PROPERTY,
            "!",
            "fakesink",
        ],
    )
}

/// Checks that a pipeline failed in an orderly way, not by a crash
/// (gst-launch-1.0 exits with its own code); returns its output.
fn assert_orderly_failure(output: &Output) -> String {
    let text = text(output);
    assert!(!output.status.success(), "pipeline should fail:\n{text}");
    assert!(
        output.status.code().is_some(),
        "killed by a signal:\n{text}"
    );
    text
}

#[test]
fn gst_inspect_lists_the_element() {
    let dir = plugin_dir("inspect");
    let output = gst_tool("gst-inspect-1.0", &dir, None, &["tinysam"]);
    assert_inspect_lists_tinysam(&output);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gst_launch_runs_with_onnx_runtime() {
    let dir = plugin_dir("launch");
    let output = launch_tinysam(&dir, None, 5);
    assert!(output.status.success(), "{}", text(&output));
    let _ = std::fs::remove_dir_all(dir);
}

/// With ONNX Runtime unavailable the plugin still registers, and a pipeline
/// fails to start with a message that says what is missing and how to fix it.
/// An explicitly set ORT_DYLIB_PATH is final, which also turns off the
/// source-tree and system fallbacks here.
#[test]
fn missing_onnx_runtime_is_reported_not_fatal() {
    let dir = plugin_dir("no-ort");
    let missing = dir.join("nowhere/libonnxruntime.so");
    let missing = missing.to_str().expect("utf-8 temp path");

    let inspect = gst_tool("gst-inspect-1.0", &dir, Some(missing), &["tinysam"]);
    assert_inspect_lists_tinysam(&inspect);

    let launch = launch_tinysam(&dir, Some(missing), 1);
    let text = assert_orderly_failure(&launch);
    assert!(text.contains("ONNX Runtime could not be loaded"), "{text}");
    assert!(
        text.contains(&format!("ORT_DYLIB_PATH={missing}")),
        "{text}"
    );
    assert!(text.contains("To fix"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A file that is not a library at all must also end in an error message.
#[test]
fn broken_onnx_runtime_is_reported_not_fatal() {
    let dir = plugin_dir("broken-ort");
    let broken = dir.join("libonnxruntime.so");
    std::fs::write(&broken, b"this is not a shared library").expect("write broken library");
    let broken = broken.to_str().expect("utf-8 temp path");

    let launch = launch_tinysam(&dir, Some(broken), 1);
    let text = assert_orderly_failure(&launch);
    assert!(text.contains(&format!("ORT_DYLIB_PATH={broken}")), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
