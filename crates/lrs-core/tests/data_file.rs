//! Data and model files: round trips, and clear errors for every kind of bad file.

use std::collections::HashMap;

use lrs_core::data_file::{read_instance, read_params, write_instance, write_params};
use lrs_core::{CoreError, SyntheticSpec};
use safetensors::{tensor::TensorView, Dtype};

fn small() -> lrs_core::Instance {
    SyntheticSpec {
        dim: 8,
        rank: 2,
        sparsity: 1,
        tasks: 4,
        samples: 5,
        test_samples: 3,
        noise: 0.1,
        seed: 9,
        ..Default::default()
    }
    .generate()
    .unwrap()
}

fn write_raw(
    path: &std::path::Path,
    tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>,
    format: &str,
) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, dt, s, b)| (n.to_string(), TensorView::new(*dt, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([("format".to_string(), format.to_string())]);
    std::fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

fn f64s(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f64).to_le_bytes()).collect()
}

fn err_text(path: &std::path::Path) -> String {
    match read_instance(path) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn generation_is_bit_reproducible_and_round_trips() {
    let a = small();
    let b = small();
    assert_eq!(a, b);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.safetensors");
    write_instance(&p, &a, HashMap::from([("seed".into(), "9".into())])).unwrap();
    let back = read_instance(&p).unwrap();
    assert_eq!(back.instance, a);
    // The features of a file this crate wrote are read in place from the mapped file.
    assert!(back.instance.train.x.is_mapped());
    assert!(!a.train.x.is_mapped());
    assert_eq!(back.metadata.get("seed").map(String::as_str), Some("9"));
    let params = a.truth.clone().unwrap();
    let q = dir.path().join("m.safetensors");
    write_params(&q, &params, HashMap::new()).unwrap();
    assert_eq!(read_params(&q).unwrap(), params);
    // A model file is not a data file.
    assert!(err_text(&q).contains("format"));
}

#[test]
fn bad_files_name_the_tensor_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    let fmt = "lrs-linear-data";

    std::fs::write(&p, b"not a safetensors file").unwrap();
    assert!(matches!(
        read_instance(&p),
        Err(CoreError::Malformed { .. })
    ));

    assert!(matches!(
        read_instance(&dir.path().join("missing.safetensors")),
        Err(CoreError::Io { .. })
    ));

    write_raw(&p, vec![("y", Dtype::F64, vec![2, 3], f64s(6))], fmt);
    assert!(err_text(&p).contains("`x`: missing"));

    write_raw(
        &p,
        vec![
            ("x", Dtype::F32, vec![2, 3, 4], vec![0; 96]),
            ("y", Dtype::F64, vec![2, 3], f64s(6)),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("`x`: dtype is F32"));

    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 3, 4], f64s(24)),
            ("y", Dtype::F64, vec![2, 4], f64s(8)),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("`y`: shape [2, 4] is inconsistent"));

    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![6, 4], f64s(24)),
            ("y", Dtype::F64, vec![2, 3], f64s(6)),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("`x`: has 2 dimensions"));

    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 3, 4], f64s(24)),
            ("y", Dtype::F64, vec![2, 3], f64s(6)),
            ("u_star", Dtype::F64, vec![4, 2], f64s(8)),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("w_star"));

    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 3, 4], f64s(24)),
            ("y", Dtype::F64, vec![2, 3], f64s(6)),
            ("u_star", Dtype::F64, vec![5, 2], f64s(10)),
            ("w_star", Dtype::F64, vec![2, 2], f64s(4)),
            ("b_star", Dtype::F64, vec![2, 4], f64s(8)),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("`u_star`: shape [5, 2]"));

    let mut nan = f64s(6);
    nan[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 3, 4], f64s(24)),
            ("y", Dtype::F64, vec![2, 3], nan),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("non-finite value at flat index 1"));

    // The same check on features read in place.
    let mut nan_x = f64s(24);
    nan_x[8 * 17..8 * 18].copy_from_slice(&f64::INFINITY.to_le_bytes());
    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 3, 4], nan_x),
            ("y", Dtype::F64, vec![2, 3], f64s(6)),
        ],
        fmt,
    );
    let err = err_text(&p);
    assert!(
        err.contains("`x`") && err.contains("non-finite value at flat index 17"),
        "{err}"
    );

    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 3, 4], f64s(24)),
            ("y", Dtype::F64, vec![2, 3], f64s(6)),
        ],
        "something-else",
    );
    assert!(err_text(&p).contains("format is `something-else`"));

    write_raw(
        &p,
        vec![
            ("x", Dtype::F64, vec![2, 0, 4], vec![]),
            ("y", Dtype::F64, vec![2, 0], vec![]),
        ],
        fmt,
    );
    assert!(err_text(&p).contains("empty dimension"));
}
