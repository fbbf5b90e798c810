// SPDX-License-Identifier: Apache-2.0
//! docs/element.md's code blocks, for tests that run them as written: the
//! block text, and C programs around a C block compiled with gcc against
//! GStreamer and run with the plugin built with the tests.

use std::path::PathBuf;
use std::process::Command;

use super::element::root;

/// The body of the first fenced block in `language` after `heading` in
/// docs/element.md.
pub fn doc_block(heading: &str, language: &str) -> String {
    let docs = std::fs::read_to_string(root().join("docs/element.md")).unwrap();
    let section = &docs[docs.find(heading).expect("the heading")..];
    let fence = format!("```{language}\n");
    let start = section.find(&fence).expect("the block") + fence.len();
    let end = start + section[start..].find("```").expect("the block's end");
    section[start..end].to_owned()
}

/// The plugin built with this test (see tests/cli.rs).
pub fn built_plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [
        deps.join("libgsttinysam.so"),
        deps.join("..").join("libgsttinysam.so"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .expect("libgsttinysam.so next to the test executable")
}

/// A C program built in a fresh folder, with the plugin beside it.
pub struct CProgram {
    pub dir: PathBuf,
    pub program: PathBuf,
}

impl CProgram {
    /// Compiles `source` (warnings are errors) against GStreamer.
    pub fn compile(name: &str, source: &str) -> CProgram {
        let dir = std::env::temp_dir().join(format!("gst-tinysam-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        std::fs::copy(built_plugin(), dir.join("plugins/libgsttinysam.so")).unwrap();
        let file = dir.join(format!("{name}.c"));
        std::fs::write(&file, source).unwrap();
        let program = dir.join(name);
        let flags = Command::new("pkg-config")
            .args(["--cflags", "--libs", "gstreamer-1.0"])
            .output()
            .expect("pkg-config (make setup installs it)");
        assert!(flags.status.success(), "pkg-config gstreamer-1.0 failed");
        let compiled = Command::new("gcc")
            .args(["-Wall", "-Werror"])
            .arg(&file)
            .arg("-o")
            .arg(&program)
            .args(String::from_utf8_lossy(&flags.stdout).split_whitespace())
            .output()
            .expect("gcc");
        assert!(
            compiled.status.success(),
            "the C snippet does not compile:\n{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
        CProgram { dir, program }
    }

    /// Runs it with `args` and the plugin on GST_PLUGIN_PATH; its stdout.
    pub fn run(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
        let out = Command::new(&self.program)
            .args(args.iter().map(|a| a.as_ref()))
            .env("GST_PLUGIN_PATH", self.dir.join("plugins"))
            .env("GST_REGISTRY", self.dir.join("registry.bin"))
            .env_remove("GST_DEBUG")
            .output()
            .expect("run the C program");
        assert!(
            out.status.success(),
            "the C program failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file in its folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for CProgram {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
