// SPDX-License-Identifier: Apache-2.0
//! The programs in examples/ run headless and print what they should, so
//! they never rot: `segment_video` (the Rust example, which `cargo test`
//! builds next to the test executables) and `detect_and_segment.sh` (a
//! face detector upstream of tinysam, through `gst-launch-1.0`). The Python
//! examples are run by tests/python/test_examples.py.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Once};

use gst::prelude::*;

const PLUGIN_FILE: &str = "libgsttinysam.so";
/// The drawn face on which OpenCV's `facedetect` finds one face.
const FACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/face.png");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/detect_and_segment.sh"
);
/// Where videotestsrc's ball (320x240, a 37-pixel disc) is on frame 0.
const BALL_CENTRE: &str = "point=160,120";
const BALL_AREA: std::ops::Range<u64> = 800..1600;

/// `target/<profile>`: the test executable is in its `deps` folder.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The example `name`, built for this profile. `cargo test` builds the
/// examples, but not with `--test examples` alone: so when run by cargo
/// (which sets CARGO), this asks cargo to bring it up to date first (a
/// no-op when it is; cargo no longer holds its lock while tests run).
fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let profile = profile_dir();
    let path = profile.join("examples").join(name);
    let mut built = BUILT.lock().unwrap();
    if let (Some(cargo), false) = (std::env::var_os("CARGO"), built.iter().any(|b| b == name)) {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let output = cmd.output().expect("run cargo");
        assert!(
            output.status.success(),
            "cargo build --example {name}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        built.push(name.to_string());
    }
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release --examples`",
        path.display()
    );
    path
}

/// A fresh folder holding only the built plugin, for GST_PLUGIN_PATH (as in
/// tests/cli.rs: `cargo test` leaves it in `deps`, `cargo build` one up).
fn plugin_dir(name: &str) -> PathBuf {
    let profile = profile_dir();
    let plugin = [
        profile.join("deps").join(PLUGIN_FILE),
        profile.join(PLUGIN_FILE),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| panic!("{PLUGIN_FILE} not found in {}", profile.display()));
    let dir = std::env::temp_dir().join(format!(
        "gst-tinysam-examples-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create plugin folder");
    std::fs::copy(plugin, dir.join(PLUGIN_FILE)).expect("copy plugin");
    dir
}

fn run(mut cmd: Command) -> Output {
    let output = cmd
        .env_remove("GST_DEBUG")
        .output()
        .expect("run the example");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// One printed object: `frame=N id=I state=S box=x,y,w,h area=A iou=F`.
#[derive(Debug)]
struct Line {
    frame: u64,
    /// None for `frame=N objects=0`.
    object: Option<(u32, String, [i32; 4], u64, f64)>,
}

fn parse(stdout: &[u8]) -> Vec<Line> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_else(|| panic!("no {name} in `{line}`"))
            };
            let frame = field("frame").parse().unwrap();
            if line.ends_with(" objects=0") {
                return Line {
                    frame,
                    object: None,
                };
            }
            let b: Vec<i32> = field("box")
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect();
            Line {
                frame,
                object: Some((
                    field("id").parse().unwrap(),
                    field("state").to_string(),
                    [b[0], b[1], b[2], b[3]],
                    field("area").parse().unwrap(),
                    field("iou").parse().unwrap(),
                )),
            }
        })
        .collect()
}

fn segment_video(args: &[&str]) -> Vec<Line> {
    let mut cmd = Command::new(example_binary("segment_video"));
    cmd.args(args);
    parse(&run(cmd).stdout)
}

#[test]
fn segment_video_follows_the_ball_from_one_point() {
    let lines = segment_video(&["--prompts", BALL_CENTRE, "--frames", "8"]);
    assert_eq!(lines.len(), 8, "one object per frame: {lines:?}");
    let mut previous_x = -1;
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line.frame, n as u64);
        let (id, state, [x, y, w, h], area, iou) = line.object.clone().expect("an object");
        assert_eq!(id, 0);
        assert_eq!(state, if n == 0 { "acquired" } else { "tracked" });
        assert!(BALL_AREA.contains(&area), "frame {n}: area {area}");
        assert!(
            (30..=45).contains(&w) && (30..=45).contains(&h),
            "frame {n}: {w}x{h}"
        );
        assert!(iou > 0.5, "frame {n}: iou {iou}");
        // The ball moves right and down; its box follows.
        assert!(x > previous_x && y > 90, "frame {n}: box at {x},{y}");
        previous_x = x;
    }
}

#[test]
fn segment_video_everything_mode_finds_the_ball() {
    let lines = segment_video(&["--frames", "2"]);
    for frame in 0..2 {
        let objects: Vec<_> = lines
            .iter()
            .filter(|l| l.frame == frame)
            .filter_map(|l| l.object.clone())
            .collect();
        assert!(
            objects.iter().any(|o| BALL_AREA.contains(&o.3)),
            "frame {frame}: no ball-sized object in {objects:?}"
        );
        let state = if frame == 0 { "everything" } else { "tracked" };
        assert!(objects.iter().all(|o| o.1 == state), "{objects:?}");
    }
}

#[test]
fn segment_video_reads_a_file() {
    // A still image through decodebin: one frame, the face's box as prompt.
    let lines = segment_video(&["--input", FACE, "--prompts", "box=100,42,220,198"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (_, state, [x, y, w, h], area, _) = lines[0].object.clone().expect("an object");
    assert_eq!(state, "acquired");
    assert!(area > 5000 && x >= 90 && y >= 30 && x + w <= 230 && y + h <= 210);
}

#[test]
fn segment_video_reports_errors() {
    for args in [
        &["--input", "/nonexistent/clip.webm"][..],
        &["--frames", "x"],
        &["--bogus"],
    ] {
        let output = Command::new(example_binary("segment_video"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.starts_with("segment_video: "), "{args:?}: {stderr}");
    }
}

/// Whether OpenCV's face detector (gstreamer1.0-opencv) and its face
/// cascade (opencv-data, only recommended by it) are installed; the detector
/// tests say so and pass when they are not.
fn have_facedetect() -> bool {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gsttinysam::plugin_register_static().unwrap();
    });
    let Ok(detector) = gst::ElementFactory::make("facedetect").build() else {
        eprintln!(
            "facedetect (gstreamer1.0-opencv) is not installed: not testing the detector example"
        );
        return false;
    };
    let profile = detector
        .property::<Option<String>>("profile")
        .unwrap_or_default();
    if !Path::new(&profile).is_file() {
        eprintln!(
            "facedetect's cascade {profile} (opencv-data) is missing: not testing the detector example"
        );
        return false;
    }
    true
}

fn script(args: &[&str], plugins: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT).args(args);
    if let Some(dir) = plugins {
        cmd.env("GST_PLUGIN_PATH", dir)
            .env("GST_REGISTRY", dir.join("registry.bin"));
    }
    run(cmd)
}

#[test]
fn detect_and_segment_runs_to_the_end() {
    if !have_facedetect() {
        return;
    }
    let dir = plugin_dir("detect");
    let output = script(
        &[
            "--input",
            FACE,
            "--frames",
            "3",
            "--sink",
            "fakesink",
            "--messages",
        ],
        Some(&dir),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Got EOS from element"), "{stdout}");
    let faces = stdout
        .lines()
        .filter(|l| l.contains("(element): facedetect,") && l.contains("face\\,"))
        .count();
    assert_eq!(
        faces, 3,
        "facedetect finds the drawn face on each frame:\n{stdout}"
    );
    // Without faces (the test source) there is nothing to segment: the
    // frames pass through and the stream still ends cleanly.
    let output = script(
        &[
            "--input",
            "videotestsrc",
            "--frames",
            "3",
            "--sink",
            "fakesink",
        ],
        Some(&dir),
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Got EOS from element"));
    let _ = std::fs::remove_dir_all(dir);
}

/// The script's pipeline, run here with a probe: tinysam segments the
/// detector's face on every frame, labelled as such.
#[test]
fn detect_and_segment_pipeline_segments_the_face() {
    if !have_facedetect() {
        return;
    }
    let output = script(
        &[
            "--input",
            FACE,
            "--frames",
            "3",
            "--sink",
            "fakesink",
            "--print-pipeline",
        ],
        None,
    );
    let description = String::from_utf8(output.stdout).unwrap();
    let pipeline = gst::parse::launch(description.trim()).expect(&description);
    let sam = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("sam")
        .unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let seen = frames.clone();
    sam.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let meta = gst::meta::CustomMeta::from_buffer(info.buffer().unwrap(), "GstTinySamMeta")
                .expect("GstTinySamMeta");
            let objects = meta.structure().get::<gst::Array>("objects").unwrap();
            let objects: Vec<(String, String, u64)> = objects
                .iter()
                .map(|v| {
                    let o = v.get::<gst::Structure>().unwrap();
                    (
                        o.get("label").unwrap_or_default(),
                        o.get("prompt-source").unwrap_or_default(),
                        o.get("area").unwrap(),
                    )
                })
                .collect();
            seen.lock().unwrap().push(objects);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error within 120 s");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    let frames = frames.lock().unwrap();
    assert_eq!(frames.len(), 3);
    for objects in frames.iter() {
        assert_eq!(objects.len(), 1, "one face: {objects:?}");
        let (label, source, area) = &objects[0];
        assert_eq!((label.as_str(), source.as_str()), ("face", "roi"));
        // The skin ellipse is 120x156 pixels (14,700).
        assert!(*area > 5000, "{objects:?}");
    }
}
