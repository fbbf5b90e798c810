// SPDX-License-Identifier: Apache-2.0
//! Loads a real ONNX model through the same ONNX Runtime path the element
//! uses. Each test calls `ensure_loaded()` itself, so the order does not matter.

use std::path::{Path, PathBuf};

use gsttinysam::segment::onnx::runtime::{self, RuntimeError};
use ort::value::Tensor;

/// y = x @ [[1, 2], [3, 4], [5, 6]] + [0.5, -1]; made by tests/data/make_tiny_graph.py.
fn tiny_graph() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_graph.onnx")
}

fn loaded() -> &'static runtime::Runtime {
    match runtime::ensure_loaded() {
        Ok(runtime) => runtime,
        Err(err) => panic!("ONNX Runtime is required for this test:\n{err}"),
    }
}

#[test]
fn ensure_loaded_is_cached() {
    let first = loaded();
    let second = loaded();
    assert!(std::ptr::eq(first, second));
    assert!(
        first
            .library()
            .to_string_lossy()
            .contains("libonnxruntime.so")
    );
}

#[test]
fn tiny_graph_gives_exact_numbers() {
    loaded();
    let mut session = runtime::load_session(&tiny_graph(), 1).expect("session");
    assert_eq!(session.inputs().len(), 1);
    assert_eq!(session.outputs().len(), 1);

    let x = Tensor::from_array(([2usize, 3], vec![1.0f32, 0.0, 0.0, 1.0, 2.0, 3.0])).expect("x");
    let outputs = session.run(ort::inputs!["x" => x]).expect("run");
    let (shape, y) = outputs["y"].try_extract_tensor::<f32>().expect("y");
    assert_eq!(&**shape, &[2i64, 2]);
    assert_eq!(y, &[1.5f32, 1.0, 22.5, 27.0]);
}

#[test]
fn sessions_can_run_in_parallel_threads() {
    let handles: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let mut session = runtime::load_session(&tiny_graph(), 1).expect("session");
                let v = i as f32;
                let x = Tensor::from_array(([2usize, 3], vec![v, v, v, 0.0, 0.0, 0.0])).expect("x");
                let outputs = session.run(ort::inputs!["x" => x]).expect("run");
                let (_, y) = outputs["y"].try_extract_tensor::<f32>().expect("y");
                y.to_vec()
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let v = i as f32;
        let y = handle.join().expect("thread");
        assert_eq!(y, vec![9.0 * v + 0.5, 12.0 * v - 1.0, 0.5, -1.0]);
    }
}

#[test]
fn missing_model_is_an_error_not_a_panic() {
    loaded();
    let err = runtime::load_session(Path::new("/nonexistent/model.onnx"), 1)
        .expect_err("loading a missing model must fail");
    let RuntimeError::Ort { context, .. } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert!(context.contains("/nonexistent/model.onnx"));
}
